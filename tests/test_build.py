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


def setup_constant(name: str) -> object:
    """A constant that setup.py defines, read without running setup.py."""
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == name:
            return ast.literal_eval(node.value)
    raise AssertionError(f"setup.py defines no {name}")


def hot_modules() -> list[str]:
    return list(setup_constant("HOT_MODULES"))  # type: ignore[call-overload]


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


@pytest.mark.no_checker
def test_profile_guided_training_names_a_valid_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """The profile-guided build's training run (``PGO_TRAINING``) must keep working: if it
    fails, ``pip install .`` quietly installs the plain build, 5-10% slower.  Everything it
    names (imports, run options, workload) is resolved here; the simulation itself is what the
    rest of the suite tests."""
    if not (REPO / "setup.py").is_file():
        pytest.skip("not run from a source checkout")
    import gradpimsim.system.simulate  # noqa: F401 - the package exports a function of that name
    from gradpimsim.graph.loader import load_any

    sim = sys.modules["gradpimsim.system.simulate"]
    from gradpimsim.trace import replay

    runs = []

    def resolve(run: object) -> None:
        run.memory_config(), run.optimizer_config(), run.precision_policy()  # type: ignore[attr-defined]
        load_any(run.workload, batch=run.batch, seq_len=run.seq_len)  # type: ignore[attr-defined]
        runs.append(run.pim)  # type: ignore[attr-defined]

    replayed: list[tuple[str, int, int]] = []

    def replay_head(path: str, cfg: object) -> None:
        """The trace must parse and fit the configuration (the replay is tested elsewhere)."""
        from gradpimsim.dram.address_map import AddressMap
        from gradpimsim.trace.requests import read_request_trace

        trace = read_request_trace(path)
        assert int(trace.addr.max()) < AddressMap(cfg).capacity  # type: ignore[arg-type]
        name = path.rsplit("/", 1)[-1].removesuffix(".trace")
        replayed.append((name, len(trace.addr), int(trace.is_write.sum())))

    monkeypatch.setattr(sim, "simulate", resolve)
    monkeypatch.setattr(replay, "replay_trace", replay_head)
    exec(str(setup_constant("PGO_TRAINING")), {})
    assert runs == [False, True]
    assert [(name, n) for name, n, _ in replayed] == [("seq", 50000), ("random", 50000),
                                                       ("mixed", 50000)]
    assert replayed[0][2] == 0 and replayed[1][2] > 0  # sequential reads; random has writes


def test_address_map_survives_a_process_boundary() -> None:
    """A functional run's DRAM store comes back from its worker process with its address map.

    Compiled (mypyc), a native class cannot be rebuilt field by field the way pickle rebuilds a
    plain one (it failed with "__init__() missing required argument 'cfg'"), so the map pickles
    as its configuration.  Under the installed build (``.ci/test-installed``) this is the test
    that fails without ``AddressMap.__reduce__``; in the source tree it guards the result."""
    import pickle

    from gradpimsim.config import preset
    from gradpimsim.dram.address_map import AddressMap

    cfg = preset("ddr4-2400-x8-2r")
    amap = AddressMap(cfg)
    back = pickle.loads(pickle.dumps(amap))
    assert type(back) is AddressMap and back.cfg == cfg
    for addr in (0, 64, 123_456_789 * 64, amap.capacity - 64):
        assert back.decode(addr) == amap.decode(addr)


def test_frozen_pim_records_survive_a_process_boundary() -> None:
    """A run's update targets (and the recipes of its programs) are frozen dataclasses in
    compiled modules: pickle must rebuild them through their constructors (compiled, it failed
    with "cannot assign to field 'name'")."""
    import pickle

    from gradpimsim.config.training import OptimizerConfig
    from gradpimsim.pim.program import UpdateTarget
    from gradpimsim.pim.recipes import Recipe

    target = UpdateTarget("fc.weight", 1024, {"param": [(0, 4096)]})
    assert pickle.loads(pickle.dumps(target)) == target
    recipe = Recipe(OptimizerConfig(), "fp32", "fp16", False, True, {"lr": 0}, "update")
    assert pickle.loads(pickle.dumps(recipe)) == recipe
