"""Loopback HTTP load balancer: a reverse proxy in front of several bot replicas.

It plays the platform edge (Railway and the like) between the Telegram fake's webhook
delivery and the bot processes: each request goes to the next backend in round-robin order;
a backend that refuses the connection or resets it before answering is skipped and the
request goes to the next one; when every backend fails the client gets 502 Bad Gateway, and
504 Gateway Timeout when a backend accepted the request but did not answer within `timeout`
(a request a backend may have processed is never replayed elsewhere).

Like the other fakes it binds 127.0.0.1 on an ephemeral port, serves from daemon threads
(one per client connection, so requests are proxied concurrently) and is used as a context
manager or with `start()`/`stop()`. Requests are forwarded with their method, path and query,
body and end-to-end headers (Host kept, `X-Forwarded-For`/`X-Forwarded-Proto` added); the
answer keeps the backend's status, reason, headers and body. Limitations: bodies are buffered
(no streaming), each forwarded request opens a new backend connection, and there is no health
checking besides skipping a failing backend for that one request.
"""

from __future__ import annotations

import contextlib
import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

# Hop-by-hop headers (RFC 9110 section 7.6.1) are not forwarded; nor are those named in Connection.
HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te",
        "trailer", "transfer-encoding", "upgrade",
    }
)
_BAD_GATEWAY = (
    b"<html><head><title>502 Bad Gateway</title></head>"
    b"<body><center><h1>502 Bad Gateway</h1></center></body></html>"
)
_GATEWAY_TIMEOUT = (
    b"<html><head><title>504 Gateway Timeout</title></head>"
    b"<body><center><h1>504 Gateway Timeout</h1></center></body></html>"
)


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class _BackendDown(Exception):
    """The backend refused or reset the connection before answering: try the next one."""


class LoopbackBalancer:
    """Round-robin reverse proxy on 127.0.0.1 over backends given as base URLs
    (`http://127.0.0.1:8001`, optionally with a path prefix)."""

    def __init__(self, backends: list[str], *, timeout: float = 30.0, forwarded_proto: str = "http") -> None:
        self.timeout = timeout  # seconds to connect to a backend and to wait for its answer
        self.forwarded_proto = forwarded_proto
        self._lock = threading.Lock()
        self._backends: list[str] = []
        self._next = 0
        self._forwarded: dict[str, int] = {}
        self._failures: dict[str, int] = {}
        self._server: _ProxyServer | None = None
        self._thread: threading.Thread | None = None
        self.set_backends(backends)

    # lifecycle -------------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind 127.0.0.1 on an ephemeral port and serve from a daemon thread."""
        if self._server is not None:
            return self
        server = _ProxyServer(("127.0.0.1", 0), _make_handler(self))
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, name="LoopbackBalancer-http", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        server = self._server
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (the balancer must be started)."""
        if self._server is None:
            raise RuntimeError("LoopbackBalancer is not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>` without a trailing slash."""
        return f"http://127.0.0.1:{self.port}"

    # test-side API ---------------------------------------------------------------------------

    @property
    def backends(self) -> list[str]:
        """The current backends, in round-robin order."""
        with self._lock:
            return list(self._backends)

    def set_backends(self, backends: list[str]) -> None:
        """Replace the backends (takes effect for the next request; requests in flight finish)."""
        cleaned = []
        for backend in backends:
            parts = urlsplit(backend)
            if parts.scheme != "http" or not parts.hostname or parts.query or parts.fragment:
                raise ValueError(f"backend must be an http:// base URL, got {backend!r}")
            cleaned.append(backend.rstrip("/"))
        with self._lock:
            self._backends = cleaned
            self._next = 0

    def forwarded(self) -> dict[str, int]:
        """Requests each backend answered (any status), by backend base URL."""
        with self._lock:
            return dict(self._forwarded)

    def failures(self) -> dict[str, int]:
        """Requests each backend refused, reset or did not answer in time, by backend base URL."""
        with self._lock:
            return dict(self._failures)

    def reset_counts(self) -> None:
        """Forget `forwarded()` and `failures()` counts."""
        with self._lock:
            self._forwarded.clear()
            self._failures.clear()

    # proxying --------------------------------------------------------------------------------

    def _pick(self) -> list[str]:
        """Backends to try for one request: the next in turn first, then the others in order."""
        with self._lock:
            backends = self._backends
            if not backends:
                return []
            start = self._next % len(backends)
            self._next = start + 1
            return backends[start:] + backends[:start]

    def _count(self, table: dict[str, int], backend: str) -> None:
        with self._lock:
            table[backend] = table.get(backend, 0) + 1

    def proxy(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        """Forward one request; returns (status, reason, headers, body) for the client."""
        for backend in self._pick():
            try:
                answer = self._forward(backend, method, target, headers, body)
            except _BackendDown:
                self._count(self._failures, backend)
                continue
            except TimeoutError:
                self._count(self._failures, backend)
                return 504, "Gateway Timeout", [("Content-Type", "text/html")], _GATEWAY_TIMEOUT
            except (OSError, http.client.HTTPException):  # answered, then broke off mid-response
                self._count(self._failures, backend)
                return 502, "Bad Gateway", [("Content-Type", "text/html")], _BAD_GATEWAY
            self._count(self._forwarded, backend)
            return answer
        return 502, "Bad Gateway", [("Content-Type", "text/html")], _BAD_GATEWAY

    def _forward(
        self, backend: str, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        parts = urlsplit(backend)
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=self.timeout)
        try:
            try:
                conn.connect()
            except (ConnectionRefusedError, ConnectionResetError) as exc:
                raise _BackendDown from exc
            conn.putrequest(method, parts.path + target, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                conn.putheader(name, value)
            if body or method in ("POST", "PUT", "PATCH"):
                conn.putheader("Content-Length", str(len(body)))
            try:
                conn.endheaders(body or None)
                response = conn.getresponse()
            except (ConnectionResetError, BrokenPipeError) as exc:  # RemoteDisconnected included
                raise _BackendDown from exc
            data = response.read()
            reply_headers = [(k, v) for k, v in response.getheaders() if _end_to_end(k, response.getheader)]
            return response.status, response.reason, reply_headers, data
        finally:
            conn.close()


def _end_to_end(name: str, lookup: Any) -> bool:
    """True for a header to pass on: not hop-by-hop, not named in Connection, not Content-Length."""
    lower = name.lower()
    if lower in HOP_BY_HOP or lower == "content-length":
        return False
    named = {token.strip().lower() for token in (lookup("Connection") or "").split(",")}
    return lower not in named


def _make_handler(balancer: LoopbackBalancer) -> type[BaseHTTPRequestHandler]:
    """A request-handler class bound to one balancer."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        server_version = "LoopbackBalancer/1.0"

        def log_message(self, format: str, *args: Any) -> None:
            """Silence per-request logging on stderr."""

        def _read_body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers are dropped
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                return b"".join(chunks)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length > 0 else b""

        def _serve(self) -> None:
            body = self._read_body()
            named = {t.strip().lower() for t in self.headers.get("Connection", "").split(",")}
            headers = [
                (k, v) for k, v in self.headers.items()
                if k.lower() not in HOP_BY_HOP and k.lower() not in named and k.lower() != "content-length"
                and not k.lower().startswith("x-forwarded-")
            ]
            previous = self.headers.get("X-Forwarded-For")
            client = self.client_address[0]
            headers.append(("X-Forwarded-For", f"{previous}, {client}" if previous else client))
            headers.append(("X-Forwarded-Proto", balancer.forwarded_proto))
            status, reason, reply_headers, data = balancer.proxy(self.command, self.path, headers, body)
            try:
                self.send_response_only(status, reason)
                for name, value in reply_headers:
                    self.send_header(name, value)
                if self.command != "HEAD":
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
            except OSError:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(2)

        do_GET = _serve
        do_POST = _serve
        do_PUT = _serve
        do_DELETE = _serve
        do_PATCH = _serve
        do_HEAD = _serve
        do_OPTIONS = _serve

    return Handler
