"""The layout rules of the codebase (issue 11), checked on the source itself.

* Only `bot/` (and the composition root `main.py`) imports `telegram` or names a command.
* No product module over 400 lines, no function over 80.
* Each money rule has one home: the micro-USDC quantum, the roundings and the micro factor live
  in `storage/money.py`; the available-balance expression in `agents/ledger/rules.py` (and one
  SQL expression in `storage/agents_repo.py`).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("agents", "bot", "engine", "storage")
LOWER = ("agents", "engine", "storage")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def _files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _command_names() -> set[str]:
    names: set[str] = set()
    for path in _files("bot"):
        for node in ast.walk(ast.parse(path.read_text())):
            name = getattr(node, "func", None)
            if isinstance(node, ast.Call) and getattr(name, "id", getattr(name, "attr", "")) == "CommandHandler":
                first = node.args[0] if node.args else None
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    names.add(first.value)
    return names


def test_the_command_list_is_found() -> None:
    # the detector below is only as good as this list
    assert {"start", "help", "deposit", "withdraw", "backtest", "simulate", "bots", "ai_portfolio"} <= _command_names()


def test_only_the_bot_layer_imports_telegram() -> None:
    offenders = []
    for path in _files(*LOWER):
        for node in ast.walk(ast.parse(path.read_text())):
            mods = ([a.name for a in node.names] if isinstance(node, ast.Import)
                    else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{_rel(path)}: {m}" for m in mods if m == "telegram" or m.startswith("telegram.")]
    assert offenders == []


def test_no_command_name_below_the_bot_layer() -> None:
    # not after a path segment or a quote: `{base}/agents/{id}/status` and `path.endswith('/status')`
    # are the Automaton API's URL, not the /status command
    pattern = re.compile(r"(?<![\w/.}'\"])/(" + "|".join(sorted(_command_names())) + r")\b")
    offenders = [f"{_rel(p)}:{i}: {line.strip()}" for p in _files(*LOWER)
                 for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []


def test_module_and_function_sizes() -> None:
    too_long = []
    for path in _files(*PRODUCT):
        text = path.read_text()
        if text.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{_rel(path)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{_rel(path)}:{node.lineno} {node.name}: {length} lines")
    assert too_long == []


def test_money_rules_have_one_home() -> None:
    shapes = {
        "the micro-USDC quantum": re.compile(r"Decimal\(\s*[\"']0?\.000001[\"']\s*\)"),
        "a named rounding": re.compile(r"\bROUND_(DOWN|HALF_EVEN|HALF_UP|FLOOR|CEILING)\b"),
        "the micro factor": re.compile(r"\b1_?000_?000\b(?!\))|\b1e6\b"),
    }
    offenders = [f"{what}: {_rel(p)}:{i}" for p in _files(*PRODUCT) if _rel(p) != "storage/money.py"
                 for i, line in enumerate(p.read_text().splitlines(), 1)
                 for what, shape in shapes.items() if shape.search(line) and "Decimal(1_000_000)" not in line]
    assert offenders == []


def test_available_balance_has_one_home() -> None:
    shape = re.compile(r"balance\b[\"'\]]*\s*-\s*[\w.\[\"']*\b(locked_balance|locked)\b")
    homes = {"agents/ledger/rules.py", "storage/agents_repo.py"}
    offenders = [f"{_rel(p)}:{i}: {line.strip()}" for p in _files(*PRODUCT) if _rel(p) not in homes
                 for i, line in enumerate(p.read_text().splitlines(), 1) if shape.search(line)]
    assert offenders == []


def _imports(path: Path) -> list[str]:
    out: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
    return out


def test_dependencies_go_one_way() -> None:
    # bot -> agents -> engine -> storage; function-level (lazy) imports count too
    above = {"storage": ("engine", "agents", "bot"), "engine": ("agents", "bot"), "agents": ("bot",)}
    offenders = [f"{_rel(p)}: {m}" for layer, banned in above.items() for p in _files(layer)
                 for m in _imports(p) if m.split(".")[0] in banned]
    assert offenders == []
