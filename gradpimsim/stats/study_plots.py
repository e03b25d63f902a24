"""Figures of a study's table (``gradpimsim study``): lines, grouped bars, stacked bars.

A figure spec (a ``[[figures]]`` table of the study file, :mod:`gradpimsim.sweep.study`) names
the ``x`` parameter and the ``y`` columns; every *other* parameter that varies in the table
makes the series (one colour each), so no point is averaged away or hidden.  ``panels`` splits
the figure by one more parameter.  Types:

``lines``
    ``y`` against ``x`` (numeric ``x``; ``logx = 2`` for a log-2 axis); ``dashed`` columns are
    drawn dashed in their series' colour (a bound beside the measured value); ``hline`` draws
    a reference (``1.0``: no speedup).
``bars``
    grouped bars of ``y`` (and ``dashed``, hatched) per value of ``x`` (categorical), in the
    table's order.
``stacked``
    per value of ``x`` one bar per run (host update, GradPIM), stacked by component:
    ``stack = "energy"`` (µJ per component) or ``"traffic"`` (MiB per tensor class, read plus
    written).  The components are checked to add up to the run's total before anything is
    stacked.

Each drawn element has a ``gid`` (``"speedup|workload=resnet18"``, ``"pim|x=8|act"``) for
reading the figure back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure

from gradpimsim.config import ConfigError
from gradpimsim.host.traffic import CLASSES
from gradpimsim.stats.energy import COMPONENTS
from gradpimsim.stats.figures import RUN_LABELS, UJ, figure, legend_outside
from gradpimsim.stats.run_plots import check_adds_up

MIB = 2**20
#: Parameters shown in a figure's subtitle when the study holds them fixed.
SUBTITLE_KEYS = ("workload", "batch", "memory", "channels", "ranks", "optimizer", "precision",
                 "npu")
#: Readable names of the columns figures use most (a figure's ``labels`` adds more).
LABELS = {"speedup": "speedup", "ideal_speedup": "ideal bound",
          "baseline_update_share": "host update: update exposed",
          "pim_update_share": "GradPIM: update exposed",
          "gain_captured": "gain captured", "host_slowdown": "backward slowdown",
          "captured_of_ideal": "captured of ideal"}


def value_text(v: Any) -> str:
    """A table value as a label: ``2`` not ``2.0``; empty for a missing value."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _varying(table: Any, params: Sequence[str], exclude: Sequence[str]) -> list[str]:
    return [p for p in params if p in table.columns and p not in exclude
            and table[p].astype(str).nunique() > 1]


def subtitle(table: Any, params: Sequence[str]) -> str:
    """The parameters the table holds fixed that decide the figure."""
    parts = []
    for k in SUBTITLE_KEYS:
        if k in params and k in table.columns and table[k].astype(str).nunique() == 1:
            v = table[k].iloc[0]
            if value_text(v) not in ("-", ""):
                parts.append(value_text(v) if k in ("workload", "memory") else
                             f"{k} {value_text(v)}")
    return ", ".join(parts)


def _series(table: Any, cols: list[str]) -> list[tuple[str, Any]]:
    """(label, rows) per combination of ``cols``, in first-appearance order."""
    if not cols:
        return [("", table)]
    keys = table[cols].astype(str).agg("|".join, axis=1)
    out = []
    for key in dict.fromkeys(keys):
        rows = table[keys == key]
        label = ", ".join(f"{c}={value_text(rows[c].iloc[0])}" if len(cols) > 1
                          else value_text(rows[c].iloc[0]) for c in cols)
        out.append((label, rows))
    return out


def _need(table: Any, cols: Sequence[str], fig: Mapping[str, Any]) -> None:
    missing = [c for c in cols if c not in table.columns]
    if missing:
        raise ConfigError(f"figures.{fig['name']}", f"the table has no column {missing[0]!r}; "
                          "see docs/studies.md for the columns")


def draw(table: Any, fig: Mapping[str, Any], params: Sequence[str], study: str = "") -> Figure:
    """The figure ``fig`` describes, drawn from ``table`` (the study's ok rows)."""
    kind = fig["type"]
    panels_col = fig.get("panels")
    panels = _series(table, [panels_col]) if panels_col else [("", table)]
    exclude = [fig["x"], *([panels_col] if panels_col else [])]
    series_cols = _varying(table, params, exclude)
    width = 6.0 if kind != "stacked" else 4.0 + 1.2 * table[fig["x"]].nunique()
    out = figure(width * (1 + 0.8 * (len(panels) - 1)) + 2.0, 4.2)
    axes = out.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    for ax, (plabel, rows) in zip(axes, panels, strict=True):
        if kind == "lines":
            _lines(ax, rows, fig, series_cols)
        elif kind == "bars":
            _bars(ax, rows, fig, series_cols)
        else:
            _stacked(ax, rows, fig, series_cols)
        if plabel:
            ax.set_title(f"{panels_col} = {plabel}", fontsize="medium")
    if kind == "stacked":
        legend_outside(out, axes[-1], reverse=True)  # top of the stack first
    else:
        legend_outside(out, axes[-1])
    sub = subtitle(table, params)
    out.suptitle(f"{fig.get('title', fig['name'])}" + (f"\n{sub}" if sub else ""))
    return out


def _label(fig: Mapping[str, Any], col: str) -> str:
    return str((fig.get("labels") or {}).get(col) or LABELS.get(col) or col.replace("_", " "))


def _lines(ax: Any, table: Any, fig: Mapping[str, Any], series_cols: list[str]) -> None:
    ys, dashed = list(fig["y"]), list(fig.get("dashed", []))
    _need(table, [fig["x"], *ys, *dashed], fig)
    colors = iter(f"C{i}" for i in range(1000))
    markers = "osD^v<>"
    for slabel, rows in _series(table, series_cols):
        rows = rows.sort_values(fig["x"])
        xs = rows[fig["x"]].astype(float).tolist()
        for j, col in enumerate(ys):
            color = next(colors)
            name = ", ".join(x for x in (slabel, _label(fig, col) if len(ys) > 1 else "") if x)
            ax.plot(xs, rows[col].astype(float).tolist(), marker=markers[j % len(markers)],
                    color=color, label=name or _label(fig, col), gid=f"{col}|{slabel}")
            for col2 in dashed if j == 0 else []:
                ax.plot(xs, rows[col2].astype(float).tolist(), linestyle="--", color=color,
                        linewidth=1.0, label=f"{slabel + ', ' if slabel else ''}"
                        f"{_label(fig, col2)}", gid=f"{col2}|{slabel}")
    if fig.get("logx"):
        ax.set_xscale("log", base=int(fig["logx"]))
        xs = sorted(set(table[fig["x"]].astype(float)))
        ax.set_xticks(xs, [value_text(x) for x in xs])
        ax.minorticks_off()
    _axes_text(ax, fig, ys)


def _axes_text(ax: Any, fig: Mapping[str, Any], ys: list[str]) -> None:
    if fig.get("hline") is not None:
        ax.axhline(float(fig["hline"]), color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel(str(fig.get("xlabel", fig["x"].replace("_", " "))))
    ax.set_ylabel(str(fig.get("ylabel", _label(fig, ys[0]))))


def _bars(ax: Any, table: Any, fig: Mapping[str, Any], series_cols: list[str]) -> None:
    ys, dashed = list(fig["y"]), list(fig.get("dashed", []))
    _need(table, [fig["x"], *ys, *dashed], fig)
    xs = list(dict.fromkeys(table[fig["x"]].map(value_text)))
    groups = [(slabel, rows, col, col in dashed) for slabel, rows in _series(table, series_cols)
              for col in ys + dashed]
    width = 0.8 / max(1, len(groups))
    for i, (slabel, rows, col, hatched) in enumerate(groups):
        pos, heights = [], []
        for j, x in enumerate(xs):
            match = rows[rows[fig["x"]].map(value_text) == x]
            if len(match):
                pos.append(j - 0.4 + width * (i + 0.5))
                heights.append(float(match[col].iloc[0]))
        name = ", ".join(v for v in (slabel, _label(fig, col)) if v)
        bars = ax.bar(pos, heights, width, label=name, hatch="//" if hatched else None,
                      fill=not hatched, edgecolor=f"C{i}" if hatched else None,
                      color=None if hatched else f"C{i}")
        for bar, x in zip(bars, [x for x in xs if (rows[fig['x']].map(value_text) == x).any()],
                          strict=True):
            bar.set_gid(f"{col}|{slabel}|{x}")
    ax.set_xticks(range(len(xs)), xs)
    _axes_text(ax, fig, ys)


def stack_parts(row: Mapping[str, Any], run: str, stack: str) -> tuple[dict[str, float], float]:
    """A run's components and total for ``stack`` (``energy`` in µJ, ``traffic`` in MiB)."""
    if stack == "energy":
        parts = {c: float(row[f"{run}_energy_{c}_uj"]) for c in COMPONENTS}
        return parts, float(row[f"{run}_energy_uj"])
    parts = {}
    for cls in CLASSES:
        slug = "_".join(cls.split())
        parts[cls] = sum(float(row[f"{run}_traffic_{slug}_{d}_bytes"] or 0)
                         for d in ("read", "write")) / MIB
    return parts, (float(row[f"{run}_read_bytes"]) + float(row[f"{run}_write_bytes"])) / MIB


def total_text(v: float) -> str:
    """A bar's total to three significant digits, no exponent: 0.646, 66.5, 1,052."""
    if v <= 0 or not math.isfinite(v):
        return f"{v:g}"
    decimals = max(0, 2 - math.floor(math.log10(v)))
    return f"{v:,.{decimals}f}"


def _stacked(ax: Any, table: Any, fig: Mapping[str, Any], series_cols: list[str]) -> None:
    stack = fig["stack"]
    order = list(COMPONENTS) if stack == "energy" else list(CLASSES)
    labels, ticks = [], []
    colors = {c: f"C{i}" for i, c in enumerate(order)}
    cols = [fig["x"], *series_cols]
    pos = 0.0
    seen: set[str] = set()
    for _, rows in _series(table, cols):
        row = rows.iloc[0]
        xlabel = ", ".join(value_text(row[c]) for c in cols)
        for run in ("baseline", "pim"):
            try:
                parts, total = stack_parts(row, run, stack)
            except KeyError as exc:
                raise ConfigError(f"figures.{fig['name']}", f"the table has no column {exc}; "
                                  "a stacked figure needs a compare study") from None
            check_adds_up(parts, total, f"{xlabel} {run} {stack}")
            bottom = 0.0
            for comp in order:
                h = parts.get(comp, 0.0)
                if not h:
                    continue
                ax.bar([pos], [h], 0.8, bottom=[bottom], color=colors[comp],
                       label=None if comp in seen else comp.replace("_", " "),
                       gid=f"{run}|{xlabel}|{comp}")
                seen.add(comp)
                bottom += h
            ax.text(pos, bottom, total_text(bottom), ha="center", va="bottom",
                    fontsize="x-small")
            labels.append(pos)
            # one line per value: side by side, long labels would run into each other
            ticks.append("\n".join([*(value_text(row[c]) for c in cols), RUN_LABELS[run]]))
            pos += 1.0
        pos += 0.6
    ax.set_xticks(labels, ticks, fontsize="small")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.08)
    unit = f"energy ({UJ})" if stack == "energy" else "DRAM bus traffic, read + written (MiB)"
    ax.set_ylabel(str(fig.get("ylabel", unit)))


__all__ = ["LABELS", "draw", "stack_parts", "subtitle", "total_text", "value_text"]
