"""``gradpimsim study``: shipped specs that load, run (reduced) and draw figures whose plotted
values are the table's; every RunConfig field a sweep key; ``"*"`` following the code."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from gradpimsim.cli import main
from gradpimsim.host.traffic import CLASSES
from gradpimsim.stats.energy import COMPONENTS
from gradpimsim.stats.study_plots import draw, value_text
from gradpimsim.sweep import SpecError, load_results, load_spec
from gradpimsim.sweep.study import load_study, run_study, study_names
from gradpimsim.system import config as run_config
from gradpimsim.system.config import RunConfig

MIB = 2**20
SHIPPED = ("speedup-vs-batch", "traffic-energy", "sensitivity-memory", "sensitivity-npu",
           "sensitivity-placement", "sensitivity-update-policy", "sensitivity-arbitration")


def test_the_shipped_studies() -> None:
    assert set(study_names()) == set(SHIPPED)
    for name in SHIPPED:
        full, small = load_study(name), load_study(name, reduced=True)
        assert full.figures and full.description and full.spec.kind == "compare"
        assert len(small.spec.points) <= len(full.spec.points)
        assert all(p["workload"] == "mlp-tiny" for p in small.spec.points), name
    full = load_study("speedup-vs-batch")
    assert {p["workload"] for p in full.spec.points} == {"resnet18", "resnet50", "mobilenetv2",
                                                         "bert-base"}
    assert sorted({p["batch"] for p in full.spec.points}) == [1, 2, 4, 8, 16, 32, 64]


def test_show_prints_the_file_to_copy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["study", "show", "traffic-energy"]) == 0
    text = capsys.readouterr().out
    import gradpimsim.sweep

    # (beside the package that runs: the checkout's or an installed one)
    shipped = Path(gradpimsim.sweep.__file__).parent / "studies" / "traffic-energy.toml"
    assert text == shipped.read_text()
    mine = tmp_path / "mine.toml"
    mine.write_text(text.replace('"mlp-tiny"', '"mlp-tiny", "mlp"'))
    assert len(load_study(str(mine), reduced=True).spec.points) == 4
    assert main(["study", "list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in SHIPPED)


def test_every_run_config_field_is_a_sweep_key() -> None:
    fields = [f.name for f in dataclasses.fields(RunConfig)]
    for kind, without in (("iteration", ()), ("compare", ("pim",))):
        spec = load_spec({"kind": kind, "grid": {"workload": ["mlp-tiny"]}})
        (point,) = spec.points
        assert set(point) == set(fields) - set(without) - {"extra", "pim_knobs"}
        for f in fields:
            if f not in without:  # each may be given (the tables too)
                value = {"extra": {"a": 1}, "pim_knobs": {"vector_registers": 16}}.get(
                    f, point.get(f))
                if value is not None:
                    grid = {"step": [3]} if f != "step" else {"seed": [1]}
                    load_spec({"kind": kind, "fixed": {"workload": "mlp-tiny", f: value},
                               "grid": grid})
    with pytest.raises(SpecError, match="pim_policy.*unknown value 'loud'"):
        load_spec({"kind": "iteration", "grid": {"workload": ["w"], "pim_policy": ["loud"]}})
    with pytest.raises(SpecError, match="legacy order"):
        load_spec({"kind": "compare", "fixed": {"task_order": "legacy"},
                   "grid": {"workload": ["mlp-tiny"]}})
    with pytest.raises(SpecError, match="unknown key 'pim'"):
        load_spec({"kind": "compare", "grid": {"workload": ["mlp-tiny"], "pim": [True]}})


def test_star_takes_every_choice_the_code_knows(monkeypatch: pytest.MonkeyPatch) -> None:
    from gradpimsim.sweep import run_keys

    study = load_study("sensitivity-arbitration")
    assert [p["pim_policy"] for p in study.spec.points] == list(run_config.PIM_POLICIES)
    grown = (*run_config.PIM_POLICIES, "lottery", "round-robin")  # policies to come
    monkeypatch.setattr(run_config, "PIM_POLICIES", grown)
    run_keys.choices.cache_clear()
    try:
        import gradpimsim.sweep.runner as runner
        from gradpimsim.sweep import spec as spec_module

        # the schemas re-declared with the grown list are this test's only
        monkeypatch.setattr(spec_module, "SCHEMAS", dict(spec_module.SCHEMAS))
        monkeypatch.setattr(runner, "_lazy_done", False)
        study = load_study("sensitivity-arbitration")
        assert [p["pim_policy"] for p in study.spec.points] == list(grown)
    finally:
        run_keys.choices.cache_clear()
    with pytest.raises(SpecError, match="has none"):
        load_spec({"kind": "compare", "grid": {"workload": "*"}})


# ---------------------------------------------------------------------- figures vs table
def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def check_figure(fig: Any, spec: dict[str, Any], table: pd.DataFrame) -> int:
    """Every value drawn is a value of the table, and each table value is drawn once;
    stacks add up to their total.  Returns how many values were checked."""
    checked = 0
    if spec["type"] == "lines":
        for col in spec["y"] + spec.get("dashed", []):
            pairs = sorted((float(r[spec["x"]]), float(r[col])) for _, r in table.iterrows())
            drawn = sorted((float(x), float(y)) for ax in fig.axes for ln in ax.get_lines()
                           if (ln.get_gid() or "").split("|")[0] == col
                           for x, y in zip(ln.get_xdata(), ln.get_ydata(), strict=True))
            assert len(drawn) == len(pairs) and all(
                _close(a[0], b[0]) and _close(a[1], b[1]) for a, b in zip(drawn, pairs,
                                                                           strict=True)), col
            checked += len(pairs)
    elif spec["type"] == "bars":
        for col in spec["y"] + spec.get("dashed", []):
            want = sorted((value_text(r[spec["x"]]), float(r[col])) for _, r in table.iterrows())
            got = sorted((p.get_gid().split("|")[2], p.get_height()) for ax in fig.axes
                         for p in ax.patches if (p.get_gid() or "").split("|")[0] == col)
            assert [g[0] for g in got] == [w[0] for w in want], col
            assert all(_close(g[1], w[1]) for g, w in zip(got, want, strict=True)), col
            checked += len(want)
    else:
        heights: dict[tuple[str, str], dict[str, float]] = {}
        for ax in fig.axes:
            for p in ax.patches:
                run, label, comp = p.get_gid().split("|")
                heights.setdefault((run, label), {})[comp] = p.get_height()
        assert len(heights) == 2 * len(table)
        for _, row in table.iterrows():
            for run in ("baseline", "pim"):
                if spec["stack"] == "energy":
                    want = {c: float(row[f"{run}_energy_{c}_uj"]) for c in COMPONENTS}
                    total = float(row[f"{run}_energy_uj"])
                else:
                    want = {c: sum(float(row[f"{run}_traffic_{'_'.join(c.split())}_{d}_bytes"])
                                   for d in ("read", "write")) / MIB for c in CLASSES}
                    total = (float(row[f"{run}_read_bytes"])
                             + float(row[f"{run}_write_bytes"])) / MIB
                want = {c: v for c, v in want.items() if v}
                match = [h for (r, _), h in heights.items() if r == run and h.keys() == want.keys()
                         and all(_close(h[c], want[c]) for c in want)]
                assert match, (run, want)
                assert math.isclose(sum(match[0].values()), total, rel_tol=1e-9)
                checked += len(want)
    return checked


@pytest.mark.parametrize("name", [n for n in SHIPPED if n != "speedup-vs-batch"])
def test_each_reduced_study_runs_and_draws_its_table(name: str, tmp_path: Path) -> None:
    study = load_study(name, reduced=True)
    table, paths = run_study(study, tmp_path, formats=("png",), serial=True, progress=False)
    assert len(table) == len(study.spec.points) and (table["status"] == "ok").all()
    assert sorted(p.name for p in paths) == sorted(f"{study.label}-{f['name']}.png"
                                                   for f in study.figures)
    for spec in study.figures:
        fig = draw(table, spec, study.spec.param_names, study.name)
        assert check_figure(fig, spec, table) >= len(table)
        assert "mlp-tiny" in fig.get_suptitle()


def test_speedup_vs_batch_reduced_end_to_end_on_dask(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    out = tmp_path / "out"
    argv = ["study", "speedup-vs-batch", "--reduced", "--out", str(out), "--workers", "2",
            "--quiet"]
    assert main(argv) == 0
    printed = [Path(p) for p in capsys.readouterr().out.split()]
    table_path = out / "speedup-vs-batch-reduced.csv"
    assert printed[0] == table_path
    assert {p.name for p in printed[1:]} == {f"speedup-vs-batch-reduced-{n}.{f}"
                                             for n in ("speedup", "update-share")
                                             for f in ("png", "pdf")}
    table = load_results(table_path)
    assert len(table) == 4 and (table["status"] == "ok").all()
    assert sorted(table["batch"]) == [1, 4, 16, 64]
    ratio = table["baseline_cycles"] / table["pim_cycles"]
    assert table["speedup"].tolist() == pytest.approx(ratio.tolist(), rel=1e-5)
    study = load_study("speedup-vs-batch", reduced=True)
    for spec in study.figures:
        check_figure(draw(table, spec, study.spec.param_names), spec, table)
    before = table_path.read_text()
    assert main(argv[:-1] + ["--serial", "--quiet"][:0] + ["--quiet"]) == 0  # resumed: no work
    assert table_path.read_text() == before


def test_failed_points_are_reported_and_the_rest_drawn(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    spec = tmp_path / "mine.toml"
    spec.write_text("""
kind = "compare"
[fixed]
workload = "mlp-tiny"
batch = 2
[grid]
placement = ["shared", "rank-partition"]   # rank partitioning needs two ranks: fails
[[figures]]
name = "speedup"
type = "bars"
x = "placement"
y = ["speedup"]
""")
    assert main(["study", str(spec), "--out", str(tmp_path), "--serial", "--formats", "svg"]) == 1
    out = capsys.readouterr().out
    assert "1 ok, 1 failed" in out and "two ranks" in out
    assert (tmp_path / "mine-speedup.svg").stat().st_size > 1000


@pytest.mark.parametrize(("argv", "message"), [
    (["study", "no-such-study"], "no study 'no-such-study'"),
    (["study", "show"], "needs a NAME"),
    (["study", "speedup-vs-batch", "--formats", "bmp"], "unknown figure format 'bmp'"),
    (["study", "speedup-vs-batch", "--max-points", "5"], "more than --max-points 5"),
])
def test_bad_study_commands(argv: list[str], message: str, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, "--out", str(tmp_path)] if argv[1] != "show" else argv) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert message in err and "Traceback" not in err


def test_a_bad_figure_spec_names_its_key(tmp_path: Path) -> None:
    base = 'kind = "compare"\n[grid]\nworkload = ["mlp-tiny"]\n[[figures]]\nname = "f"\n'
    for extra, message in (('type = "pie"\nx = "workload"\ny = ["speedup"]\n', "figures[0].type"),
                           ('type = "lines"\nx = "nope"\ny = ["speedup"]\n', "figures[0].x"),
                           ('type = "stacked"\nx = "workload"\n', "figures[0].stack"),
                           ('type = "bars"\nx = "workload"\ny = "speedup"\n', "figures[0].y"),
                           ('type = "bars"\nx = "workload"\ny = ["s"]\ncolour = 1\n',
                            "figures[0].colour")):
        path = tmp_path / "s.toml"
        path.write_text(base + extra)
        with pytest.raises(SpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
            load_study(str(path))


def test_bar_totals_read_to_three_digits() -> None:
    from gradpimsim.stats.study_plots import total_text

    assert [total_text(v) for v in (0.6461, 66.54, 1051.5, 12345.0, 0.0)] == \
        ["0.646", "66.5", "1,052", "12,345", "0"]
