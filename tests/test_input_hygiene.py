"""Input hygiene (issue 12, item 4): edited messages never run commands; media gets a hint."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.handlers.start import EDITED, NOT_TEXT
from tests.bot_harness import BotHarness, running_bot

ALICE = 601


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[BotHarness]:
    async with running_bot(tmp_path) as harness:
        yield harness
        harness.assert_clean()


async def test_editing_a_command_never_runs_it_again(h: BotHarness) -> None:
    await h.send(ALICE, "/automaton 100")
    deposited = await h.send(ALICE, "/deposit 100")
    assert "Deposited" in deposited.text
    sent = [m for m in h.fake.user_messages(ALICE) if m.text == "/deposit 100"][-1]
    before = await h.snapshot()
    h.fake.user_edits(ALICE, sent.message_id, "/deposit 1000")
    await h.idle()
    assert h.fake.last_message(ALICE).text == EDITED
    assert await h.snapshot() == before  # no second deposit, nothing else changed
    # a plain text edit while a strategy bot is selected does not re-run the designer either
    await h.send(ALICE, "/newbot")
    await h.send(ALICE, "buy 10% PEPE when it drops 3% in an hour")
    text = h.fake.user_messages(ALICE)[-1]
    designed = await h.snapshot()
    h.fake.user_edits(ALICE, text.message_id, "buy 50% PEPE when it drops 9% in an hour")
    await h.idle()
    assert h.fake.last_message(ALICE).text == EDITED and await h.snapshot() == designed


@pytest.mark.parametrize("kind", ["sticker", "photo", "location", "voice"])
async def test_non_text_messages_get_a_hint_and_change_nothing(h: BotHarness, kind: str) -> None:
    before = await h.snapshot()
    h.fake.user_sends_media(ALICE, kind)
    await h.idle()
    assert h.fake.last_message(ALICE).text == NOT_TEXT
    assert await h.snapshot() == before


async def test_a_command_in_a_caption_is_not_run(h: BotHarness) -> None:
    await h.send(ALICE, "/automaton 100")
    before = await h.snapshot()
    h.fake.user_sends_media(ALICE, "photo", caption="/deposit 500")
    await h.idle()
    assert h.fake.last_message(ALICE).text == NOT_TEXT and await h.snapshot() == before
