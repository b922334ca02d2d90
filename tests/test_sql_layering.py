"""All SQL lives in storage/: no SQL string literal anywhere else in the product (issue 10)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = [*(ROOT / d for d in ("agents", "engine", "bot")), ROOT / "main.py", ROOT / "run_migrations.py"]
SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|PRAGMA|BEGIN|COMMIT|WITH|EXPLAIN)\b"
                 r"|\b(FROM|INTO|SET)\s+[a-z_]+\s+(WHERE|VALUES|GROUP|ORDER|JOIN)\b")


def _files() -> list[Path]:
    out: list[Path] = []
    for p in PRODUCT:
        out += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    return out


def _literals(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.append((node.lineno, node.value))
        elif isinstance(node, ast.JoinedStr):
            text = "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
            found.append((node.lineno, text))
    return found


def test_no_sql_outside_storage() -> None:
    offenders = []
    for path in _files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for line, text in _literals(tree):
            if SQL.search(text):
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {text[:60]!r}")
    assert not offenders, "SQL outside storage/:\n" + "\n".join(offenders)


def test_the_detector_finds_sql() -> None:
    """The check above can fail: it recognises the statements storage/ writes."""
    hits = 0
    for path in sorted((ROOT / "storage").glob("*.py")):
        hits += sum(1 for _, text in _literals(ast.parse(path.read_text(encoding="utf-8"))) if SQL.search(text))
    assert hits > 50
    assert not SQL.search("Select a token, then press Refresh.")
    assert not SQL.search("Update your strategy from the bot's menu")


def test_no_sqlite_driver_outside_storage() -> None:
    for path in _files():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"^\s*(import|from)\s+(sqlite3|aiosqlite)\b", text, re.M), path
