"""engine.http: retry/backoff, Retry-After, circuit breaker and rate limiter, over httpx.MockTransport."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import httpx
import pytest

from engine.http import (
    CircuitBreaker,
    HttpCircuitOpenError,
    HttpTemporaryError,
    RateLimiter,
    backoff_delay,
    parse_retry_after,
    request_with_retry,
)


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Sleeps:
    """Records requested sleeps instead of sleeping."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.delays: list[float] = []
        self.clock = clock

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        if self.clock is not None:
            self.clock.advance(delay)


def scripted(responses: Sequence[int | type[Exception]], headers: dict[str, str] | None = None
             ) -> tuple[httpx.AsyncClient, list[httpx.Request]]:
    """A client whose transport answers the scripted statuses/exceptions in order (last one repeats)."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        item = responses[min(len(seen), len(responses) - 1)]
        seen.append(request)
        if isinstance(item, type):
            raise item("scripted failure", request=request)
        return httpx.Response(item, headers=headers or {}, json={"n": len(seen)})

    return httpx.AsyncClient(transport=httpx.MockTransport(handler)), seen


async def test_retries_until_success_with_growing_backoff() -> None:
    client, seen = scripted([503, 502, 500, 200])
    sleeps = Sleeps()
    response = await request_with_retry(client, "GET", "http://x/v2/a", retries=3, base_delay=0.1,
                                        max_delay=10.0, sleep=sleeps)
    assert response.status_code == 200
    assert len(seen) == 4
    assert len(sleeps.delays) == 3
    assert sleeps.delays == sorted(sleeps.delays)
    assert 0.05 <= sleeps.delays[0] <= 0.1 and 0.2 <= sleeps.delays[2] <= 0.4


async def test_exhausted_retries_raise_temporary_with_status() -> None:
    client, seen = scripted([503])
    sleeps = Sleeps()
    with pytest.raises(HttpTemporaryError) as err:
        await request_with_retry(client, "GET", "http://x/v2/a", retries=2, base_delay=0.01, sleep=sleeps)
    assert err.value.status == 503
    assert err.value.attempts == 3
    assert len(seen) == 3 and len(sleeps.delays) == 2


async def test_client_errors_are_returned_not_retried() -> None:
    client, seen = scripted([404])
    response = await request_with_retry(client, "GET", "http://x/v2/a", sleep=Sleeps())
    assert response.status_code == 404 and len(seen) == 1


@pytest.mark.parametrize("exc", [httpx.ReadTimeout, httpx.ConnectError])
async def test_timeouts_and_transport_errors_are_retried(exc: type[Exception]) -> None:
    client, seen = scripted([exc, exc, 200])
    response = await request_with_retry(client, "GET", "http://x/a", retries=3, base_delay=0.01,
                                        sleep=Sleeps())
    assert response.status_code == 200 and len(seen) == 3

    client, seen = scripted([exc])
    with pytest.raises(HttpTemporaryError) as err:
        await request_with_retry(client, "GET", "http://x/a", retries=1, base_delay=0.01, sleep=Sleeps())
    assert err.value.status is None and len(seen) == 2


async def test_retry_after_is_honoured() -> None:
    client, _ = scripted([429, 200], headers={"Retry-After": "3"})
    sleeps = Sleeps()
    response = await request_with_retry(client, "GET", "http://x/a", base_delay=0.01, max_delay=8.0,
                                        sleep=sleeps)
    assert response.status_code == 200
    assert sleeps.delays == [3.0]


async def test_retry_after_longer_than_max_delay_gives_up_at_once() -> None:
    client, seen = scripted([429], headers={"Retry-After": "120"})
    sleeps = Sleeps()
    with pytest.raises(HttpTemporaryError) as err:
        await request_with_retry(client, "GET", "http://x/a", max_delay=8.0, sleep=sleeps)
    assert err.value.retry_after == 120.0 and err.value.status == 429
    assert len(seen) == 1 and sleeps.delays == []


async def test_breaker_opens_then_refuses_without_calling_then_half_opens() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, reset_after=30.0, clock=clock)
    client, seen = scripted([500, 500, 500, 200])
    with pytest.raises(HttpTemporaryError):
        await request_with_retry(client, "GET", "http://x/a", retries=2, base_delay=0.01,
                                 breaker=breaker, sleep=Sleeps())
    assert breaker.state == "open" and len(seen) == 3

    with pytest.raises(HttpCircuitOpenError):
        await request_with_retry(client, "GET", "http://x/a", breaker=breaker, sleep=Sleeps())
    assert len(seen) == 3  # refused without a request

    clock.advance(30.0)
    assert breaker.state == "half-open"
    response = await request_with_retry(client, "GET", "http://x/a", breaker=breaker, sleep=Sleeps())
    assert response.status_code == 200 and breaker.state == "closed" and len(seen) == 4


async def test_rate_limited_answers_do_not_open_the_breaker() -> None:
    breaker = CircuitBreaker(failure_threshold=2, reset_after=30.0, clock=FakeClock())
    client, _ = scripted([429])
    with pytest.raises(HttpTemporaryError):
        await request_with_retry(client, "GET", "http://x/a", retries=3, base_delay=0.01,
                                 breaker=breaker, sleep=Sleeps())
    assert breaker.state == "closed"


def test_breaker_half_open_allows_one_probe_and_failed_probe_reopens() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, reset_after=10.0, clock=clock)
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == "closed"
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    clock.advance(10.0)
    assert breaker.state == "half-open"
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # only one at a time
    breaker.record_failure()
    assert breaker.state == "open"
    clock.advance(9.9)
    assert not breaker.allow()
    clock.advance(0.1)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.consecutive_failures == 0


def test_breaker_replaces_a_lost_probe_after_reset_period() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_after=5.0, clock=clock)
    breaker.record_failure()
    clock.advance(5.0)
    assert breaker.allow()
    clock.advance(4.0)
    assert not breaker.allow()
    clock.advance(1.0)
    assert breaker.allow()  # the first probe never reported back


def test_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(failure_threshold=3, clock=FakeClock())
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == "closed"


async def test_rate_limiter_spaces_calls() -> None:
    clock = FakeClock()
    sleeps = Sleeps()
    limiter = RateLimiter(2.0, clock=clock, sleep=sleeps)
    for _ in range(3):
        await limiter.acquire()
    assert sleeps.delays == [0.5, 1.0]  # clock frozen: each caller queues behind the previous slot

    clock.advance(10.0)
    sleeps.delays.clear()
    await limiter.acquire()
    assert sleeps.delays == []


async def test_rate_limiter_with_advancing_clock_waits_only_the_remainder() -> None:
    clock = FakeClock()
    sleeps = Sleeps(clock)
    limiter = RateLimiter(4.0, clock=clock, sleep=sleeps)
    await limiter.acquire()
    clock.advance(0.1)
    await limiter.acquire()
    assert sleeps.delays == [pytest.approx(0.15)]


def test_rate_limiter_rejects_non_positive_rate() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0)


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == pytest.approx(10.0)


def test_backoff_is_capped_and_jittered() -> None:
    rng: Callable[[], float] = lambda: 1.0  # noqa: E731
    assert backoff_delay(0, 0.5, 8.0, rng) == 0.5
    assert backoff_delay(10, 0.5, 8.0, rng) == 8.0
    assert backoff_delay(10, 0.5, 8.0, lambda: 0.0) == 4.0
