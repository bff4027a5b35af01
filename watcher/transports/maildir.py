"""The maildir transport: the embedded default when no SMTP server is set."""

from __future__ import annotations

import os
from pathlib import Path

from watcher.errors import MailError
from watcher.paths import PRIVATE_DIR, private_dir, tighten, write_private
from watcher.transports.base import OutgoingDigest


class MaildirTransport:
    """Writes each message into a maildir: the embedded default when no SMTP server is set.

    Files are named after the Message-ID, so a digest retried after a crash between writing and
    recording it lands once, not twice.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            for sub in ("tmp", "new", "cur"):
                # Ours even inside a maildir the user made: a folder left 0755 by an older
                # version is closed, which closes the messages already in it.
                private_dir(path / sub)
                tighten(path / sub, PRIVATE_DIR)
        except OSError as exc:
            raise MailError.unusable_folder("the maildir (mail.maildir)", path, exc) from None

    def send(self, digest: OutgoingDigest) -> None:
        message_id = digest.message_id
        name = "".join(c if c.isalnum() or c in "._-@" else "_" for c in message_id.strip("<>"))
        final = self.path / "new" / f"{name}.eml"
        if final.exists() or any((self.path / "cur").glob(f"{name}.eml*")):
            return
        tmp = self.path / "tmp" / f"{name}.{os.getpid()}"
        try:
            write_private(tmp, digest.mime)
            os.replace(tmp, final)
        except OSError as exc:
            raise MailError(f"cannot write to maildir {self.path}: {exc.strerror}") from None

    def close(self) -> None:
        pass
