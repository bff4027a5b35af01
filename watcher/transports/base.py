"""What a transport receives and promises. A transport hands one digest to one recipient and
raises MailError (transient or permanent) when it cannot; the outbox does the bookkeeping."""

from __future__ import annotations

from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from email.policy import default
from typing import Protocol


@dataclass(frozen=True)
class OutgoingDigest:
    """One digest on its way: who, its Message-ID (a retry keeps it), the rendered parts, and
    the MIME bytes that were recorded before the first attempt."""

    recipient: str
    message_id: str
    subject: str
    text: str
    html: str
    mime: bytes

    @classmethod
    def from_mime(
        cls, recipient: str, mime: bytes, message_id: str | None = None
    ) -> OutgoingDigest:
        """A recorded digest, its parts read back from the bytes that were stored."""
        msg = message_from_bytes(mime, policy=default)
        return cls(
            recipient,
            message_id or str(msg.get("Message-ID", "")),
            str(msg.get("Subject", "")),
            _part(msg, "plain"),
            _part(msg, "html"),
            mime,
        )


def _part(msg: Message, subtype: str) -> str:
    for part in msg.walk():
        if part.get_content_type() == f"text/{subtype}":
            payload = part.get_content()  # type: ignore[attr-defined]
            return str(payload)
    return ""


class Transport(Protocol):
    def send(self, digest: OutgoingDigest) -> None: ...

    def close(self) -> None: ...
