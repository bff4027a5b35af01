"""A real SMTP server on loopback (aiosmtpd) that records what it receives and fails on demand:
connection refused (not started), a 421 greeting, 4xx at DATA, a connection dropped mid-DATA, 4xx or
5xx for chosen recipients, a slow or held answer to DATA, a hook run when DATA arrives; optionally
STARTTLS or implicit TLS with a test CA, and AUTH. It counts MAIL commands, so a test can tell
that a client refused to talk in clear before it named a sender.
With `queue_before_answer`, a slow server keeps a message whose client vanished before the answer,
as an MTA does that queues the message when DATA ends and then runs its filters."""

from __future__ import annotations

import asyncio
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    started: float = 0.0  # time.monotonic() when DATA ended and the server began on it
    # When the server took the recipient: before the client could have gone, even when the end
    # of DATA is only read after the client died.
    began: float = 0.0
    answered: float | None = None  # when it answered 250; None: the client was gone by then

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)  # type: ignore[return-value]


@dataclass
class Handler:
    received: list[Received] = field(default_factory=list)
    reject: dict[str, str] = field(default_factory=dict)  # recipient → "550 …"
    data_failures: list[str] = field(default_factory=list)  # next DATA answers, e.g. "451 …"
    drop_next_data: int = 0
    # Seconds to wait before answering DATA (a busy server): (low, high), drawn per message.
    data_delay: tuple[float, float] = (0.0, 0.0)
    data_started: int = 0  # DATA commands begun, answered or not
    in_flight: int = 0  # DATA commands begun and not answered yet
    # Keep a message from the end of DATA on, answered or not (see the module's docstring).
    queue_before_answer: bool = False
    rng: random.Random = field(default_factory=random.Random)  # draws data_delay
    # DATA commands (numbered from 1 in arrival order) left unanswered until `release` is set.
    hold: set[int] = field(default_factory=set)
    release: threading.Event = field(default_factory=threading.Event)
    # The next connections are greeted with these (e.g. "421 4.3.2 …") and closed, one each.
    greetings: list[str] = field(default_factory=list)
    mails_started: int = 0  # MAIL FROM commands received, over any connection
    # Called (in the server's thread) when a DATA command arrives, before it is answered.
    on_data: Callable[[], None] | None = None

    # What went wrong on the server's side of a session (a failed TLS handshake, say), kept
    # here instead of logged: the client's view is what a test asserts on.
    errors: list[Exception] = field(default_factory=list)

    async def handle_exception(self, error: Exception) -> str:
        self.errors.append(error)
        return f"500 Error: ({type(error).__name__}) {error}"

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        self.mails_started += 1
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if not hasattr(envelope, "began"):
            envelope.began = time.monotonic()
        if address.lower() in self.reject:
            return self.reject[address.lower()]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.data_started += 1
        self.in_flight += 1
        try:
            return await self._answer_data(server, envelope)
        finally:
            self.in_flight -= 1

    async def _answer_data(self, server: Any, envelope: Any) -> str:
        got = Received(
            envelope.mail_from,
            list(envelope.rcpt_tos),
            envelope.original_content or envelope.content,
            started=time.monotonic(),
            began=getattr(envelope, "began", 0.0),
        )
        if self.queue_before_answer:
            self.received.append(got)
        if self.on_data is not None:
            self.on_data()
        if self.data_started in self.hold:
            while not self.release.is_set():
                await asyncio.sleep(0.02)
        if self.data_delay[1] > 0:
            # aiosmtpd cancels this coroutine when the client goes away mid-wait.
            await asyncio.sleep(self.rng.uniform(*self.data_delay))
        if self.drop_next_data:
            self.drop_next_data -= 1
            server.transport.close()  # the client is left waiting for its final answer
            return "250 dropped"
        if self.data_failures:
            return self.data_failures.pop(0)
        got.answered = time.monotonic()
        if not self.queue_before_answer:
            self.received.append(got)
        return "250 Message accepted for delivery"


class _Smtp(SMTP):
    """aiosmtpd's server, greeting with the handler's next queued refusal when there is one."""

    async def _handle_client(self) -> None:
        greetings = getattr(self.event_handler, "greetings", None)
        if greetings:
            await self.push(greetings.pop(0))
            assert self.transport is not None
            self.transport.close()
            return
        await super()._handle_client()


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _Smtp(self.handler, **self.SMTP_kwargs)


class SmtpServer:
    def __init__(
        self,
        *,
        starttls: ssl.SSLContext | None = None,
        implicit_tls: ssl.SSLContext | None = None,
        credentials: tuple[str, str] | None = None,
        port: int | None = None,  # another server's, to replace it where clients look
    ) -> None:
        self.handler = Handler()
        self.port = port or free_port()
        self.credentials = credentials
        kwargs: dict[str, Any] = {}
        if starttls is not None:
            kwargs.update(tls_context=starttls, require_starttls=True)
        if implicit_tls is not None:
            kwargs.update(ssl_context=implicit_tls)
        if credentials is not None:
            kwargs.update(authenticator=self._authenticate, auth_require_tls=True)
        self.controller = _Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            server_hostname="localhost",
            **kwargs,
        )

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and self.credentials is not None
            and (auth_data.login.decode(), auth_data.password.decode()) == self.credentials
        )
        return AuthResult(success=ok, handled=False)  # unhandled: aiosmtpd answers 535

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
