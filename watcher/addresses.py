"""Email addresses as people write them in a config: checked, and put in the form SMTP carries.

Pure functions that raise ValueError with a readable reason; the config reader adds the file and
the key path.
"""

from __future__ import annotations

import re

# name-addr as people write it: `Dr Ana Lopez <ana@example.org>` or `"Lopez, Ana" <ana@…>`.
_NAME_ADDR = re.compile(r'^(?:"((?:[^"\\]|\\.)*)"|([^"<>]*?))\s*<([^<>]*)>$')
_DISPLAY_NAME_MAX = 100
# RFC 5321 §4.5.3.1: local part 64 octets, a path 256 (so 254 for the address itself).
MAX_LOCAL_PART = 64
MAX_ADDRESS = 254
_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_DOMAIN_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_MAILBOX_HINT = " (write ana@example.org or Ana Lopez <ana@example.org>)"


def normalise_address(address: str) -> str:
    """A recipient's identity: the bare address, trimmed and lowercased (as the store has always
    keyed deliveries), whatever display name it is written with."""
    return address.strip().lower()


def parse_mailbox(text: str) -> tuple[str | None, str]:
    """'ana@example.org' or 'Dr Ana Lopez <ana@example.org>' (RFC 5322 name-addr; the name may
    be quoted and hold any Unicode) → (display name or None, address). ValueError otherwise.

    The address is returned as SMTP carries it: an internationalised domain in its ASCII
    (punycode) form."""
    if any(ord(c) < 32 or ord(c) == 127 for c in text.strip()):
        # A line break in a To or From header would start a header of its own (Bcc: …).
        raise ValueError(f"{text!r} holds a line break or control character")
    text = text.strip()
    name: str | None = None
    address = text
    if "<" in text or ">" in text:
        m = _NAME_ADDR.match(text)
        if not m:
            raise ValueError(f"{text!r} is not an email address{_MAILBOX_HINT}")
        quoted, bare, address = m.groups()
        name = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
        name = " ".join(name.split()) or None
        address = address.strip()
    address = check_address(address, text)
    if name is not None and len(name) > _DISPLAY_NAME_MAX:
        raise ValueError(f"{text!r}: the name is longer than {_DISPLAY_NAME_MAX} characters")
    return name, address


def check_address(address: str, text: str | None = None) -> str:
    """A bare address (local@domain) as SMTP will carry it, or ValueError saying what is wrong.

    The local part is an RFC 5321 dot-atom of at most 64 ASCII characters (a non-ASCII one
    needs SMTPUTF8, which not every server offers); the domain has a dot (localhost aside)
    and labels of letters, digits and hyphens, an internationalised one being encoded to
    punycode (bücher.example → xn--bcher-kva.example); the whole is at most 254 characters.
    """
    shown = repr(text if text is not None else address)
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in address):
        raise ValueError(f"{shown} is not an email address{_MAILBOX_HINT}")
    if len(local) > MAX_LOCAL_PART:
        raise ValueError(
            f"{shown}: the part before @ is {len(local)} characters long; at most "
            f"{MAX_LOCAL_PART} are allowed"
        )
    if not local.isascii():
        raise ValueError(f"{shown}: the part before @ must be ASCII (SMTPUTF8 is not used)")
    if not _LOCAL_PART.match(local):
        raise ValueError(f"{shown} is not an email address{_MAILBOX_HINT}")
    if domain.lower() != "localhost":
        try:
            # An ASCII name is its own IDNA form (the label pattern below checks its lengths);
            # asking the codec anyway imports it, its stringprep and unicodedata, for every
            # command that loads the config.
            domain = domain if domain.isascii() else domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"{shown}: {domain!r} is not a domain name") from None
        labels = domain.split(".")
        if len(labels) < 2 or not all(map(_DOMAIN_LABEL.match, labels)) or labels[-1].isdigit():
            raise ValueError(f"{shown}: {domain!r} is not a domain name (write ana@example.org)")
    address = f"{local}@{domain}"
    if len(address) > MAX_ADDRESS:
        raise ValueError(
            f"{shown} is {len(address)} characters long; an address has at most {MAX_ADDRESS}"
        )
    return address
