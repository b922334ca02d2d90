"""Resilient HTTP helpers shared by every outbound client (AVE market data, the Automaton API).

* `RateLimiter`: spaces requests to a steady rate on the client side, so a plan's TPS is never
  exceeded by our own burst.
* `CircuitBreaker`: after repeated failures stops calling a provider for a while, then lets one
  probe through (half-open) to find out whether it recovered.
* `request_with_retry`: one request with jittered exponential backoff on retryable statuses,
  timeouts and transport errors; it honours `Retry-After` and the breaker.

Nothing here knows about a particular API: callers map the final response's status and body.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpx

logger = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[Any]]
Clock = Callable[[], float]

DEFAULT_RETRY_STATUSES: tuple[int, ...] = (429, 500, 502, 503, 504)


class HttpError(Exception):
    """Base of the errors raised by `request_with_retry`."""


class HttpTemporaryError(HttpError):
    """Retries were exhausted on a retryable status, a timeout or a transport error.

    `status` is the last HTTP status (None for timeouts / connection errors); `retry_after` is the
    server's `Retry-After` in seconds when it asked for a longer wait than we were willing to do.
    """

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None,
                 attempts: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.attempts = attempts


class HttpCircuitOpenError(HttpError):
    """The circuit breaker is open: the request was not sent."""


class RateLimiter:
    """Client-side limiter that spaces calls at least `1 / rate_per_second` apart.

    Each caller reserves the next free slot synchronously (no await between read and update), so
    concurrent callers on one event loop queue up fairly instead of bursting.
    """

    def __init__(self, rate_per_second: float, *, clock: Clock = time.monotonic,
                 sleep: Sleep = asyncio.sleep) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        self.rate_per_second = float(rate_per_second)
        self._interval = 1.0 / self.rate_per_second
        self._clock = clock
        self._sleep = sleep
        self._next_slot = float("-inf")

    @property
    def interval(self) -> float:
        """Minimum seconds between two calls."""
        return self._interval

    async def acquire(self) -> None:
        """Wait until this caller's slot comes up."""
        now = self._clock()
        slot = max(now, self._next_slot)
        self._next_slot = slot + self._interval
        wait = slot - now
        if wait > 0:
            await self._sleep(wait)


class CircuitBreaker:
    """Closed → open after `failure_threshold` consecutive failures → half-open after `reset_after` s.

    In half-open one probe is allowed; its success closes the breaker, its failure re-opens it.
    A probe that never reports back (e.g. cancelled) is replaced by a new one after `reset_after`.
    """

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"

    def __init__(self, failure_threshold: int = 5, reset_after: float = 60.0,
                 clock: Clock = time.monotonic) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.failure_threshold = failure_threshold
        self.reset_after = float(reset_after)
        self._clock = clock
        self._open = False
        self._opened_at = 0.0
        self._failures = 0
        self._probe_started: float | None = None

    @property
    def state(self) -> str:
        """`closed`, `open` or `half-open`."""
        if not self._open:
            return self.CLOSED
        if self._clock() - self._opened_at < self.reset_after:
            return self.OPEN
        return self.HALF_OPEN

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def allow(self) -> bool:
        """Whether a request may be sent now (in half-open, grants the single probe)."""
        state = self.state
        if state == self.CLOSED:
            return True
        if state == self.OPEN:
            return False
        now = self._clock()
        if self._probe_started is not None and now - self._probe_started < self.reset_after:
            return False
        self._probe_started = now
        return True

    def record_success(self) -> None:
        """The provider answered: close the breaker."""
        if self._open:
            logger.info("circuit breaker closed after a successful probe")
        self._open = False
        self._failures = 0
        self._probe_started = None

    def record_failure(self) -> None:
        """A request failed in a way that suggests the provider is unhealthy."""
        now = self._clock()
        if self._open:
            # a failed half-open probe (or a late failure while open) restarts the open period
            self._opened_at = now
            self._probe_started = None
            return
        self._failures += 1
        if self._failures >= self.failure_threshold:
            self._open = True
            self._opened_at = now
            self._probe_started = None
            logger.warning("circuit breaker opened after %d consecutive failures", self._failures)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def backoff_delay(attempt: int, base_delay: float, max_delay: float,
                  rng: Callable[[], float] = random.random) -> float:
    """Equal-jitter exponential backoff: half fixed, half random, so delays never shrink between attempts."""
    ceiling = min(max_delay, base_delay * (2 ** attempt))
    return ceiling / 2 + ceiling / 2 * rng()


async def request_with_retry(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    retries: int = 3,
    base_delay: float = 0.5,
    max_delay: float = 8.0,
    breaker: CircuitBreaker | None = None,
    limiter: RateLimiter | None = None,
    retry_statuses: Iterable[int] = DEFAULT_RETRY_STATUSES,
    sleep: Sleep = asyncio.sleep,
    on_attempt: Callable[[], None] | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """Send one request, retrying retryable statuses, timeouts and transport errors.

    Returns the first response whose status is not retryable (the caller maps 4xx). Raises
    `HttpTemporaryError` when retries are exhausted (or the server's `Retry-After` exceeds
    `max_delay`) and `HttpCircuitOpenError` when the breaker refuses the call. 429s are retried
    but do not count against the breaker: they are about our rate, not the provider's health.
    `on_attempt` is called once per request actually sent (for call counters).
    """
    retry_set = frozenset(retry_statuses)
    attempts = retries + 1
    label = f"{method.upper()} {httpx.URL(url).path}"
    last_status: int | None = None
    last_reason = ""
    for attempt in range(attempts):
        if breaker is not None and not breaker.allow():
            raise HttpCircuitOpenError(f"{label}: circuit open, request not sent")
        if limiter is not None:
            await limiter.acquire()
        retry_after: float | None = None
        if on_attempt is not None:
            on_attempt()
        try:
            response = await client.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            last_status, last_reason = None, f"timeout ({type(exc).__name__})"
            if breaker is not None:
                breaker.record_failure()
        except httpx.TransportError as exc:
            last_status, last_reason = None, f"connection error ({type(exc).__name__})"
            if breaker is not None:
                breaker.record_failure()
        else:
            if response.status_code not in retry_set:
                if breaker is not None:
                    breaker.record_success()
                return response
            last_status, last_reason = response.status_code, f"HTTP {response.status_code}"
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            await response.aclose()
            if breaker is not None and response.status_code != 429:
                breaker.record_failure()
        if attempt == attempts - 1:
            break
        if retry_after is not None and retry_after > max_delay:
            raise HttpTemporaryError(
                f"{label}: {last_reason}, server asked to wait {retry_after:.0f}s",
                status=last_status, retry_after=retry_after, attempts=attempt + 1)
        delay = backoff_delay(attempt, base_delay, max_delay)
        if retry_after is not None:
            delay = max(delay, retry_after)
        logger.debug("%s: %s, retry %d/%d in %.2fs", label, last_reason, attempt + 1, retries, delay)
        await sleep(delay)
    raise HttpTemporaryError(f"{label}: {last_reason} after {attempts} attempt(s)",
                             status=last_status, attempts=attempts)
