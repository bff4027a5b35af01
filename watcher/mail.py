"""Email: build the MIME message of a rendered digest. Pure; transports: watcher/transports/."""

from __future__ import annotations

from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from watcher.digest import Rendered, header_safe


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
