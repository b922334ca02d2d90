"""Tests of the Automaton API client against the offline AutomatonFake."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import pytest

from agents.autonomy.automaton.client import (
    AutomatonAuthError,
    AutomatonClient,
    AutomatonError,
    AutomatonUnavailable,
    RemoteChild,
    parse_remote_amount,
)
from engine.http import CircuitBreaker
from tests.fakes.automaton_api import AutomatonFake

KEY = "sk-automaton-secret-123"


async def no_sleep(_: float) -> None:
    return None


@pytest.fixture
def fake() -> Iterator[AutomatonFake]:
    with AutomatonFake(api_key=KEY) as server:
        yield server


@pytest.fixture
async def client(fake: AutomatonFake) -> AsyncIterator[AutomatonClient]:
    async with AutomatonClient(fake.base_url, KEY, sleep=no_sleep, timeout=2.0) as c:
        yield c


async def test_create_and_status(client: AutomatonClient, fake: AutomatonFake) -> None:
    remote_id = await client.create_agent("ag123", "42", Decimal("100.5"))
    assert fake.agents[remote_id].balance == Decimal("100.5")
    request = fake.requests[-1]
    assert request.body == {"name": "ag123", "owner": "42", "initial_balance": "100.500000"}
    assert request.headers.get("authorization") == f"Bearer {KEY}"
    assert request.headers.get("idempotency-key") == "create:ag123"
    status = await client.get_status(remote_id)
    assert status.balance == Decimal("100.500000") and status.status == "running"
    assert status.child_spawned is False and status.child_info is None and status.updated_at


async def test_child_info_is_parsed_as_decimal(client: AutomatonClient, fake: AutomatonFake) -> None:
    fake.add_agent("r1", "50")
    fake.set_balance("r1", 0.1 + 0.2)  # a float that is not exactly 0.3
    fake.spawn_remote_child("r1", "r1c", "12.3456789", "good run")
    status = await client.get_status("r1")
    assert status.balance == Decimal("0.300000")
    assert status.child_info == RemoteChild("r1c", Decimal("12.345679"), "good run")


@pytest.mark.parametrize("value", ["NaN", "-1", "inf", True, None, "ten", float("nan"), [1]])
def test_parse_amount_rejects_bad_values(value: object) -> None:
    with pytest.raises(AutomatonError):
        parse_remote_amount(value)


def test_parse_amount_accepts_numbers_and_strings() -> None:
    assert parse_remote_amount(12) == Decimal("12.000000")
    assert parse_remote_amount("0.0000004") == Decimal("0.000000")
    assert parse_remote_amount(10.1) == Decimal("10.100000")


async def test_401_is_an_auth_error_without_the_key(fake: AutomatonFake) -> None:
    async with AutomatonClient(fake.base_url, "wrong-" + KEY, sleep=no_sleep) as bad:
        with pytest.raises(AutomatonAuthError) as info:
            await bad.get_status("r1")
    assert KEY not in str(info.value) and "401" in str(info.value)


async def test_5xx_is_retried_then_unavailable(client: AutomatonClient, fake: AutomatonFake) -> None:
    fake.add_agent("r1", 5)
    fake.fail_next(2, 503)
    assert (await client.get_status("r1")).balance == Decimal("5.000000")  # two retries absorbed
    fake.fail_next(3, 500)
    with pytest.raises(AutomatonUnavailable) as info:
        await client.get_status("r1")
    assert "HTTP 500" in str(info.value) and KEY not in str(info.value)


async def test_timeout_is_unavailable(fake: AutomatonFake) -> None:
    fake.add_agent("r1", 5)
    fake.delay_next(3, 0.5)
    async with AutomatonClient(fake.base_url, KEY, sleep=no_sleep, timeout=0.1) as quick:
        with pytest.raises(AutomatonUnavailable, match="timeout"):
            await quick.get_status("r1")


async def test_404_and_bad_ids_are_errors(client: AutomatonClient) -> None:
    with pytest.raises(AutomatonError, match="404"):
        await client.get_status("missing")
    with pytest.raises(AutomatonError):
        await client.get_status("../etc")


async def test_breaker_opens_after_repeated_failures(fake: AutomatonFake) -> None:
    fake.add_agent("r1", 5)
    breaker = CircuitBreaker(2, reset_after=60)
    async with AutomatonClient(fake.base_url, KEY, sleep=no_sleep, retries=0, breaker=breaker) as c:
        fake.fail_next(2, 502)
        for _ in range(2):
            with pytest.raises(AutomatonUnavailable):
                await c.get_status("r1")
        sent = len(fake.requests)
        with pytest.raises(AutomatonUnavailable, match="circuit open"):
            await c.get_status("r1")
        assert len(fake.requests) == sent
    assert KEY not in repr(c)
