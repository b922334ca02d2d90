"""The message catalogs' upkeep: extract every `t`/`tn`/`N_` message of `bot/` and check the translations.

    python -m bot.catalogs          rewrite bot/locale/messages.pot and merge it into each language's .po
    python -m bot.catalogs --check  list what is missing or broken (exit 1 if anything)

A translation is broken when its `{fields}` or its HTML tags differ from the English, so a
translated message can never lose a figure or break Telegram's HTML.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po, write_po

from bot.i18n import DEFAULT, LANGUAGES

ROOT = Path(__file__).resolve().parent
LOCALE = ROOT / "locale"
KEYWORDS = {**DEFAULT_KEYWORDS, "t": None, "tn": (1, 2), "N_": None}
# Gettext's own plural rules for the catalogs (Babel's CLDR rule for pt has a third form for millions).
PLURAL_FORMS = {"id": "nplurals=1; plural=0;", "pt": "nplurals=2; plural=(n > 1);"}
_PLACEHOLDER = re.compile(r"(?<!\{)\{([a-zA-Z_][a-zA-Z0-9_]*)(?:[:!][^}]*)?\}")
_TAG = re.compile(r"</?([a-zA-Z]+)[^>]*>")


def extract() -> Catalog:
    """Every message of the bot layer, from the source."""
    catalog = Catalog(project="automaton-trading-bot", charset="utf-8")
    for filename, lineno, message, comments, context in extract_from_dir(
            str(ROOT), method_map=[("**.py", "python")], keywords=KEYWORDS, comment_tags=("i18n:",)):
        catalog.add(message, locations=[(f"bot/{filename}", lineno)], auto_comments=comments, context=context)
    return catalog


def po_path(language: str) -> Path:
    return LOCALE / language / "LC_MESSAGES" / "messages.po"


def load(language: str) -> Catalog:
    with po_path(language).open("rb") as handle:
        return read_po(handle, locale=language)


def _shape(text: str) -> tuple[list[str], list[str]]:
    return sorted(set(_PLACEHOLDER.findall(text))), sorted(m.lower() for m in _TAG.findall(text))


def problems(template: Catalog, language: str) -> list[str]:
    """What is missing, unchecked (fuzzy) or broken in `language` against `template`."""
    catalog = load(language)
    out = []
    for message in template:
        if not message.id:
            continue
        found: Message | None = catalog.get(message.id)
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        if found is None or found.fuzzy:
            out.append(f"{language}: {'fuzzy' if found else 'missing'}: {ids[0]!r}")
            continue
        strings = found.string if isinstance(found.string, tuple) else (found.string,)
        if not all(strings):
            out.append(f"{language}: untranslated: {ids[0]!r}")
            continue
        for text in strings:
            if _shape(text)[0] != _shape(ids[-1])[0] and _shape(text)[0] != _shape(ids[0])[0]:
                out.append(f"{language}: format fields differ: {ids[0]!r} -> {text!r}")
            elif _shape(text)[1] != _shape(ids[0])[1]:
                out.append(f"{language}: HTML tags differ: {ids[0]!r} -> {text!r}")
    return out


def update(template: Catalog) -> None:
    """Write the template and merge it into every language (new messages empty, gone ones dropped)."""
    LOCALE.mkdir(exist_ok=True)
    with (LOCALE / "messages.pot").open("wb") as handle:
        write_po(handle, template, omit_header=False, sort_output=True, width=0, include_lineno=False)
    for language in LANGUAGES:
        if language == DEFAULT:
            continue
        path = po_path(language)
        path.parent.mkdir(parents=True, exist_ok=True)
        catalog = load(language) if path.exists() else Catalog(locale=language, charset="utf-8")
        catalog.update(template, no_fuzzy_matching=True)
        catalog.obsolete.clear()
        catalog.plural_forms  # noqa: B018 (parsed header first)
        catalog._num_plurals, catalog._plural_expr = _plural(PLURAL_FORMS[language])
        with path.open("wb") as handle:
            write_po(handle, catalog, sort_output=True, width=0, include_lineno=False, ignore_obsolete=True)


def _plural(forms: str) -> tuple[int, str]:
    n, expr = re.fullmatch(r"nplurals=(\d+); plural=(.*);", forms).groups()  # type: ignore[union-attr]
    return int(n), expr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report missing or broken translations")
    args = parser.parse_args(argv)
    template = extract()
    if not args.check:
        update(template)
    found = [p for language in LANGUAGES if language != DEFAULT for p in problems(template, language)]
    print("\n".join(found) or f"{len(template)} messages, translated in {', '.join(LANGUAGES)}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
