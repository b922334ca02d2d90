"""State any replica can answer from: agreed values and conversation prompts in the database.

A prompt opened by one process (a withdrawal to confirm, a bot to rename) is answered by another
process on the same database — here the app is stopped and a new one started on the same data,
which is what a second replica sees."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from storage import open_database
from storage.shared_state_repo import SharedStateRepo
from tests.bot_harness import bot_settings, run_app
from tests.fakes.telegram_api import TelegramFake
from tests.invariants import check_invariants

pytestmark = pytest.mark.both_backends
ALICE = 501


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_agreed_values_prompts_expiry_and_single_take(db_url: str) -> None:
    db = await open_database(db_url)
    clock = Clock()
    state = SharedStateRepo(db, clock)
    try:
        assert await state.agreed("webhook_secret", "first") == "first"
        assert await state.agreed("webhook_secret", "second") == "first"  # the first stored wins
        await state.put(ALICE, "pending", {"nonce": "ab12", "amount": "5"}, 60)
        assert await state.get(ALICE, "pending") == {"nonce": "ab12", "amount": "5"}
        assert await state.take(ALICE, "pending", expected={"nonce": "zz", "amount": "5"}) is None  # not that one
        assert await state.take(ALICE, "pending", expected={"nonce": "ab12", "amount": "5"}) == {
            "nonce": "ab12", "amount": "5"}
        assert await state.take(ALICE, "pending") is None  # taken once
        await state.put(ALICE, "renaming", 7, 60)
        await state.put(ALICE, "renaming", 8, 60)  # replaced, not doubled
        assert await state.get(ALICE, "renaming") == 8
        clock.now += 61
        assert await state.get(ALICE, "renaming") is None and await state.take(ALICE, "renaming") is None
        assert await state.clear(ALICE) == 0  # only the expired one was left
        await state.put(ALICE, "a", "<b>markup</b> & ünïcode", 60)
        assert await state.get(ALICE, "a") == "<b>markup</b> & ünïcode"
        assert await state.clear(ALICE) == 1 and await state.get(ALICE, "a") is None
        await state.put(ALICE, "old", 1, 1)
        clock.now += 2
        assert await state.prune() == 1
    finally:
        await db.close()


async def test_a_prompt_opened_by_one_process_is_answered_by_the_next(tmp_path: Path, db_url: str) -> None:
    with TelegramFake() as fake:
        settings = bot_settings(fake, tmp_path, database_url=db_url)
        async with run_app(fake, settings) as first:
            await first.send(ALICE, "/automaton 100")
            ask = await first.send(ALICE, "/withdraw 5")
            assert "Withdraw 5.00 USDC" in ask.text
            created = await first.send(ALICE, "/newbot Alpha")
            bot = (await first.services.bots.list(ALICE))[0]
            prompt = await first.press(ALICE, created.message_id, f"br:{bot.bot_id}")
            assert prompt.new and "Send the new name" in prompt.new[-1].text
        async with run_app(fake, settings) as second:  # another process, the same database
            renamed = await second.send(ALICE, "Beta")
            assert "Renamed to Beta" in renamed.text
            done = await second.press_button(ALICE, ask, "Confirm")
            assert done.message is not None and "Withdrew 5.00 USDC" in done.message.text
            again = await second.press_button(ALICE, ask, "Confirm")  # a second press withdraws nothing
            assert again.message is not None and "already done" in again.message.text
            agent = await second.services.manager.get_main_agent(ALICE)
            assert agent["isolated_balance"] == Decimal("95.000000")
            assert "Nothing to cancel" in (await second.send(ALICE, "/cancel")).text  # both prompts were used
            await check_invariants(second.services.db)
