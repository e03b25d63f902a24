"""Plots from a synthetic results JSON and sweep tables; bad input exits 2.

The sweep figures' values are read back from the figure objects (the results figures' are in
``test_figures.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gradpimsim.cli import main
from gradpimsim.config import ConfigError
from gradpimsim.stats.plots import (
    plot_bandwidth,
    plot_energy_breakdown,
    plot_phase_breakdown,
    plot_sweep_speedup,
    plot_update_bench_speedup,
    speedup_pairs,
)
from gradpimsim.sweep import ResultStore, point_key


def _run(pim: bool, cycles: int) -> dict:
    fwd, bwd = cycles * 3 // 10, cycles * 5 // 10
    energy = {"act": 10.0, "read": 20.0, "write": 15.0, "refresh": 2.0, "background": 30.0,
              "io": 0.0 if pim else 25.0, "pim_column": 12.0 if pim else 0.0,
              "pim_op": 3.0 if pim else 0.0}
    energy["total"] = sum(energy.values())
    return {
        "pim": pim, "cycles": cycles, "time_us": cycles * 0.833 / 1000, "tCK_ns": 0.833,
        "phases": {"forward": {"start": 0, "end": fwd, "cycles": fwd},
                   "backward": {"start": fwd, "end": fwd + bwd, "cycles": bwd},
                   "update": {"start": fwd + bwd, "end": cycles, "cycles": cycles - fwd - bwd}},
        "dram": {"read_bytes": 10**6, "write_bytes": 5 * 10**5, "bandwidth_gbs": 12.5,
                 "utilization": 0.6, "row_hit_rate": 0.8, "commands": {"ACT": 100, "RD": 900}},
        "pim_units": {"utilization": 0.5 if pim else 0.0, "column_ops": 64 if pim else 0,
                      "ops": 32 if pim else 0},
        "energy_nj": energy,
        "energy_by_phase_nj": {p: {k: v / 3 for k, v in energy.items()}
                               for p in ("forward", "backward", "update")},
        "bandwidth": {"bin_cycles": 1000,
                      "channels": [[(i * 37 + c * 11) % 19000 for i in range(cycles // 1000)]
                                   for c in range(2)]},
    }


def _results(tmp_path: Path, runs: tuple[str, ...] = ("baseline", "pim")) -> Path:
    data = {"schema": "gradpimsim.results/1", "workload": "mlp-tiny", "config": {},
            "speedup": 1.25 if len(runs) == 2 else None,
            "runs": {r: _run(r == "pim", 40_000 if r == "pim" else 50_000) for r in runs}}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    return path


def _iteration_table(tmp_path: Path) -> Path:
    store = ResultStore(tmp_path / "iter.csv")
    for workload, base in (("resnet18", 1000), ("bert-tiny", 800)):
        for batch in (8, 16):
            for pim in (False, True):
                params = {"workload": workload, "batch": batch, "memory": "ddr4-2400",
                          "pim": pim}
                cycles = base * batch // (2 if pim else 1)
                store.append({"key": point_key("iteration", params), "kind": "iteration",
                              "version": "0.1.0", "status": "ok", "error": "", "wall_s": 0.1,
                              **params, "cycles": cycles})
    return store.path


def test_results_plots_are_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _results(tmp_path)
    for fn in (plot_phase_breakdown, plot_bandwidth, plot_energy_breakdown):
        target = tmp_path / f"{fn.__name__}.png"
        fig = fn(path, target)
        assert fig.axes and target.stat().st_size > 1000
    out = tmp_path / "plots"
    assert main(["plot", str(path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out.split()
    names = sorted(Path(p).name for p in printed)
    assert names == sorted(f"results-{n}.{f}" for n in ("bandwidth", "energy", "phases")
                           for f in ("png", "pdf"))
    assert all(Path(p).stat().st_size > 1000 for p in printed)


def test_results_with_one_run_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _results(tmp_path, runs=("pim",))
    assert main(["plot", str(path), "--formats", "png"]) == 0  # default: beside the input
    assert len(capsys.readouterr().out.split()) == 3
    assert (tmp_path / "results-phases.png").stat().st_size > 0


def test_sweep_speedup_pairs_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = _iteration_table(tmp_path)
    pairs = speedup_pairs(table)
    assert len(pairs) == 4 and (pairs["speedup"] == 2.0).all()
    fig = plot_sweep_speedup(table, tmp_path / "s.png")
    assert fig.axes and (tmp_path / "s.png").stat().st_size > 1000
    assert main(["plot", str(table), "--out", str(tmp_path / "p"), "--formats", "png"]) == 0
    (printed,) = capsys.readouterr().out.split()
    assert Path(printed).name == "iter-speedup.png" and Path(printed).stat().st_size > 1000


@pytest.mark.parametrize(("content", "message"), [
    ("not,a,table\n1,2,3\n", "neither a results JSON"),
    ('{"schema": "other/1", "runs": {}}', "expected 'gradpimsim.results/1'"),
    ('{"schema": "gradpimsim.results/1", "workload": "x", "runs": {}}', "'runs' must hold"),
    ("{broken json", "not a readable JSON"),
])
def test_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str,
                           message: str) -> None:
    path = tmp_path / "input.txt"
    path.write_text(content)
    assert main(["plot", str(path), "--out", str(tmp_path)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert message in err and "Traceback" not in err
    assert not list(tmp_path.glob("*.png"))


def test_missing_file_and_unpaired_sweep(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plot", str(tmp_path / "nope.csv")]) == 2
    assert "no such file" in " ".join(capsys.readouterr().err.split())
    store = ResultStore(tmp_path / "only-pim.csv")
    store.append({"key": "k", "kind": "iteration", "version": "0.1.0", "status": "ok",
                  "error": "", "wall_s": 0.1, "workload": "w", "pim": True, "cycles": 5})
    with pytest.raises(ConfigError, match="pim = true and pim = false"):
        plot_sweep_speedup(store.path)
    assert main(["plot", str(store.path)]) == 2


def test_sweep_speedup_bars_show_each_pair_s_speedup() -> None:
    """The bars read back from the figure: one per (batch, workload), its height cycles without
    PIM / cycles with PIM of that pair (written here: 1000/400, 1000/500, 900/300, 900/600),
    placed over its workload's tick."""
    import pandas as pd

    rows = []
    cycles = {("a", 8): (1000, 400), ("a", 16): (1000, 500), ("b", 8): (900, 300),
              ("b", 16): (900, 600)}
    for (workload, batch), (off, on) in cycles.items():
        for pim, c in ((False, off), (True, on)):
            rows.append({"kind": "iteration", "status": "ok", "workload": workload,
                         "batch": batch, "memory": "ddr4-2400", "pim": pim, "cycles": c})
    fig = plot_sweep_speedup(pd.DataFrame(rows))
    ax = fig.axes[0]
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    got = {}
    for p in ax.patches:
        if (p.get_gid() or "").startswith("speedup:"):
            workload = ticks[round(p.get_x() + p.get_width() / 2)]
            got[(workload, int(p.get_gid().split(":")[1]))] = p.get_height()
    assert got == pytest.approx({("a", 8): 2.5, ("a", 16): 2.0, ("b", 8): 3.0, ("b", 16): 1.5})


def test_update_bench_speedup_line_is_the_table() -> None:
    """update-bench: the line's points are (params, speedup) of the table, in params order."""
    import pandas as pd

    df = pd.DataFrame({"kind": "update-bench", "status": "ok", "params": [4096, 1024, 2048],
                       "speedup": [3.0, 1.5, 2.25]})
    (line,) = [ln for ln in plot_update_bench_speedup(df).axes[0].get_lines()
               if len(ln.get_xdata()) == 3]
    assert list(line.get_xdata()) == [1024, 2048, 4096]
    assert list(line.get_ydata()) == [1.5, 2.25, 3.0]
