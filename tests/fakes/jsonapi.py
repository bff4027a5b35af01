"""What the fake Europe PMC and ClinicalTrials.gov servers share: a real HTTP server on
127.0.0.1 answering JSON, counting what it serves, with faults on demand (the ideas of
tests/fakes/ncbi.py: status codes, Retry-After, dropped connections, slow, empty, cut-off and
non-JSON answers).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class LoopbackServer(ThreadingHTTPServer):
    """A threading HTTP server that stays quiet when a client hangs up mid-answer (a client's
    read timeout on a loaded machine): socketserver would print that traceback to stderr, where
    tests look for the watcher's own tracebacks."""

    # A slow answer's thread may outlive the test; stopping the server does not wait for it.
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def serve(handler: type[BaseHTTPRequestHandler]) -> LoopbackServer:
    """A LoopbackServer on a free port of 127.0.0.1, serving from a daemon thread."""
    server = LoopbackServer(("127.0.0.1", 0), handler)
    # A short poll interval: stop() returns within 50 ms, not 500.
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


@dataclass
class Fault:
    kind: str  # status:NNN | reset | slow | notjson | empty | truncated
    delay: float = 0.0
    retry_after: str | None = None


@dataclass
class Served:
    path: str
    params: dict[str, str]
    status: int


@dataclass
class FakeJsonApi:
    """Subclasses answer(path, params) → (status, JSON object)."""

    served: list[Served] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._server: LoopbackServer | None = None

    def answer(self, path: str, params: dict[str, str]) -> tuple[int, Any]:
        raise NotImplementedError

    def fault(self, kind: str, times: int = 1, **opts: Any) -> None:
        """The next `times` requests fail this way."""
        with self._lock:
            self._faults.extend(Fault(kind, **opts) for _ in range(times))

    def clear_faults(self) -> None:
        """The fault is over: every request from now on is answered normally."""
        with self._lock:
            self._faults.clear()

    def take_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    @property
    def root(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def count(self) -> int:
        return len(self.served)

    def start(self) -> FakeJsonApi:
        api = self

        class Handler(_Handler):
            fake = api

        self._server = serve(Handler)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()


class _Handler(BaseHTTPRequestHandler):
    fake: FakeJsonApi
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        fault = self.fake.take_fault()
        if fault is not None:
            if fault.kind == "reset":
                self.fake.served.append(Served(parts.path, params, 0))
                self.close_connection = True
                self.connection.close()
                return
            if fault.kind == "slow":
                time.sleep(fault.delay)
            elif fault.kind.startswith("status:"):
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                body = b"<html><body>Service unavailable</body></html>"
                return self.reply(parts.path, params, int(fault.kind[7:]), body, headers)
            elif fault.kind == "notjson":
                return self.reply(parts.path, params, 200, b"<html>maintenance</html>")
            elif fault.kind == "empty":
                return self.reply(parts.path, params, 200, b"")
        status, obj = self.fake.answer(parts.path, params)
        body = json.dumps(obj).encode()
        if fault is not None and fault.kind == "truncated":
            body = body[: len(body) // 2]  # whole as HTTP goes (its Content-Length), cut as JSON
        self.reply(parts.path, params, status, body)

    def reply(
        self,
        path: str,
        params: dict[str, str],
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.fake.served.append(Served(path, params, status))
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
