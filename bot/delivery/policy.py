"""What a failed Bot API call means for the queued message: one decision table, no I/O.

* Telegram refused for good (400, 403): the message fails (403: the user blocked the bot).
* Telegram asked to wait (429 `retry_after`): everything pauses that long, then the same message.
* Telegram or the network failed before accepting it (5xx, refused connection, pool timeout):
  retry with backoff for as long as the message is still useful.
* The outcome is unknown (no answer within the read timeout, or an answer that broke off):
  Telegram may have delivered it and sendMessage has no idempotency key, so a send is never
  repeated (state `unknown`, counted in /health); an edit is (repeating it changes nothing).
  The sender's read timeout (60 s) is far above Telegram's normal latency, so a slow send
  completes instead of becoming unknown. A connection closed with no answer at all counts as
  not accepted (`bot.http_request`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import Enum

from telegram.error import BadRequest, Forbidden, InvalidToken, RetryAfter, TelegramError

from bot.http_request import OutcomeUnknown

NOT_MODIFIED = "message is not modified"
BACKOFF_BASE = 0.5
BACKOFF_MAX = 30.0


class Verdict(Enum):
    SENT = "sent"            # counts as delivered (an edit that changed nothing)
    FAILED = "failed"        # Telegram refused it: never retried
    BLOCKED = "blocked"      # the user blocked the bot
    WAIT = "wait"            # 429: pause everything for `delay`, then retry
    RETRY = "retry"          # not accepted: retry after backoff
    UNKNOWN = "unknown"      # maybe accepted: a send is not repeated, an edit is


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    delay: float = 0.0


def backoff(failures: int, *, base: float = BACKOFF_BASE, cap: float = BACKOFF_MAX) -> float:
    """Seconds before the next attempt after `failures` consecutive failures: `base` doubling up to
    `cap` (0.5 s to 30 s for sends; the poller, start-up and the command menu pass their own)."""
    return min(cap, base * 2 ** min(max(0, failures - 1), 16))  # capped exponent: no overflow


def decide(exc: BaseException, failures: int) -> Decision:
    """The decision for a call that raised `exc` after `failures` consecutive failures (this one included)."""
    if isinstance(exc, RetryAfter):
        delay = exc.retry_after
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
        return Decision(Verdict.WAIT, max(0.0, seconds))
    if isinstance(exc, Forbidden):
        return Decision(Verdict.BLOCKED)
    if isinstance(exc, BadRequest):
        if NOT_MODIFIED in str(exc).lower():
            return Decision(Verdict.SENT)
        return Decision(Verdict.FAILED)
    if isinstance(exc, OutcomeUnknown):
        return Decision(Verdict.UNKNOWN, backoff(failures))
    if isinstance(exc, InvalidToken):  # the poller decides whether the token is gone for good
        return Decision(Verdict.RETRY, backoff(failures))
    if isinstance(exc, TelegramError):  # NetworkError, TimedOut, 5xx answers
        return Decision(Verdict.RETRY, backoff(failures))
    return Decision(Verdict.FAILED)  # a bug in building the call: retrying would not help
