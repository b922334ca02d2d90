"""Client of the Automaton (Conway) agent API (SPEC §9).

* `POST {base}/agents` `{"name", "owner", "initial_balance"}` -> `{"agent_id"}`
* `GET {base}/agents/{id}/status` -> `{"balance", "status", "child_spawned", "child_info", "updated_at"}`

Every call carries `Authorization: Bearer <key>`, goes through `engine.http.request_with_retry`
(jittered backoff on 429/5xx/timeouts) and a circuit breaker, and fails with a typed error:

* `AutomatonAuthError`: 401/403 — the key is missing or rejected (retrying will not help);
* `AutomatonUnavailable`: timeouts, 5xx/429 after retries, an open breaker;
* `AutomatonError`: anything else (bad request, unreadable or invalid answer).

Amounts are parsed as `Decimal` from JSON numbers or strings and quantised to 6 decimals;
NaN, infinities, negatives and booleans are rejected. The key never appears in a message.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

import httpx

from engine.http import CircuitBreaker, HttpCircuitOpenError, HttpTemporaryError, Sleep, request_with_retry
from storage.money import nearest_usdc

__all__ = [
    "AutomatonAuthError", "AutomatonClient", "AutomatonError", "AutomatonUnavailable", "RemoteChild",
    "RemoteStatus", "parse_remote_amount",
]

_TEXT_MAX = 200


class AutomatonError(Exception):
    """A failed Automaton API call; the message is safe to log (no key)."""


class AutomatonAuthError(AutomatonError):
    """The API key is missing or rejected (HTTP 401/403)."""


class AutomatonUnavailable(AutomatonError):
    """Timeouts, 5xx or 429 after retries, or the circuit breaker is open: try again later."""


@dataclass(frozen=True)
class RemoteChild:
    """A child the remote automaton spawned."""

    agent_id: str
    balance: Decimal
    reason: str


@dataclass(frozen=True)
class RemoteStatus:
    """One status answer. `updated_at` is the server's change stamp when it sends one."""

    agent_id: str
    balance: Decimal
    status: str
    child_spawned: bool
    child_info: RemoteChild | None
    updated_at: int | None = None


def parse_remote_amount(value: Any, what: str = "balance") -> Decimal:
    """A non-negative finite USDC amount from a JSON number or numeric string, 6 decimals."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise AutomatonError(f"Automaton answered a {what} that is not a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise AutomatonError(f"Automaton answered a non-finite {what}")
    try:
        amount = Decimal(str(value).strip())  # via str: a JSON 10.1 means 10.1, not its binary float
    except InvalidOperation:
        raise AutomatonError(f"Automaton answered a {what} that is not a number") from None
    if not amount.is_finite():
        raise AutomatonError(f"Automaton answered a non-finite {what}")
    if amount < 0:
        raise AutomatonError(f"Automaton answered a negative {what}")
    if amount.adjusted() > 15:
        raise AutomatonError(f"Automaton answered an implausibly large {what}")
    return nearest_usdc(amount)  # another service's figure: half-even onto our micro-USDC grid


def _text(value: Any, limit: int = _TEXT_MAX) -> str:
    text = " ".join(str(value).split()) if value is not None else ""
    return "".join(ch for ch in text if ch.isprintable())[:limit]


def _agent_id(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise AutomatonError("Automaton answered without a valid agent_id")
    ident = str(value).strip()
    if not ident or len(ident) > 64 or any(c.isspace() or c in "/?#" for c in ident):
        raise AutomatonError("Automaton answered without a valid agent_id")
    return ident


class AutomatonClient:
    """Async client of the Automaton API (one `httpx.AsyncClient`, retries, a breaker)."""

    def __init__(self, base_url: str, api_key: str, *, client: httpx.AsyncClient | None = None,
                 timeout: float = 10.0, retries: int = 2, base_delay: float = 0.5, max_delay: float = 8.0,
                 breaker: CircuitBreaker | None = None, sleep: Sleep = asyncio.sleep) -> None:
        if not base_url:
            raise ValueError("AUTOMATON_BASE_URL is empty")
        self._base = base_url.rstrip("/")
        self._key = api_key or ""
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(timeout=httpx.Timeout(timeout))
        self._timeout = timeout
        self._retries = retries
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._sleep = sleep
        self.breaker = breaker if breaker is not None else CircuitBreaker(5, reset_after=60.0)

    def __repr__(self) -> str:  # never show the key
        return f"AutomatonClient(base_url={self._base!r})"

    async def aclose(self) -> None:
        """Close the HTTP client if this instance created it."""
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> AutomatonClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- API ----------------------------------------------------------------------------------

    async def create_agent(self, name: str, owner: str, initial_balance: Decimal) -> str:
        """Create a remote agent; returns its id. `name` should identify the local agent."""
        balance = parse_remote_amount(initial_balance, "initial balance")
        body = {"name": name, "owner": str(owner), "initial_balance": str(balance)}
        # A server that honours Idempotency-Key returns the same agent when a create is retried.
        data = await self._call("POST", "/agents", json=body, headers={"Idempotency-Key": f"create:{name}"})
        return _agent_id(data.get("agent_id"))

    async def get_status(self, remote_id: str) -> RemoteStatus:
        """The remote agent's balance, status and (when it spawned) its newest child."""
        data = await self._call("GET", f"/agents/{quote(_agent_id(remote_id), safe='')}/status")
        balance = parse_remote_amount(data.get("balance"))
        status = _text(data.get("status") or "unknown", 32) or "unknown"
        spawned = data.get("child_spawned") is True
        child: RemoteChild | None = None
        info = data.get("child_info")
        if spawned:
            if not isinstance(info, Mapping):
                raise AutomatonError("Automaton reported a child without child_info")
            child = RemoteChild(_agent_id(info.get("agent_id")),
                                parse_remote_amount(info.get("balance"), "child balance"),
                                _text(info.get("reason")))  # "" = none given: the ledger stores its default
        stamp = data.get("updated_at")
        updated = int(stamp) if isinstance(stamp, int | float) and not isinstance(stamp, bool) \
            and math.isfinite(stamp) else None
        return RemoteStatus(str(remote_id), balance, status, spawned, child, updated)

    # --- transport ----------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        text = str(text)[:300]
        return text.replace(self._key, "***") if self._key else text

    async def _call(self, method: str, path: str, *, json: Any = None,
                    headers: Mapping[str, str] | None = None) -> Mapping[str, Any]:
        kwargs: dict[str, Any] = {
            "headers": {"Authorization": f"Bearer {self._key}", "Accept": "application/json",
                        **(headers or {})},
            "timeout": self._timeout,
        }
        if json is not None:
            kwargs["json"] = json
        label = f"{method} {path.split('/status')[0] if path.endswith('/status') else path}"
        try:
            response = await request_with_retry(
                self._client, method, f"{self._base}{path}", retries=self._retries,
                base_delay=self._base_delay, max_delay=self._max_delay, breaker=self.breaker,
                sleep=self._sleep, **kwargs)
        except HttpCircuitOpenError:
            raise AutomatonUnavailable(
                "Automaton API unavailable after repeated failures (circuit open)") from None
        except HttpTemporaryError as exc:
            what = f"HTTP {exc.status}" if exc.status else "no response (timeout or connection error)"
            raise AutomatonUnavailable(f"Automaton API temporarily unavailable: {what}") from None
        status = response.status_code
        if status in (401, 403):
            raise AutomatonAuthError(
                f"Automaton API rejected the key (HTTP {status}); check AUTOMATON_API_KEY")
        if status >= 400:
            raise AutomatonError(
                f"Automaton API refused {label} (HTTP {status}): {self._scrub(_error(response))}")
        try:
            data = response.json()
        except ValueError:
            raise AutomatonError("Automaton API returned an unreadable answer") from None
        if not isinstance(data, Mapping):
            raise AutomatonError("Automaton API returned an unexpected answer shape")
        return data


def _error(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return _text(response.text, 120) or "no details"
    if isinstance(body, Mapping):
        return _text(body.get("detail") or body.get("error") or "no details", 120)
    return "no details"
