"""Email: build the MIME message of a rendered digest. Pure; transports: watcher/transports/."""

from __future__ import annotations

from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from watcher.digest import Rendered, header_safe
from watcher.ris import MEDIA_TYPE as RIS_MEDIA_TYPE


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
    ris: str = "",
    leave_url: str | None = None,
) -> bytes:
    """multipart/alternative (text, then HTML), UTF-8, CRLF line ends, ready for SMTP; with
    `ris`, multipart/mixed holding that and the papers as an RIS attachment.

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
    if leave_url:
        # RFC 2369. No List-Unsubscribe-Post: RFC 8058's one-click unsubscribe needs an HTTPS
        # URI that acts on a POST, and this watcher serves none; with mailto alone it does not
        # apply (RFC 8058 section 3), and mail clients offer the mailto instead.
        msg["List-Unsubscribe"] = f"<{leave_url}>"
    msg.set_content(rendered.text, charset="utf-8", cte="quoted-printable")
    msg.add_alternative(rendered.html, subtype="html", charset="utf-8", cte="quoted-printable")
    if ris:
        # add_attachment turns the multipart/alternative into the first part of a
        # multipart/mixed, as mail clients expect of a message with a file.
        maintype, subtype = RIS_MEDIA_TYPE.split("/")
        msg.add_attachment(
            ris.encode("utf-8"),
            maintype=maintype,
            subtype=subtype,
            filename=f"pubmed-watcher-{when:%Y-%m-%d}.ris",
        )
    return msg.as_bytes()


def _mailbox(name: str, address: str) -> Address:
    local, _, domain = header_safe(address).rpartition("@")
    return Address(display_name=header_safe(name), username=local, domain=domain)
