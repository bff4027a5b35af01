"""Email: build the MIME message (pure), and the transports that hand it over (SMTP, maildir)."""

from __future__ import annotations

import contextlib
import logging
import os
import smtplib
import ssl
from collections.abc import Mapping
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Protocol

from watcher.config import MailConfig, SmtpConfig
from watcher.digest import Rendered, header_safe
from watcher.errors import ConfigError, MailError
from watcher.paths import PRIVATE_DIR, private_dir, tighten, write_private
from watcher.redact import register_secret

log = logging.getLogger(__name__)


def new_message_id(from_addr: str) -> str:
    domain = from_addr.rpartition("@")[2] or "localhost"
    return make_msgid("digest", domain=domain)


def build_message(
    rendered: Rendered,
    from_addr: str,
    to_addr: str,
    message_id: str,
    when: datetime,
    *,
    from_name: str | None = None,
    to_name: str | None = None,
) -> bytes:
    """multipart/alternative (text, then HTML), UTF-8, CRLF line ends, ready for SMTP.

    Display names go in as Address objects: the email package quotes them as needed and
    encodes non-ASCII ones as RFC 2047 encoded words.
    """
    msg = EmailMessage(policy=SMTP)
    msg["Subject"] = header_safe(rendered.subject)
    msg["From"] = _mailbox(from_name or "PubMed Watcher", from_addr)
    msg["To"] = _mailbox(to_name or "", to_addr)
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = message_id
    domain = from_addr.rpartition("@")[2] or "localhost"
    msg["List-Id"] = f"PubMed Watcher digest <digest.{domain}>"
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies, please
    msg["X-Auto-Response-Suppress"] = "All"
    msg.set_content(rendered.text, charset="utf-8", cte="quoted-printable")
    msg.add_alternative(rendered.html, subtype="html", charset="utf-8", cte="quoted-printable")
    return msg.as_bytes()


def _mailbox(name: str, address: str) -> Address:
    local, _, domain = header_safe(address).rpartition("@")
    return Address(display_name=header_safe(name), username=local, domain=domain)


class Transport(Protocol):
    def send(self, message: bytes, recipient: str) -> None: ...

    def close(self) -> None: ...


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

    def send(self, message: bytes, recipient: str) -> None:
        from email import message_from_bytes

        message_id = message_from_bytes(message)["Message-ID"] or ""
        name = "".join(c if c.isalnum() or c in "._-@" else "_" for c in message_id.strip("<>"))
        final = self.path / "new" / f"{name}.eml"
        if final.exists() or any((self.path / "cur").glob(f"{name}.eml*")):
            return
        tmp = self.path / "tmp" / f"{name}.{os.getpid()}"
        try:
            write_private(tmp, message)
            os.replace(tmp, final)
        except OSError as exc:
            raise MailError(f"cannot write to maildir {self.path}: {exc.strerror}") from None

    def close(self) -> None:
        pass


class SmtpTransport:
    """SMTP with STARTTLS (default), implicit TLS or none; certificates verified; optional AUTH.

    One connection serves a whole digest run and is reopened if the server drops it.
    """

    def __init__(self, config: SmtpConfig, from_addr: str, password: str | None) -> None:
        self.config = config
        self.from_addr = from_addr
        self.password = password
        register_secret(password)  # kept out of every error line and log
        self._conn: smtplib.SMTP | None = None

    def _context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        if self.config.ca_file:
            ctx.load_verify_locations(cafile=str(self.config.ca_file))
        return ctx

    def _connect(self) -> smtplib.SMTP:
        c = self.config
        try:
            if c.security == "ssl":
                conn: smtplib.SMTP = smtplib.SMTP_SSL(
                    c.host, c.port, timeout=c.timeout, context=self._context()
                )
            else:
                conn = smtplib.SMTP(c.host, c.port, timeout=c.timeout)
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(f"cannot reach SMTP server {c.host}:{c.port}: {exc}") from None
        try:
            if c.security == "starttls":
                conn.starttls(context=self._context())
            if c.username:
                conn.login(c.username, self.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            conn.close()
            raise MailError(
                f"SMTP login refused: {exc.smtp_code} {_text(exc.smtp_error)}"
            ) from None
        except smtplib.SMTPNotSupportedError:
            conn.close()
            raise MailError(
                f"{c.host}:{c.port} does not offer STARTTLS; set mail.smtp.security"
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            conn.close()
            raise MailError(f"SMTP session with {c.host}:{c.port} failed: {exc}") from None
        return conn

    def send(self, message: bytes, recipient: str) -> None:
        conn = self._live_connection()
        try:
            refused = conn.sendmail(self.from_addr, [recipient], message)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            raise MailError(f"{code} {_text(text)}", permanent=500 <= code < 600) from None
        except smtplib.SMTPResponseException as exc:
            self._reset()
            raise MailError(
                f"{exc.smtp_code} {_text(exc.smtp_error)}", permanent=500 <= exc.smtp_code < 600
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            # Dropped mid-transaction: the server may or may not have the message. Never resend
            # now; the digest stays pending and goes again next run with the same Message-ID.
            self._conn = None
            raise MailError(f"SMTP connection lost: {exc}") from None
        if refused:
            code, text = next(iter(refused.values()))
            raise MailError(f"{code} {_text(text)}", permanent=500 <= code < 600)

    def _live_connection(self) -> smtplib.SMTP:
        """The open connection if the server still answers NOOP, else a new one (servers close
        idle connections between the messages of a run)."""
        if self._conn is not None:
            try:
                if self._conn.noop()[0] == 250:
                    return self._conn
            except (OSError, smtplib.SMTPException):
                pass
            self._conn = None
        self._conn = self._connect()
        return self._conn

    def _reset(self) -> None:
        try:
            if self._conn is not None:
                self._conn.rset()
        except (OSError, smtplib.SMTPException):
            self._conn = None

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self._conn.quit()
            self._conn = None


def make_transport(mail: MailConfig, env: Mapping[str, str] = os.environ) -> Transport:
    if mail.smtp is None:
        return MaildirTransport(mail.maildir)
    password = None
    if mail.smtp.password_env:
        password = env.get(mail.smtp.password_env)
        if password is None:
            raise ConfigError(
                f"environment variable {mail.smtp.password_env} is not set",
                key="mail.smtp.password_env",
            )
    return SmtpTransport(mail.smtp, mail.from_addr, password)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


__all__ = ["MaildirTransport", "SmtpTransport", "build_message", "make_transport", "new_message_id"]
