"""The terminal side of the console channel: printing blocks without breaking the prompt, reading lines.

Input is read on a thread of its own so the event loop never blocks on `input()`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any, TextIO

PROMPT = "> "
QUIT_WORDS = frozenset({"quit", "exit"})


def is_quit(line: str | None) -> bool:
    """End of input, or a line that ends the console."""
    return line is None or line.strip().lower() in QUIT_WORDS


def isatty(stream: object) -> bool:
    """Whether `stream` is an interactive terminal (False for anything without a working isatty)."""
    check = getattr(stream, "isatty", None)
    try:
        return bool(check()) if callable(check) else False
    except (OSError, ValueError):
        return False


class ConsoleOutput:
    """Writes blocks of text; on an interactive terminal it keeps the input prompt intact.

    A message that arrives while the user is typing clears the prompt line, prints, then
    redraws the prompt and the half-typed text (via `readline` when available).
    """

    def __init__(self, stream: TextIO, *, ansi: bool = False, interactive: bool = False) -> None:
        self.stream = stream
        self.ansi = ansi
        self.interactive = interactive
        # Set by the reader thread while `input()` shows the prompt: only then is there a
        # prompt to redraw (a plain bool is enough, the GIL makes the flip atomic).
        self.prompt_visible = False
        self._readline: Any = None
        if interactive:
            # Importing readline makes input() use it: line editing, history, and a readable
            # line buffer so half-typed input survives a notification.
            with contextlib.suppress(ImportError):
                import readline

                self._readline = readline

    def _line_buffer(self) -> str:
        return self._readline.get_line_buffer() if self._readline is not None else ""

    def show(self, block: str) -> None:
        """Print one block (a message, a toast, an error line)."""
        if self.interactive and self.prompt_visible:
            self.stream.write(f"\r\x1b[K{block}\n{PROMPT}{self._line_buffer()}")
        else:
            self.stream.write(block + "\n")
        self.stream.flush()


class LineReader(threading.Thread):
    """Reads stdin on its own thread so the event loop never blocks on input.

    A daemon thread rather than the loop's executor: an executor thread stuck in `readline`
    would make `asyncio.run` wait for it at exit.
    """

    def __init__(self, stdin: TextIO, deliver: Callable[[str | None], bool], *,
                 output: ConsoleOutput) -> None:
        super().__init__(name="console-stdin", daemon=True)
        self.stdin = stdin
        self.deliver = deliver
        self.output = output

    def _read(self) -> str | None:
        try:
            if self.output.interactive:
                self.output.prompt_visible = True
                try:
                    return input(PROMPT)
                finally:
                    self.output.prompt_visible = False
            raw = self.stdin.readline()
        except EOFError:
            return None
        except (OSError, ValueError):  # stream closed under us: same as end of input
            return None
        return raw.rstrip("\r\n") if raw else None

    def run(self) -> None:
        """Deliver lines until end of input, a quit word, or the loop is gone."""
        while True:
            line = self._read()
            if not self.deliver(line) or is_quit(line):
                return
