"""Plots of sweep tables and compare results (matplotlib, Agg canvas, no pyplot state).

Every function returns a :class:`matplotlib.figure.Figure` and, given ``out``, saves it (the
suffix names the format: PNG, PDF or SVG).  Inputs:

- a sweep table (DataFrame or CSV path, :mod:`gradpimsim.sweep`): of kind ``iteration``
  (:func:`plot_sweep_speedup`: rows with ``pim`` true and false that share every other parameter
  are paired, speedup = cycles without PIM / cycles with PIM), ``compare`` (the same figure
  from the ``speedup`` column) or ``update-bench`` (:func:`plot_update_bench_speedup`);
- a results JSON (schema ``gradpimsim.results/1``, written by ``gradpimsim compare``/``run``):
  the figures of :mod:`gradpimsim.stats.run_plots` (phases in time, energy, traffic, bandwidth,
  overlap).

:func:`plot_any` detects the input kind and writes every figure that applies, in each format
asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from gradpimsim.config import ConfigError
from gradpimsim.stats.figures import figure as _figure
from gradpimsim.stats.figures import legend_outside, save
from gradpimsim.stats.figures import save_one as _save
from gradpimsim.stats.run_plots import (
    RESULTS_SCHEMA,
    plot_bandwidth,
    plot_energy_breakdown,
    plot_overlap,
    plot_phase_breakdown,
    plot_phase_timeline,
    plot_traffic_breakdown,
)
from gradpimsim.stats.run_plots import load_results as load_compare_results

#: Parameter columns of an ``iteration`` sweep (pairs share all of them but ``pim``): every
#: column that is neither a metric nor bookkeeping (see :func:`speedup_pairs`).
BOOKKEEPING = ("key", "kind", "version", "status", "error", "wall_s")

__all__ = ["load_compare_results", "plot_any", "plot_bandwidth", "plot_energy_breakdown",
           "plot_overlap", "plot_phase_breakdown", "plot_phase_timeline", "plot_sweep_speedup",
           "plot_traffic_breakdown", "plot_update_bench_speedup", "speedup_pairs"]


# -- sweep tables ------------------------------------------------------------------------------
def _frame(table: Any) -> Any:
    import pandas as pd

    if isinstance(table, pd.DataFrame):
        return table
    from gradpimsim.sweep.store import load_results

    return load_results(table)


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    return {"true": True, "1": True, "false": False, "0": False}.get(text)


def _params(df: Any, exclude: tuple[str, ...] = ("pim",)) -> list[str]:
    """The parameter columns of an iteration/compare table: RunConfig's fields present."""
    import dataclasses

    from gradpimsim.system.config import RunConfig

    return [f.name for f in dataclasses.fields(RunConfig)
            if f.name in df.columns and f.name not in exclude]


def speedup_pairs(table: Any) -> Any:
    """Pair iteration rows with and without PIM that share all other parameters.

    Returns a DataFrame with the shared parameters, ``cycles_off``, ``cycles_on`` and
    ``speedup`` (= cycles_off / cycles_on); only ``ok`` rows are used.  A ``compare`` table
    has its pairs already: its ``speedup`` column is used as it is.
    """
    import pandas as pd

    df = _frame(table)
    if "status" in df.columns:
        df = df[df["status"] == "ok"]
    if "kind" in df.columns and set(df["kind"].dropna()) == {"compare"}:
        shared = _params(df)
        out = df[shared].copy()
        out["cycles_off"] = df["baseline_cycles"]
        out["cycles_on"] = df["pim_cycles"]
        out["speedup"] = df["speedup"].astype(float)
        return out.astype({c: str for c in shared}).reset_index(drop=True)
    missing = [c for c in ("workload", "pim", "cycles") if c not in df.columns]
    if missing:
        raise ConfigError("input", f"the sweep table has no column {missing[0]!r}; the speedup "
                          "plot needs an iteration sweep (workload, pim, cycles)")
    df = df.assign(_pim=df["pim"].map(_as_bool)).dropna(subset=["_pim", "cycles"])
    shared = _params(df)
    on = df[df["_pim"] == True]  # noqa: E712  (an object column of booleans)
    off = df[df["_pim"] == False]  # noqa: E712
    keyed_on = on[shared + ["cycles"]].astype({c: str for c in shared})
    keyed_off = off[shared + ["cycles"]].astype({c: str for c in shared})
    pairs = keyed_off.merge(keyed_on, on=shared, suffixes=("_off", "_on"))
    if pairs.empty:
        return pd.DataFrame(columns=[*shared, "cycles_off", "cycles_on", "speedup"])
    pairs["speedup"] = pairs["cycles_off"].astype(float) / pairs["cycles_on"].astype(float)
    return pairs


def plot_sweep_speedup(table: Any, out: str | Path | None = None) -> Figure:
    """Speedup with PIM per workload (bars; one bar per other varying parameter combination)."""
    pairs = speedup_pairs(table)
    if pairs.empty:
        raise ConfigError("input", "no pair of rows with pim = true and pim = false shares all "
                          "other parameters; sweep pim = [true, false]")
    shared = [c for c in _params(pairs) if c != "workload"]
    varying = [c for c in shared if pairs[c].nunique() > 1]
    fixed = {c: pairs[c].iloc[0] for c in shared if c not in varying}
    pairs = pairs.assign(_series=pairs[varying].astype(str).agg(", ".join, axis=1)
                         if varying else "")
    workloads = list(dict.fromkeys(pairs["workload"]))
    series = list(dict.fromkeys(pairs["_series"]))
    fig = _figure(max(6.0, 1.2 * len(workloads) * max(1, len(series)) ** 0.5 + 3), 4.0)
    ax = fig.add_subplot()
    width = 0.8 / len(series)
    for i, name in enumerate(series):
        sub = pairs[pairs["_series"] == name]
        xs, ys = [], []
        for j, w in enumerate(workloads):
            vals = sub[sub["workload"] == w]["speedup"]
            if len(vals):
                xs.append(j - 0.4 + width * (i + 0.5))
                ys.append(float(vals.mean()))
        label = ", ".join(f"{c}={v}" for c, v in zip(varying, name.split(", "), strict=False))
        bars = ax.bar(xs, ys, width, label=label or None)
        for bar in bars:
            bar.set_gid(f"speedup:{name}")
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(workloads)), workloads, rotation=20, ha="right")
    ax.set_ylabel("speedup with GradPIM (host-update time / GradPIM time)")
    shown = ", ".join(f"{k} {v}" for k, v in fixed.items()
                      if k in ("batch", "memory", "optimizer", "precision", "npu")
                      and v not in ("", "None", "nan"))
    ax.set_title("Training-iteration speedup with GradPIM" + (f"\n{shown}" if shown else ""))
    if varying:
        legend_outside(fig, ax)
    return _save(fig, out)


def plot_update_bench_speedup(table: Any, out: str | Path | None = None) -> Figure:
    """update-bench sweep: GradPIM speedup over the host against the parameter count."""
    df = _frame(table)
    for col in ("params", "speedup"):
        if col not in df.columns:
            raise ConfigError("input", f"the sweep table has no column {col!r}; this plot "
                              "needs an update-bench sweep")
    if "status" in df.columns:
        df = df[df["status"] == "ok"]
    group = [c for c in ("optimizer", "precision", "memory", "channels", "ranks")
             if c in df.columns and df[c].nunique() > 1]
    fig = _figure()
    ax = fig.add_subplot()
    groups = df.groupby(group, dropna=False) if group else [((), df)]
    for name, sub in groups:
        sub = sub.sort_values("params")
        names = name if isinstance(name, tuple) else (name,)
        label = ", ".join(f"{c}={v}" for c, v in zip(group, names, strict=False))
        ax.plot(sub["params"], sub["speedup"], marker="o", label=label or None)
    ax.set_xscale("log", base=2)
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xlabel("parameters updated")
    ax.set_ylabel("speedup of GradPIM over the host")
    ax.set_title("update-bench: one optimizer step")
    if group:
        legend_outside(fig, ax)
    return _save(fig, out)


# -- detection --------------------------------------------------------------------------------
def detect_kind(path: str | Path) -> str:
    """``results`` (a results JSON) or ``sweep`` (a sweep CSV table); ConfigError otherwise."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError("input", f"{p}: no such file; give a sweep CSV or a results JSON")
    head = p.read_bytes()[:4096].lstrip()
    if head.startswith(b"{"):
        return "results"
    if head.startswith(b"key,kind,version,status"):
        return "sweep"
    raise ConfigError("input", f"{p}: neither a results JSON (schema {RESULTS_SCHEMA}) nor a "
                      "sweep table (CSV starting with key,kind,version,status)")


def results_figures(data: dict[str, Any]) -> list[tuple[str, Any]]:
    """(name, function) of every figure that applies to a results dict."""
    runs = data["runs"].values()
    plots: list[tuple[str, Any]] = [("phases", plot_phase_timeline),
                                    ("energy", plot_energy_breakdown)]
    if all(run.get("traffic") for run in runs):
        plots.append(("traffic", plot_traffic_breakdown))
    if any((run.get("bandwidth") or {}).get("channels") for run in runs):
        plots.append(("bandwidth", plot_bandwidth))
    if any(run.get("overlap") for run in runs):
        plots.append(("overlap", plot_overlap))
    return plots


def plot_any(path: str | Path, out_dir: str | Path | None = None,
             formats: tuple[str, ...] = ("png",)) -> list[Path]:
    """Write every figure that applies to ``path`` into ``out_dir`` (default: beside it), in
    each of ``formats``; the paths written."""
    p = Path(path)
    kind = detect_kind(p)
    out = Path(out_dir) if out_dir is not None else p.parent
    stem = p.stem
    written: list[Path] = []
    if kind == "results":
        data = load_compare_results(p)
        for name, fn in results_figures(data):
            written += save(fn(data), out / f"{stem}-{name}", formats)
        return written
    df = _frame(p)
    kinds = set(df["kind"].dropna()) if "kind" in df.columns else set()
    for kind_name in ("iteration", "compare"):
        if kind_name in kinds:
            suffix = "speedup" if kind_name == "iteration" else "compare-speedup"
            written += save(plot_sweep_speedup(df[df["kind"] == kind_name]),
                            out / f"{stem}-{suffix}", formats)
    if "update-bench" in kinds:
        written += save(plot_update_bench_speedup(df[df["kind"] == "update-bench"]),
                        out / f"{stem}-update-bench-speedup", formats)
    if not written:
        raise ConfigError("input", f"{p}: no plot applies to this sweep table (kinds: "
                          f"{', '.join(sorted(map(str, kinds))) or 'none'}, or no ok rows)")
    return written
