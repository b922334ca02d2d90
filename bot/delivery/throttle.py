"""Per-user flood limits for incoming updates: a token bucket and a cap on queued updates."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    at: float
    warned_at: float = -1e18


class Throttle:
    """`admit(user)` is False when the user exceeded `burst` updates plus `per_minute` a minute."""

    def __init__(self, *, burst: int = 20, per_minute: float = 40.0, warn_every: float = 20.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._burst = float(burst)
        self._rate = per_minute / 60.0
        self._warn_every = warn_every
        self._clock = clock
        self._buckets: dict[int, _Bucket] = {}

    def admit(self, user_id: int) -> bool:
        """Take one token for `user_id`; False (and nothing taken) when none is left."""
        now = self._clock()
        bucket = self._buckets.get(user_id)
        if bucket is None:
            if len(self._buckets) > 100_000:  # forget users who have been quiet long enough to be full
                self._forget(now)
            bucket = self._buckets[user_id] = _Bucket(self._burst, now)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.at) * self._rate)
        bucket.at = now
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def should_warn(self, user_id: int) -> bool:
        """True at most once per `warn_every` seconds per user (the "slow down" reply)."""
        now = self._clock()
        bucket = self._buckets.setdefault(user_id, _Bucket(self._burst, now))
        if now - bucket.warned_at < self._warn_every:
            return False
        bucket.warned_at = now
        return True

    def _forget(self, now: float) -> None:
        full_after = self._burst / self._rate if self._rate > 0 else float("inf")
        for uid in [u for u, b in self._buckets.items() if now - b.at > full_after]:
            del self._buckets[uid]
