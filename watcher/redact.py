"""Secrets out of every text we show or store: error messages, log lines, the store's last_error.

Two ways a secret reaches text. A URL or form body carries it by name (`api_key=…` in a request
line, which requests and urllib3 quote in their errors and debug logs; `"api-key":"…"` in the body
NCBI sends back with a 400 for a mistyped key or a 429). Or the secret's value turns up anywhere
else; the values the process read from the environment are registered here, so even a message
that quotes one out of context is cleaned.
"""

from __future__ import annotations

import logging
import re
import threading

REDACTED = "[REDACTED]"
# Error lines are shown by `watcher status` and kept in the store; longer ones are cut.
MAX_ERROR_CHARS = 500

# api_key=VALUE (query strings, form bodies) and "api-key":"VALUE" (NCBI's JSON error bodies,
# also when quoted again inside a JSON log line);
# the same for a password, a token or a secret (a feed link's ?token=…). A separator followed by
# a space and no quote is prose, not a value ("mail.smtp.password: secrets never go in the file").
_BY_NAME = re.compile(
    r"""(?ix)
    (\b(?:api[_-]?key|(?:access[_-]?)?token|password|passwd|secret)\b\\?["']?(?:=|:\s*\\?["']|:))
    ([^&\s"'<>,;}\[\]\\]+)
    """
)
# scheme://user:password@host (the user may be empty)
_USERINFO = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)([^@\s/]+)(@)")
# Values shorter than this are not registered: replacing "1" everywhere would garble the text.
_MIN_SECRET = 4

_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember a secret this process holds (an API key, an SMTP password) so that no text
    shown or stored ever carries it. Called where the value is read from the environment."""
    if value and len(value) >= _MIN_SECRET:
        with _lock:
            _secrets.add(value)


def holds_secret(text: str) -> bool:
    """Whether `text` carries a secret by its shape: a credential by name or a URL's password
    (what redact() replaces, the values registered from the environment aside)."""
    return bool(_BY_NAME.search(text) or _USERINFO.search(text))


def redact(text: str) -> str:
    """`text` with every secret replaced by [REDACTED]."""
    if not text:
        return text
    out = _BY_NAME.sub(lambda m: m.group(1) + REDACTED, text)
    out = _USERINFO.sub(lambda m: m.group(1) + REDACTED + m.group(3), out)
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in out:
            out = out.replace(secret, REDACTED)
    return out


def cap(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """`text` cut to `limit` characters, an ellipsis saying that it was."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def safe_message(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """An error line fit to show or store: no secrets, bounded length, one line."""
    return cap(" ".join(redact(text).split()), limit)


class RedactingFormatter(logging.Formatter):
    """Wraps the handler's formatter: every line, from our loggers or a library's (urllib3 logs
    each request line with its query string at debug level), tracebacks included, is redacted
    after formatting, so nothing reaches the log with a secret in it."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))
