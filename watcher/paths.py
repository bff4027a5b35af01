"""Where the files shipped beside the code are: inside the wheel, or at the top of a source tree."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def shipped(name: str) -> Path:
    """`templates` or `config.example.toml`: the wheel puts them in the package (see
    pyproject.toml's force-include); a source checkout or editable install has them one level up."""
    inside = _PACKAGE / name
    return inside if inside.exists() else _PACKAGE.parent / name
