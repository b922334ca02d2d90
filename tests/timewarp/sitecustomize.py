"""Test-only: a fast wall clock for the bot subprocess of an end-to-end test.

Put this folder first on PYTHONPATH with TIMEWARP_SPEED set and `time.time()` runs SPEED times
faster from TIMEWARP_T0 (wall seconds at TIMEWARP_R0 real seconds), so hourly candles close every
few real seconds. Only the wall clock is warped: sleeps, timeouts and the monotonic clock stay
real. Nothing in the product reads these variables.
"""

import os
import time

if os.environ.get("TIMEWARP_SPEED"):
    _speed = float(os.environ["TIMEWARP_SPEED"])
    _t0 = float(os.environ["TIMEWARP_T0"])
    _r0 = float(os.environ["TIMEWARP_R0"])
    _real = time.time

    def _warped() -> float:
        return _t0 + (_real() - _r0) * _speed

    def _warped_ns() -> int:
        return int(_warped() * 1e9)

    time.time = _warped
    time.time_ns = _warped_ns
