"""Each figure of a comparison, read back from the matplotlib objects and checked against the
results it was drawn from: phases laid out in time (not stacked), stacks that add up, units,
titles, legends that cover nothing, and the files' formats and marks."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from matplotlib.collections import PolyCollection, QuadMesh
from matplotlib.patches import Rectangle

from gradpimsim.cli import main
from gradpimsim.config import ConfigError
from gradpimsim.host.traffic import CLASSES
from gradpimsim.io_safety import is_ours
from gradpimsim.stats.energy import COMPONENTS
from gradpimsim.stats.run_plots import (
    plot_bandwidth,
    plot_energy_breakdown,
    plot_overlap,
    plot_phase_timeline,
    plot_traffic_breakdown,
)
from gradpimsim.system import RunConfig, compare

MIB = 2**20


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    return compare(RunConfig(workload="mlp-tiny", batch=4, channels=2)).to_dict()


def overlapping() -> dict[str, Any]:
    """A comparison whose phases overlap as real ones do (the update starts during backward),
    so the sum of the phase spans exceeds the iteration: 300 + 500 + 400 > 1000 cycles."""
    def run(pim: bool, cycles: int) -> dict[str, Any]:
        return {"pim": pim, "cycles": cycles, "tCK_ns": 1.25,
                "phases": {"forward": {"start": 0, "end": 300, "cycles": 300},
                           "backward": {"start": 290, "end": 790, "cycles": 500},
                           "update": {"start": 600 if pim else 780, "end": cycles,
                                      "cycles": cycles - (600 if pim else 780)}},
                "memory": {"name": "ddr4-2400-x8", "channels": 1, "ranks": 1},
                "energy_nj": {"act": 1.0, "total": 1.0}}
    return {"schema": "gradpimsim.results/1", "workload": "net", "speedup": 1200 / 1000,
            "config": {"workload": "net", "batch": 2, "memory": "ddr4-2400",
                       "optimizer": "momentum", "precision": "mixed", "npu": "small"},
            "runs": {"baseline": run(False, 1200), "pim": run(True, 1000)}}


def boxes(ax: Any) -> list[tuple[float, float, float, float, str]]:
    """Every filled box drawn: (x0, x1, y0, y1, gid), from bars and broken_barh spans."""
    out = []
    for p in ax.patches:
        if isinstance(p, Rectangle):
            out.append((p.get_x(), p.get_x() + p.get_width(), p.get_y(),
                        p.get_y() + p.get_height(), p.get_gid() or ""))
    for c in ax.collections:
        if isinstance(c, PolyCollection):
            for path in c.get_paths():
                xs, ys = path.vertices[:, 0], path.vertices[:, 1]
                out.append((xs.min(), xs.max(), ys.min(), ys.max(), c.get_gid() or ""))
    return out


def legend_covers_nothing(fig: Any) -> None:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = [a.get_legend() for a in fig.axes if a.get_legend()] + fig.legends
    for leg in legends:
        box = leg.get_window_extent(renderer)
        for ax in fig.axes:
            if ax.get_label() == "<colorbar>":
                continue
            assert not box.overlaps(ax.get_window_extent(renderer)), "legend over an axes"


def us(run: dict[str, Any], cycles: float) -> float:
    return cycles * run["tCK_ns"] / 1000.0


@pytest.mark.parametrize("source", ["real", "overlapping"])
def test_phases_are_laid_out_in_time(source: str, data: dict[str, Any]) -> None:
    d = data if source == "real" else overlapping()
    fig = plot_phase_timeline(d)
    ax = fig.axes[0]
    time_axis = "x" if "time" in ax.get_xlabel() else "y"
    drawn = boxes(ax)
    extent = [(b[0], b[1]) if time_axis == "x" else (b[2], b[3]) for b in drawn]
    times = {name: us(r, r["cycles"]) for name, r in d["runs"].items()}
    # the picture is as long as the longest iteration, not the sum of its phases
    assert max(e[1] for e in extent) == pytest.approx(max(times.values()))
    for name, r in d["runs"].items():
        want = {"iteration": (0.0, times[name])}
        want.update({p: (us(r, v["start"]), us(r, v["end"])) for p, v in r["phases"].items()})
        for lane, (a, b) in want.items():
            assert any(e == pytest.approx((a, b)) for e in extent), (name, lane)
    # its lengths give the measured speedup
    lengths = {b[4]: b[1] - b[0] for b in drawn}
    assert lengths["baseline:iteration"] / lengths["pim:iteration"] == pytest.approx(
        d["speedup"], rel=1e-6)
    assert d["workload"] in ax.get_title() and "ddr4-2400" in ax.get_title()
    assert "µs" in (ax.get_xlabel() if time_axis == "x" else ax.get_ylabel())


def test_energy_stacks_the_components_of_the_total(data: dict[str, Any]) -> None:
    fig = plot_energy_breakdown(data)
    ax = fig.axes[0]
    drawn = {b[4]: b for b in boxes(ax) if b[4]}
    for name, r in data["runs"].items():
        e = r["energy_nj"]
        top = 0.0
        for comp in COMPONENTS:
            if not e.get(comp):
                continue
            x0, x1, y0, y1, _ = drawn[f"{name}:{comp}"]
            assert y0 == pytest.approx(top) and y1 - y0 == pytest.approx(e[comp] / 1e3)
            top = y1
        assert top == pytest.approx(e["total"] / 1e3)
    legend_covers_nothing(fig)
    assert "mlp-tiny" in ax.get_title()
    assert ax.get_ylabel() == "energy (µJ)"


def test_traffic_stacks_classes_up_to_the_dram_counters(data: dict[str, Any]) -> None:
    fig = plot_traffic_breakdown(data)
    ax = fig.axes[0]
    drawn = {b[4]: b for b in boxes(ax) if b[4]}
    for name, r in data["runs"].items():
        for direction in ("read", "write"):
            total = 0.0
            for cls in CLASSES:
                want = sum(c.get(cls, {}).get(direction, 0)
                           for c in r["traffic"].values()) / MIB
                box = drawn.get(f"{name}:{direction}:{cls}")
                got = 0.0 if box is None else box[3] - box[2]
                assert got == pytest.approx(want)
                total += got
            assert total == pytest.approx(r["dram"][f"{direction}_bytes"] / MIB)
    legend_covers_nothing(fig)


def test_bandwidth_lines_are_the_bins(data: dict[str, Any]) -> None:
    fig = plot_bandwidth(data)
    for ax, (name, r) in zip(fig.axes, data["runs"].items(), strict=True):
        bin_ns = r["bandwidth"]["bin_cycles"] * r["tCK_ns"]
        lines = {ln.get_gid(): ln for ln in ax.get_lines()}
        for ch, bins in enumerate(r["bandwidth"]["channels"]):
            line = lines[f"{name}:ch{ch}"]
            assert list(line.get_ydata()) == pytest.approx([b / bin_ns for b in bins])
            assert line.get_xdata()[0] == pytest.approx(bin_ns / 2 / 1000)
    assert "µs" in fig.axes[-1].get_xlabel()
    assert "mlp-tiny" in fig.get_suptitle()
    legend_covers_nothing(fig)


def test_overlap_figure_shows_the_new_metrics(data: dict[str, Any]) -> None:
    fig = plot_overlap(data)
    ax, heat = fig.axes[0], fig.axes[1]
    drawn = {b[4]: b for b in boxes(ax) if b[4]}
    for name, r in data["runs"].items():
        ov = r["overlap"]
        x0, x1, *_ = drawn[f"{name}:to-backward-end"]
        assert (x0, x1) == pytest.approx((0.0, us(r, ov["backward_end"])))
        x0, x1, *_ = drawn[f"{name}:exposed-update"]
        assert x0 == pytest.approx(us(r, ov["backward_end"]))
        assert x1 == pytest.approx(us(r, r["cycles"]))  # before + after = the iteration
    ideal = [ln for ln in ax.get_lines() if ln.get_gid() == "ideal"][0]
    assert ideal.get_xdata()[0] == pytest.approx(
        us(data["runs"]["baseline"], data["overlap"]["ideal_cycles"]))
    units = data["runs"]["pim"]["pim_utilization"]["units"]
    (mesh,) = [c for c in heat.collections if isinstance(c, QuadMesh)]
    grid = mesh.get_array().reshape(len(units), -1)
    for row, windows in zip(grid, units.values(), strict=True):
        assert list(row[: len(windows)]) == pytest.approx([100 * u for u in windows])
    assert "gain captured" in ax.get_xlabel()
    legend_covers_nothing(fig)


def test_components_that_do_not_add_up_are_not_stacked(data: dict[str, Any],
                                                       tmp_path: Path) -> None:
    bad = copy.deepcopy(data)
    bad["runs"]["pim"]["energy_nj"]["total"] *= 1.5
    with pytest.raises(ConfigError, match="add up"):
        plot_energy_breakdown(bad)
    bad = copy.deepcopy(data)
    bad["runs"]["baseline"]["dram"]["read_bytes"] += 64
    with pytest.raises(ConfigError, match="add up"):
        plot_traffic_breakdown(bad)


def test_formats_and_marks(data: dict[str, Any], tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "results.json"
    src.write_text(json.dumps(data))
    out = tmp_path / "figs"
    assert main(["plot", str(src), "--out", str(out), "--formats", "png,pdf,svg"]) == 0
    printed = [Path(p) for p in capsys.readouterr().out.split()]
    assert {p.name for p in printed} == {f"results-{n}.{f}" for f in ("png", "pdf", "svg")
                                         for n in ("phases", "energy", "traffic", "bandwidth",
                                                   "overlap")}
    for p in printed:
        assert is_ours(p, p.suffix[1:]), p
    assert main(["plot", str(src), "--out", str(out), "--formats", "svg"]) == 0  # ours: replaced
    foreign = out / "results-energy.pdf"
    foreign.write_bytes(b"%PDF-1.4 someone else's\n")
    assert main(["plot", str(src), "--out", str(out), "--formats", "pdf"]) == 2
    assert foreign.read_bytes().startswith(b"%PDF-1.4 someone")
    assert main(["plot", str(src), "--out", str(out), "--formats", "pdf", "--force"]) == 0
    assert is_ours(foreign, "pdf")
    assert main(["plot", str(src), "--formats", "gif"]) == 2
