"""Figures of one comparison (a ``results.json``, or ``CompareResult.to_dict()``).

- :func:`plot_phase_timeline`: each run's phases as spans laid out in time (they overlap: with
  GradPIM the update runs during backward), with the whole iteration on its own lane, so the
  picture's lengths are the measured times and their ratio the measured speedup;
- :func:`plot_energy_breakdown`: energy per component, stacked (the components add up to the
  total, which is checked before anything is stacked);
- :func:`plot_traffic_breakdown`: bus bytes read and written by tensor class, stacked (they add
  up to the DRAM's byte counters, checked likewise);
- :func:`plot_bandwidth`: bus bandwidth over time per channel;
- :func:`plot_overlap`: how much of the update was hidden: each run's time before and after
  backward ended, the ideal bound, and each GradPIM unit's utilization over time.

Every element that carries a figure has a ``gid`` naming it (``"pim:update"``), so a test (or
a user) can read back what was drawn.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from gradpimsim.config import ConfigError
from gradpimsim.host.traffic import CLASSES
from gradpimsim.stats.energy import COMPONENTS
from gradpimsim.stats.figures import (
    RUN_LABELS,
    UJ,
    US,
    config_label,
    figure,
    legend_outside,
    save_one,
)

RESULTS_SCHEMA = "gradpimsim.results/1"
PHASES = ("forward", "backward", "update")
PHASE_COLORS = {"iteration": "0.55", "forward": "tab:blue", "backward": "tab:orange",
                "update": "tab:green"}
#: Components whose sum must equal the total before they are stacked (relative tolerance:
#: the JSON rounds nothing, but floating-point sums differ in the last bits).
ADD_UP_TOLERANCE = 1e-9
MIB = 2**20


def load_results(source: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """A results dict (schema ``gradpimsim.results/1``) from a path or a mapping."""
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
                          "(write it with gradpimsim compare --out)")
    runs = data.get("runs")
    if not isinstance(runs, dict) or not runs or not set(runs) <= set(RUN_LABELS):
        raise ConfigError("input", f"{where}: 'runs' must hold 'baseline' and/or 'pim'")
    return data


def runs_of(data: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(name, data["runs"][name]) for name in RUN_LABELS if name in data["runs"]]


def _us(run: Mapping[str, Any], cycles: float) -> float:
    return float(cycles) * float(run.get("tCK_ns", 0.0)) / 1000.0


def title(data: Mapping[str, Any], what: str) -> str:
    first = runs_of(data)[0][1]
    label = config_label(data.get("config") or {"workload": data.get("workload", "?")},
                         first.get("memory"))
    return f"{what}\n{label}"


def _speedup_note(data: Mapping[str, Any]) -> str:
    s = data.get("speedup")
    return f" (speedup {s:.3f}x)" if isinstance(s, (int, float)) else ""


# ---------------------------------------------------------------------- phases in time
def plot_phase_timeline(results: Any, out: str | Path | None = None) -> Figure:
    """Each run's iteration and phases as spans in time (µs); phases overlap, as they ran."""
    data = load_results(results)
    runs = runs_of(data)
    lanes = ("iteration", *PHASES)
    fig = figure(8.0, 1.0 + 0.45 * len(lanes) * len(runs))
    ax = fig.add_subplot()
    yticks, ylabels = [], []
    y = 0.0
    for name, run in reversed(runs):
        for lane in reversed(lanes):
            if lane == "iteration":
                start, end = 0, run.get("cycles", 0)
            else:
                ph = (run.get("phases") or {}).get(lane) or {}
                start, end = ph.get("start", -1), ph.get("end", -1)
            if 0 <= start <= end:
                a, b = _us(run, start), _us(run, end)
                ax.broken_barh([(a, b - a)], (y - 0.35, 0.7), color=PHASE_COLORS[lane],
                               gid=f"{name}:{lane}")
                if lane == "iteration":
                    ax.text(b, y, f" {b:,.1f} {US}", va="center", ha="left", fontsize="small")
            yticks.append(y)
            ylabels.append(f"{RUN_LABELS[name]}: {lane}")
            y += 1.0
        y += 0.5
    ax.set_yticks(yticks, ylabels)
    ax.set_xlabel(f"time ({US})")
    longest = max((_us(r, r.get("cycles", 0)) for _, r in runs), default=0.0)
    ax.set_xlim(0, longest * 1.22 or 1.0)  # room for the time written after the longest bar
    ax.set_title(title(data, "Training iteration: phases in time" + _speedup_note(data)))
    return save_one(fig, out)


#: The name the phase figure had before it was a timeline.
plot_phase_breakdown = plot_phase_timeline


# ---------------------------------------------------------------------- stacked quantities
def check_adds_up(parts: Mapping[str, float], total: float, what: str) -> None:
    """Refuse to stack components that do not add up to their total."""
    s = sum(parts.values())
    if abs(s - total) > ADD_UP_TOLERANCE * max(abs(total), 1.0):
        raise ConfigError("input", f"{what}: the components add up to {s:,.6g}, not the total "
                          f"{total:,.6g}; a stacked bar would mislead, so none is drawn")


def _stacked(ax: Any, xs: list[float], stacks: list[dict[str, float]], order: list[str],
             gids: list[str], colors: Mapping[str, Any] | None = None, width: float = 0.6
             ) -> None:
    bottoms = [0.0] * len(xs)
    for comp in order:
        heights = [s.get(comp, 0.0) for s in stacks]
        if not any(heights):
            continue
        bars = ax.bar(xs, heights, width, bottom=bottoms, label=comp.replace("_", " "),
                      color=(colors or {}).get(comp))
        for bar, gid in zip(bars, gids, strict=True):
            bar.set_gid(f"{gid}:{comp}")
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    for x, top in zip(xs, bottoms, strict=True):
        ax.text(x, top, f"{top:,.1f}", ha="center", va="bottom", fontsize="small")
    ax.set_ylim(0, 1.12 * max(bottoms + [1e-9]))


def plot_energy_breakdown(results: Any, out: str | Path | None = None) -> Figure:
    """DRAM and PIM energy per component, one stacked bar per run (µJ)."""
    data = load_results(results)
    runs = runs_of(data)
    stacks = []
    for name, run in runs:
        e = run.get("energy_nj") or {}
        parts = {c: float(e.get(c, 0.0)) / 1e3 for c in COMPONENTS}
        if "total" in e:
            check_adds_up(parts, float(e["total"]) / 1e3, f"{name} energy")
        stacks.append(parts)
    fig = figure(6.5, 4.2)
    ax = fig.add_subplot()
    _stacked(ax, list(range(len(runs))), stacks, list(COMPONENTS), [n for n, _ in runs])
    ax.set_xticks(range(len(runs)), [RUN_LABELS[n] for n, _ in runs])
    ax.set_ylabel(f"energy ({UJ})")
    ax.set_title(title(data, "DRAM and PIM energy by component"))
    legend_outside(fig, ax, reverse=True)
    return save_one(fig, out)


def plot_traffic_breakdown(results: Any, out: str | Path | None = None) -> Figure:
    """Bus bytes read and written by tensor class, stacked, per run (MiB)."""
    data = load_results(results)
    runs = runs_of(data)
    xs, stacks, gids, ticks = [], [], [], []
    for i, (name, run) in enumerate(runs):
        traffic = run.get("traffic") or {}
        for j, direction in enumerate(("read", "write")):
            parts = {c: 0.0 for c in CLASSES}
            for classes in traffic.values():
                for cls, rw in classes.items():
                    parts[cls] = parts.get(cls, 0.0) + float(rw.get(direction, 0)) / MIB
            total = float((run.get("dram") or {}).get(f"{direction}_bytes", 0)) / MIB
            check_adds_up(parts, total, f"{name} bytes {direction}")
            xs.append(i * 2.6 + j)
            stacks.append(parts)
            gids.append(f"{name}:{direction}")
            ticks.append(f"{RUN_LABELS[name]}\n{direction}")
    fig = figure(7.0, 4.2)
    ax = fig.add_subplot()
    order = list(dict.fromkeys([*CLASSES, *(c for s in stacks for c in s)]))
    _stacked(ax, xs, stacks, order, gids, width=0.8)
    ax.set_xticks(xs, ticks)
    ax.set_ylabel("DRAM bus traffic (MiB)")
    ax.set_title(title(data, "DRAM bus traffic by tensor class"))
    legend_outside(fig, ax, reverse=True)
    return save_one(fig, out)


# ---------------------------------------------------------------------- over time
def plot_bandwidth(results: Any, out: str | Path | None = None) -> Figure:
    """DRAM bus bandwidth over time per channel (GB/s per bin), one panel per run."""
    data = load_results(results)
    runs = runs_of(data)
    fig = figure(8.0, 1.0 + 2.4 * len(runs))
    axes = fig.subplots(len(runs), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (name, run) in zip(axes, runs, strict=True):
        bw = run.get("bandwidth") or {}
        bin_ns = (bw.get("bin_cycles") or 1) * (run.get("tCK_ns") or 1.0)
        for ch, bins in enumerate(bw.get("channels", [])):
            times = [(i + 0.5) * bin_ns / 1000.0 for i in range(len(bins))]
            ax.plot(times, [b / bin_ns for b in bins], label=f"channel {ch}", linewidth=1.0,
                    gid=f"{name}:ch{ch}")
        peak = (run.get("dram") or {}).get("peak_bandwidth_gbs")
        if peak:
            ax.axhline(peak, color="0.5", linestyle=":", linewidth=0.8, label="peak, all channels")
        ax.set_ylabel("GB/s")
        ax.set_title(RUN_LABELS[name], fontsize="medium")
        ax.set_ylim(bottom=0)
        legend_outside(fig, ax)
    axes[-1].set_xlabel(f"time ({US})")
    fig.suptitle(title(data, "DRAM bus bandwidth over time"))
    return save_one(fig, out)


def plot_overlap(results: Any, out: str | Path | None = None) -> Figure:
    """Update hidden behind backward: per run the time to backward's end and the update
    exposed after it (they add up to the iteration), the ideal bound, and each GradPIM unit's
    column-path utilization over time."""
    data = load_results(results)
    runs = [(n, r) for n, r in runs_of(data) if r.get("overlap")]
    if not runs:
        raise ConfigError("input", "the results carry no overlap figures (written by a "
                          "gradpimsim older than the overlap metrics); run compare again")
    pim = dict(runs).get("pim")
    units = ((pim or {}).get("pim_utilization") or {}).get("units") or {}
    fig = figure(8.0, 2.6 + (3.0 if units else 0.0))
    axes = fig.subplots(2 if units else 1, 1, squeeze=False,
                        height_ratios=[1, 1.4] if units else [1])[:, 0]
    ax = axes[0]
    for i, (name, run) in enumerate(runs):
        ov = run["overlap"]
        before = _us(run, ov["backward_end"])
        after = _us(run, ov["exposed_update_cycles"])
        y = len(runs) - 1 - i
        ax.barh([y], [before], 0.6, color=PHASE_COLORS["backward"], gid=f"{name}:to-backward-end",
                label="until backward ends" if i == 0 else None)
        ax.barh([y], [after], 0.6, left=[before], color=PHASE_COLORS["update"],
                gid=f"{name}:exposed-update", label="update exposed after" if i == 0 else None)
        ax.text(before + after, y, f" {before + after:,.1f} {US}", va="center",
                fontsize="small")
    ax.set_yticks(range(len(runs)), [RUN_LABELS[n] for n, _ in reversed(runs)])
    cmp_ = data.get("overlap") or {}
    if cmp_.get("ideal_cycles") is not None:
        ideal = _us(runs[0][1], cmp_["ideal_cycles"])
        ax.axvline(ideal, color="k", linestyle="--", linewidth=1.0, gid="ideal",
                   label=f"ideal bound ({cmp_.get('ideal_speedup', 0):.3f}x)")
    notes = []
    if cmp_.get("gain_captured") is not None:
        notes.append(f"gain captured {100 * cmp_['gain_captured']:.1f}%")
    if cmp_.get("host_slowdown") is not None:
        notes.append(f"backward slowed {cmp_['host_slowdown']:.3f}x")
    ax.set_xlabel(f"time ({US})" + (f"; {', '.join(notes)}" if notes else ""))
    longest = max((_us(r, r.get("cycles", 0)) for _, r in runs), default=0.0)
    ax.set_xlim(0, longest * 1.22 or 1.0)  # room for the time written after the longest bar
    legend_outside(fig, ax)
    if units and pim is not None:
        _utilization_map(fig, axes[1], pim, units)
    fig.suptitle(title(data, "Update hidden behind backward" + _speedup_note(data)))
    return save_one(fig, out)


def _utilization_map(fig: Figure, ax: Any, run: Mapping[str, Any],
                     units: Mapping[str, list[float]]) -> None:
    import numpy as np

    names = list(units)
    width = (run.get("pim_utilization") or {}).get("bin_cycles") or 1
    n = max(len(v) for v in units.values())
    grid = np.zeros((len(names), n))
    for i, u in enumerate(names):
        grid[i, : len(units[u])] = [100.0 * x for x in units[u]]
    mesh = ax.pcolormesh([_us(run, k * width) for k in range(n + 1)],
                         range(len(names) + 1), grid, vmin=0, vmax=100, cmap="viridis",
                         gid="pim:utilization")
    ax.set_yticks([i + 0.5 for i in range(len(names))], names,
                  fontsize="x-small" if len(names) > 8 else "small")
    ax.set_xlabel(f"time ({US}), GradPIM run")
    ax.set_ylabel("GradPIM unit")
    end = (run.get("overlap") or {}).get("backward_end")
    if end is not None:
        ax.axvline(_us(run, end), color="w", linestyle="--", linewidth=1.0,
                   gid="pim:backward-end")
    fig.colorbar(mesh, ax=ax, label="column-path utilization (%)")


__all__ = ["check_adds_up", "load_results", "plot_bandwidth", "plot_energy_breakdown",
           "plot_overlap", "plot_phase_breakdown", "plot_phase_timeline",
           "plot_traffic_breakdown"]
