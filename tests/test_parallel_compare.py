"""``compare(jobs=2)``: both runs at once in worker processes, with the figures of ``jobs=1``.

The online protocol checker (conftest) is attached in this process only, so it watches the
``jobs=1`` runs; the parallel runs are held to those by exact equality (figures, task timings,
command traces byte for byte).
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from gradpimsim.cli import main
from gradpimsim.graph.io import save_graph
from gradpimsim.graph.schema import GraphError
from gradpimsim.system.compare import compare
from gradpimsim.system.config import RunConfig
from gradpimsim.system.results import CompareResult
from gradpimsim.trace.cmdtrace import CommandTraceFile, read_command_trace
from workloads.mlp import mlp

#: Figures that measure the machine, not the simulation: they may differ between two runs.
VOLATILE = ("wall_s", "peak_rss_mb")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("wl") / "tiny.json"
    save_graph(mlp(batch=8, in_features=96, hidden=(160,), classes=24), path)
    return str(path)


def _figures(res: CompareResult | dict[str, Any]) -> dict[str, Any]:
    data = res.to_dict() if isinstance(res, CompareResult) else res
    data.pop("gradpimsim", None)  # which build wrote it and when: not a figure
    for run in data["runs"].values():
        for key in VOLATILE:
            run.pop(key)
    return data


def _children() -> set[int]:
    """Processes whose parent is this one (zombies included), except multiprocessing's
    resource tracker, which is started once per process and outlives every call."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and b"resource_tracker" not in cmdline:
            out.add(int(stat.parent.name))
    return out


class Recorder:
    """Progress hooks that log every call, per run."""

    def __init__(self) -> None:
        self.calls: dict[str, list[tuple[str, int, int]]] = {"baseline": [], "pim": []}

    def __call__(self, name: str) -> tuple[Any, None]:
        def hook(rec: Any, done: int, total: int) -> None:
            self.calls[name].append((rec.task, done, total))
        return hook, None


def test_parallel_equals_sequential_functional() -> None:
    """Same figures, task records, verified weights and progress calls; the DRAM contents
    (functional mode) come back from the workers to be compared."""
    run = RunConfig(workload="mlp-small", functional=True)
    seq_hooks, par_hooks = Recorder(), Recorder()
    seq = compare(run, per_run=seq_hooks, jobs=1)
    before = _children()
    par = compare(run, per_run=par_hooks, jobs=2)
    assert _children() <= before, "a worker process was left behind"
    assert _figures(par) == _figures(seq)
    assert par.baseline.tasks == seq.baseline.tasks
    assert par.pim is not None and seq.pim is not None and par.pim.tasks == seq.pim.tasks
    assert par.weights_match is True and seq.weights_match is True
    assert par.baseline.verified and par.pim.verified
    assert par_hooks.calls == seq_hooks.calls and len(par_hooks.calls["pim"]) > 10
    for r in (*par.runs().values(), *seq.runs().values()):
        assert r.peak_rss_mb is not None and r.peak_rss_mb > 10


def test_cli_parallel_equals_sequential(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """``--jobs 2`` prints the table of ``--jobs 1``, writes the same files, and the workers
    write the command traces themselves."""
    outputs = {}
    for jobs in (1, 2):
        d = tmp_path / f"j{jobs}"
        d.mkdir()
        assert main(["compare", "mlp-small", "--jobs", str(jobs), "--out", str(d),
                     "--cmd-trace", str(d / "cmds.txt.gz")]) == 0
        text = capsys.readouterr().out
        table = text.split("└")[0]  # the file list and wall time that follow may differ
        outputs[jobs] = [line for line in table.splitlines() if "wall time" not in line]
        assert f"wrote{d / 'cmds.pim.txt.gz'}" in "".join(text.split())  # however rich wraps
        assert not list(d.glob(".partial.*"))
    assert outputs[1] == outputs[2]
    j1, j2 = tmp_path / "j1", tmp_path / "j2"
    for name in ("cmds.baseline.txt.gz", "cmds.pim.txt.gz"):  # the gzip header has a time
        assert gzip.decompress((j1 / name).read_bytes()) == \
            gzip.decompress((j2 / name).read_bytes()), name
    for name in ("tasks.csv", "timeline.json"):
        assert (j1 / name).read_bytes() == (j2 / name).read_bytes(), name
    assert _figures(json.loads((j1 / "results.json").read_text())) == \
        _figures(json.loads((j2 / "results.json").read_text()))


def test_unpicklable_sink_runs_sequentially(tiny: str) -> None:
    """A lambda cannot reach a worker: the runs go one after the other, with a warning."""
    seen: list[int] = []

    def per_run(name: str) -> tuple[None, Any]:
        return None, lambda ch: (lambda cmd: seen.append(ch))

    with pytest.warns(RuntimeWarning, match="does not pickle"):
        res = compare(RunConfig(workload=tiny), per_run=per_run, jobs=2)
    assert seen and not res.interrupted
    assert _figures(res) == _figures(compare(RunConfig(workload=tiny)))


def test_command_trace_file_travels_before_use(tmp_path: Path) -> None:
    """The CLI's trace sink pickles until it opens its file, and appears whole on close."""
    from gradpimsim.system.simulate import simulate

    sinks = CommandTraceFile(tmp_path / "c.txt")
    copy = pickle.loads(pickle.dumps(sinks))
    simulate(RunConfig(workload="mlp-small", pim=True), sink_factory=copy)
    assert copy.partial_path.exists() and not copy.path.exists()
    with pytest.raises(TypeError, match="being written"):
        pickle.dumps(copy)
    assert copy.close() and not copy.partial_path.exists()
    assert sinks.close() is False  # the unused original has nothing to finish
    assert sum(1 for _ in read_command_trace(copy.path)) > 1000


def test_speedup_needs_both_runs_whole(tiny: str) -> None:
    """In parallel the PIM run may finish while the baseline is interrupted: no speedup."""
    res = compare(RunConfig(workload=tiny))
    assert res.speedup is not None
    cut = CompareResult(res.config, dataclasses.replace(res.baseline, interrupted=True),
                        res.pim)
    assert cut.interrupted and cut.speedup is None and cut.to_dict()["speedup"] is None


def test_worker_error_is_raised_here() -> None:
    """An input error in a worker is raised in the caller, as its own type and message."""
    before = _children()
    with pytest.raises(GraphError, match="unknown workload 'no-such-model'"):
        compare(RunConfig(workload="no-such-model"), jobs=2)
    assert _children() <= before


def test_jobs_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "mlp-small", "--jobs", "0"]) == 2
    err = capsys.readouterr().err
    assert "--jobs must be at least 1" in err and "Traceback" not in err
    with pytest.raises(ValueError, match="jobs"):
        compare(RunConfig(workload="mlp-small"), jobs=0)


def test_hook_interrupt_stops_both_workers() -> None:
    """A progress hook raising KeyboardInterrupt stops both runs, as in one process: each
    worker returns what it finished, marked interrupted, and none is left running."""
    done_by_run = {"baseline": 0, "pim": 0}

    def per_run(name: str) -> tuple[Any, None]:
        def stop(rec: Any, done: int, total: int) -> None:
            first = min(done_by_run.values()) < 3
            done_by_run[name] = done
            if first and min(done_by_run.values()) >= 3:  # both are well under way
                raise KeyboardInterrupt
        return stop, None

    before = _children()
    res = compare(RunConfig(workload="resnet18", batch=1), per_run=per_run, jobs=2)
    assert _children() <= before
    assert res.interrupted and res.speedup is None
    assert res.pim is not None and res.baseline.interrupted and res.pim.interrupted
    for r in (res.baseline, res.pim):
        assert 0 < sum(1 for t in r.tasks if t.end >= 0) < len(r.tasks)
    assert res.to_dict()["runs"]["pim"]["interrupted"] is True


#: Runs the CLI, then prints the worker processes it left (its children bar the tracker).
_CLI = f"""
import json, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from gradpimsim.cli import main
from test_parallel_compare import _children
code = main(sys.argv[1:])
print(json.dumps({{"left": sorted(_children())}}))
sys.exit(code)
"""


def test_ctrl_c_stops_both_workers(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the whole process group) while both workers simulate: exit 130, the
    partial figures of both runs are printed and saved, no traceback, no worker left."""
    out, trace = tmp_path / "out", tmp_path / "cmds.txt"
    proc = subprocess.Popen(
        [sys.executable, "-c", _CLI, "compare", "resnet18", "--batch", "1", "--jobs", "2",
         "--out", str(out), "--cmd-trace", str(trace)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        def partial() -> list[Path]:  # (temporary names carry a random token)
            return [p for name in ("baseline", "pim")
                    for p in tmp_path.glob(f".partial.*.cmds.{name}.txt")]

        deadline = time.monotonic() + 120
        while len(partial()) < 2 or not all(p.stat().st_size > 0 for p in partial()):
            assert proc.poll() is None and time.monotonic() < deadline, "never started"
            time.sleep(0.05)  # both are simulating: each has written commands
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr + stdout
    assert "interrupted" in stdout and "INTERRUPTED" in stdout
    assert json.loads(stdout.strip().splitlines()[-1]) == {"left": []}
    data = json.loads((out / "results.json").read_text())
    assert data["speedup"] is None
    for r in data["runs"].values():
        assert r["interrupted"] is True and r["tasks_done"] < r["tasks_total"]
    assert (tmp_path / "cmds.pim.txt").stat().st_size > 0
    assert not list(tmp_path.glob(".partial.*"))


def test_workers_attach_the_online_checker(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the variable the suite sets, a worker's controllers get a raising checker."""
    from gradpimsim.config import preset
    from gradpimsim.controller import controller
    from gradpimsim.controller.controller import ChannelController
    from gradpimsim.system import parallel

    before = list(controller.OBSERVER_FACTORIES)
    monkeypatch.setenv(parallel.ONLINE_CHECK_ENV, "1")
    checkers = parallel._online_checkers()
    try:
        ChannelController(preset("ddr4-2400-x8"))
        assert len(checkers) == 1 and checkers[0].finish().ok
        monkeypatch.delenv(parallel.ONLINE_CHECK_ENV)
        assert parallel._online_checkers() == []
    finally:
        controller.OBSERVER_FACTORIES[:] = before


def test_auto_jobs_keeps_small_workloads_in_process() -> None:
    from gradpimsim.system.compare import auto_jobs

    assert auto_jobs(RunConfig(workload="mlp-small")) == 1
    assert auto_jobs(RunConfig(workload="resnet18", batch=1)) == (
        2 if (os.cpu_count() or 1) >= 2 else 1)
