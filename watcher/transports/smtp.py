"""The SMTP transport: STARTTLS (default), implicit TLS or none; certificates verified; AUTH."""

from __future__ import annotations

import contextlib
import smtplib
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from watcher.errors import MailError
from watcher.redact import register_secret
from watcher.transports.base import OutgoingDigest

Security = Literal["starttls", "ssl", "none"]


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    security: Security = "starttls"
    username: str | None = None
    timeout: float = 30.0
    ca_file: Path | None = None


class SmtpTransport:
    """SMTP with STARTTLS (default), implicit TLS or none; certificates verified; optional AUTH.

    One connection serves a whole digest run and is reopened if the server drops it.
    """

    def __init__(self, settings: SmtpSettings, from_addr: str, password: str | None) -> None:
        self.settings = settings
        self.from_addr = from_addr
        self.password = password
        register_secret(password)  # kept out of every error line and log
        self._conn: smtplib.SMTP | None = None

    def _context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        if self.settings.ca_file:
            ctx.load_verify_locations(cafile=str(self.settings.ca_file))
        return ctx

    def _connect(self) -> smtplib.SMTP:
        c = self.settings
        try:
            if c.security == "ssl":
                conn: smtplib.SMTP = smtplib.SMTP_SSL(
                    c.host, c.port, timeout=c.timeout, context=self._context()
                )
            else:
                conn = smtplib.SMTP(c.host, c.port, timeout=c.timeout)
        except ssl.SSLError as exc:
            raise _tls_failure(c, exc) from None
        except smtplib.SMTPResponseException as exc:
            # A greeting other than 220 (RFC 5321 3.1), typically "421 … try again later":
            # the server's own words, not the exception's repr with its bytes.
            raise MailError(
                f"SMTP server {c.host}:{c.port} turned the connection away: "
                f"{exc.smtp_code} {_text(exc.smtp_error)}",
                permanent=False,
            ) from None
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
        except ssl.SSLError as exc:
            conn.close()
            raise _tls_failure(c, exc) from None
        except smtplib.SMTPNotSupportedError:
            conn.close()
            raise MailError(
                f"{c.host}:{c.port} does not offer STARTTLS; set mail.smtp.security"
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            conn.close()
            raise MailError(f"SMTP session with {c.host}:{c.port} failed: {exc}") from None
        return conn

    def send(self, digest: OutgoingDigest) -> None:
        conn = self._live_connection()
        try:
            refused = conn.sendmail(self.from_addr, [digest.recipient], digest.mime)
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


def _tls_failure(c: SmtpSettings, exc: ssl.SSLError) -> MailError:
    """A TLS handshake that failed: the connection is dropped before any command is sent in
    clear (no downgrade). Says why, and what to change where the cause is on our side."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = f"{exc.reason}: {exc.verify_message}"
        if "issuer" in exc.verify_message or "self-signed" in exc.verify_message:
            why += " (a private CA goes in mail.smtp.ca_file)"
    else:
        why = str(exc.reason or exc)
        if c.security == "ssl" and exc.reason == "WRONG_VERSION_NUMBER":
            why += (
                ' (the server answered in clear: security = "ssl" is implicit TLS, usually '
                'port 465; a submission port wants "starttls")'
            )
    return MailError(f"TLS handshake with {c.host}:{c.port} failed, nothing was sent: {why}")


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
