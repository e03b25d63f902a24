"""The house rules: which package may import which (docs/architecture.md), and no import loops.

Every import in ``gradpimsim`` (top-level, inside functions, and type-only ones) must run down
the layers: a module may import its own package or a lower layer, never a peer package or a
higher one.  Import loops are looked for over the imports that run (type-only ones excluded),
function-level imports included: a lazy import that closes a loop is still a loop.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import gradpimsim

PACKAGE = Path(gradpimsim.__file__).parent

#: Layers, lowest first.  Packages on one layer are peers: neither imports the other.
LAYERS: list[set[str]] = [
    {"errors"},  # exceptions and one-line messages every layer raises
    {"options", "io_safety"},  # typed options; safe reads and writes
    {"config", "runtime"},  # configuration as data; a process-level helper
    {"dram", "graph"},  # the device; workload graphs
    {"trace"},  # command and request trace formats (an edge: replay sits with system)
    {"controller", "pim", "host", "checker", "hic"},  # the host side, the PIM side; checker
                                                      # beside; the PCM comparison model
    {"arbiter", "stats", "gradpimsim", "bounds"},  # above both sides; reports (edge); the
                                                   # package root; up-front size estimates
    {"system", "bench"},  # a full iteration; the update bench
    {"sweep", "recast"},  # many runs of either; a recasting schedule's runs
    {"cli"},  # every command-line front end
]

#: Modules that sit on another layer than their package (the edges, and the front ends).
MODULE_GROUP: dict[str, str] = {
    "gradpimsim.trace.replay": "system",  # drives controllers like the full system does
    "gradpimsim.stats.plots": "cli",  # reads stored sweep results to draw them
}

#: Where a command-line front end is: every ``cli`` module, and ``stats/plot_cli.py``.
CLI_MODULES = {"gradpimsim.cli", "gradpimsim.__main__", "gradpimsim.stats.plot_cli"}

RANK = {group: i for i, groups in enumerate(LAYERS) for group in groups}


def group_of(module: str) -> str:
    """The layer group of a module: its package, or an override."""
    if module in MODULE_GROUP:
        return MODULE_GROUP[module]
    if module in CLI_MODULES or module.endswith(".cli"):
        return "cli"
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "gradpimsim"


def allowed(importer: str, imported: str) -> bool:
    """May ``importer`` import ``imported``?  Within its own group, or a lower layer."""
    a, b = group_of(importer), group_of(imported)
    return a == b or RANK[b] < RANK[a]


def module_of(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


class Import:
    """One import statement's target, and whether it only serves type checking."""

    def __init__(self, target: str, typing_only: bool, line: int) -> None:
        self.target = target
        self.typing_only = typing_only
        self.line = line


def scan(source: str, module: str, is_package: bool, known: set[str]) -> list[Import]:
    """The ``gradpimsim`` modules a source file imports (relative imports resolved; ``from X
    import Y`` is the module ``X.Y`` when that is a module, else ``X``)."""
    tree = ast.parse(source)
    typing_lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in node.body:
                for inner in ast.walk(sub):
                    if hasattr(inner, "lineno"):
                        typing_lines.add(inner.lineno)
    base = module.split(".") if is_package else module.split(".")[:-1]
    out: list[Import] = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                prefix = base[: len(base) - (node.level - 1)]
                mod = ".".join(prefix + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for alias in node.names:
                sub = f"{mod}.{alias.name}"
                targets.append(sub if sub in known else mod)
        for target in dict.fromkeys(targets):
            if target == "gradpimsim" or target.startswith("gradpimsim."):
                out.append(Import(target, node.lineno in typing_lines, node.lineno))
    return out


def import_graph(root: Path = PACKAGE) -> dict[str, list[Import]]:
    files = sorted(root.rglob("*.py"))
    known = {module_of(f, root) for f in files}
    return {module_of(f, root): scan(f.read_text(), module_of(f, root), f.name == "__init__.py",
                                     known)
            for f in files}


def wrong_way(graph: dict[str, list[Import]]) -> list[str]:
    return [f"{mod}:{imp.line} imports {imp.target} ({group_of(mod)} -> {group_of(imp.target)})"
            for mod, imps in graph.items() for imp in imps if not allowed(mod, imp.target)]


def loops(graph: dict[str, list[Import]]) -> list[list[str]]:
    """Import loops among the imports that run: one per strongly connected set of modules."""
    edges = {m: sorted({i.target for i in imps if not i.typing_only and i.target in graph
                        and i.target != m}) for m, imps in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_every_group_has_a_layer() -> None:
    groups = {group_of(m) for m in import_graph()}
    assert groups <= set(RANK), f"packages without a layer: {groups - set(RANK)}"


def test_every_import_runs_down_the_layers() -> None:
    bad = wrong_way(import_graph())
    assert not bad, "imports against the layers:\n" + "\n".join(bad)


def test_no_import_loops() -> None:
    found = loops(import_graph())
    assert not found, f"import loops: {found}"


def test_the_checker_stays_beside_the_controller() -> None:
    """The checker judges the controller: nothing of controller/ (or above) may reach it, and
    it reaches only the configuration, the command vocabulary and the trace reader."""
    graph = import_graph()
    for mod, imps in graph.items():
        if group_of(mod) == "checker":
            for imp in imps:
                assert group_of(imp.target) in ("checker", "config", "dram", "trace"), \
                    (mod, imp.target)
                if group_of(imp.target) in ("dram", "trace"):
                    assert imp.target in ("gradpimsim.dram.commands",
                                          "gradpimsim.trace.cmdtrace"), (mod, imp.target)


@pytest.mark.parametrize(("module", "source"), [
    # the device reaching up into the controller
    ("gradpimsim.dram.device", "from gradpimsim.controller.controller import ChannelController"),
    # a peer: the PIM side importing the host controller, even lazily
    ("gradpimsim.pim.channel", "def f():\n    from gradpimsim.controller import mux\n"),
    # the simulator importing a command-line front end
    ("gradpimsim.system.simulate", "from gradpimsim.graph.cli import load_any"),
    # configuration importing anything above it, type-only included
    ("gradpimsim.config.pim", "from typing import TYPE_CHECKING\n"
                              "if TYPE_CHECKING:\n    from gradpimsim.dram import codes\n"),
    # a relative import up to a peer
    ("gradpimsim.host.npu", "from ..pim import unit"),
])
def test_a_wrong_way_import_is_caught(module: str, source: str) -> None:
    graph = import_graph()
    known = set(graph)
    graph[module] = scan(source, module, False, known)
    assert wrong_way(graph), f"{module}: {source!r} was not caught"


def test_a_loop_is_caught() -> None:
    graph = import_graph()
    known = set(graph)
    # a lazy import back from the registry's spec module to the runner (the old loop)
    graph["gradpimsim.sweep.spec"] = graph["gradpimsim.sweep.spec"] + scan(
        "def kinds():\n    from gradpimsim.sweep.runner import known_kinds\n",
        "gradpimsim.sweep.spec", False, known)
    assert loops(graph) == [["gradpimsim.sweep.runner", "gradpimsim.sweep.spec"]]


def test_type_only_imports_close_no_loop() -> None:
    graph = {"gradpimsim.a.x": [Import("gradpimsim.a.y", False, 1)],
             "gradpimsim.a.y": [Import("gradpimsim.a.x", True, 1)]}
    assert loops(graph) == []
    graph["gradpimsim.a.y"][0].typing_only = False
    assert loops(graph) == [["gradpimsim.a.x", "gradpimsim.a.y"]]
