"""Group commit: concurrent callers' rows written in one transaction instead of one each.

While a write is in flight, later callers queue their rows; the next write takes everything
queued (up to `max_rows`). One caller alone is written at once, so an idle bot adds no latency;
under load (200 users answered at once) a few transactions carry what hundreds would have. On
PostgreSQL a commit waits for a WAL flush (~0.4 ms here) and each transaction costs round trips,
so this is where a burst of replies saves most.

The write runs in its own task: a caller cancelled while waiting does not cancel the others'
write (its rows may still be written, as a cancelled `Database.run` would be).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Row = TypeVar("Row")
Result = TypeVar("Result")


class GroupCommit(Generic[Row, Result]):
    """`await submit(rows)` → `write(all queued rows)`'s results for these rows, in order.

    `write` must return one result per row, in the order given."""

    def __init__(self, write: Callable[[list[Row]], Awaitable[list[Result]]], *, max_rows: int = 500) -> None:
        self._write = write
        self._max_rows = max_rows
        self._queue: list[tuple[list[Row], asyncio.Future[list[Result]]]] = []
        self._task: asyncio.Task[None] | None = None
        self.writes = 0  # transactions written (observability and tests)

    async def submit(self, rows: Sequence[Row]) -> list[Result]:
        """Write `rows` with whatever else is queued; raises what the write raised."""
        future: asyncio.Future[list[Result]] = asyncio.get_running_loop().create_future()
        self._queue.append((list(rows), future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="group-commit")
        return await future

    async def _drain(self) -> None:
        while self._queue:
            batch, size = [], 0
            while self._queue and (not batch or size + len(self._queue[0][0]) <= self._max_rows):
                rows, future = self._queue.pop(0)
                batch.append((rows, future))
                size += len(rows)
            try:
                results = await self._write([row for rows, _ in batch for row in rows])
                self.writes += 1
            except Exception as exc:  # every caller of this batch learns of it; the next batch still runs
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            except BaseException:  # this task cancelled (shutdown): nobody is left waiting forever
                for _, future in [*batch, *self._queue]:
                    future.cancel()
                self._queue.clear()
                raise
            at = 0
            for rows, future in batch:
                if not future.done():  # a cancelled caller
                    future.set_result(results[at:at + len(rows)])
                at += len(rows)
