"""Which transport a config asks for. A new transport is one module in watcher/transports/ and
one line here (plus its settings in config_keys.py and the line in wiring.py that passes them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watcher.transports.base import Transport
from watcher.transports.maildir import MaildirTransport
from watcher.transports.smtp import SmtpSettings, SmtpTransport


@dataclass(frozen=True)
class TransportSettings:
    """Plain values a transport is built from (made by watcher/wiring.py from the config and
    the environment)."""

    from_addr: str
    maildir: Path
    smtp: SmtpSettings | None = None
    smtp_password: str | None = None


TRANSPORTS: dict[str, Callable[[TransportSettings], Transport]] = {
    "maildir": lambda s: MaildirTransport(s.maildir),
    "smtp": lambda s: _smtp(s),
}


def _smtp(s: TransportSettings) -> Transport:
    if s.smtp is None:
        raise ValueError("the smtp transport needs SMTP settings")
    return SmtpTransport(s.smtp, s.from_addr, s.smtp_password)
