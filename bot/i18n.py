"""The user's language: gettext catalogs (Babel) for English, Bahasa Indonesia and Portuguese.

Every word a person reads is written in English in the code as the message id, wrapped in `t()`
(or `tn()` for a count, `N_()` to mark a constant translated where it is shown), and translated
in `bot/locale/<lang>/LC_MESSAGES/messages.po`. The language of the update being handled (or of
the user a notification is for) is a context variable, so a handler never passes it around:
`bot.handlers.language` sets it before any other handler runs, the notifier around each
recipient's messages. The catalogs are read (and compiled in memory) on first use, not at import.

    make the template:  pybabel extract -F babel.cfg -o bot/locale/messages.pot .
    update a language:  pybabel update -i bot/locale/messages.pot -d bot/locale -D messages
"""

from __future__ import annotations

import contextlib
import functools
import gettext
import io
import string
from collections.abc import Iterator
from contextvars import ContextVar
from importlib import resources
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from engine.numbers import format_price

DEFAULT = "en"
LANGUAGES: tuple[str, ...] = ("en", "id", "pt")
# Each language's own name, shown on the language buttons (never translated).
NATIVE_NAMES: dict[str, str] = {"en": "🇬🇧 English", "id": "🇮🇩 Bahasa Indonesia", "pt": "🇧🇷 Português"}

_current: ContextVar[str] = ContextVar("language", default=DEFAULT)


def resolve(chosen: str | None, telegram_code: str | None) -> str:
    """The language to answer in: the user's /settings choice, else their Telegram app's
    language ("pt-BR" → pt, "in" is Java's old code for Indonesian), else English."""
    if chosen in LANGUAGES:
        return chosen
    base = (telegram_code or "").split("-")[0].split("_")[0].lower()
    base = {"in": "id"}.get(base, base)
    return base if base in LANGUAGES else DEFAULT


def activate(language: str) -> None:
    """Make `language` the current one for this task (and the tasks it starts)."""
    _current.set(language if language in LANGUAGES else DEFAULT)


def current() -> str:
    return _current.get()


@contextlib.contextmanager
def using(language: str) -> Iterator[None]:
    """Words in `language` for the block (a notification for another user, say)."""
    token = _current.set(language if language in LANGUAGES else DEFAULT)
    try:
        yield
    finally:
        _current.reset(token)


@functools.cache
def _translations(language: str) -> gettext.NullTranslations:
    if language == DEFAULT:
        return gettext.NullTranslations()
    po = resources.files("bot").joinpath("locale", language, "LC_MESSAGES", "messages.po")
    with po.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)  # a fuzzy (unchecked) translation stays English
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


class _Formatter(string.Formatter):
    """`str.format` plus the spec `price` (`{value:price}`): the one price rule, `engine.numbers`."""

    def format_field(self, value: Any, format_spec: str) -> str:
        if format_spec == "price" and isinstance(value, int | float):
            return format_price(value)
        return super().format_field(value, format_spec)


FORMATTER = _Formatter()


def t(message: str, /, **params: Any) -> str:
    """`message` in the current language, its `{fields}` filled from `params` (the caller
    escapes what it passes for HTML; the template's own markup is the translator's to keep)."""
    text = _translations(_current.get()).gettext(message)
    return FORMATTER.format(text, **params) if params else text


def tn(singular: str, plural: str, n: int, /, **params: Any) -> str:
    """The form of a counted message for `n` in the current language; `{n}` is `n` grouped
    ("1,200"), so `tn("{n} day", "{n} days", days)`."""
    text = _translations(_current.get()).ngettext(singular, plural, n)
    return FORMATTER.format(text, **{"n": f"{n:,}", **params})


def N_(message: str) -> str:
    """Mark a constant for the catalog; `t(constant)` translates it where it is used."""
    return message


def in_every_language(message: str) -> set[str]:
    """The message as each language writes it (to recognise a reply button's label, say)."""
    out = set()
    for language in LANGUAGES:
        with using(language):
            out.add(t(message))
    return out
