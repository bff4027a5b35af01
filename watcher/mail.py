"""Email: build the MIME message of a rendered digest. Pure; transports: watcher/transports/.

It takes the digest as the outbox (delivery.py) hands it over, rendered parts and the RIS text,
and imports nothing from the digest package."""

from __future__ import annotations

from datetime import datetime
from email.headerregistry import Address, BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.policy import SMTP, Policy
from email.utils import format_datetime, make_msgid
from typing import Any, Protocol

from watcher.text.lines import header_safe

# Both parts go quoted-printable: UTF-8 in lines short enough for any relay, and the size the
# HTML part takes as sent (html_part_size) is what Gmail's clip is measured against.
CTE = "quoted-printable"
RFC5322_MAX_LINE = 998
# The type of the RIS attachment, whose text the digest writes (watcher/digest/ris.py).
RIS_MEDIA_TYPE = "application/x-research-info-systems"


class Parts(Protocol):
    """A rendered digest (the digest package's Rendered): what the message carries."""

    @property
    def subject(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def html(self) -> str: ...


class UriListHeader(UnstructuredHeader, BaseHeader):
    """RFC 2369's List-Unsubscribe: a <URI> written as it is, on one line.

    Python folds a header past 78 columns, and a token it cannot break (a mailto URI has no
    spaces) it writes as an RFC 2047 encoded word, `=?utf-8?q?=3Cmailto=3A…?=`, which Python
    reads back but mail clients do not take for a URI, so they offer no way out. RFC 2369
    (section 2) allows folding only between the angle brackets' entries, never inside one; the
    URI is kept short (digest.build._way_out) and ASCII (addresses are checked at load, domains
    punycode), so it is written unfolded.
    """

    max_count = 1

    @classmethod
    def parse(cls, value: str, kwds: dict[str, Any]) -> None:
        if not value.isascii() or any(c in value for c in "\r\n"):
            raise ValueError(f"List-Unsubscribe must be one line of ASCII: {value!r}")
        super().parse(value, kwds)

    def fold(self, *, policy: Policy) -> str:
        line = f"{self.name}: {self}"
        if len(line) > RFC5322_MAX_LINE:
            raise ValueError(f"List-Unsubscribe is over {RFC5322_MAX_LINE} characters")
        return line + policy.linesep


_HEADERS = HeaderRegistry()
_HEADERS.map_to_type("list-unsubscribe", UriListHeader)
POLICY = SMTP.clone(header_factory=_HEADERS)


class HtmlParts:
    """The text/html part of a message as build_message writes it, the last one kept: the outbox
    measures a digest's HTML part against its size budget (size), then mails that part, encoded
    once instead of twice (the email package's quoted-printable encoder is Python, and it was a
    tenth of a digest run). One per message."""

    def __init__(self) -> None:
        self._html: str | None = None
        self._part: EmailMessage | None = None

    def part(self, html: str) -> EmailMessage:
        if self._part is None or html != self._html:
            part = EmailMessage(policy=POLICY)
            part.set_content(html, subtype="html", charset="utf-8", cte=CTE)
            self._html, self._part = html, part
        return self._part

    def size(self, html: str) -> int:
        """How many bytes `html` takes as the body of the text/html part (after its
        Content-Transfer-Encoding, CRLF line ends): what Gmail's clip is measured against."""
        return len(self.part(html).as_bytes().split(b"\r\n\r\n", 1)[1])


def html_part_size(html: str) -> int:
    """HtmlParts.size, for one HTML text."""
    return HtmlParts().size(html)


def new_message_id(from_addr: str) -> str:
    domain = from_addr.rpartition("@")[2] or "localhost"
    return make_msgid("digest", domain=domain)


def build_message(
    rendered: Parts,
    from_addr: str,
    to_addr: str,
    message_id: str,
    when: datetime,
    *,
    from_name: str | None = None,
    to_name: str | None = None,
    ris: str = "",
    leave_url: str | None = None,
    html_parts: HtmlParts | None = None,
) -> bytes:
    """multipart/alternative (text, then HTML), UTF-8, CRLF line ends, ready for SMTP; with
    `ris`, multipart/mixed holding that and the papers as an RIS attachment.

    Display names go in as Address objects: the email package quotes them as needed and
    encodes non-ASCII ones as RFC 2047 encoded words. `html_parts`: where the HTML part was
    encoded already, if it was (the size budget's measure).
    """
    msg = EmailMessage(policy=POLICY)
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
    msg.set_content(rendered.text, charset="utf-8", cte=CTE)
    # What add_alternative does, with the part already encoded.
    msg.make_alternative()
    msg.attach((html_parts or HtmlParts()).part(rendered.html))
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
