"""Plots of sweep tables and compare results (matplotlib, Agg canvas, no pyplot state).

Every function returns a :class:`matplotlib.figure.Figure` and, given ``out``, saves it as PNG.
Inputs:

- a sweep table (DataFrame or CSV path, :mod:`gradpimsim.sweep`): of kind ``iteration``
  (:func:`plot_sweep_speedup`: rows with ``pim`` true and false that share every other parameter
  are paired, speedup = cycles without PIM / cycles with PIM) or ``update-bench``
  (:func:`plot_update_bench_speedup`);
- a results JSON (schema ``gradpimsim.results/1``, written by ``gradpimsim compare``/``run``):
  :func:`plot_phase_breakdown`, :func:`plot_bandwidth`, :func:`plot_energy_breakdown`.

:func:`plot_any` detects the input kind and writes every applicable PNG.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gradpimsim.config import ConfigError

RESULTS_SCHEMA = "gradpimsim.results/1"
PHASES = ("forward", "backward", "update")
ENERGY_COMPONENTS = ("act", "read", "write", "refresh", "background", "io", "pim_column",
                     "pim_op")
#: Parameter columns of an ``iteration`` sweep (pairs share all of them but ``pim``).
ITERATION_PARAMS = ("workload", "batch", "optimizer", "precision", "memory", "channels", "ranks",
                    "layout", "npu")
RUN_LABELS = {"baseline": "without PIM", "pim": "with PIM"}


def _figure(width: float = 7.0, height: float = 4.0) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, out: str | Path | None) -> Figure:
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        import gradpimsim  # the Software chunk marks the file as gradpimsim's (io_safety)

        fig.savefig(out, format="png", dpi=110,
                    metadata={"Software": f"gradpimsim {gradpimsim.__version__} (matplotlib)"})
    return fig


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


def speedup_pairs(table: Any) -> Any:
    """Pair iteration rows with and without PIM that share all other parameters.

    Returns a DataFrame with the shared parameters, ``cycles_off``, ``cycles_on`` and
    ``speedup`` (= cycles_off / cycles_on); only ``ok`` rows are used.
    """
    import pandas as pd

    df = _frame(table)
    missing = [c for c in ("workload", "pim", "cycles") if c not in df.columns]
    if missing:
        raise ConfigError("input", f"the sweep table has no column {missing[0]!r}; the speedup "
                          "plot needs an iteration sweep (workload, pim, cycles)")
    if "status" in df.columns:
        df = df[df["status"] == "ok"]
    df = df.assign(_pim=df["pim"].map(_as_bool)).dropna(subset=["_pim", "cycles"])
    shared = [c for c in ITERATION_PARAMS if c in df.columns]
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
    shared = [c for c in ITERATION_PARAMS if c in pairs.columns and c != "workload"]
    varying = [c for c in shared if pairs[c].nunique() > 1]
    pairs = pairs.assign(_series=pairs[varying].astype(str).agg(", ".join, axis=1)
                         if varying else "")
    workloads = list(dict.fromkeys(pairs["workload"]))
    series = list(dict.fromkeys(pairs["_series"]))
    fig = _figure(max(6.0, 1.2 * len(workloads) * max(1, len(series)) ** 0.5 + 2), 4.0)
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
        ax.bar(xs, ys, width, label=label or None)
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(workloads)), workloads, rotation=20, ha="right")
    ax.set_ylabel("speedup with PIM (cycles without / with)")
    ax.set_title("Training-iteration speedup with GradPIM")
    if varying:
        ax.legend(fontsize="small")
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
        ax.legend(fontsize="small")
    return _save(fig, out)


# -- results JSON -----------------------------------------------------------------------------
def load_compare_results(source: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """Read and check a results JSON (schema ``gradpimsim.results/1``)."""
    if isinstance(source, Mapping):
        data = dict(source)
        where = "results"
    else:
        where = str(source)
        try:
            data = json.loads(Path(source).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError("input", f"{where}: not a readable JSON file ({exc})") from None
    if not isinstance(data, dict) or data.get("schema") != RESULTS_SCHEMA:
        got = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise ConfigError("input", f"{where}: schema is {got!r}, expected {RESULTS_SCHEMA!r} "
                          "(write it with gradpimsim compare --json)")
    runs = data.get("runs")
    if not isinstance(runs, dict) or not runs or not set(runs) <= set(RUN_LABELS):
        raise ConfigError("input", f"{where}: 'runs' must hold 'baseline' and/or 'pim'")
    return data


def _runs(results: Any) -> list[tuple[str, dict[str, Any]]]:
    data = load_compare_results(results)
    return [(RUN_LABELS[name], data["runs"][name]) for name in RUN_LABELS
            if name in data["runs"]]


def plot_phase_breakdown(results: Any, out: str | Path | None = None) -> Figure:
    """Per-phase time (forward, backward, update) with and without PIM, stacked bars (us)."""
    runs = _runs(results)
    fig = _figure(5.5, 4.0)
    ax = fig.add_subplot()
    bottoms = [0.0] * len(runs)
    for phase in PHASES:
        heights = []
        for _, run in runs:
            ph = run.get("phases", {}).get(phase) or {}
            heights.append(ph.get("cycles", 0) * run.get("tCK_ns", 0.0) / 1000.0)
        ax.bar([label for label, _ in runs], heights, 0.6, bottom=bottoms, label=phase)
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    ax.set_ylabel("time (us)")
    ax.set_title(f"Training iteration by phase: {load_compare_results(results)['workload']}")
    ax.legend()
    return _save(fig, out)


def plot_bandwidth(results: Any, out: str | Path | None = None) -> Figure:
    """DRAM bandwidth over time per channel (GB/s per bin), one panel per run."""
    runs = _runs(results)
    fig = _figure(8.0, 2.8 * len(runs))
    axes = fig.subplots(len(runs), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (label, run) in zip(axes, runs, strict=True):
        bw = run.get("bandwidth") or {}
        bin_cycles = bw.get("bin_cycles") or 1
        tck = run.get("tCK_ns", 0.0) or 1.0
        bin_ns = bin_cycles * tck
        for ch, bins in enumerate(bw.get("channels", [])):
            times = [(i + 0.5) * bin_ns / 1000.0 for i in range(len(bins))]
            ax.plot(times, [b / bin_ns for b in bins], label=f"channel {ch}", linewidth=1.0)
        ax.set_ylabel("GB/s")
        ax.set_title(label)
        if len(bw.get("channels", [])) > 1:
            ax.legend(fontsize="small")
    axes[-1].set_xlabel("time (us)")
    return _save(fig, out)


def plot_energy_breakdown(results: Any, out: str | Path | None = None) -> Figure:
    """DRAM + PIM energy per component with and without PIM, stacked bars (uJ)."""
    runs = _runs(results)
    fig = _figure(5.5, 4.0)
    ax = fig.add_subplot()
    bottoms = [0.0] * len(runs)
    for comp in ENERGY_COMPONENTS:
        heights = [float((run.get("energy_nj") or {}).get(comp, 0.0)) / 1000.0 for _, run in runs]
        if not any(heights):
            continue
        ax.bar([label for label, _ in runs], heights, 0.6, bottom=bottoms, label=comp)
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    ax.set_ylabel("energy (uJ)")
    ax.set_title("Energy by component")
    ax.legend(fontsize="small")
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


def plot_any(path: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Write every PNG that applies to ``path`` into ``out_dir`` (default: beside it)."""
    p = Path(path)
    kind = detect_kind(p)
    out = Path(out_dir) if out_dir is not None else p.parent
    stem = p.stem
    written: list[Path] = []
    if kind == "results":
        data = load_compare_results(p)
        plots = [("phases", plot_phase_breakdown), ("energy", plot_energy_breakdown)]
        if any((run.get("bandwidth") or {}).get("channels") for run in data["runs"].values()):
            plots.append(("bandwidth", plot_bandwidth))
        for name, fn in plots:
            target = out / f"{stem}-{name}.png"
            fn(data, target)
            written.append(target)
        return written
    df = _frame(p)
    kinds = set(df["kind"].dropna()) if "kind" in df.columns else set()
    if "iteration" in kinds:
        target = out / f"{stem}-speedup.png"
        plot_sweep_speedup(df[df["kind"] == "iteration"], target)
        written.append(target)
    if "update-bench" in kinds:
        target = out / f"{stem}-update-bench-speedup.png"
        plot_update_bench_speedup(df[df["kind"] == "update-bench"], target)
        written.append(target)
    if not written:
        raise ConfigError("input", f"{p}: no plot applies to this sweep table (kinds: "
                          f"{', '.join(sorted(map(str, kinds))) or 'none'}, or no ok rows)")
    return written
