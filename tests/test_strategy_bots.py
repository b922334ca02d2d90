"""Strategy bots: the 3-bot limit, names, selection, ownership and deletion."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agents.design.strategy_bots import (
    MAX_BOTS,
    BotLimitError,
    BotNameError,
    BotNotFoundError,
    StrategyBotError,
    StrategyBots,
)
from bot.messages import describe
from engine.strategy import default_strategy
from storage import Database, open_database
from storage.runs_repo import SimulationRepo
from storage.values import to_iso

ALICE, BOB = 11, 22


@pytest.fixture
async def bots_db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await open_database(f"sqlite:///{tmp_path / 'bots.db'}")
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def bots(bots_db: Database) -> StrategyBots:
    return StrategyBots(bots_db)


async def test_limit_default_names_and_auto_select(bots: StrategyBots) -> None:
    created = [await bots.create(ALICE) for _ in range(MAX_BOTS)]
    assert [b.name for b in created] == ["Bot 1", "Bot 2", "Bot 3"]
    assert (await bots.selected(ALICE)) == created[-1]  # the newest is selected
    with pytest.raises(BotLimitError) as info:
        await bots.create(ALICE, "fourth")
    assert info.value.code == "design.bot_limit"
    assert describe(info.value) == "You can have at most 3 strategy bots. Delete one first."
    assert len(await bots.list(ALICE)) == 3
    # another user is unaffected by Alice's limit
    assert (await bots.create(BOB)).name == "Bot 1"
    # after deleting "Bot 1" the free default name is reused
    await bots.delete(ALICE, created[0].bot_id)
    assert (await bots.create(ALICE)).name == "Bot 1"


async def test_names_are_trimmed_validated_and_unique(bots: StrategyBots) -> None:
    bot = await bots.create(ALICE, "  <b>Dip</b>   buyer \n")
    assert bot.name == "<b>Dip</b> buyer"  # stored plain; the bot layer escapes
    refusals = [("   ", "design.name_empty", "The bot name can't be empty."),
                ("x" * 5000, "design.name_too_long", "That name is too long: use at most 32 characters."),
                ("y" * 33, "design.name_too_long", "That name is too long: use at most 32 characters."),
                ("bad\x00name", "design.name_control_chars", "The bot name can't contain control characters.")]
    for name, code, text in refusals:
        with pytest.raises(BotNameError) as info:
            await bots.rename(ALICE, bot.bot_id, name)
        assert info.value.code == code and describe(info.value) == text
    with pytest.raises(BotNameError) as info:
        await bots.create(ALICE, 123)  # type: ignore[arg-type]
    assert describe(info.value) == "The bot name must be text."
    other = await bots.create(ALICE, "Other")
    with pytest.raises(BotNameError) as info:
        await bots.rename(ALICE, other.bot_id, "<B>DIP</B> BUYER")
    assert describe(info.value) == "You already have a bot called <B>DIP</B> BUYER. Pick another name."
    renamed = await bots.rename(ALICE, bot.bot_id, "🚀 Moon " + "z" * 25)
    assert renamed.name == "🚀 Moon " + "z" * 25 and len(renamed.name) == 32
    assert (await bots.get(ALICE, bot.bot_id)).name == renamed.name
    # renaming to its own name (other case) is fine
    assert (await bots.rename(ALICE, other.bot_id, "OTHER")).name == "OTHER"


@pytest.mark.parametrize("bad_id", ["abc", "-1", "0", "1.0", "", None, True, 2**70, "1 OR 1=1", 3.0])
async def test_untrusted_ids_are_not_found(bots: StrategyBots, bad_id: object) -> None:
    await bots.create(ALICE)
    for call in (bots.get(ALICE, bad_id), bots.select(ALICE, bad_id), bots.delete(ALICE, bad_id),
                 bots.rename(ALICE, bad_id, "x"), bots.history(ALICE, bad_id)):
        with pytest.raises(BotNotFoundError):
            await call


async def test_foreign_bots_look_missing(bots: StrategyBots) -> None:
    mine = await bots.create(ALICE, "mine")
    theirs = await bots.create(BOB, "theirs")
    missing = theirs.bot_id + 100
    messages = set()
    for bot_id in (theirs.bot_id, missing, str(theirs.bot_id)):
        for call in (bots.get(ALICE, bot_id), bots.select(ALICE, bot_id), bots.rename(ALICE, bot_id, "hijack"),
                     bots.delete(ALICE, bot_id), bots.set_strategy(ALICE, bot_id, default_strategy()),
                     bots.add_message(ALICE, bot_id, "user", "hi"), bots.history(ALICE, bot_id)):
            with pytest.raises(BotNotFoundError) as info:
                await call
            messages.add(describe(info.value))
    assert messages == {"Strategy bot not found. Use /bots to see yours."}  # the same for foreign and missing ids
    assert (await bots.get(BOB, theirs.bot_id)).name == "theirs"
    assert (await bots.selected(ALICE)) == mine
    assert (await bots.selected(BOB)) == theirs
    # string ids from callback data are accepted for the owner
    assert (await bots.get(ALICE, str(mine.bot_id))) == mine


async def test_delete_unselects_and_stops_simulations(bots: StrategyBots, bots_db: Database) -> None:
    first = await bots.create(ALICE, "first")
    second = await bots.create(ALICE, "second")
    await bots.select(ALICE, first.bot_id)
    await bots.add_message(ALICE, first.bot_id, "user", "buy the dip")
    sims = SimulationRepo(bots_db)
    sim = await sims.create(ALICE, first.bot_id, "t-bsc", "T", "1h", "{}", {}, to_iso(0), to_iso(99))
    deleted = await bots.delete(ALICE, first.bot_id)
    assert deleted.bot_id == first.bot_id
    assert await bots.selected(ALICE) is None
    with pytest.raises(BotNotFoundError):
        await bots.get(ALICE, first.bot_id)
    stopped = await sims.get(ALICE, sim.simulation_id)
    assert stopped is not None and stopped.status == "stopped" and stopped.bot_id is None
    assert await bots_db.fetchval("SELECT COUNT(*) FROM bot_conversations") == 0
    assert [b.bot_id for b in await bots.list(ALICE)] == [second.bot_id]
    # deleting a bot that is not selected keeps the selection
    await bots.select(ALICE, second.bot_id)
    third = await bots.create(ALICE, "third")
    await bots.select(ALICE, second.bot_id)
    await bots.delete(ALICE, third.bot_id)
    assert (await bots.selected(ALICE)) == second


async def test_strategy_and_history(bots: StrategyBots) -> None:
    bot = await bots.create(ALICE)
    assert bots.strategy(bot) is None
    strategy = default_strategy("PEPE", "bsc")
    saved = await bots.set_strategy(ALICE, bot.bot_id, strategy)
    assert bots.strategy(saved) == strategy
    with pytest.raises(StrategyBotError) as info:
        await bots.set_strategy(ALICE, bot.bot_id, {"conditions": []})  # type: ignore[arg-type]
    assert info.value.code == "design.strategy_not_validated"
    cleared = await bots.set_strategy(ALICE, bot.bot_id, None)
    assert cleared.strategy_json is None

    for i in range(12):
        await bots.add_message(ALICE, bot.bot_id, "user" if i % 2 == 0 else "assistant", f"msg {i}")
    history = await bots.history(ALICE, bot.bot_id)
    assert len(history) == 10 and history[0] == ("user", "msg 2") and history[-1] == ("assistant", "msg 11")
    assert await bots.history(ALICE, bot.bot_id, limit=2) == [("user", "msg 10"), ("assistant", "msg 11")]
    with pytest.raises(StrategyBotError) as info:
        await bots.add_message(ALICE, bot.bot_id, "system", "x")
    assert describe(info.value) == "Unknown message role."
    await bots.add_message(ALICE, bot.bot_id, "user", "z" * 20_000)
    assert len((await bots.history(ALICE, bot.bot_id, limit=1))[0][1]) == 8000


async def test_a_stored_strategy_that_no_longer_validates_reads_as_none(bots: StrategyBots,
                                                                         bots_db: Database) -> None:
    bot = await bots.create(ALICE)
    await bots_db.execute("UPDATE bots SET strategy_json = ? WHERE bot_id = ?", ('{"conditions": "?"}', bot.bot_id))
    assert bots.strategy(await bots.get(ALICE, bot.bot_id)) is None


async def test_selection_of_a_vanished_bot_reads_as_none(bots: StrategyBots, bots_db: Database) -> None:
    bot = await bots.create(ALICE)
    await bots_db.execute("DELETE FROM bots WHERE bot_id = ?", (bot.bot_id,))
    assert await bots.selected(ALICE) is None
