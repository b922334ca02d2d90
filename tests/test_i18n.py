"""The user's own language (issue 13): English, Bahasa Indonesia and Portuguese.

Every message of the bot layer is in both catalogs with the same placeholders and markup; users
whose Telegram app is Indonesian or Portuguese read every reply, button and notification of the
main flows in their language; /settings overrides the app's language and "automatic" follows it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from agents.design.parser import parse_strategy_text
from bot import catalogs, i18n
from bot.commands import STRATEGY_EXAMPLE
from bot.i18n import t, tn
from engine.events import TradeOpened
from tests.bot_harness import BotHarness, running_bot

ID_USER, PT_USER, EN_USER = 7101, 7102, 7103
# Words an Indonesian or Portuguese reply never needs; found in one, an English string slipped through.
_ENGLISH = re.compile(r"\b(the|you|your|yours|is|are|and|not|with|this|that|of|for|when|will|can|has|have|"
                      r"there|which|from|been|was|were|only|its|it's|don't|can't|agent|agents|balance|"
                      r"withdraw|deposit|strategy|settings|notifications|yet|here|please)\b", re.IGNORECASE)
_TAG = re.compile(r"<[^>]+>")
_CODE = re.compile(r"<code>.*?</code>|<pre>.*?</pre>", re.DOTALL)
_COMMAND = re.compile(r"/[a-z_]+")


def _english_words(text: str) -> list[str]:
    """English words in a reply, after the parts that are not words for people: code, commands, tags."""
    plain = _TAG.sub(" ", _CODE.sub(" ", text or ""))
    plain = _COMMAND.sub(" ", plain)
    return _ENGLISH.findall(plain)


def test_every_message_is_translated_with_its_placeholders_and_markup() -> None:
    template = catalogs.extract()
    assert len(template) > 300  # the whole bot layer, not a sample
    for language in ("id", "pt"):
        assert catalogs.problems(template, language) == []


def test_the_language_follows_the_app_and_falls_back_to_english() -> None:
    assert i18n.resolve(None, "id") == "id"
    assert i18n.resolve(None, "pt-BR") == "pt"
    assert i18n.resolve(None, "in") == "id"  # the old code some Android phones still send
    assert i18n.resolve(None, "de") == "en" and i18n.resolve(None, None) == "en"
    assert i18n.resolve("pt", "id") == "pt"  # the /settings choice wins
    assert i18n.resolve("xx", "id") == "id"  # never a language without a catalog


def test_plural_forms_follow_each_language() -> None:
    with i18n.using("en"):
        assert (tn("{n} day", "{n} days", 1), tn("{n} day", "{n} days", 5)) == ("1 day", "5 days")
    with i18n.using("pt"):
        assert (tn("{n} day", "{n} days", 1), tn("{n} day", "{n} days", 5)) == ("1 dia", "5 dias")
    with i18n.using("id"):
        assert tn("{n} day", "{n} days", 1) == "1 hari" and tn("{n} day", "{n} days", 1200) == "1,200 hari"


def test_a_translation_keeps_its_figures() -> None:
    with i18n.using("id"):
        text = t("Available: {amount}", amount="12.50 USDC")
    assert "12.50 USDC" in text and text != "Available: 12.50 USDC"


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[BotHarness]:
    async with running_bot(tmp_path) as harness:
        yield harness
        harness.assert_clean()


# The main flows, in the order a new user meets them; {agent} is their main agent's id.
FLOW = ["/start", "/help", "/automaton 100", "/automaton 50", "/ai_portfolio", "/ai_status {agent}",
        "/deposit 5", "/deposit abc", "/deposit -3", "/withdraw 9999999", "/settings", "/status", "/profit",
        "/trades", "/daily", "/weekly 3", "/monthly", "/performance", "/bots", "/newbot", "/protfolio",
        "/backtest", "/simulate status", "/cancel", "/automaton"]
STRATEGY = {"id": "beli PEPE 10% kalau turun 5% dalam 1 jam, stop loss 3%",
            "pt": "comprar SOL quando cair 4% em 4 horas, stop loss de 3%"}


async def _drive(h: BotHarness, user: int, language: str) -> list[str]:
    """Every text and button label the bot sent `user` through the main flows."""
    texts: list[str] = []
    agent = ""
    for line in FLOW:
        for message in await h.send_all(user, line.format(agent=agent), language_code=language):
            texts.append(message.text or message.caption or "")
            texts += [b["text"] for b in message.buttons()]
        if line.startswith("/automaton 100"):
            agent = (await h.services.manager.get_main_agent(user))["agent_id"]
    for message in await h.send_all(user, STRATEGY[language], language_code=language):
        texts.append(message.text or "")
        texts += [b["text"] for b in message.buttons()]
    ask = await h.send(user, "/withdraw 1", language_code=language)
    texts.append(ask.text)
    pressed = await h.press_button(user, ask, ask.buttons()[0]["text"][:4])
    texts += [m.text or "" for m in pressed.new] + [pressed.answer.text or ""]
    return texts


@pytest.mark.parametrize(("user", "language"), [(ID_USER, "id"), (PT_USER, "pt")])
async def test_every_reply_of_the_main_flows_is_in_the_users_language(h: BotHarness, user: int,
                                                                     language: str) -> None:
    texts = await _drive(h, user, language)
    assert len(texts) > 40
    english = {text[:120]: words for text in texts if (words := _english_words(text))}
    assert english == {}


async def test_a_notification_is_written_in_its_readers_language(h: BotHarness) -> None:
    await h.send(ID_USER, "/start", language_code="id")
    await h.send(EN_USER, "/start", language_code="en")
    for user in (ID_USER, EN_USER):
        await h.services.notifier.publish(TradeOpened(user_id=user, agent_id="ag0123456789", symbol="PEPE",
                                                      price=0.0000125, cost=Decimal(10)))
    await h.services.notifier.flush()
    await h.drain_notifications()
    indonesian = h.fake.messages(ID_USER)[-1].text
    english = h.fake.messages(EN_USER)[-1].text
    assert "PEPE" in indonesian and "0.0000125" in indonesian and _english_words(indonesian) == []
    assert "Bought PEPE" in english


async def test_settings_override_the_app_language_and_automatic_follows_it_again(h: BotHarness) -> None:
    screen = await h.send(EN_USER, "/settings")
    assert "Notifications" in screen.text
    chosen = await h.press_button(EN_USER, screen, "Português")
    assert chosen.message is not None and _english_words(chosen.message.text) == []
    assert "Notificações" in chosen.message.text
    help_text = await h.send(EN_USER, "/help", language_code="en")
    assert _english_words(help_text.text) == []  # the choice wins over the app
    back = await h.press_button(EN_USER, chosen.message, "Automático")
    assert back.message is not None and "Notifications" in back.message.text
    assert "Commands" in (await h.send(EN_USER, "/help")).text


async def test_the_command_menu_is_registered_in_every_language(h: BotHarness) -> None:
    portuguese = await h.fake.wait_for_async(lambda: h.fake.my_commands(language_code="pt") or None, 10)
    english = h.fake.my_commands()
    indonesian = h.fake.my_commands(language_code="id")
    assert [c["command"] for c in english] == [c["command"] for c in indonesian] == [c["command"] for c in portuguese]
    assert english[0]["description"] != indonesian[0]["description"] != portuguese[0]["description"]


def test_the_strategy_example_means_the_same_in_every_language() -> None:
    strategies = []
    for language in i18n.LANGUAGES:
        with i18n.using(language):
            result = parse_strategy_text(t(STRATEGY_EXAMPLE))
        assert result.fully_understood, (language, result.not_understood)
        strategies.append(result.strategy)
    assert strategies[0] == strategies[1] == strategies[2]


async def test_a_changed_app_language_is_stored_for_notifications(h: BotHarness) -> None:
    await h.send(EN_USER, "/start", language_code="en")  # registered with the app's code
    reply = await h.send(EN_USER, "/help", language_code="pt")  # the app switched to Portuguese
    assert _english_words(reply.text) == []
    h.services.languages._known.clear()  # a restart: the language is read back from the database
    await h.services.notifier.publish(TradeOpened(user_id=EN_USER, agent_id="ag0123456789", symbol="PEPE",
                                                  price=0.0000125, cost=Decimal(10)))
    await h.services.notifier.flush()
    await h.drain_notifications()
    pushed = h.fake.messages(EN_USER)[-1].text
    assert "PEPE" in pushed and "Bought PEPE" not in pushed and _english_words(pushed) == []
