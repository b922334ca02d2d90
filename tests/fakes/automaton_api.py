"""Offline fake of the Automaton (Conway) agent API used by the product (SPEC §9).

Endpoints, all under `base_url` (set `AUTOMATON_BASE_URL=<base_url>`):

- `POST /agents` `{"name", "owner", "initial_balance"}` -> 201 `{"agent_id", "balance", ...}`
- `GET /agents/{agent_id}/status` -> 200 `{"agent_id", "status", "balance", "child_spawned",
  "child_info": {"agent_id", "balance", "reason"} | null, "updated_at"}`
- `GET /health` -> 200 (no auth)

Every `/agents` call needs `Authorization: Bearer <api_key>` (401 `{"error": "unauthorized"}`).
Errors are JSON `{"error": "<code>", "detail": "..."}`. A remote child keeps being reported
on every later poll, as a real API would, so the client has to be idempotent.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from .http_server import FakeRequest, FakeResponse, LoopbackHTTPService, json_response

_STATUS_PATH = re.compile(r"^/agents/(?P<agent_id>[^/]+)/status/?$")
AGENT_STATUSES = frozenset({"running", "paused", "stopped", "dead"})


@dataclass(frozen=True)
class RemoteChild:
    """A child the remote automaton spawned."""

    agent_id: str
    balance: Decimal
    reason: str


@dataclass
class RemoteAgent:
    """State of one agent on the fake service."""

    agent_id: str
    name: str
    owner: str
    balance: Decimal
    status: str = "running"
    parent_id: str | None = None
    children: list[RemoteChild] = field(default_factory=list)
    updated_at: int = 0


@dataclass(frozen=True)
class RecordedRequest:
    """One request received (health checks included) and the status answered."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # decoded JSON, or the raw text when it was not JSON, None when empty
    status: int
    time: float  # time.monotonic()


@dataclass
class _Fault:
    remaining: int
    status: int = 500
    seconds: float = 0.0


def _number(value: Decimal) -> float | int:
    """JSON number for a balance (floats print their shortest round-trip form)."""
    return int(value) if value == value.to_integral_value() else float(value)


class AutomatonFake(LoopbackHTTPService):
    """A loopback Automaton API with fault injection for client tests."""

    def __init__(self, api_key: str = "test-automaton-key") -> None:
        super().__init__()
        self.api_key = api_key
        self._agents: dict[str, RemoteAgent] = {}
        self._requests: list[RecordedRequest] = []
        self._ids = itertools.count(1)
        self._failures: list[_Fault] = []
        self._delays: list[_Fault] = []
        self._auth_failure = False
        self._repeat_last_answer = False
        self._last_status_answer: dict[str, bytes] = {}

    # ======================================================================================
    # Test-side API
    # ======================================================================================

    @property
    def agents(self) -> dict[str, RemoteAgent]:
        """Snapshot of every agent by id (copies)."""
        with self._cond:
            return copy.deepcopy(self._agents)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, oldest first."""
        with self._cond:
            return list(self._requests)

    def status_polls(self, agent_id: str | None = None) -> list[RecordedRequest]:
        """Status requests received (for one agent when given)."""
        suffix = f"/agents/{agent_id}/status" if agent_id else "/status"
        return [r for r in self.requests if r.method == "GET" and r.path.endswith(suffix)]

    def add_agent(
        self,
        agent_id: str,
        balance: float | int | str | Decimal,
        *,
        name: str = "agent",
        owner: str = "owner",
    ) -> None:
        """Create an agent directly (as if created in an earlier run)."""
        with self._cond:
            self._agents[agent_id] = RemoteAgent(agent_id, name, owner, Decimal(str(balance)))
            self._touch(self._agents[agent_id])

    def set_balance(self, agent_id: str, amount: float | int | str | Decimal) -> None:
        """Change an agent's balance (KeyError for an unknown agent)."""
        with self._cond:
            agent = self._agents[agent_id]
            agent.balance = Decimal(str(amount))
            self._touch(agent)

    def set_status(self, agent_id: str, status: str) -> None:
        """Change an agent's status (running, paused, stopped, dead)."""
        if status not in AGENT_STATUSES:
            raise ValueError(f"unknown status {status!r}")
        with self._cond:
            agent = self._agents[agent_id]
            agent.status = status
            self._touch(agent)

    def spawn_remote_child(
        self,
        agent_id: str,
        child_id: str,
        balance: float | int | str | Decimal,
        reason: str,
        *,
        debit_parent: bool = False,
    ) -> None:
        """Make the remote automaton spawn a child.

        Every later status poll of the parent reports `child_spawned: true` with this child
        (the newest one when several were spawned). The child becomes an agent of its own.
        With `debit_parent` the child's balance is taken from the parent's.
        """
        amount = Decimal(str(balance))
        with self._cond:
            parent = self._agents[agent_id]
            parent.children.append(RemoteChild(child_id, amount, reason))
            if debit_parent:
                parent.balance -= amount
            self._agents[child_id] = RemoteAgent(
                child_id, f"{parent.name}-child", parent.owner, amount, parent_id=agent_id
            )
            self._touch(self._agents[child_id])
            self._touch(parent)

    def fail_next(self, n: int, status: int = 500) -> None:
        """Answer the next `n` API requests (not /health) with `status`."""
        with self._cond:
            self._failures.append(_Fault(n, status=status))

    def delay_next(self, n: int, seconds: float) -> None:
        """Hold the next `n` API requests for `seconds` before answering (client timeouts)."""
        with self._cond:
            self._delays.append(_Fault(n, seconds=seconds))

    def set_auth_failure(self, enabled: bool = True) -> None:
        """While enabled, every API request is 401 even with the right key."""
        with self._cond:
            self._auth_failure = enabled

    def set_repeat_last_answer(self, enabled: bool = True) -> None:
        """While enabled, a status poll repeats byte for byte the previous answer for that agent
        (a stale cache), whatever changed since."""
        with self._cond:
            self._repeat_last_answer = enabled

    @property
    def repeat_last_answer(self) -> bool:
        """Whether identical status answers are being repeated (assignable)."""
        with self._cond:
            return self._repeat_last_answer

    @repeat_last_answer.setter
    def repeat_last_answer(self, enabled: bool) -> None:
        self.set_repeat_last_answer(enabled)

    def reset_faults(self) -> None:
        """Clear pending failures, delays, auth failure and repeat mode."""
        with self._cond:
            self._failures.clear()
            self._delays.clear()
            self._auth_failure = False
            self._repeat_last_answer = False

    # ======================================================================================
    # HTTP
    # ======================================================================================

    def handle(self, request: FakeRequest) -> FakeResponse:
        """Route one request, applying injected faults first."""
        body = self._decode(request.body)
        if request.path.rstrip("/") == "/health" and request.method == "GET":
            response = json_response(200, {"status": "ok"})
        else:
            delay = self._take(self._delays)
            if delay is not None:
                self._sleep(delay.seconds)
            response = self._api(request, body)
        with self._cond:
            self._requests.append(
                RecordedRequest(request.method, request.path, dict(request.headers), body, response.status,
                                time.monotonic())
            )
            self._cond.notify_all()
        return response

    def _api(self, request: FakeRequest, body: Any) -> FakeResponse:
        with self._cond:
            failure = self._take(self._failures)
            if failure is not None:
                headers = {"Retry-After": "1"} if failure.status == 429 else None
                return json_response(
                    failure.status, {"error": "injected_failure", "detail": f"HTTP {failure.status}"}, headers
                )
            if self._auth_failure or request.header("authorization") != f"Bearer {self.api_key}":
                return json_response(401, {"error": "unauthorized"})
            if request.path.rstrip("/") == "/agents":
                if request.method != "POST":
                    return json_response(405, {"error": "method_not_allowed"})
                return self._create(request, body)
            match = _STATUS_PATH.match(request.path)
            if match is None:
                return json_response(404, {"error": "not_found", "detail": request.path})
            if request.method != "GET":
                return json_response(405, {"error": "method_not_allowed"})
            return self._status(match.group("agent_id"))

    def _create(self, request: FakeRequest, body: Any) -> FakeResponse:
        mime = request.header("content-type").split(";", 1)[0].strip().lower()
        if mime != "application/json" or not isinstance(body, dict):
            return json_response(400, {"error": "bad_request", "detail": "JSON object body required"})
        name, owner, initial = body.get("name"), body.get("owner"), body.get("initial_balance")
        if not isinstance(name, str) or not name.strip():
            return json_response(400, {"error": "bad_request", "detail": "name must be a non-empty string"})
        if not isinstance(owner, str | int) or isinstance(owner, bool) or str(owner).strip() == "":
            return json_response(400, {"error": "bad_request", "detail": "owner is required"})
        if isinstance(initial, bool) or not isinstance(initial, int | float | str):
            return json_response(400, {"error": "bad_request", "detail": "initial_balance must be a number"})
        try:
            balance = Decimal(str(initial))
        except InvalidOperation:
            return json_response(400, {"error": "bad_request", "detail": "initial_balance must be a number"})
        if not balance.is_finite() or balance < 0:
            return json_response(400, {"error": "bad_request", "detail": "initial_balance must be >= 0"})
        agent_id = f"agt_{next(self._ids):06d}"
        while agent_id in self._agents:
            agent_id = f"agt_{next(self._ids):06d}"
        agent = RemoteAgent(agent_id, name, str(owner), balance)
        self._agents[agent_id] = agent
        self._touch(agent)
        return json_response(201, {
            "agent_id": agent_id, "name": name, "owner": str(owner), "status": agent.status,
            "balance": _number(balance), "created_at": agent.updated_at,
        })

    def _status(self, agent_id: str) -> FakeResponse:
        agent = self._agents.get(agent_id)
        if agent is None:
            return json_response(404, {"error": "not_found", "detail": f"agent {agent_id} not found"})
        if self._repeat_last_answer and agent_id in self._last_status_answer:
            return FakeResponse(200, self._last_status_answer[agent_id])
        child = agent.children[-1] if agent.children else None
        payload = {
            "agent_id": agent.agent_id, "status": agent.status, "balance": _number(agent.balance),
            "child_spawned": child is not None,
            "child_info": None if child is None else {
                "agent_id": child.agent_id, "balance": _number(child.balance), "reason": child.reason,
            },
            "updated_at": agent.updated_at,
        }
        encoded = json.dumps(payload).encode()
        self._last_status_answer[agent_id] = encoded
        return FakeResponse(200, encoded)

    # ======================================================================================
    # Helpers
    # ======================================================================================

    @staticmethod
    def _decode(raw: bytes) -> Any:
        if not raw:
            return None
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return raw.decode("utf-8", "replace")

    def _take(self, faults: list[_Fault]) -> _Fault | None:
        with self._cond:
            while faults and faults[0].remaining <= 0:
                faults.pop(0)
            if not faults:
                return None
            faults[0].remaining -= 1
            return faults[0]

    @staticmethod
    def _touch(agent: RemoteAgent) -> None:
        # Unix seconds, strictly increasing per agent so every change is visible.
        agent.updated_at = max(int(time.time()), agent.updated_at + 1)
