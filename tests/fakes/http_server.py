"""Shared loopback HTTP plumbing for the offline fakes of external services.

Every fake is a `ThreadingHTTPServer` on 127.0.0.1 with an ephemeral port, served from a
daemon thread, so the same object works for in-process async tests (the event loop never
blocks on the server) and for a bot started as a subprocess that reaches it through a
base-URL setting. Subclasses implement `handle(request) -> FakeResponse` and keep their
state under `self._cond` (a `Condition` over an `RLock`), which `wait_for` waits on.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.parser
import email.policy
import json
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import parse_qs, urlsplit

T = TypeVar("T")


@dataclass(frozen=True)
class UploadedFile:
    """One file part of a multipart/form-data body."""

    field_name: str
    filename: str | None
    content_type: str
    data: bytes

    @property
    def size(self) -> int:
        """Number of bytes uploaded."""
        return len(self.data)


@dataclass(frozen=True)
class FakeRequest:
    """An HTTP request as seen by a fake: method, path, query, headers and raw body."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def header(self, name: str, default: str = "") -> str:
        """Case-insensitive header lookup."""
        return self.headers.get(name.lower(), default)


@dataclass
class FakeResponse:
    """What a fake answers. `drop_connection` closes the socket without any answer."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    drop_connection: bool = False


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> FakeResponse:
    """A JSON answer with the given status."""
    return FakeResponse(status=status, body=json.dumps(payload).encode(), headers=dict(headers or {}))


class BodyError(ValueError):
    """The request body could not be decoded."""


def decode_body(request: FakeRequest) -> tuple[dict[str, Any], dict[str, UploadedFile]]:
    """Decode query string plus a JSON, form-urlencoded or multipart body.

    Returns `(params, files)`. JSON bodies keep their types; form and multipart fields are
    strings (as real HTTP APIs receive them), uploaded files go to `files` by field name.
    """
    params: dict[str, Any] = {k: v[-1] for k, v in request.query.items()}
    files: dict[str, UploadedFile] = {}
    ctype = request.header("content-type")
    mime = ctype.split(";", 1)[0].strip().lower()
    body = request.body
    if not body:
        return params, files
    if mime == "application/json":
        try:
            decoded = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BodyError(f"invalid JSON body: {exc}") from exc
        if not isinstance(decoded, dict):
            raise BodyError("JSON body must be an object")
        params.update(decoded)
    elif mime == "application/x-www-form-urlencoded":
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError as exc:
            raise BodyError("form body is not UTF-8") from exc
        params.update({k: v[-1] for k, v in form.items()})
    elif mime == "multipart/form-data":
        form_params, files = _parse_multipart(ctype, body)
        params.update(form_params)
    else:
        raise BodyError(f"unsupported content type {mime or '(none)'}")
    return params, files


def _parse_multipart(ctype: str, body: bytes) -> tuple[dict[str, str], dict[str, UploadedFile]]:
    """Parse multipart/form-data with the stdlib email parser (the cgi module is deprecated)."""
    head = f"Content-Type: {ctype}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise BodyError("malformed multipart body")
    params: dict[str, str] = {}
    files: dict[str, UploadedFile] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            files[name] = UploadedFile(name, filename, part.get_content_type(), data)
        else:
            charset = part.get_content_charset() or "utf-8"
            params[name] = data.decode(charset)
    return params, files


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # bursts of new connections (load benchmark) must not be refused


class LoopbackHTTPService(ABC):
    """Base class: start/stop a loopback server and wait on state changes.

    Subclasses override `handle`. Mutations of fake state must happen under `self._cond`
    and call `self._cond.notify_all()` so that `wait_for` wakes up.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.RLock())
        self._server: _QuietServer | None = None
        self._thread: threading.Thread | None = None
        # Set on stop so long polls and injected delays end promptly.
        self._stopping = threading.Event()

    # lifecycle -------------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind 127.0.0.1 on an ephemeral port and serve from a daemon thread."""
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _QuietServer(("127.0.0.1", 0), _make_handler(self))
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01},
            name=f"{type(self).__name__}-http", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; pending long polls are released."""
        server = self._server
        if server is None:
            return
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
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
        """The bound port (the server must be started)."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>` without a trailing slash."""
        return f"http://127.0.0.1:{self.port}"

    # request handling ---------------------------------------------------------------------------

    @abstractmethod
    def handle(self, request: FakeRequest) -> FakeResponse:
        """Answer one request. Runs in a server thread."""

    def _sleep(self, seconds: float) -> bool:
        """Sleep in a server thread; returns False when the fake is stopping meanwhile."""
        return not self._stopping.wait(seconds)

    # waiting -------------------------------------------------------------------------------------

    def wait_for(self, predicate: Callable[[], T], timeout: float = 10.0) -> T:
        """Block until `predicate()` is truthy and return its value; TimeoutError otherwise.

        The predicate is re-evaluated on every state change (and at least every 50 ms).
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate()
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"condition not met within {timeout} s")
                self._cond.wait(min(remaining, 0.05))

    async def wait_for_async(
        self,
        predicate: Callable[[], T],
        timeout: float = 10.0,
    ) -> T:
        """Async `wait_for`: polls without blocking the event loop."""
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            await asyncio.sleep(0.01)


def _make_handler(service: LoopbackHTTPService) -> type[BaseHTTPRequestHandler]:
    """A request-handler class bound to one service instance."""

    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.1 so httpx keeps connections alive, like a real server.
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes; without TCP_NODELAY Nagle plus delayed
        # ACKs add ~40 ms to every keep-alive request.
        disable_nagle_algorithm = True
        server_version = "LoopbackFake/1.0"

        def log_message(self, format: str, *args: Any) -> None:
            """Silence per-request logging on stderr."""

        def _read_body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                return b"".join(chunks)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length > 0 else b""

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            request = FakeRequest(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self._read_body(),
            )
            try:
                response = service.handle(request)
            except Exception as exc:  # a fake bug must surface as a 500, not a hung client
                response = json_response(500, {"error": "fake_internal_error", "detail": repr(exc)})
            if response.drop_connection:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(2)
                return
            try:
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(response.body)))
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(response.body)
            except OSError:
                # The client went away (e.g. a cancelled long poll); nothing to answer.
                self.close_connection = True

        do_GET = _serve
        do_POST = _serve
        do_PUT = _serve
        do_DELETE = _serve
        do_PATCH = _serve

    return Handler
