"""Offline fake of the Anthropic Messages API (`POST /v1/messages`) on 127.0.0.1.

It speaks the real wire format, so the real `anthropic` SDK and CrewAI's Anthropic provider
can be pointed at it with `base_url=fake.base_url`:

* auth: `x-api-key: <key>` or `Authorization: Bearer <key>`; a wrong or missing key gets
  401 `{"type": "error", "error": {"type": "authentication_error", ...}}`;
* `anthropic-version` header required (400 `invalid_request_error` without it);
* request body validated for `model`, `max_tokens`, `messages` (roles user/assistant,
  content a string or a list of blocks);
* response `{"id": "msg_…", "type": "message", "role": "assistant", "content": [...],
  "stop_reason", "stop_sequence": null, "usage": {...}}`;
* `stream: true` answers with the real SSE event sequence (message_start,
  content_block_start, content_block_delta text_delta / input_json_delta,
  content_block_stop, message_delta, message_stop);
* `POST /v1/messages/count_tokens` answers `{"input_tokens": N}`.

Answers are scripted: a FIFO queue (`enqueue`) consumed first, then `responder(request_json)`.
Every request is logged in `requests` so tests can inspect prompts.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "AnthropicFake",
    "FakeAnswer",
    "RecordedRequest",
    "error_answer",
    "overloaded",
    "rate_limited",
    "refusal",
    "server_error",
    "text_answer",
    "tool_answer",
]


@dataclass(frozen=True)
class FakeAnswer:
    """One scripted reply. `status` other than 200 makes it an API error."""

    text: str | None = None
    tool_name: str | None = None
    tool_input: Any = None
    stop_reason: str | None = None
    status: int = 200
    error_type: str = ""
    error_message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    raw_body: str | None = None


def text_answer(text: str, *, delay: float = 0.0, stop_reason: str = "end_turn") -> FakeAnswer:
    """An assistant text reply."""
    return FakeAnswer(text=text, delay=delay, stop_reason=stop_reason)


def refusal(text: str = "I'm sorry, but I can't help with that request.") -> FakeAnswer:
    """A polite refusal (plain text, `end_turn`)."""
    return FakeAnswer(text=text, stop_reason="end_turn")


def tool_answer(name: str, tool_input: Any, *, text: str | None = None, delay: float = 0.0) -> FakeAnswer:
    """A `tool_use` block (optionally preceded by text); `tool_input` may be any JSON value."""
    return FakeAnswer(text=text, tool_name=name, tool_input=tool_input, delay=delay, stop_reason="tool_use")


def error_answer(
    status: int, error_type: str, message: str, *, headers: dict[str, str] | None = None
) -> FakeAnswer:
    """An API error with the real `{"type": "error", "error": {...}}` body."""
    return FakeAnswer(
        status=status, error_type=error_type, error_message=message, headers=dict(headers or {})
    )


def rate_limited(retry_after: float = 0) -> FakeAnswer:
    """429 `rate_limit_error` with a `retry-after` header."""
    return error_answer(
        429,
        "rate_limit_error",
        "Number of requests has exceeded your rate limit.",
        headers={"retry-after": f"{retry_after:g}"},
    )


def overloaded() -> FakeAnswer:
    """529 `overloaded_error`."""
    return error_answer(529, "overloaded_error", "Overloaded")


def server_error() -> FakeAnswer:
    """500 `api_error`."""
    return error_answer(500, "api_error", "Internal server error")


Responder = Callable[[dict[str, Any]], "FakeAnswer | str"]


@dataclass(frozen=True)
class RecordedRequest:
    """A request the fake received."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None

    def all_text(self) -> str:
        """System prompt plus every text in every message, joined (for prompt assertions)."""
        if not self.body:
            return ""
        parts: list[str] = []
        system = self.body.get("system")
        parts.extend(_texts(system))
        for msg in self.body.get("messages", []):
            parts.extend(_texts(msg.get("content")))
        return "\n".join(parts)


def _texts(content: Any) -> list[str]:
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    out: list[str] = []
    for block in content:
        if isinstance(block, dict):
            if isinstance(block.get("text"), str):
                out.append(block["text"])
            if block.get("type") == "tool_result":
                out.extend(_texts(block.get("content")))
            if block.get("type") == "tool_use":
                out.append(json.dumps(block.get("input")))
    return out


def _default_responder(_request: dict[str, Any]) -> FakeAnswer:
    return text_answer("OK")


class AnthropicFake:
    """Threaded loopback server speaking the Anthropic Messages API."""

    def __init__(self, *, api_key: str = "test-anthropic-key", responder: Responder | None = None) -> None:
        self.api_key = api_key
        self.responder: Responder = responder or _default_responder
        self.requests: list[RecordedRequest] = []
        self._queue: deque[FakeAnswer | str] = deque()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> AnthropicFake:
        """Bind 127.0.0.1 on a free port and serve in a daemon thread."""
        handler = _make_handler(self)
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._stopping.clear()
        # A short poll interval keeps `stop()` (server.shutdown) fast in test teardown.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="anthropic-fake", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; delayed answers in flight are cut short."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> AnthropicFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """What to pass as `base_url` (the SDK appends `/v1/messages`)."""
        if self._server is None:
            raise RuntimeError("AnthropicFake is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- scripting --------------------------------------------------------------------------
    def enqueue(self, *answers: FakeAnswer | str) -> None:
        """Queue answers (a plain `str` is a text answer), consumed before the responder."""
        with self._lock:
            self._queue.extend(answers)

    def extend(self, answers: Iterable[FakeAnswer | str]) -> None:
        """Queue several answers."""
        self.enqueue(*answers)

    @property
    def pending(self) -> int:
        """Queued answers not yet consumed."""
        with self._lock:
            return len(self._queue)

    def message_requests(self) -> list[RecordedRequest]:
        """Only the `/v1/messages` requests."""
        with self._lock:
            return [r for r in self.requests if r.path.rstrip("/").endswith("/v1/messages")]

    # -- internals --------------------------------------------------------------------------
    def _record(self, req: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(req)

    def _next_answer(self, body: dict[str, Any]) -> FakeAnswer:
        with self._lock:
            answer = self._queue.popleft() if self._queue else None
        if answer is None:
            answer = self.responder(body)
        if isinstance(answer, str):
            answer = text_answer(answer)
        return answer

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):024d}"

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)


def _approx_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _validate_body(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "body must be a JSON object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        return "max_tokens: Field required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        content = msg.get("content")
        if not isinstance(content, str | list):
            return f"messages.{i}.content: Input should be a valid string or list"
        if isinstance(content, list) and not all(isinstance(b, dict) and "type" in b for b in content):
            return f"messages.{i}.content: every block needs a type"
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        return "system: Input should be a valid string or list"
    return None


def _content_blocks(fake: AnthropicFake, answer: FakeAnswer) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if answer.text is not None:
        blocks.append({"type": "text", "text": answer.text})
    if answer.tool_name is not None:
        blocks.append(
            {
                "type": "tool_use",
                "id": fake._new_id("toolu"),
                "name": answer.tool_name,
                "input": answer.tool_input,
            }
        )
    if not blocks:
        blocks.append({"type": "text", "text": ""})
    return blocks


def _make_handler(fake: AnthropicFake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # silence stderr noise
            return

        # -- helpers ----------------------------------------------------------------------
        def _send_json(
            self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
        ) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("request-id", fake._new_id("req"))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _send_error(
            self, status: int, etype: str, message: str, headers: dict[str, str] | None = None
        ) -> None:
            self._send_json(status, {"type": "error", "error": {"type": etype, "message": message}}, headers)

        def _authorised(self) -> bool:
            key = self.headers.get("x-api-key")
            if key is None:
                auth = self.headers.get("authorization", "")
                if auth.lower().startswith("bearer "):
                    key = auth[7:].strip()
            return key is not None and key == fake.api_key

        # -- routes -----------------------------------------------------------------------
        def do_GET(self) -> None:
            fake._record(RecordedRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, None))
            self._send_error(404, "not_found_error", f"Not found: {self.path}")

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                body = None
            path = self.path.split("?", 1)[0].rstrip("/")
            fake._record(
                RecordedRequest(
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body if isinstance(body, dict) else None,
                )
            )
            if not self._authorised():
                self._send_error(401, "authentication_error", "invalid x-api-key")
                return
            if not self.headers.get("anthropic-version"):
                self._send_error(400, "invalid_request_error", "anthropic-version: header is required")
                return
            if path.endswith("/v1/messages/count_tokens"):
                text = RecordedRequest(path, {}, body if isinstance(body, dict) else None).all_text()
                self._send_json(200, {"input_tokens": _approx_tokens(text)})
                return
            if not path.endswith("/v1/messages"):
                self._send_error(404, "not_found_error", f"Not found: {self.path}")
                return
            problem = _validate_body(body)
            if problem:
                self._send_error(400, "invalid_request_error", problem)
                return
            assert isinstance(body, dict)
            try:
                answer = fake._next_answer(body)
            except Exception as exc:  # a broken responder should look like a server fault
                self._send_error(500, "api_error", f"fake responder failed: {exc}")
                return
            fake._wait(answer.delay)
            if fake._stopping.is_set():
                return
            if answer.status != 200:
                self._send_error(
                    answer.status,
                    answer.error_type or "api_error",
                    answer.error_message or "error",
                    answer.headers,
                )
                return
            if answer.raw_body is not None:
                data = answer.raw_body.encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            prompt_tokens = _approx_tokens(RecordedRequest(path, {}, body).all_text())
            blocks = _content_blocks(fake, answer)
            out_tokens = sum(_approx_tokens(b.get("text") or json.dumps(b.get("input"))) for b in blocks)
            stop_reason = answer.stop_reason or ("tool_use" if answer.tool_name else "end_turn")
            message = {
                "id": fake._new_id("msg"),
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": blocks,
                "stop_reason": stop_reason,
                "stop_sequence": None,
                "usage": {"input_tokens": prompt_tokens, "output_tokens": out_tokens},
            }
            if body.get("stream"):
                self._stream(message)
            else:
                self._send_json(200, message)

        def _stream(self, message: dict[str, Any]) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.send_header("connection", "close")
            self.end_headers()
            self.close_connection = True

            def event(name: str, data: dict[str, Any]) -> None:
                self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()

            start = dict(
                message,
                content=[],
                stop_reason=None,
                usage={"input_tokens": message["usage"]["input_tokens"], "output_tokens": 1},
            )
            event("message_start", {"type": "message_start", "message": start})
            for index, block in enumerate(message["content"]):
                if block["type"] == "text":
                    event(
                        "content_block_start",
                        {
                            "type": "content_block_start",
                            "index": index,
                            "content_block": {"type": "text", "text": ""},
                        },
                    )
                    text = block["text"]
                    for i in range(0, len(text), 40) or [0]:
                        event(
                            "content_block_delta",
                            {
                                "type": "content_block_delta",
                                "index": index,
                                "delta": {"type": "text_delta", "text": text[i : i + 40]},
                            },
                        )
                else:
                    event(
                        "content_block_start",
                        {
                            "type": "content_block_start",
                            "index": index,
                            "content_block": {
                                "type": "tool_use",
                                "id": block["id"],
                                "name": block["name"],
                                "input": {},
                            },
                        },
                    )
                    payload = json.dumps(block["input"])
                    for i in range(0, len(payload), 40):
                        event(
                            "content_block_delta",
                            {
                                "type": "content_block_delta",
                                "index": index,
                                "delta": {"type": "input_json_delta", "partial_json": payload[i : i + 40]},
                            },
                        )
                event("content_block_stop", {"type": "content_block_stop", "index": index})
            event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                    "usage": {"output_tokens": message["usage"]["output_tokens"]},
                },
            )
            event("message_stop", {"type": "message_stop"})

    return Handler
