"""Handler modules stand alone: none imports another, and each imports on its own in a fresh interpreter.

Shared pieces live in neutral modules (bot/selection.py, bot/guards.py, bot/callbacks.py...);
an import between feature handlers is how the bots ↔ backtest ↔ simulate cycle started.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HANDLERS = ROOT / "bot" / "handlers"
MODULES = sorted(p.stem for p in HANDLERS.glob("*.py") if p.stem != "__init__")


def _imported(tree: ast.AST) -> set[str]:
    """Every module an import statement names, function-level imports included."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom):  # relative: `from . import x` inside bot.handlers
            names.update(f"bot.handlers.{alias.name}" for alias in node.names)
    return names


def test_the_handler_modules_are_found() -> None:
    assert {"automaton", "backtest", "bots", "portfolio", "settings", "simulate", "start"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_no_handler_module_imports_another(module: str) -> None:
    tree = ast.parse((HANDLERS / f"{module}.py").read_text(encoding="utf-8"))
    others = {f"bot.handlers.{m}" for m in MODULES if m != module}
    assert _imported(tree) & others == set()


@pytest.mark.parametrize("module", MODULES)
def test_each_handler_module_imports_alone_in_a_fresh_interpreter(module: str) -> None:
    result = subprocess.run([sys.executable, "-c", f"import bot.handlers.{module}"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
