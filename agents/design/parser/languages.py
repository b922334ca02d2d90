"""The languages the parser reads besides English (see `lexicon`), in the order their words are tried.

Its own module so the vocabulary can be built without them: a test compares the parser with an
English-only build of itself to show the other languages change no English result.
"""

from __future__ import annotations

from agents.design.parser.indonesian import INDONESIAN
from agents.design.parser.lexicon import Lexicon
from agents.design.parser.portuguese import PORTUGUESE

LANGUAGES: tuple[Lexicon, ...] = (INDONESIAN, PORTUGUESE)
