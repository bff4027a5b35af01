"""Where the files shipped beside the code are: inside the wheel, or at the top of a source tree."""

from __future__ import annotations

import errno
import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def shipped(name: str) -> Path:
    """`templates` or `config.example.toml`: the wheel puts them in the package (see
    pyproject.toml's force-include); a source checkout or editable install has them one level up."""
    inside = _PACKAGE / name
    return inside if inside.exists() else _PACKAGE.parent / name


# Everything the watcher writes holds the digests it sent (who follows what, every paper): it is
# the owner's alone, whatever the process umask. Folders the user made are left as they are.
PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def private_dir(path: Path) -> Path:
    """Create `path` and any missing parents as owner-only folders (0700); an existing folder
    is left as it is. Returns `path`."""
    if path.exists() and not path.is_dir():
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path))
    missing: list[Path] = []
    for p in (path, *path.parents):
        if p.exists():
            break  # a file in a folder's place fails below, naming the folder, as mkdir does
        missing.append(p)
    for p in reversed(missing):
        try:
            p.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            if not p.is_dir():
                raise
            continue  # another process made it at the same moment: it made it private too
        p.chmod(PRIVATE_DIR)  # mkdir's mode is filtered by the umask; chmod is not
    return path


def tighten(path: Path, mode: int = PRIVATE_FILE) -> None:
    """Take group and other permissions off an existing file or folder of ours (one written
    before this rule, or by SQLite); a missing one, or one owned by someone else, is left as
    it is."""
    try:
        current = path.stat().st_mode & 0o777
        if current & ~mode:
            path.chmod(current & mode)
    except (FileNotFoundError, PermissionError):
        pass


def open_private(path: Path, flags: int = os.O_WRONLY | os.O_CREAT | os.O_TRUNC) -> int:
    """os.open for a file that is owner-only (0600) from the moment it exists, even when it
    existed before with wider permissions."""
    fd = os.open(path, flags | os.O_CLOEXEC, PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)
    except OSError:
        os.close(fd)
        raise
    return fd


def write_private(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    """Write `data` to an owner-only file (created, or truncated and made owner-only)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    with os.fdopen(open_private(path, flags), "wb") as f:
        f.write(data)
