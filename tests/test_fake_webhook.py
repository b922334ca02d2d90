"""Tests of webhook delivery in the Telegram fake and of the loopback load balancer: Telegram
driving a bot (or several replicas behind a platform proxy) over webhooks, offline."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

import httpx
import pytest
from telegram import Update
from telegram.ext import Application, CommandHandler, ContextTypes

from tests.fakes.balancer import LoopbackBalancer
from tests.fakes.telegram_api import (
    TERMINATED_BY_SET_WEBHOOK,
    WEBHOOK_ACTIVE,
    WEBHOOK_SECRET_HEADER,
    TelegramFake,
)

USER = 42
SECRET = "s3cr3t_-TOKEN"


# ---------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class Received:
    """One request the receiver got."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A tiny threaded webhook receiver on 127.0.0.1: records requests and answers the scripted
    statuses in turn (200 once they run out), after `hold` is set when one is given."""

    def __init__(
        self,
        statuses: Iterable[int] = (),
        *,
        port: int = 0,
        reply: bytes = b"",
        hold: threading.Event | None = None,
    ) -> None:
        self.statuses = deque(statuses)
        self.reply = reply
        self.hold = hold
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self.base_url = ""  # http://127.0.0.1:<port> once started (kept after stop)

    def start(self) -> Self:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like a real bot's web server

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.requests.append(
                        Received("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    status = receiver.statuses.popleft() if receiver.statuses else 200
                if receiver.hold is not None:
                    receiver.hold.wait(5)
                payload = receiver.reply if 200 <= status < 300 else b""
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.hold is not None:
            self.hold.set()
        self.stop()

    def received(self) -> list[Received]:
        with self.lock:
            return list(self.requests)

    def wait_for(self, count: int, timeout: float = 2.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.received()
            if len(got) >= count:
                return got
            time.sleep(0.005)
        raise TimeoutError(f"receiver got {len(self.received())} requests, expected {count}")


def free_port() -> int:
    """A loopback port nobody listens on (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def call(fake: TelegramFake, method: str, **params: Any) -> tuple[int, dict[str, Any]]:
    """POST a JSON body to the fake's Bot API; returns (HTTP status, envelope)."""
    response = httpx.post(f"{fake.base_url}/bot{fake.token}/{method}", json=params, timeout=10)
    return response.status_code, response.json()


def webhook_info(fake: TelegramFake) -> dict[str, Any]:
    status, body = call(fake, "getWebhookInfo")
    assert status == 200
    return body["result"]


@pytest.fixture
def fake() -> Iterator[TelegramFake]:
    with TelegramFake() as server:
        server.set_webhook_interval = 0  # Telegram's one-per-second limit has its own test
        server.webhook_retry_delay = 0.05
        yield server


# ---------------------------------------------------------------------------- setWebhook


@pytest.mark.parametrize(
    ("params", "description"),
    [
        ({"url": "http://bot.example.com/hook"}, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"),
        ({"url": "ftp://bot.example.com/hook"}, "Bad Request: invalid webhook URL specified"),
        ({"url": "https://"}, "Bad Request: invalid webhook URL specified"),
        ({"url": "https://bot.example.com:8080/hook"},
         "Bad Request: bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443"),
        ({"url": "https://bot.example.com/hook"},
         "Bad Request: bad webhook: Failed to resolve host: Name or service not known"),
        ({"url": "https://10.1.2.3/hook"}, "Bad Request: bad webhook: IP address 10.1.2.3 is reserved"),
        ({"url": "http://127.0.0.1:9/hook", "secret_token": "bad secret!"},
         "Bad Request: secret token contains unallowed characters"),
        ({"url": "http://127.0.0.1:9/hook", "secret_token": "x" * 257}, "Bad Request: secret token is too long"),
        ({"url": "http://127.0.0.1:9/hook", "max_connections": 0},
         "Bad Request: max_connections must be between 1 and 100"),
        ({"url": "http://127.0.0.1:9/hook", "max_connections": 101},
         "Bad Request: max_connections must be between 1 and 100"),
        ({"url": "http://127.0.0.1:9/hook", "allowed_updates": "message"}, "Bad Request: can't parse allowed updates"),
    ],
)
def test_set_webhook_validation_errors(fake: TelegramFake, params: dict[str, Any], description: str) -> None:
    status, body = call(fake, "setWebhook", **params)
    assert (status, body) == (400, {"ok": False, "error_code": 400, "description": description})
    assert webhook_info(fake)["url"] == ""
    assert fake.webhook_url == ""
    assert [e.description for e in fake.errors] == [description]


def test_set_webhook_answers_and_reports_like_telegram(fake: TelegramFake) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens: deliveries fail, setWebhook does not
    fake.webhook_retry_delay = 60
    assert call(fake, "setWebhook", url=url, secret_token=SECRET, allowed_updates=["message"]) == (
        200, {"ok": True, "result": True, "description": "Webhook was set"}
    )
    assert call(fake, "setWebhook", url=url, secret_token=SECRET)[1]["description"] == "Webhook is already set"
    fake.user_sends(USER, "hi")
    fake.wait_for(lambda: fake.webhook_attempts())
    body = call(fake, "getWebhookInfo")[1]
    assert SECRET not in json.dumps(body)
    info = body["result"]
    assert info.pop("last_error_date") == pytest.approx(time.time(), abs=5)
    assert info == {
        "url": url, "has_custom_certificate": False, "pending_update_count": 1,
        "last_error_message": "Connection refused", "max_connections": 40, "ip_address": "127.0.0.1",
        "allowed_updates": ["message"],
    }
    assert call(fake, "deleteWebhook")[1] == {"ok": True, "result": True, "description": "Webhook was deleted"}
    assert call(fake, "deleteWebhook")[1]["description"] == "Webhook is already deleted"
    assert webhook_info(fake) == {
        "url": "", "has_custom_certificate": False, "pending_update_count": 1, "allowed_updates": ["message"]
    }


def test_set_webhook_is_limited_to_one_call_per_second() -> None:
    with TelegramFake() as fake:
        assert call(fake, "setWebhook", url="http://127.0.0.1:9/a")[0] == 200
        status, body = call(fake, "setWebhook", url="http://127.0.0.1:9/b")
        assert status == 429
        assert body["parameters"] == {"retry_after": 1}
        assert fake.webhook_url == "http://127.0.0.1:9/a"


def test_a_rejected_new_url_leaves_no_webhook(fake: TelegramFake) -> None:
    """Telegram closes the old webhook before it validates the new URL."""
    assert call(fake, "setWebhook", url="http://127.0.0.1:9/hook")[0] == 200
    assert call(fake, "setWebhook", url="http://bot.example.com/hook")[0] == 400
    assert fake.webhook_url == ""
    assert call(fake, "getUpdates")[0] == 200


def test_drop_pending_updates(fake: TelegramFake) -> None:
    fake.user_sends(USER, "old")
    assert call(fake, "setWebhook", url="http://127.0.0.1:9/hook", drop_pending_updates=True)[0] == 200
    assert fake.pending_updates == 0
    fake.webhook_retry_delay = 60
    fake.user_sends(USER, "newer")
    assert call(fake, "deleteWebhook", drop_pending_updates=True)[0] == 200
    assert fake.pending_updates == 0


# ---------------------------------------------------------------------------- getUpdates conflicts


def test_get_updates_conflicts_while_a_webhook_is_set(fake: TelegramFake) -> None:
    outcome: list[tuple[int, dict[str, Any]]] = []
    poll = threading.Thread(target=lambda: outcome.append(call(fake, "getUpdates", timeout=5)))
    poll.start()
    fake.wait_for(lambda: fake.request_counts.get("getUpdates"))
    time.sleep(0.1)  # the poll is waiting
    assert call(fake, "setWebhook", url="http://127.0.0.1:9/hook")[0] == 200
    poll.join(timeout=2)
    assert outcome == [(409, {"ok": False, "error_code": 409, "description": TERMINATED_BY_SET_WEBHOOK})]
    assert call(fake, "getUpdates", offset=5) == (
        409, {"ok": False, "error_code": 409, "description": WEBHOOK_ACTIVE}
    )
    assert fake.errors == []  # conflicts are not malformed calls


# ---------------------------------------------------------------------------- delivery


def test_updates_are_posted_as_json_with_the_secret(fake: TelegramFake) -> None:
    with Receiver() as receiver:
        url = f"{receiver.base_url}/telegram/hook?replica=1"
        assert call(fake, "setWebhook", url=url, secret_token=SECRET)[0] == 200
        update_id = fake.user_sends(USER, "/start", first_name="Alice")
        fake.wait_for_webhook_delivery(update_id, timeout=2)
        [request] = receiver.received()
    assert request.method == "POST"
    assert request.path == "/telegram/hook?replica=1"
    assert request.headers["content-type"] == "application/json"
    assert request.headers[WEBHOOK_SECRET_HEADER.lower()] == SECRET
    update = request.json()
    assert update["update_id"] == update_id
    assert update["message"]["text"] == "/start"
    assert update["message"]["from"]["first_name"] == "Alice"
    assert fake.webhook_attempts() == [(update_id, 200)]
    assert fake.webhook_delivered() == [update_id]
    assert fake.pending_updates == 0


def test_no_secret_header_without_a_secret(fake: TelegramFake) -> None:
    with Receiver() as receiver:
        assert call(fake, "setWebhook", url=f"http://localhost:{receiver.base_url.rsplit(':', 1)[1]}/h")[0] == 200
        fake.wait_for_webhook_delivery(fake.user_sends(USER, "hi"), timeout=2)
        [request] = receiver.received()
    assert WEBHOOK_SECRET_HEADER.lower() not in request.headers
    assert request.headers["host"].startswith("localhost:")


def test_a_failed_delivery_is_retried_until_acknowledged(fake: TelegramFake) -> None:
    with Receiver([500, 200]) as receiver:
        assert call(fake, "setWebhook", url=f"{receiver.base_url}/hook", secret_token=SECRET)[0] == 200
        update_id = fake.user_sends(USER, "hi")
        fake.wait_for_webhook_delivery(update_id, timeout=2)
        first, second = receiver.received()
    assert first.body == second.body
    assert fake.webhook_attempts() == [(update_id, 500), (update_id, 200)]
    assert fake.webhook_delivered() == [update_id]
    info = webhook_info(fake)
    assert info["last_error_message"] == "Wrong response from the webhook: 500 Internal Server Error"
    assert info["pending_update_count"] == 0


def test_a_dead_receiver_port_is_retried_until_it_listens(fake: TelegramFake) -> None:
    port = free_port()
    assert call(fake, "setWebhook", url=f"http://127.0.0.1:{port}/hook")[0] == 200
    update_id = fake.user_sends(USER, "hi")
    fake.wait_for(lambda: len(fake.webhook_attempts()) >= 2, timeout=2)
    assert set(fake.webhook_attempts()) == {(update_id, "Connection refused")}
    assert webhook_info(fake)["last_error_message"] == "Connection refused"
    assert fake.pending_updates == 1
    with Receiver(port=port) as receiver:
        fake.wait_for_webhook_delivery(update_id, timeout=2)
        assert len(receiver.received()) == 1
    assert fake.webhook_delivered() == [update_id]
    assert fake.pending_updates == 0


def test_a_slow_receiver_times_out_and_gets_the_update_again(fake: TelegramFake) -> None:
    hold = threading.Event()
    fake.webhook_timeout = 0.2
    with Receiver(hold=hold) as receiver:
        assert call(fake, "setWebhook", url=f"{receiver.base_url}/hook")[0] == 200
        update_id = fake.user_sends(USER, "hi")
        fake.wait_for(lambda: fake.webhook_attempts(), timeout=2)
        assert fake.webhook_attempts() == [(update_id, "Read timeout expired")]
        hold.set()
        fake.wait_for_webhook_delivery(update_id, timeout=2)
    assert webhook_info(fake)["last_error_message"] == "Read timeout expired"


def test_delete_webhook_stops_delivery_and_get_updates_works_again(fake: TelegramFake) -> None:
    with Receiver() as receiver:
        assert call(fake, "setWebhook", url=f"{receiver.base_url}/hook")[0] == 200
        fake.wait_for_webhook_delivery(fake.user_sends(USER, "first"), timeout=2)
        assert call(fake, "deleteWebhook")[0] == 200
        later = fake.user_sends(USER, "second")
        time.sleep(0.2)
        assert len(receiver.received()) == 1
    status, body = call(fake, "getUpdates")
    assert status == 200
    assert [u["update_id"] for u in body["result"]] == [later]


def test_an_update_in_flight_when_the_webhook_is_deleted_stays_queued(fake: TelegramFake) -> None:
    hold = threading.Event()
    with Receiver(hold=hold) as receiver:
        assert call(fake, "setWebhook", url=f"{receiver.base_url}/hook")[0] == 200
        update_id = fake.user_sends(USER, "hi")
        receiver.wait_for(1)
        assert call(fake, "deleteWebhook")[0] == 200
        hold.set()
    assert fake.webhook_delivered() == []
    body = call(fake, "getUpdates")[1]
    assert [u["update_id"] for u in body["result"]] == [update_id]


def test_max_connections_and_one_update_at_a_time_per_chat(fake: TelegramFake) -> None:
    hold = threading.Event()
    with Receiver(hold=hold) as receiver:
        assert call(fake, "setWebhook", url=f"{receiver.base_url}/hook", max_connections=2)[0] == 200
        a1 = fake.user_sends(1, "a1")
        a2 = fake.user_sends(1, "a2")
        b1 = fake.user_sends(2, "b1")
        c1 = fake.user_sends(3, "c1")
        first = receiver.wait_for(2)
        time.sleep(0.1)
        assert len(receiver.received()) == 2  # max_connections
        assert {r.json()["update_id"] for r in first} == {a1, b1}  # a2 waits for a1, oldest first
        assert fake.webhook_in_flight == 2
        hold.set()
        fake.wait_for(lambda: len(fake.webhook_delivered()) == 4, timeout=2)
    delivered = fake.webhook_delivered()
    assert sorted(delivered) == [a1, a2, b1, c1]
    assert delivered.index(a1) < delivered.index(a2)
    assert fake.webhook_peak_in_flight == 2


def test_a_method_in_the_webhook_answer_is_executed(fake: TelegramFake) -> None:
    reply = json.dumps({"method": "sendMessage", "chat_id": USER, "text": "pong"}).encode()
    with Receiver(reply=reply) as receiver:
        assert call(fake, "setWebhook", url=f"{receiver.base_url}/hook")[0] == 200
        fake.user_sends(USER, "ping")
        [sent] = fake.wait_for_sent("sendMessage", chat_id=USER, timeout=2)
    assert sent.params["text"] == "pong"
    last = fake.last_message(USER)
    assert last is not None and last.text == "pong"


def test_stop_cuts_deliveries_in_flight() -> None:
    hold = threading.Event()
    with Receiver(hold=hold) as receiver:
        fake = TelegramFake().start()
        try:
            assert call(fake, "setWebhook", url=f"{receiver.base_url}/hook")[0] == 200
            fake.user_sends(USER, "hi")
            receiver.wait_for(1)
        finally:
            started = time.monotonic()
            fake.stop()
        assert time.monotonic() - started < 1
        assert fake.webhook_attempts() == []
        assert fake.webhook_url == f"{receiver.base_url}/hook"  # the webhook stays set, as on Telegram


# ---------------------------------------------------------------------------- balancer


def test_balancer_round_robins_and_skips_a_stopped_replica(fake: TelegramFake) -> None:
    with Receiver() as first, Receiver() as second, LoopbackBalancer([first.base_url, second.base_url]) as lb:
        fake.route_webhook_host("bot.example.com", lb.base_url)
        assert call(fake, "setWebhook", url="https://bot.example.com/hook", secret_token=SECRET)[0] == 200
        ids = [fake.user_sends(user, "hi") for user in (1, 2, 3, 4)]
        fake.wait_for(lambda: len(fake.webhook_delivered()) == 4, timeout=2)
        assert lb.forwarded() == {first.base_url: 2, second.base_url: 2}
        request = first.received()[0]
        assert request.headers["host"] == "bot.example.com"
        assert request.headers[WEBHOOK_SECRET_HEADER.lower()] == SECRET
        assert request.headers["x-forwarded-for"] == "127.0.0.1"

        second.stop()
        ids += [fake.user_sends(user, "again") for user in (1, 2)]
        fake.wait_for(lambda: len(fake.webhook_delivered()) == 6, timeout=2)
        assert lb.forwarded() == {first.base_url: 4, second.base_url: 2}
        assert lb.failures() == {second.base_url: 1}
        assert sorted(fake.webhook_delivered()) == sorted(ids)  # each delivered once
        assert all(outcome == 200 for _, outcome in fake.webhook_attempts())

        first.stop()
        fake.webhook_retry_delay = 60
        down = fake.user_sends(USER, "nobody home")
        fake.wait_for(lambda: fake.webhook_attempts(down), timeout=2)
    assert fake.webhook_attempts(down) == [(down, 502)]
    assert webhook_info(fake)["last_error_message"] == "Wrong response from the webhook: 502 Bad Gateway"


def test_balancer_forwards_method_query_headers_and_answers() -> None:
    with Receiver([201], reply=b'{"ok":true}') as backend, LoopbackBalancer([backend.base_url]) as lb:
        response = httpx.post(f"{lb.base_url}/a/b?x=1&y=2", content=b"payload", headers={"X-Custom": "v"})
        assert (response.status_code, response.content) == (201, b'{"ok":true}')
        assert response.headers["content-type"] == "application/json"
        [request] = backend.received()
        assert (request.path, request.body, request.headers["x-custom"]) == ("/a/b?x=1&y=2", b"payload", "v")
        lb.set_backends([])
        assert httpx.get(f"{lb.base_url}/").status_code == 502


# ---------------------------------------------------------------------------- real PTB


async def test_real_ptb_webhook_round_trip(fake: TelegramFake) -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text("hello over webhook")

    port = free_port()
    app = Application.builder().token(fake.token).base_url(f"{fake.base_url}/bot").build()
    app.add_handler(CommandHandler("start", start))
    async with app:
        assert app.updater is not None
        await app.updater.start_webhook(
            listen="127.0.0.1", port=port, url_path="tg", webhook_url=f"http://127.0.0.1:{port}/tg",
            secret_token=SECRET,
        )
        await app.start()
        try:
            update_id = fake.user_sends(USER, "/start")
            await fake.wait_for_sent_async("sendMessage", chat_id=USER, timeout=5)
            await fake.wait_for_webhook_delivery_async(update_id, timeout=5)
        finally:
            await app.updater.stop()
            await app.stop()
    assert fake.webhook_url == f"http://127.0.0.1:{port}/tg"
    assert fake.webhook_attempts() == [(update_id, 200)]
    assert fake.malformed_calls == []
