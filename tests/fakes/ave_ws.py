"""A strict stand-in for AVE's data WebSocket (Pro plan) on 127.0.0.1.

* The `X-API-KEY` header is required (HTTP 401 before the upgrade otherwise).
* JSON-RPC 2.0: `{"jsonrpc": "2.0", "method": "subscribe", "params": ["kline", pair, "k60", chain],
  "id": n}` is answered `{"jsonrpc": "2.0", "id": n, "result": "subscribed"}`; anything else gets a
  JSON-RPC error (-32601 unknown method, -32602 bad params, -32700 not JSON).
* `push(pair, interval, bar)` sends a kline push to every connection subscribed to it:
  `{"jsonrpc": "2.0", "result": {"topic": "kline", "pair", "chain", "interval", "kline": {"usd":
  {"open", "high", "low", "close", "volume" as strings, "time" as int}}}}`.
* Faults: `drop()` closes every connection; `silent = True` swallows pushes (the socket stays
  open, as a stalled upstream would).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from typing import Any

from websockets.http11 import Response
from websockets.sync.server import Server, ServerConnection, serve

_INTERVALS = {"k1", "k5", "k15", "k30", "k60", "k120", "k240", "k1440"}


class AveWsFake:
    """Run with `with AveWsFake() as ws:`; `ws.url` is the ws:// address."""

    def __init__(self, api_key: str = "test-pro-key") -> None:
        self.api_key = api_key
        self.silent = False
        self.subscriptions: list[tuple[str, str, str]] = []  # (pair, interval, chain), every request
        self.connections = 0
        self.rejected = 0
        self._subs: dict[ServerConnection, set[tuple[str, str]]] = {}
        self._lock = threading.Lock()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def __enter__(self) -> AveWsFake:
        self._server = serve(self._handle, "127.0.0.1", 0, process_request=self._check_key)
        port = self._server.socket.getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
        if self._thread is not None:
            self._thread.join(5)

    def _check_key(self, connection: ServerConnection, request: Any) -> Response | None:
        if request.headers.get("X-API-KEY") != self.api_key:
            self.rejected += 1
            return connection.respond(HTTPStatus.UNAUTHORIZED, "invalid or missing API key\n")
        return None

    def _handle(self, ws: ServerConnection) -> None:
        with self._lock:
            self.connections += 1
            self._subs[ws] = set()
        try:
            for raw in ws:
                ws.send(json.dumps(self._answer(ws, raw)))
        except Exception:  # the client went away
            pass
        finally:
            with self._lock:
                self._subs.pop(ws, None)

    def _answer(self, ws: ServerConnection, raw: str | bytes) -> dict[str, Any]:
        try:
            msg = json.loads(raw)
        except ValueError:
            return {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error"}}
        ident = msg.get("id") if isinstance(msg, dict) else None
        if not isinstance(msg, dict) or msg.get("jsonrpc") != "2.0" or msg.get("method") != "subscribe":
            return {"jsonrpc": "2.0", "id": ident, "error": {"code": -32601, "message": "method not found"}}
        params = msg.get("params")
        if (not isinstance(params, list) or len(params) != 4 or params[0] != "kline"
                or params[2] not in _INTERVALS or not all(isinstance(p, str) and p for p in params)):
            return {"jsonrpc": "2.0", "id": ident, "error": {"code": -32602, "message": "invalid params"}}
        pair, interval, chain = params[1].lower(), params[2], params[3]
        with self._lock:
            self._subs.setdefault(ws, set()).add((pair, interval))
            self.subscriptions.append((pair, interval, chain))
        return {"jsonrpc": "2.0", "id": ident, "result": "subscribed"}

    def push(self, pair: str, interval: str, bar: tuple[int, float, float, float, float, float],
             chain: str = "bsc") -> int:
        """Send one kline push to the subscribers of (pair, interval); returns how many got it."""
        t, o, h, lo, c, v = bar
        message = json.dumps({"jsonrpc": "2.0", "result": {
            "topic": "kline", "pair": pair, "chain": chain, "interval": interval,
            "kline": {"usd": {"open": str(o), "high": str(h), "low": str(lo), "close": str(c),
                              "volume": str(v), "time": int(t)}}}})
        if self.silent:
            return 0
        sent = 0
        with self._lock:
            targets = [ws for ws, subs in self._subs.items() if (pair.lower(), interval) in subs]
        for ws in targets:
            try:
                ws.send(message)
                sent += 1
            except Exception:
                pass
        return sent

    def drop(self) -> None:
        """Close every connection, as a network blip would."""
        with self._lock:
            targets = list(self._subs)
        for ws in targets:
            try:
                ws.close()
            except Exception:
                pass

    @property
    def subscribed(self) -> int:
        with self._lock:
            return sum(len(s) for s in self._subs.values())


@contextmanager
def ave_ws(api_key: str = "test-pro-key") -> Iterator[AveWsFake]:
    with AveWsFake(api_key) as fake:
        yield fake
