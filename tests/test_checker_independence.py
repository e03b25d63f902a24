"""The checker judges the controller, so it must not share code with it (project issue 3)."""

from __future__ import annotations

import ast
from pathlib import Path

import gradpimsim.checker

ALLOWED = {
    "gradpimsim.config",
    "gradpimsim.dram.commands",
    "gradpimsim.trace.cmdtrace",
    # the command line's plumbing (messages, option types, safe output files): no timing code
    "gradpimsim.errors",
    "gradpimsim.io_safety",
    "gradpimsim.options",
}
CHECKER_DIR = Path(gradpimsim.checker.__file__).parent


def _imports(path: Path) -> list[str]:
    """Absolute module names imported by a file (relative imports resolved in the package)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ["gradpimsim", "checker"][: 2 - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from gradpimsim.config import pim` imports gradpimsim.config.pim (allowed), while
            # `from gradpimsim import dram` smuggles in a forbidden package through a name.
            names.extend(module if _allowed(module) else f"{module}.{alias.name}"
                         for alias in node.names)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
            names.append("<dynamic import>")
    return names


def _allowed(name: str) -> bool:
    if not name.startswith("gradpimsim"):
        return name != "<dynamic import>"
    if name == "gradpimsim.checker" or name.startswith("gradpimsim.checker."):
        return True
    return any(name == a or name.startswith(a + ".") for a in ALLOWED)


def test_checker_modules_import_only_allowed_parts() -> None:
    files = sorted(CHECKER_DIR.glob("*.py"))
    assert len(files) >= 6
    bad = {f.name: n for f in files for n in _imports(f) if not _allowed(n)}
    assert not bad, f"checker modules import forbidden modules: {bad}"


def test_import_scanner_catches_forbidden_imports(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("from gradpimsim.dram.timing import X\nimport gradpimsim.controller.ctl\n"
                      "from gradpimsim import dram\nfrom gradpimsim.pim import unit\n")
    assert [n for n in _imports(sample) if not _allowed(n)] == [
        "gradpimsim.dram.timing.X", "gradpimsim.controller.ctl", "gradpimsim.dram",
        "gradpimsim.pim.unit"]
    allowed = tmp_path / "y.py"
    allowed.write_text("from gradpimsim.config import pim\nfrom ..dram.commands import Cmd\n"
                       "from .core import ProtocolChecker\nimport numpy\n")
    assert all(_allowed(n) for n in _imports(allowed)), _imports(allowed)
