"""Group commit: concurrent callers share transactions, each gets its own results, failures and
cancellations stay with the batch they belong to."""

from __future__ import annotations

import asyncio

import pytest

from storage.group_commit import GroupCommit


class Writer:
    def __init__(self, fail_on: str | None = None) -> None:
        self.batches: list[list[str]] = []
        self.fail_on = fail_on

    async def __call__(self, rows: list[str]) -> list[str]:
        self.batches.append(rows)
        await asyncio.sleep(0.01)  # a transaction in flight: later callers queue meanwhile
        if self.fail_on in rows:
            raise RuntimeError("disk full")
        return [row.upper() for row in rows]


async def test_one_caller_is_written_at_once_and_a_crowd_shares_transactions() -> None:
    writer = Writer()
    group = GroupCommit(writer)
    assert await group.submit(["a"]) == ["A"]
    results = await asyncio.gather(*(group.submit([f"r{i}", f"s{i}"]) for i in range(50)))
    assert results == [[f"R{i}", f"S{i}"] for i in range(50)]
    # the crowd queued before the write task ran: one transaction for all fifty
    assert [len(b) for b in writer.batches] == [1, 100] and group.writes == 2
    first = asyncio.create_task(group.submit(["x"]))
    await asyncio.sleep(0)  # its write is in flight: the next callers wait for the one after
    later = await asyncio.gather(*(group.submit([f"y{i}"]) for i in range(5)))
    assert await first == ["X"] and later == [[f"Y{i}"] for i in range(5)]
    assert [len(b) for b in writer.batches] == [1, 100, 1, 5]


async def test_batches_respect_the_row_limit_in_order() -> None:
    writer = Writer()
    group = GroupCommit(writer, max_rows=10)
    results = await asyncio.gather(*(group.submit([str(i)] * 4) for i in range(6)))
    assert [r[0] for r in results] == [str(i) for i in range(6)]
    assert all(len(b) <= 10 for b in writer.batches)
    assert [row for b in writer.batches for row in b] == [str(i) for i in range(6) for _ in range(4)]


async def test_a_failed_write_fails_its_batch_only() -> None:
    writer = Writer(fail_on="bad")
    group = GroupCommit(writer)
    first = asyncio.create_task(group.submit(["ok"]))
    await asyncio.sleep(0)
    crowd = [asyncio.create_task(group.submit([row])) for row in ("x", "bad")]
    assert await first == ["OK"]
    for task in crowd:
        with pytest.raises(RuntimeError, match="disk full"):
            await task
    assert await group.submit(["later"]) == ["LATER"]  # the group goes on


async def test_a_cancelled_caller_does_not_cancel_the_others() -> None:
    writer = Writer()
    group = GroupCommit(writer)
    first = asyncio.create_task(group.submit(["a"]))
    await asyncio.sleep(0)
    quitter = asyncio.create_task(group.submit(["b"]))
    stayer = asyncio.create_task(group.submit(["c"]))
    await asyncio.sleep(0)
    quitter.cancel()
    assert await first == ["A"] and await stayer == ["C"]
    assert quitter.cancelled()
