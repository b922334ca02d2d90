"""Small wording rules shared by every screen (imported by render and cards alike)."""

from __future__ import annotations


def count(n: int, one: str, many: str) -> str:
    """"1 day", "5 days", "1,200 candles": a number with its word in the right form."""
    return f"{n:,} {one if n == 1 else many}"
