"""Modules with one job and functions that fit on a screen: no module over 400 lines, no function over 60."""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import ROOT

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def oversized(paths: list[Path]) -> list[str]:
    """Each module and function over its limit, as `path: lines` or `path:function: lines`."""
    found = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        name = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
        if (lines := len(text.splitlines())) > MAX_MODULE_LINES:
            found.append(f"{name}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(f"{name}:{node.name}: {length} lines")
    return found


def test_library_and_stages_keep_the_limits():
    assert oversized(sorted((ROOT / "src").rglob("*.py")) + sorted((ROOT / "stages").glob("*.py"))) == []


def test_the_check_counts_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    path = tmp_path / "long.py"
    path.write_text(f"def long():\n{body}\n")
    assert oversized([path]) == [f"long.py:long: {MAX_FUNCTION_LINES + 1} lines"]
