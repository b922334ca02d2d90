"""An offline fake of the AVE Cloud data API (reference/apis.md §3.1), on 127.0.0.1.

It speaks the real protocol: `X-API-KEY` auth mapped to plans, per-key rate limits by plan,
the `{"status": 1, "msg": "SUCCESS", "data_type": 1, "data": ...}` envelope with numbers as
strings and times as ints, sparse ascending klines (token and pair routes), the batch price
endpoint with its 200-id cap and `tvl_min` default of 1000, token search and token detail.

Prices are deterministic functions of (token seed, time). Scripted scenarios use `add_token`,
`set_price`, `set_candles` and the error toggles (`fail_next`, `envelope_error_next`,
`slow_next`, `not_found`). The server runs in a daemon thread, so a bot started as a
subprocess can reach it through `AVE_BASE_URL = fake.base_url`.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

ALLOWED_INTERVALS = (1, 5, 15, 30, 60, 120, 240, 1440, 4320, 10080, 43200, 525600, 2628000)
PLAN_RPS = {"free": 1.0, "normal": 5.0, "pro": 20.0}
EVM_CHAINS = frozenset({"bsc", "eth", "base", "polygon", "arbitrum", "optimism", "avalanche", "blast",
                        "merlin"})
SUPPORTED_CHAINS = ("bsc", "eth", "base", "solana", "tron", "polygon", "arbitrum", "optimism", "avalanche",
                    "sui", "ton", "aptos", "blast", "merlin")
DEFAULT_KEYS = {"test-free-key": "free", "test-normal-key": "normal", "test-pro-key": "pro"}


def canonical_id(token_id: str) -> str:
    """EVM ids lowercased (AVE treats them case-insensitively); others unchanged."""
    address, _, chain = token_id.strip().rpartition("-")
    chain = chain.lower()
    return f"{address.lower()}-{chain}" if chain in EVM_CHAINS else f"{address}-{chain}"


def _unit(*parts: object) -> float:
    """A deterministic uniform [0, 1) from the parts."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2.0**64


def _s(value: float) -> str:
    return repr(float(value))


@dataclass
class FakeToken:
    """A token the fake knows; `token_id` is canonical."""

    token_id: str
    symbol: str
    name: str
    tvl: float
    base_price: float
    volume_24h: float
    seed: int
    price_override: float | None = None

    @property
    def address(self) -> str:
        return self.token_id.rpartition("-")[0]

    @property
    def chain(self) -> str:
        return self.token_id.rpartition("-")[2]

    @property
    def pair_id(self) -> str:
        return f"pair{hashlib.sha1(self.token_id.encode()).hexdigest()[:36]}-{self.chain}"


@dataclass
class LoggedRequest:
    """One request as the fake saw it."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int
    api_key: str | None
    at: float = field(default_factory=time.time)


DEFAULT_TOKENS: tuple[tuple[str, str, str, float, float], ...] = (
    # token_id, symbol, name, tvl, base price
    ("0x6982508145454Ce325dDbE47a25d4ec3d2311933-eth", "PEPE", "Pepe", 40_000_000.0, 0.0000125),
    ("0x25d887Ce7a35172C62FeBFD67a1856F20FaEbB00-bsc", "PEPE", "Pepe", 5_000_000.0, 0.0000124),
    ("0x1111111111111111111111111111111111111111-bsc", "PEPE", "Pepe Copy", 900.0, 0.0000003),
    ("0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2-eth", "WETH", "Wrapped Ether", 900_000_000.0, 3100.0),
    ("So11111111111111111111111111111111111111112-solana", "SOL", "Wrapped SOL", 300_000_000.0, 150.0),
    ("DezXAZ8z7PnrnRJjz3wXBoRgixCa6xjnB7YaB1pPB263-solana", "BONK", "Bonk", 12_000_000.0, 0.000022),
    ("0xbA2aE424d960c26247Dd6c32edC70B295c744C43-bsc", "DOGE", "Dogecoin", 60_000_000.0, 0.16),
    ("0x0000000000000000000000000000000000000aBc-bsc", "TINY", "Tiny Cap", 500.0, 0.01),
)


class AveFake:
    """The fake AVE data API server. Use as a context manager or call `start()` / `stop()`."""

    def __init__(self, *, keys: Mapping[str, str] | None = None, seed: int = 1,
                 clock: Callable[[], float] = time.time, rate_limit: bool = True,
                 rate_limit_status: int = 429, rate_limit_burst: float | None = None,
                 sparse_fraction: float = 0.15, history_days: int = 400,
                 with_default_tokens: bool = True) -> None:
        self.keys = dict(DEFAULT_KEYS if keys is None else keys)
        self.seed = seed
        self.clock = clock
        self.rate_limit = rate_limit
        self.rate_limit_status = rate_limit_status
        self.rate_limit_burst = rate_limit_burst
        self.retry_after: int | None = None  # AVE documents no Retry-After; set to send one on 429
        self.sparse_fraction = sparse_fraction
        self.history_days = history_days
        self.extra_points = 0  # return this many points beyond `limit` (PROD does this)
        self.not_found = False  # every data route answers SUCCESS-style with empty data
        self.request_log: list[LoggedRequest] = []
        self._tokens: dict[str, FakeToken] = {}
        self._candles: dict[tuple[str, int], list[Any]] = {}
        self._buckets: dict[str, tuple[float, float]] = {}
        self._fail: list[int] = []
        self._envelope_errors: list[tuple[int, str]] = []
        self._slow: list[float] = []
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        if with_default_tokens:
            for token_id, symbol, name, tvl, price in DEFAULT_TOKENS:
                self.add_token(token_id, symbol, name=name, tvl=tvl, price=price)

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> AveFake:
        """Listen on 127.0.0.1 on a free port, serving from a daemon thread."""
        handler = type("AveFakeHandler", (_Handler,), {"fake": self})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="ave-fake",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> AveFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("AveFake is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # --- scenario hooks -----------------------------------------------------------------------

    def add_token(self, token_id: str, symbol: str, *, name: str = "", tvl: float = 1_000_000.0,
                  price: float = 1.0, volume_24h: float = 250_000.0) -> str:
        """Register a token (returns its canonical id)."""
        canon = canonical_id(token_id)
        with self._lock:
            self._tokens[canon] = FakeToken(canon, symbol, name or symbol, tvl, price, volume_24h,
                                            seed=int(_unit(self.seed, canon) * 2**31))
        return canon

    def token(self, token_id: str) -> FakeToken | None:
        with self._lock:
            return self._tokens.get(canonical_id(token_id))

    def set_price(self, token_id: str, price: float | None) -> None:
        """Pin the current price (None un-pins); the candle containing "now" closes at it."""
        with self._lock:
            self._tokens[canonical_id(token_id)].price_override = price

    def set_candles(self, token_id: str, interval: int, rows: Sequence[Any] | None) -> None:
        """Serve these candles for (token, interval) instead of generated ones (None restores).

        Rows are (time, open, high, low, close, volume) tuples, or raw point dicts sent verbatim
        (to inject malformed points); they are served in the given order, filtered by time.
        """
        with self._lock:
            key = (canonical_id(token_id), interval)
            if rows is None:
                self._candles.pop(key, None)
            else:
                self._candles[key] = list(rows)

    def current_price(self, token_id: str) -> float:
        """The price the fake quotes now for `token_id`."""
        with self._lock:
            token = self._tokens[canonical_id(token_id)]
            return self._price_now(token, self.clock())

    def fail_next(self, count: int = 1, status: int = 500) -> None:
        """The next `count` authorised requests answer HTTP `status`."""
        with self._lock:
            self._fail.extend([status] * count)

    def envelope_error_next(self, count: int = 1, msg: str = "upstream error", status: int = 0) -> None:
        """The next `count` authorised requests answer HTTP 200 with envelope `status` != 1."""
        with self._lock:
            self._envelope_errors.extend([(status, msg)] * count)

    def slow_next(self, count: int = 1, seconds: float = 1.0) -> None:
        """The next `count` authorised requests wait `seconds` before answering (client timeouts)."""
        with self._lock:
            self._slow.extend([seconds] * count)

    def calls(self, path_prefix: str = "") -> int:
        """How many logged requests have a path starting with `path_prefix`."""
        with self._lock:
            return sum(1 for r in self.request_log if r.path.startswith(path_prefix))

    def requests(self, path_prefix: str = "") -> list[LoggedRequest]:
        with self._lock:
            return [r for r in self.request_log if r.path.startswith(path_prefix)]

    def reset_log(self) -> None:
        with self._lock:
            self.request_log.clear()

    # --- deterministic data -------------------------------------------------------------------

    def _price_at(self, token: FakeToken, t: float) -> float:
        phase = token.seed % 1000
        slow = 0.08 * math.sin(2 * math.pi * t / (3 * 86400) + phase)
        fast = 0.03 * math.sin(2 * math.pi * t / (7 * 3600) + phase / 7)
        noise = 0.004 * (_unit(token.seed, "n", int(t // 60)) - 0.5)
        return token.base_price * math.exp(slow + fast + noise)

    def _price_now(self, token: FakeToken, now: float) -> float:
        return token.price_override if token.price_override is not None else self._price_at(token, now)

    def _candle(self, token: FakeToken, interval: int, t: int, now: float) -> dict[str, Any]:
        step = interval * 60
        live = t <= now < t + step
        o = self._price_at(token, t)
        c = self._price_now(token, now) if live else self._price_at(token, min(t + step, now))
        h = max(o, c) * (1 + 0.003 * _unit(token.seed, "h", interval, t))
        lo = min(o, c) * (1 - 0.003 * _unit(token.seed, "l", interval, t))
        v = token.volume_24h / 1440 * interval * (0.5 + _unit(token.seed, "v", interval, t))
        return {"open": _s(o), "high": _s(h), "low": _s(lo), "close": _s(c), "volume": _s(v), "time": int(t)}

    def _points(self, token: FakeToken, interval: int, limit: int, from_time: int, to_time: int,
                now: float) -> list[dict[str, Any]]:
        want = limit + self.extra_points
        explicit = self._candles.get((token.token_id, interval))
        if explicit is not None:
            rows = [_as_point(r) for r in explicit]
            kept = [r for r in rows if not _has_time(r) or from_time <= int(r["time"]) <= to_time]
            return kept[-want:]
        step = interval * 60
        start = max(from_time, int(now - self.history_days * 86400))
        t = (to_time // step) * step
        out: list[dict[str, Any]] = []
        while len(out) < want and t >= start:
            live = t <= now < t + step
            if live or _unit(token.seed, "sparse", interval, t) >= self.sparse_fraction:
                out.append(self._candle(token, interval, t, now))
            t -= step
        out.reverse()
        return out

    def _token_object(self, token: FakeToken, now: float) -> dict[str, Any]:
        price = self._price_now(token, now)
        change = (price / self._price_at(token, now - 86400) - 1) * 100
        return {
            "token": token.address, "chain": token.chain, "name": token.name, "symbol": token.symbol,
            "decimal": 18, "current_price_usd": _s(price), "current_price_eth": _s(price / 3100.0),
            "price_change_1d": _s(change), "price_change_24h": _s(change),
            "market_cap": _s(token.tvl * 10), "fdv": _s(token.tvl * 12), "tvl": _s(token.tvl),
            "main_pair_tvl": _s(token.tvl * 0.8), "main_pair": token.pair_id.rpartition("-")[0],
            "tx_volume_u_24h": _s(token.volume_24h), "tx_count_24h": 1200, "holders": 5000,
            "logo_url": "", "risk_level": 0, "risk_score": "10", "launch_at": 1700000000,
            "created_at": 1700000000, "updated_at": int(now), "appendix": "{}", "is_mintable": "0",
        }

    # --- request handling ---------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes
               ) -> tuple[int, dict[str, str], Any, float]:
        """Route one request: (HTTP status, extra headers, JSON body, delay before answering)."""
        parts = urlsplit(raw_path)
        path = parts.path
        if "/v2/" in path:
            path = path[path.index("/v2/"):]  # tolerate a host prefix such as /api/v2/...
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        parsed_body: Any = None
        if body:
            try:
                parsed_body = json.loads(body)
            except ValueError:
                parsed_body = body.decode("utf-8", "replace")
        key = headers.get("X-API-KEY")  # http.server's headers object is case-insensitive
        with self._lock:
            status, extra, payload, delay = self._dispatch(method, path, query, parsed_body, key)
            self.request_log.append(LoggedRequest(method, path, query, parsed_body, status, key))
        return status, extra, payload, delay

    def _dispatch(self, method: str, path: str, query: dict[str, str], body: Any, key: str | None
                  ) -> tuple[int, dict[str, str], Any, float]:
        if not key or key not in self.keys:
            return 401, {}, {"status": 0, "msg": "Unauthorized - invalid or missing API key"}, 0.0
        if self.rate_limit and not self._take_token(key):
            extra = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
            return self.rate_limit_status, extra, {"status": 0, "msg": "Rate limited - TPS exceeded"}, 0.0
        delay = self._slow.pop(0) if self._slow else 0.0
        if self._fail:
            status = self._fail.pop(0)
            return status, {}, {"status": 0, "msg": f"HTTP {status}"}, delay
        if self._envelope_errors:
            env_status, msg = self._envelope_errors.pop(0)
            return 200, {}, {"status": env_status, "msg": msg, "data_type": 1, "data": None}, delay
        try:
            status, payload = self._route(method, path, query, body, self.clock())
        except Exception as exc:  # a bug in the fake must show up as a 500, not a dropped socket
            return 500, {}, {"status": 0, "msg": f"fake error: {exc!r}"}, delay
        return status, {}, payload, delay

    def _take_token(self, key: str) -> bool:
        rate = PLAN_RPS.get(self.keys[key], 1.0)
        capacity = self.rate_limit_burst if self.rate_limit_burst is not None else rate + 1.0
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1.0, now)
        return True

    def _route(self, method: str, path: str, query: dict[str, str], body: Any, now: float
               ) -> tuple[int, Any]:
        segments = [unquote(s) for s in path.strip("/").split("/")]
        if method == "GET" and len(segments) == 4 and segments[:2] == ["v2", "klines"] \
                and segments[2] in ("token", "pair"):
            return self._klines(segments[2], segments[3], query, now)
        if method == "POST" and path == "/v2/tokens/price":
            return self._prices(body, now)
        if method == "GET" and path == "/v2/tokens":
            return self._search(query, now)
        if method == "GET" and path == "/v2/supported_chains":
            return 200, _ok([{"chain": c, "case_sensitive": c not in EVM_CHAINS} for c in SUPPORTED_CHAINS])
        if method == "GET" and len(segments) == 3 and segments[:2] == ["v2", "tokens"]:
            return self._detail(segments[2], now)
        return 404, {"status": 0, "msg": "not found"}

    def _klines(self, kind: str, ident: str, query: dict[str, str], now: float) -> tuple[int, Any]:
        try:
            interval = int(query.get("interval", ""))
        except ValueError:
            return 400, {"status": 0, "msg": "interval is required"}
        if interval not in ALLOWED_INTERVALS:
            return 400, {"status": 0, "msg": f"invalid interval {interval}"}
        try:
            limit = int(query.get("limit") or query.get("size") or 300)
            from_time = int(query.get("from_time") or -1)
            to_time = int(query.get("to_time") or now)
        except ValueError:
            return 400, {"status": 0, "msg": "invalid parameter"}
        if not 1 <= limit <= 1000:
            return 400, {"status": 0, "msg": "limit must be between 1 and 1000"}
        if kind == "token":
            token = self._tokens.get(canonical_id(ident))
        else:
            token = next((t for t in self._tokens.values() if canonical_id(t.pair_id) == canonical_id(ident)),
                         None)
        if token is None or self.not_found:
            return 200, _ok({"points": [], "total_count": 0, "to_time": to_time, "limit": limit,
                             "interval": interval}, msg="SUCCESS: token not found")
        points = self._points(token, interval, limit, from_time, min(to_time, int(now)), now)
        return 200, _ok({"points": points, "total_count": len(points), "to_time": to_time, "limit": limit,
                         "interval": interval, "pair_id": token.pair_id, "target_token_id": token.token_id})

    def _prices(self, body: Any, now: float) -> tuple[int, Any]:
        if not isinstance(body, Mapping) or not isinstance(body.get("token_ids"), list):
            return 400, {"status": 0, "msg": "token_ids is required"}
        ids = body["token_ids"]
        if len(ids) > 200:
            return 400, {"status": 0, "msg": "token_ids exceeds 200"}
        try:
            tvl_min = float(body.get("tvl_min", 1000))
            vol_min = float(body.get("tx_24h_volume_min", 0))
        except (TypeError, ValueError):
            return 400, {"status": 0, "msg": "invalid filter"}
        out: dict[str, Any] = {}
        for raw in ids:
            token = self._tokens.get(canonical_id(str(raw)))
            if token is None or self.not_found or token.tvl < tvl_min or token.volume_24h < vol_min:
                continue
            obj = self._token_object(token, now)
            out[token.token_id] = {
                "current_price_usd": obj["current_price_usd"], "price_change_1d": obj["price_change_1d"],
                "price_change_24h": obj["price_change_24h"], "tvl": obj["tvl"],
                "tx_volume_u_24h": obj["tx_volume_u_24h"], "token_id": token.token_id,
                "updated_at": int(now)}
        return 200, _ok(out)

    def _search(self, query: dict[str, str], now: float) -> tuple[int, Any]:
        keyword = query.get("keyword", "").strip().casefold()
        if not keyword:
            return 400, {"status": 0, "msg": "keyword is required"}
        try:
            limit = min(int(query.get("limit") or 100), 300)
        except ValueError:
            return 400, {"status": 0, "msg": "invalid limit"}
        chain = query.get("chain", "").strip().lower()
        if self.not_found:
            return 200, _ok([], msg="SUCCESS: token not found")
        hits = [t for t in self._tokens.values()
                if (not chain or t.chain == chain)
                and (keyword in t.symbol.casefold() or keyword in t.name.casefold()
                     or keyword == t.address.casefold())]
        order = query.get("orderby", "")
        if order in ("tx_volume_u_24h", "main_pair_tvl", "fdv", "market_cap"):
            hits.sort(key=lambda t: t.volume_24h if order == "tx_volume_u_24h" else t.tvl, reverse=True)
        return 200, _ok([self._token_object(t, now) for t in hits[:max(limit, 0)]])

    def _detail(self, ident: str, now: float) -> tuple[int, Any]:
        token = self._tokens.get(canonical_id(ident))
        if token is None or self.not_found:
            return 200, _ok(None, msg="SUCCESS: token not found")
        obj = self._token_object(token, now)
        pair = {"pair": token.pair_id.rpartition("-")[0], "chain": token.chain, "amm": "fakeswap",
                "token0_address": token.address, "token0_symbol": token.symbol,
                "token1_address": "0xusd", "token1_symbol": "USDT",
                "token0_price_usd": obj["current_price_usd"], "token1_price_usd": "1",
                "volume_u": obj["tx_volume_u_24h"], "target_token": token.address}
        return 200, _ok({"token": obj, "pairs": [pair], "is_audited": True})


def _ok(data: Any, msg: str = "SUCCESS") -> dict[str, Any]:
    return {"status": 1, "msg": msg, "data_type": 1, "data": data}


def _as_point(row: Any) -> Any:
    if isinstance(row, Mapping):
        return dict(row)
    if not isinstance(row, (tuple, list)) or len(row) != 6:
        return row  # served verbatim: lets a test inject garbage
    t, o, h, lo, c, v = row
    return {"open": _s(o), "high": _s(h), "low": _s(lo), "close": _s(c), "volume": _s(v), "time": int(t)}


def _has_time(point: Any) -> bool:
    try:
        int(point["time"])
    except (KeyError, TypeError, ValueError):
        return False
    return True


class _Handler(BaseHTTPRequestHandler):
    """Thin adapter from http.server to `AveFake.handle` (the class attribute `fake` is set per server)."""

    fake: AveFake
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, extra, payload, delay = self.fake.handle(self.command, self.path, self.headers, body)
        if delay:
            time.sleep(delay)
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (timeout test)

    do_GET = _serve
    do_POST = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""
