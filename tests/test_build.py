"""The default install compiles setup.py's HOT_MODULES with mypyc, which needs them to type-check.

A type error there does not fail ``pip install .``: it silently installs pure Python (about half
as fast).  This test catches it where CI sees it.
"""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.conftest import REPO


def hot_modules() -> list[str]:
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "HOT_MODULES":
            return list(ast.literal_eval(node.value))
    raise AssertionError("setup.py defines no HOT_MODULES")


@pytest.mark.no_checker
def test_hot_modules_type_check_for_mypyc() -> None:
    pytest.importorskip("mypy")
    if not (REPO / "setup.py").is_file():
        pytest.skip("not run from a source checkout")
    mods = hot_modules()
    assert all((REPO / m).is_file() for m in mods), mods
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--ignore-missing-imports", "--no-incremental", *mods],
        cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-1000:]
