"""Rendering for the console channel: Telegram HTML and inline keyboards as terminal text.

Pure functions, no I/O. `parse_html` follows the Bot API's HTML parse mode (the rules of
tdlib's `parse_html`: supported tags, attribute syntax, nesting, entity offsets in UTF-16
code units) so the console rejects exactly what Telegram would reject. The terminal
renderer then works from the parsed text and entities, the same data a Telegram client
draws from.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from bot.render import utf16_len

# Tag -> Bot API entity type (https://core.telegram.org/bots/api#html-style).
_TAG_ENTITY = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline", "ins": "underline",
    "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough", "tg-spoiler": "spoiler",
    "span": "spoiler", "a": "text_link", "code": "code", "pre": "pre", "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY_RE = re.compile(r"&(?:([a-zA-Z]+)|#([0-9]{1,7})|#[xX]([0-9a-fA-F]{1,6}));")
_TAG_NAME_RE = re.compile(r"[a-zA-Z0-9-]*")
_ATTR_NAME_RE = re.compile(r"[a-zA-Z0-9_-]*")
_UNQUOTED_VALUE_RE = re.compile(r"[a-zA-Z0-9.\-_:/?=&%#+]*")

# SGR codes per entity type, used only when the terminal understands ANSI escapes.
_ANSI = {
    "bold": "1", "italic": "3", "underline": "4", "strikethrough": "9", "spoiler": "2",
    "code": "36", "pre": "36", "text_link": "4", "url": "4",
}


class HtmlParseError(ValueError):
    """The text is not valid Telegram HTML; `str()` is tdlib's wording."""


@dataclass(frozen=True)
class ParsedText:
    """Visible text and Bot API `MessageEntity` dicts (offsets in UTF-16 code units)."""

    text: str
    entities: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class NumberedButton:
    """One inline button as shown in the console: its number is what the user types."""

    number: int
    text: str
    callback_data: str | None = None
    url: str | None = None
    kind: str = "callback_data"


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def _decode_entity(text: str, pos: int) -> tuple[str, int] | None:
    """Decode an HTML entity at `text[pos] == "&"` into (character, length consumed)."""
    match = _ENTITY_RE.match(text, pos)
    if match is None:
        return None
    named, dec, hexa = match.groups()
    if named is not None:
        char = _NAMED_ENTITIES.get(named)
        return (char, match.end() - pos) if char is not None else None
    code = int(dec) if dec else int(hexa, 16)
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code), match.end() - pos


@dataclass
class _Open:
    name: str
    attrs: dict[str, str]
    start: int  # UTF-16 offset in the visible text


class _Parser:
    """Single pass over the HTML producing visible text and entities."""

    def __init__(self, text: str) -> None:
        self.src = text
        self.pos = 0
        self.out: list[str] = []
        self.out16 = 0
        self.stack: list[_Open] = []
        self.entities: list[dict[str, Any]] = []

    def _emit(self, chunk: str) -> None:
        self.out.append(chunk)
        self.out16 += utf16_len(chunk)

    def _error(self, message: str) -> HtmlParseError:
        return HtmlParseError(f"can't parse entities: {message}")

    def _skip_spaces(self) -> None:
        while self.pos < len(self.src) and self.src[self.pos].isspace():
            self.pos += 1

    def run(self) -> ParsedText:
        src = self.src
        while self.pos < len(src):
            char = src[self.pos]
            if char == "&":
                decoded = _decode_entity(src, self.pos)
                if decoded is None:  # Telegram keeps an unknown "&..." literally
                    self._emit("&")
                    self.pos += 1
                else:
                    self._emit(decoded[0])
                    self.pos += decoded[1]
            elif char != "<":
                start = self.pos
                while self.pos < len(src) and src[self.pos] not in "<&":
                    self.pos += 1
                self._emit(src[start:self.pos])
            elif src.startswith("</", self.pos):
                self._end_tag()
            else:
                self._start_tag()
        if self.stack:
            raise self._error(f'Can\'t find end tag corresponding to start tag "{self.stack[-1].name}"')
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return ParsedText("".join(self.out), self.entities)

    def _start_tag(self) -> None:
        begin = self.pos
        self.pos += 1
        name = _TAG_NAME_RE.match(self.src, self.pos).group(0).lower()  # type: ignore[union-attr]
        self.pos += len(name)
        if name not in _TAG_ENTITY:
            raise self._error(f'Unsupported start tag "{name}" at byte offset {_byte_offset(self.src, begin)}')
        attrs: dict[str, str] = {}
        while True:
            self._skip_spaces()
            if self.pos >= len(self.src):
                raise self._error(f"Unclosed start tag at byte offset {_byte_offset(self.src, begin)}")
            if self.src[self.pos] == ">":
                self.pos += 1
                break
            attr = _ATTR_NAME_RE.match(self.src, self.pos).group(0).lower()  # type: ignore[union-attr]
            if not attr:
                raise self._error(f'Empty attribute name in the tag "{name}" at byte offset '
                                  f"{_byte_offset(self.src, begin)}")
            self.pos += len(attr)
            self._skip_spaces()
            if self.pos < len(self.src) and self.src[self.pos] == "=":
                self.pos += 1
                self._skip_spaces()
                attrs[attr] = self._attr_value(name, begin)
            elif name == "blockquote" and attr == "expandable":
                attrs[attr] = ""
            else:
                raise self._error(f'Expected equal sign in declaration of an attribute of the tag "{name}" '
                                  f"at byte offset {_byte_offset(self.src, begin)}")
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise self._error(f'Tag "span" must have class "tg-spoiler" at byte offset '
                              f"{_byte_offset(self.src, begin)}")
        if name == "tg-emoji" and not attrs.get("emoji-id", "").isdigit():
            raise self._error(f'Tag "tg-emoji" must have attribute "emoji-id" at byte offset '
                              f"{_byte_offset(self.src, begin)}")
        self.stack.append(_Open(name, attrs, self.out16))

    def _attr_value(self, tag: str, begin: int) -> str:
        src = self.src
        if self.pos < len(src) and src[self.pos] in "'\"":
            quote = src[self.pos]
            end = src.find(quote, self.pos + 1)
            if end < 0:
                raise self._error(f'Unclosed start tag "{tag}" at byte offset {_byte_offset(src, begin)}')
            raw = src[self.pos + 1:end]
            self.pos = end + 1
            return _unescape(raw)
        value = _UNQUOTED_VALUE_RE.match(src, self.pos).group(0)  # type: ignore[union-attr]
        if not value:
            raise self._error(f'Expected quote in declaration of an attribute of the tag "{tag}" at byte '
                              f"offset {_byte_offset(src, begin)}")
        self.pos += len(value)
        return value

    def _end_tag(self) -> None:
        begin = self.pos
        self.pos += 2
        name = _TAG_NAME_RE.match(self.src, self.pos).group(0).lower()  # type: ignore[union-attr]
        self.pos += len(name)
        self._skip_spaces()
        if not self.stack:
            raise self._error(f"Unexpected end tag at byte offset {_byte_offset(self.src, begin)}")
        if self.pos >= len(self.src) or self.src[self.pos] != ">":
            raise self._error(f"Unclosed end tag at byte offset {_byte_offset(self.src, begin)}")
        self.pos += 1
        top = self.stack[-1]
        if name != top.name:
            raise self._error(f'Unmatched end tag at byte offset {_byte_offset(self.src, begin)}, '
                              f'expected "</{top.name}>", found "</{name}>"')
        self.stack.pop()
        self._close(top)

    def _close(self, tag: _Open) -> None:
        length = self.out16 - tag.start
        kind = _TAG_ENTITY[tag.name]
        if kind == "code" and self.stack and self.stack[-1].name == "pre":
            # <pre><code class="language-x"> is one pre entity with a language (Bot API docs).
            language = tag.attrs.get("class", "")
            if language.startswith("language-"):
                self.stack[-1].attrs["language"] = language.removeprefix("language-")
            return
        if length <= 0:
            return
        entity: dict[str, Any] = {"type": kind, "offset": tag.start, "length": length}
        if kind == "text_link":
            visible = "".join(self.out)
            entity["url"] = tag.attrs.get("href") or _slice16(visible, tag.start, self.out16)
        elif kind == "pre" and tag.attrs.get("language"):
            entity["language"] = tag.attrs["language"]
        elif kind == "blockquote" and "expandable" in tag.attrs:
            entity["type"] = "expandable_blockquote"
        elif kind == "custom_emoji":
            entity["custom_emoji_id"] = tag.attrs["emoji-id"]
        self.entities.append(entity)


def _unescape(raw: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(raw):
        if raw[i] == "&":
            decoded = _decode_entity(raw, i)
            if decoded is not None:
                out.append(decoded[0])
                i += decoded[1]
                continue
        out.append(raw[i])
        i += 1
    return "".join(out)


def _slice16(text: str, start: int, end: int) -> str:
    data = text.encode("utf-16-le")
    return data[start * 2:end * 2].decode("utf-16-le")


def parse_html(text: str) -> ParsedText:
    """Parse Telegram HTML into visible text and entities; raise `HtmlParseError` like the Bot API."""
    return _Parser(text).run()


def plain_text(text: str) -> ParsedText:
    """Text sent without a parse mode: shown as is, no entities."""
    return ParsedText(text, [])


def _char_index_by_offset16(text: str) -> dict[int, int]:
    """Map each UTF-16 offset that falls on a character boundary to the character index."""
    mapping: dict[int, int] = {}
    offset = 0
    for index, char in enumerate(text):
        mapping[offset] = index
        offset += 2 if ord(char) > 0xFFFF else 1
    mapping[offset] = len(text)
    return mapping


def render_text(text: str, entities: list[dict[str, Any]] | None = None, *, ansi: bool = False) -> str:
    """Message text for a terminal: links show their URL, styles become ANSI escapes if `ansi`."""
    entities = entities or []
    if not entities:
        return text
    index_of = _char_index_by_offset16(text)
    spans: list[tuple[int, int, dict[str, Any]]] = []
    for entity in entities:
        start = index_of.get(int(entity["offset"]))
        end = index_of.get(int(entity["offset"]) + int(entity["length"]))
        if start is not None and end is not None and end > start:
            spans.append((start, end, entity))
    cuts = sorted({0, len(text)} | {s for s, _, _ in spans} | {e for _, e, _ in spans})
    out: list[str] = []
    for left, right in itertools.pairwise(cuts):
        chunk = text[left:right]
        codes = sorted({_ANSI[e["type"]] for s, t, e in spans if s <= left and right <= t and e["type"] in _ANSI})
        out.append(f"\x1b[{';'.join(codes)}m{chunk}\x1b[0m" if ansi and codes else chunk)
        for start, end, entity in spans:
            if end == right and entity["type"] == "text_link" and entity.get("url") != text[start:end]:
                out.append(f" ({entity.get('url', '')})")
    return "".join(out)


def number_buttons(reply_markup: dict[str, Any] | None) -> list[NumberedButton]:
    """Inline buttons in reading order (row by row), numbered from 1."""
    if not reply_markup:
        return []
    buttons: list[NumberedButton] = []
    for row in reply_markup.get("inline_keyboard") or []:
        for button in row:
            number = len(buttons) + 1
            text = str(button.get("text", ""))
            if "callback_data" in button:
                buttons.append(NumberedButton(number, text, callback_data=str(button["callback_data"])))
            elif "url" in button:
                buttons.append(NumberedButton(number, text, url=str(button["url"]), kind="url"))
            elif isinstance(button.get("login_url"), dict):
                buttons.append(NumberedButton(number, text, url=str(button["login_url"].get("url", "")),
                                              kind="login_url"))
            elif isinstance(button.get("web_app"), dict):
                buttons.append(NumberedButton(number, text, url=str(button["web_app"].get("url", "")),
                                              kind="web_app"))
            else:
                kind = next((k for k in button if k != "text"), "unknown")
                buttons.append(NumberedButton(number, text, kind=kind))
    return buttons


def _button_label(button: NumberedButton) -> str:
    if button.url:
        return f"[{button.number}] {button.text} <{button.url}>"
    if button.kind != "callback_data":
        return f"[{button.number}] {button.text} ({button.kind})"
    return f"[{button.number}] {button.text}"


def keyboard_lines(reply_markup: dict[str, Any] | None) -> list[str]:
    """One line per keyboard row: `[1] Portfolio  [2] Refresh`; reply keyboards list their keys."""
    if not reply_markup:
        return []
    if "inline_keyboard" in reply_markup:
        numbered = iter(number_buttons(reply_markup))
        return ["  ".join(_button_label(next(numbered)) for _ in row)
                for row in reply_markup["inline_keyboard"] if row]
    if "keyboard" in reply_markup:
        keys = [str(k.get("text", "")) if isinstance(k, dict) else str(k)
                for row in reply_markup["keyboard"] for k in row]
        return ["keys: " + "  ".join(f"«{k}»" for k in keys)] if keys else []
    return []


def format_message(body: str, reply_markup: dict[str, Any] | None = None, *, prefix: str = "") -> str:
    """A whole bot message as printed: optional prefix, the body, then its keyboard indented."""
    lines = body.split("\n") if body else []
    if prefix:
        lines = [prefix + (lines[0] if lines else ""), *lines[1:]]
    lines += ["   " + line for line in keyboard_lines(reply_markup)]
    return "\n".join(lines)
