"""The console channel: HTML/keyboard rendering, and the real PTB Application driven by typed lines."""

from __future__ import annotations

import asyncio
import io
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)
from telegram.request import BaseRequest

from bot.console import ConsoleRequest, run_console
from bot.console.render import (
    HtmlParseError,
    format_message,
    keyboard_lines,
    number_buttons,
    parse_html,
    render_text,
)

WAIT = 10.0  # generous upper bound for "eventually"; tests return as soon as the condition holds


def tiny_png() -> bytes:
    """A valid 2x1 RGB PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"\x00" + b"\xff\x00\x00" + b"\x00\xff\x00"
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


# ------------------------------------------------------------------------------------ rendering

def test_parse_html_text_and_utf16_entities() -> None:
    parsed = parse_html("😀 <b>Hi</b> &amp; <i>you</i> &lt;3 <a href=\"https://x.org/?a=1&amp;b=2\">docs</a>")
    assert parsed.text == "😀 Hi & you <3 docs"
    assert parsed.entities == [
        {"type": "bold", "offset": 3, "length": 2},  # the emoji is two UTF-16 units
        {"type": "italic", "offset": 8, "length": 3},
        {"type": "text_link", "offset": 15, "length": 4, "url": "https://x.org/?a=1&b=2"},
    ]


def test_parse_html_pre_code_language_and_unknown_ampersand() -> None:
    parsed = parse_html('<pre><code class="language-python">x = 1</code></pre> P&L')
    assert parsed.text == "x = 1 P&L"
    assert parsed.entities == [{"type": "pre", "offset": 0, "length": 5, "language": "python"}]


@pytest.mark.parametrize(("html", "fragment"), [
    ("<b>open", 'Can\'t find end tag corresponding to start tag "b"'),
    ("<b>x</i>", 'expected "</b>", found "</i>"'),
    ("line<br>next", 'Unsupported start tag "br"'),
    ("tail </b>", "Unexpected end tag"),
    ("<span>s</span>", 'Tag "span" must have class "tg-spoiler"'),
    ("1 < 2", 'Unsupported start tag ""'),
])
def test_parse_html_rejects_what_telegram_rejects(html: str, fragment: str) -> None:
    with pytest.raises(HtmlParseError) as info:
        parse_html(html)
    assert str(info.value).startswith("can't parse entities: ")
    assert fragment in str(info.value)


def test_render_text_plain_and_ansi() -> None:
    parsed = parse_html("<b>Bold</b> and <a href='https://e.org'>link</a> <code>c</code>")
    assert render_text(parsed.text, parsed.entities) == "Bold and link (https://e.org) c"
    ansi = render_text(parsed.text, parsed.entities, ansi=True)
    assert ansi.startswith("\x1b[1mBold\x1b[0m and ")
    assert "\x1b[4mlink\x1b[0m (https://e.org)" in ansi
    assert "\x1b[36mc\x1b[0m" in ansi
    same = parse_html('<a href="https://e.org">https://e.org</a>')
    assert render_text(same.text, same.entities) == "https://e.org"  # URL not repeated


def test_keyboard_numbering_across_rows() -> None:
    markup = {"inline_keyboard": [
        [{"text": "Portfolio", "callback_data": "pf"}, {"text": "Refresh", "callback_data": "rf"}],
        [{"text": "Docs", "url": "https://docs.example"}],
        [{"text": "Share", "switch_inline_query": "x"}],
    ]}
    assert keyboard_lines(markup) == [
        "[1] Portfolio  [2] Refresh", "[3] Docs <https://docs.example>", "[4] Share (switch_inline_query)"]
    buttons = number_buttons(markup)
    assert [(b.number, b.callback_data, b.url) for b in buttons[:3]] == [
        (1, "pf", None), (2, "rf", None), (3, None, "https://docs.example")]
    assert format_message("Hi\nthere", markup, prefix="🔔 ").split("\n")[:3] == [
        "🔔 Hi", "there", "   [1] Portfolio  [2] Refresh"]
    assert keyboard_lines({"keyboard": [[{"text": "Yes"}, {"text": "No"}]]}) == ["keys: «Yes»  «No»"]


# ------------------------------------------------------------------------------ the application

class PipeInput:
    """A real OS pipe as stdin, so the test types lines while the console runs."""

    def __init__(self) -> None:
        read_fd, self._write_fd = os.pipe()
        self.stdin = os.fdopen(read_fd, "r", encoding="utf-8")

    def send(self, line: str) -> None:
        os.write(self._write_fd, (line + "\n").encode())

    def close(self) -> None:
        if self._write_fd >= 0:
            os.close(self._write_fd)
            self._write_fd = -1


class TtyStringIO(io.StringIO):
    def isatty(self) -> bool:
        return True


class Harness:
    """Builds a fresh small PTB application per test and records its errors."""

    def __init__(self) -> None:
        self.errors: list[BaseException] = []
        self.requests: tuple[BaseRequest, BaseRequest] | None = None
        self.app: Application | None = None

    def build(self, request: BaseRequest, updates_request: BaseRequest) -> Application:
        self.requests = (request, updates_request)
        app = Application.builder().token("0:CONSOLE").request(request).get_updates_request(updates_request).build()
        app.add_handler(CommandHandler("start", _start))
        app.add_handler(CommandHandler("slow", _slow_start))
        app.add_handler(CommandHandler("remind", _remind))
        app.add_handler(CommandHandler("chart", _chart))
        app.add_handler(CommandHandler("long", _long))
        app.add_handler(CommandHandler("bigbutton", _big_button))
        app.add_handler(CommandHandler("badhtml", _bad_html))
        app.add_handler(CallbackQueryHandler(_pressed))
        app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, _echo))

        async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
            if context.error is not None:
                self.errors.append(context.error)

        app.add_error_handler(on_error)
        self.app = app
        return app


def _menu() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton("Portfolio", callback_data="pf:0"),
                                  InlineKeyboardButton("Refresh", callback_data="rf")]])


async def _start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None and update.effective_user is not None
    await update.message.reply_text(f"<b>Welcome</b>, {update.effective_user.first_name} &amp; co",
                                    parse_mode=ParseMode.HTML, reply_markup=_menu())


async def _slow_start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await asyncio.sleep(0.05)  # like a database round trip: the next piped line must wait for it
    await _start(update, context)


async def _pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query is not None
    await query.answer(f"pressed {query.data}")
    back = InlineKeyboardMarkup([[InlineKeyboardButton("Back", callback_data="back")]])
    await query.edit_message_text(f"Showing <i>{query.data}</i>", parse_mode=ParseMode.HTML, reply_markup=back)


async def _push(context: ContextTypes.DEFAULT_TYPE) -> None:
    assert context.job is not None and context.job.chat_id is not None
    await context.bot.send_message(context.job.chat_id, "⏰ <b>price alert</b>", parse_mode=ParseMode.HTML)


async def _remind(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None and context.job_queue is not None
    await update.message.reply_text("Reminder set")
    context.job_queue.run_once(_push, 0.3, chat_id=update.message.chat_id)


async def _chart(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None
    await update.message.reply_photo(tiny_png(), filename="chart.png", caption="<b>Equity</b> curve",
                                     parse_mode=ParseMode.HTML)
    await context.bot.send_photo(update.message.chat_id, tiny_png())  # raw bytes, no file name
    await update.message.reply_document(b"a,b\n1,2\n", filename="report.csv")


async def _long(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None
    await update.message.reply_text("x" * 4097)


async def _big_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None
    await update.message.reply_text("big", reply_markup=InlineKeyboardMarkup(
        [[InlineKeyboardButton("too much", callback_data="d" * 65)]]))


async def _bad_html(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None
    await update.message.reply_text("<b>unclosed", parse_mode=ParseMode.HTML)


async def _echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None and update.message.text is not None
    await update.message.reply_text(f"echo: {update.message.text}")


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Wait until `condition()` holds; fail with `what` after WAIT seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
def pipe() -> Any:
    handle = PipeInput()
    yield handle
    handle.close()
    handle.stdin.close()


async def test_interactive_session_over_a_pipe(tmp_path: Path, pipe: PipeInput) -> None:
    harness, out = Harness(), io.StringIO()
    media = tmp_path / "media"
    task = asyncio.create_task(run_console(harness.build, stdin=pipe.stdin, stdout=out, media_dir=media))

    pipe.send("/start")
    await eventually(lambda: "[2] Refresh" in out.getvalue(), "the /start reply")
    text = out.getvalue()
    assert "type /start" in text.lower()  # banner
    assert "» /start\nWelcome, Console & co\n   [1] Portfolio  [2] Refresh" in text
    assert "<b>" not in text and "\x1b[" not in text  # plain text when stdout is not a terminal

    pipe.send("1")
    await eventually(lambda: "(edited)" in out.getvalue(), "the edit after pressing 1")
    assert "[ pressed pf:0 ]\n(edited) Showing pf:0\n   [1] Back" in out.getvalue()

    pipe.send("2")  # the edited message now has one button: renumbered
    await eventually(lambda: "⚠ no button 2" in out.getvalue(), "the unknown-button error")
    assert "the last keyboard has buttons 1-1" in out.getvalue()

    pipe.send("/remind")
    await eventually(lambda: "🔔 ⏰ price alert" in out.getvalue(), "the pushed notification")
    assert "\nReminder set" in out.getvalue() and "🔔 Reminder set" not in out.getvalue()

    pipe.send("/chart")
    await eventually(lambda: "report-" in out.getvalue(), "the document")
    chart = media / "chart-1.png"
    assert f"[photo saved to {chart}]\nEquity curve" in out.getvalue()
    assert chart.read_bytes() == tiny_png()
    assert f"[photo saved to {media / 'photo-2.png'}]" in out.getvalue()
    assert (media / "photo-2.png").read_bytes() == tiny_png()
    assert f"[document saved to {media / 'report-3.csv'}]" in out.getvalue()
    assert (media / "report-3.csv").read_bytes() == b"a,b\n1,2\n"

    pipe.send("'42")
    await eventually(lambda: "echo: 42" in out.getvalue(), "a number sent as text")
    assert harness.errors == []

    pipe.send("quit")
    await asyncio.wait_for(task, WAIT)
    assert harness.app is not None and not harness.app.running


async def test_bot_api_limits_surface_as_bad_request(tmp_path: Path) -> None:
    harness, out = Harness(), io.StringIO()
    lines = "/long\n/bigbutton\n/badhtml\n/start\n"
    await asyncio.wait_for(run_console(harness.build, stdin=io.StringIO(lines), stdout=out,
                                       media_dir=tmp_path), WAIT)
    assert [type(e) for e in harness.errors] == [BadRequest, BadRequest, BadRequest]
    messages = [str(e).lower() for e in harness.errors]
    assert messages[0] == "message is too long"
    assert messages[1] == "button_data_invalid"
    assert messages[2].startswith("can't parse entities: can't find end tag")
    assert "xxxx" not in out.getvalue() and "unclosed" not in out.getvalue()
    assert "Welcome, Console" in out.getvalue()  # EOF ended the run after the last reply


async def test_piped_lines_wait_for_the_previous_reply(tmp_path: Path) -> None:
    """`1` right after `/slow` in one pipe must press the button of the (late) /slow reply."""
    harness, out = Harness(), io.StringIO()
    await asyncio.wait_for(run_console(harness.build, stdin=io.StringIO("/slow\n1\n1\nexit\n/start\n"),
                                       stdout=out, media_dir=tmp_path), WAIT)
    text = out.getvalue()
    assert "(edited) Showing pf:0" in text
    assert "[ pressed back ]\n(edited) Showing back" in text
    assert text.count("Welcome") == 1  # nothing after `exit` is read
    assert harness.errors == []


async def test_number_without_a_keyboard_and_two_request_objects(tmp_path: Path) -> None:
    harness, out = Harness(), io.StringIO()
    await asyncio.wait_for(run_console(harness.build, stdin=io.StringIO("3\n"), stdout=out,
                                       media_dir=tmp_path), WAIT)
    assert "⚠ no button 3: there is no keyboard to press" in out.getvalue()
    assert harness.requests is not None
    first, second = harness.requests
    assert isinstance(first, ConsoleRequest) and isinstance(second, ConsoleRequest)
    assert first is not second and first.api is second.api


async def test_edit_rules_match_telegram(tmp_path: Path) -> None:
    """Unchanged edits are refused, edits without reply_markup drop the keyboard, toasts print."""
    out = io.StringIO()
    harness = Harness()
    results: dict[str, Any] = {}

    async def probe(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        sent = await update.message.reply_text("same", reply_markup=_menu())
        try:
            await sent.edit_text("same", reply_markup=_menu())
        except TelegramError as exc:
            results["unchanged"] = exc
        edited = await sent.edit_text("changed")
        results["markup_after_edit"] = edited.reply_markup
        await sent.delete()

    def build(request: BaseRequest, updates_request: BaseRequest) -> Application:
        app = harness.build(request, updates_request)
        app.add_handler(CommandHandler("probe", probe), group=-1)
        return app

    await asyncio.wait_for(run_console(build, stdin=io.StringIO("/probe\n"), stdout=out,
                                       media_dir=tmp_path), WAIT)
    assert isinstance(results["unchanged"], BadRequest)
    assert "message is not modified" in str(results["unchanged"]).lower()
    assert results["markup_after_edit"] is None
    assert "(edited) changed" in out.getvalue() and "(deleted: changed)" in out.getvalue()


async def test_terminal_gets_ansi_bold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    out = TtyStringIO()
    await asyncio.wait_for(run_console(Harness().build, stdin=io.StringIO("/start\n"), stdout=out,
                                       media_dir=tmp_path), WAIT)
    assert "\x1b[1mWelcome\x1b[0m, Console & co" in out.getvalue()


async def test_eof_on_a_pipe_ends_the_console(tmp_path: Path, pipe: PipeInput) -> None:
    out = io.StringIO()
    task = asyncio.create_task(run_console(Harness().build, stdin=pipe.stdin, stdout=out, media_dir=tmp_path,
                                           user_id=77))
    pipe.send("/start")
    await eventually(lambda: "Welcome" in out.getvalue(), "the /start reply")
    pipe.close()
    await asyncio.wait_for(task, WAIT)
    assert "Welcome, Console" in out.getvalue()


async def test_real_application_end_to_end(tmp_path: Path) -> None:
    """The product's own application factory, run through the console with its embedded defaults."""
    app_module = pytest.importorskip("bot.app")
    settings_module = pytest.importorskip("bot.settings")
    settings = settings_module.Settings(database_url=f"sqlite:///{tmp_path / 'console.db'}", _env_file=None)
    out = io.StringIO()

    def build(request: BaseRequest, updates_request: BaseRequest) -> Application:
        return app_module.build_application(settings, request=request, get_updates_request=updates_request,
                                            console=True)

    await asyncio.wait_for(run_console(build, stdin=io.StringIO("/start\n/help\nquit\n"), stdout=out,
                                       media_dir=tmp_path / "media"), 60)
    text = out.getvalue()
    assert "[1] " in text  # the main menu keyboard was rendered and numbered
    assert "/automaton" in text  # the help listing
    assert "Something went wrong" not in text


async def test_a_second_console_session_on_the_same_database_is_answered(tmp_path: Path) -> None:
    """Update ids go on across runs: the inbox keys updates by id, so a second session starting
    at id 1 again found its updates "already received" and answered nothing."""
    app_module = pytest.importorskip("bot.app")
    settings_module = pytest.importorskip("bot.settings")
    settings = settings_module.Settings(database_url=f"sqlite:///{tmp_path / 'console.db'}", _env_file=None)

    def build(request: BaseRequest, updates_request: BaseRequest) -> Application:
        return app_module.build_application(settings, request=request, get_updates_request=updates_request,
                                            console=True)

    for session in range(2):
        out = io.StringIO()
        await asyncio.wait_for(run_console(build, stdin=io.StringIO("/help\nquit\n"), stdout=out,
                                           media_dir=tmp_path / "media"), 60)
        assert "/automaton" in out.getvalue(), f"session {session + 1} got no answer"
