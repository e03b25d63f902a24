"""The Python API: tidy DataFrames with units in their names, save/load of a comparison, and
several workloads in one call returning one table."""

from __future__ import annotations

from pathlib import Path

import pytest

from gradpimsim.host.traffic import CLASSES
from gradpimsim.stats.energy import COMPONENTS
from gradpimsim.stats.run_plots import plot_energy_breakdown, plot_phase_timeline
from gradpimsim.system import CompareResult, RunConfig, compare, compare_many
from gradpimsim.system.results import RunResult
from gradpimsim.system.tables import long_form


@pytest.fixture(scope="module")
def result() -> CompareResult:
    return compare(RunConfig(workload="mlp-tiny", batch=2, channels=2))


def test_summary_has_units_in_its_names(result: CompareResult) -> None:
    df = result.summary_df()
    assert list(df["run"]) == ["baseline", "pim"]
    for name, r in result.runs().items():
        row = df[df["run"] == name].iloc[0]
        assert row["cycles"] == r.cycles
        assert row["time_us"] == pytest.approx(r.cycles * r.tCK_ns / 1000, abs=1e-3)
        assert row["energy_uj"] == pytest.approx(r.energy_nj["total"] / 1000)
        assert row["update_share"] == pytest.approx(
            r.overlap["exposed_update_cycles"] / r.cycles, abs=1e-6)
        # the components add up to the total, the classes to the bus bytes
        assert sum(row[f"energy_{c}_uj"] for c in COMPONENTS) == pytest.approx(row["energy_uj"])
        for d in ("read", "write"):
            assert sum(row[f"traffic_{'_'.join(c.split())}_{d}_bytes"] for c in CLASSES) == \
                row[f"{d}_bytes"]
    assert df["speedup"].tolist() == pytest.approx([result.speedup] * 2, abs=1e-6)
    units = ("_us", "_uj", "_bytes", "_gbs", "_cycles", "_s", "_ops")
    unitless = {"run", "workload", "cycles", "placement_resolved", "speedup", "update_share",
                "update_done_at_backward_end", "bandwidth_utilization", "row_hit_rate",
                "pim_utilization", "gain_captured", "captured_of_ideal", "host_slowdown",
                "ideal_speedup"}
    for col in df.columns:
        assert col in unitless or col.endswith(units), col


def test_energy_bandwidth_traffic_frames_add_up(result: CompareResult) -> None:
    energy = result.energy_df()
    assert list(energy.columns) == ["run", "window", "component", "energy_uj"]
    bw = result.bandwidth_df()
    traffic = result.traffic_df()
    for name, r in result.runs().items():
        e = energy[energy["run"] == name]
        whole = e[e["window"] == "iteration"]["energy_uj"].sum()
        assert whole == pytest.approx(r.energy_nj["total"] / 1000)
        phases = e[e["window"] != "iteration"]
        assert set(phases["window"]) == {"forward", "backward", "update"}
        b = bw[bw["run"] == name]
        assert set(b["channel"]) == {0, 1}
        assert b["bytes"].sum() == r.dram["read_bytes"] + r.dram["write_bytes"]
        width_s = r.bandwidth["bin_cycles"] * r.tCK_ns * 1e-9
        assert b["bandwidth_gbs"].tolist() == pytest.approx((b["bytes"] / width_s / 1e9).tolist())
        t = traffic[traffic["run"] == name]
        for d in ("read", "write"):
            assert t[t["direction"] == d]["bytes"].sum() == r.dram[f"{d}_bytes"]
    util = result.utilization_df()
    assert set(util["run"]) == {"pim"} and util["unit"].nunique() == 8
    assert util["utilization"].between(0, 1).all()


def test_save_and_load_restore_the_figures(result: CompareResult, tmp_path: Path) -> None:
    path = result.save(tmp_path / "cmp.json")
    loaded = CompareResult.load(path)
    a, b = result.to_dict(), loaded.to_dict()
    a.pop("gradpimsim"), b.pop("gradpimsim")
    assert a == b
    assert loaded.speedup == result.speedup and loaded.config == result.config
    assert loaded.tasks_df().fillna("").equals(result.tasks_df().fillna(""))
    assert loaded.summary_df().drop(columns="wall_s").equals(
        result.summary_df().drop(columns="wall_s"))
    for draw in (plot_phase_timeline, plot_energy_breakdown):
        before = [p.get_height() for p in draw(result.to_dict()).axes[0].patches]
        assert [p.get_height() for p in draw(loaded.to_dict()).axes[0].patches] == before
    assert loaded.baseline.store is None  # the DRAM contents are not saved
    with pytest.raises(Exception, match="not ours|gradpimsim did not write"):
        (tmp_path / "foreign.json").write_text("{}")
        result.save(tmp_path / "foreign.json")
    result.save(tmp_path / "cmp.json")  # ours: replaced


def test_load_a_results_json_and_its_tasks_csv(tmp_path: Path) -> None:
    from gradpimsim.cli import main

    assert main(["run", "mlp-tiny", "--batch", "2", "--pim", "--out", str(tmp_path)]) == 0
    run = RunResult.load(tmp_path / "results.json")
    assert run.config.pim and run.cycles > 0 and len(run.tasks) > 10  # from tasks.csv
    with pytest.raises(ValueError, match="no baseline"):
        CompareResult.load(tmp_path / "results.json")


def test_compare_many_is_one_table(result: CompareResult) -> None:
    seen: list[CompareResult] = []
    table = compare_many(["mlp-tiny", RunConfig(workload="mlp-tiny", batch=1)],
                         batch=2, channels=2, on_result=seen.append)
    assert len(table) == 2 and len(seen) == 2
    assert list(table["batch"]) == [2, 2]  # fields override RunConfigs too
    assert table["speedup"].iloc[0] == pytest.approx(result.speedup, abs=1e-6)
    assert table["baseline_cycles"].iloc[0] == result.baseline.cycles
    long = long_form(table)
    assert len(long) == 4 and set(long["run"]) == {"baseline", "pim"}
    assert long[long["run"] == "pim"]["cycles"].iloc[0] == result.pim.cycles
    # a configuration column named pim_* stays a configuration column
    assert (long["pim_policy"] == RunConfig().pim_policy).all() and "policy" not in long


def test_the_printed_table_keeps_names_whole_when_piped(capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    from gradpimsim.cli import main

    assert main(["compare", "mlp-tiny", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    # (captured output is not a terminal: as when piped, where rich wrapped at 80 columns)
    assert any("update exposed after backward" in line for line in out.splitlines())
    assert any("forward (first start to last end)" in line and "µs" in line
               for line in out.splitlines())
    assert "µJ" in out and " us " not in out and " uJ" not in out
    assert "…" not in out  # nothing cut short either
    (line,) = [ln for ln in out.splitlines() if "iteration time" in ln]
    assert line.count(" cyc)") == 2  # both runs' times, whole
