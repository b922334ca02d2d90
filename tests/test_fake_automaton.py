"""Tests of the offline Automaton (Conway) API fake, over plain httpx."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from tests.fakes.automaton_api import AutomatonFake

KEY = "secret-key"


@pytest.fixture
def fake() -> Iterator[AutomatonFake]:
    with AutomatonFake(api_key=KEY) as server:
        yield server


@pytest.fixture
def api(fake: AutomatonFake) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=fake.base_url, headers=headers, timeout=10) as client:
        yield client


def create(api: httpx.Client, balance: float = 100) -> str:
    response = api.post("/agents", json={"name": "gen1", "owner": "42", "initial_balance": balance})
    assert response.status_code == 201
    return str(response.json()["agent_id"])


def test_health_needs_no_auth(fake: AutomatonFake) -> None:
    response = httpx.get(f"{fake.base_url}/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_create_agent_returns_201_with_id_and_balance(api: httpx.Client, fake: AutomatonFake) -> None:
    response = api.post("/agents", json={"name": "gen1", "owner": "42", "initial_balance": 250.5})
    assert response.status_code == 201
    body = response.json()
    assert body["agent_id"] and body["balance"] == 250.5
    assert fake.agents[body["agent_id"]].balance == Decimal("250.5")
    assert fake.requests[-1].body == {"name": "gen1", "owner": "42", "initial_balance": 250.5}


@pytest.mark.parametrize(
    "payload",
    [
        {"owner": "42", "initial_balance": 1},
        {"name": "a", "initial_balance": 1},
        {"name": "a", "owner": "42", "initial_balance": -1},
        {"name": "a", "owner": "42", "initial_balance": "lots"},
        {"name": "a", "owner": "42"},
    ],
)
def test_create_agent_validates_the_body(api: httpx.Client, payload: dict[str, object]) -> None:
    response = api.post("/agents", json=payload)
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"


def test_status_reports_balance_and_no_child(api: httpx.Client) -> None:
    agent_id = create(api, 100)
    body = api.get(f"/agents/{agent_id}/status").json()
    assert body["agent_id"] == agent_id
    assert body["status"] == "running"
    assert body["balance"] == 100
    assert body["child_spawned"] is False
    assert body["child_info"] is None
    assert isinstance(body["updated_at"], int)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}])
def test_missing_or_wrong_key_is_401(fake: AutomatonFake, headers: dict[str, str]) -> None:
    fake.add_agent("agt_x", 1)
    response = httpx.get(f"{fake.base_url}/agents/agt_x/status", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized"}


def test_unknown_agent_is_404(api: httpx.Client) -> None:
    response = api.get("/agents/agt_missing/status")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_set_balance_changes_status_and_updated_at(api: httpx.Client, fake: AutomatonFake) -> None:
    agent_id = create(api, 100)
    before = api.get(f"/agents/{agent_id}/status").json()
    fake.set_balance(agent_id, "123.45")
    after = api.get(f"/agents/{agent_id}/status").json()
    assert after["balance"] == 123.45
    assert after["updated_at"] > before["updated_at"]


def test_remote_child_is_reported_on_every_poll(api: httpx.Client, fake: AutomatonFake) -> None:
    agent_id = create(api, 100)
    fake.spawn_remote_child(agent_id, "agt_child", 20, "earned enough", debit_parent=True)
    first = api.get(f"/agents/{agent_id}/status").json()
    second = api.get(f"/agents/{agent_id}/status").json()
    expected = {"agent_id": "agt_child", "balance": 20, "reason": "earned enough"}
    assert first["child_spawned"] is True and first["child_info"] == expected
    assert second["child_info"] == expected
    assert first["balance"] == 80
    child = api.get("/agents/agt_child/status").json()
    assert child["balance"] == 20
    assert fake.agents["agt_child"].parent_id == agent_id


def test_fail_next_injects_statuses(api: httpx.Client, fake: AutomatonFake) -> None:
    agent_id = create(api)
    fake.fail_next(2, status=503)
    codes = [api.get(f"/agents/{agent_id}/status").status_code for _ in range(3)]
    assert codes == [503, 503, 200]
    fake.fail_next(1, status=429)
    limited = api.get(f"/agents/{agent_id}/status")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
    # Health checks are never failed, so a fault is not consumed by them.
    fake.fail_next(1)
    assert httpx.get(f"{fake.base_url}/health").status_code == 200
    assert api.get(f"/agents/{agent_id}/status").status_code == 500


def test_delay_next_makes_clients_time_out(api: httpx.Client, fake: AutomatonFake) -> None:
    agent_id = create(api)
    fake.delay_next(1, 2.0)
    with pytest.raises(httpx.ReadTimeout):
        api.get(f"/agents/{agent_id}/status", timeout=0.2)
    assert api.get(f"/agents/{agent_id}/status").status_code == 200


def test_auth_failure_switch(api: httpx.Client, fake: AutomatonFake) -> None:
    agent_id = create(api)
    fake.set_auth_failure(True)
    assert api.get(f"/agents/{agent_id}/status").status_code == 401
    fake.set_auth_failure(False)
    assert api.get(f"/agents/{agent_id}/status").status_code == 200


def test_repeat_last_answer_returns_identical_bytes(api: httpx.Client, fake: AutomatonFake) -> None:
    agent_id = create(api, 100)
    fake.spawn_remote_child(agent_id, "agt_c", 10, "r")
    first = api.get(f"/agents/{agent_id}/status").content
    fake.set_repeat_last_answer(True)
    fake.set_balance(agent_id, 500)
    assert api.get(f"/agents/{agent_id}/status").content == first
    assert api.get(f"/agents/{agent_id}/status").content == first
    fake.repeat_last_answer = False
    assert api.get(f"/agents/{agent_id}/status").json()["balance"] == 500


def test_requests_are_logged_with_status(api: httpx.Client, fake: AutomatonFake) -> None:
    agent_id = create(api)
    api.get(f"/agents/{agent_id}/status")
    api.get("/agents/nope/status")
    log = [(r.method, r.path, r.status) for r in fake.requests]
    assert log == [
        ("POST", "/agents", 201),
        ("GET", f"/agents/{agent_id}/status", 200),
        ("GET", "/agents/nope/status", 404),
    ]
    assert fake.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert len(fake.status_polls(agent_id)) == 1


def test_wrong_method_and_unknown_path(api: httpx.Client) -> None:
    assert api.get("/agents").status_code == 405
    assert api.get("/nowhere").status_code == 404


async def test_async_client_and_wait_for(fake: AutomatonFake) -> None:
    fake.add_agent("agt_a", 5)
    async with httpx.AsyncClient(
        base_url=fake.base_url, headers={"Authorization": f"Bearer {KEY}"}
    ) as client:
        response = await client.get("/agents/agt_a/status")
    assert response.json()["balance"] == 5
    polls = await fake.wait_for_async(lambda: fake.status_polls("agt_a"), timeout=5)
    assert polls[0].status == 200
