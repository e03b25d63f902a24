"""What every gradpimsim figure shares: the canvas, units, titles, legends and file formats.

Figures are drawn on an Agg canvas without pyplot state (safe in worker processes and
notebooks).  Conventions, so a figure can go into a paper as it is:

- units are written ``µs``, ``µJ``, ``GB/s``, ``MiB``;
- the title names the workload and the configuration (:func:`config_label`);
- a legend sits outside the axes (right of them), so it covers no data (:func:`legend_outside`);
- :func:`save` writes PNG and any of PDF and SVG, each marked as gradpimsim's
  (``io_safety``: PNG ``Software``, PDF and SVG ``Creator``) and without a creation date, so
  the same figure gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gradpimsim.config import ConfigError

FORMATS = ("png", "pdf", "svg")
DEFAULT_FORMATS = ("png", "pdf")
US = "µs"
UJ = "µJ"
RUN_LABELS = {"baseline": "host update", "pim": "GradPIM"}


def figure(width: float = 7.0, height: float = 4.0) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def check_formats(formats: Iterable[str]) -> tuple[str, ...]:
    out = tuple(dict.fromkeys(f.strip().lower().lstrip(".") for f in formats if f.strip()))
    bad = [f for f in out if f not in FORMATS]
    if bad or not out:
        raise ConfigError("formats", f"unknown figure format {bad[0] if bad else '(none)'!r}; "
                          f"choose from {', '.join(FORMATS)}")
    return out


def save(fig: Figure, base: str | Path, formats: Iterable[str] = ("png",)) -> list[Path]:
    """Write ``fig`` as ``base.<format>`` for each format; the paths written."""
    creator = "gradpimsim (matplotlib)"
    meta = {"png": {"Software": creator}, "pdf": {"Creator": creator, "CreationDate": None},
            "svg": {"Creator": creator, "Date": None}}
    out = []
    b = Path(base)
    b.parent.mkdir(parents=True, exist_ok=True)
    for fmt in check_formats(formats):
        path = b.with_name(f"{b.name}.{fmt}")
        fig.savefig(path, format=fmt, dpi=150 if fmt == "png" else None, metadata=meta[fmt])
        out.append(path)
    return out


def save_one(fig: Figure, out: str | Path | None) -> Figure:
    """Save to ``out`` in the format its suffix names (PNG without one); ``fig`` back."""
    if out is not None:
        p = Path(out)
        fmt = p.suffix.lstrip(".").lower() or "png"
        save(fig, p.with_suffix("") if p.suffix else p, (fmt,))
    return fig


def legend_outside(fig: Figure, ax: Axes, **kw: Any) -> None:
    """The axes' legend to the right of the axes, outside them (covers no data)."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  borderaxespad=0.0, fontsize="small", frameon=False, **kw)


def config_label(config: Mapping[str, Any], memory: Mapping[str, Any] | None = None,
                 keys: Iterable[str] = ("batch", "memory", "optimizer", "precision", "npu")
                 ) -> str:
    """``resnet18, batch 8, ddr4-2400 2ch 1r, momentum/mixed, NPU small``: the workload and
    what decides the figure (``memory``: a result's memory block, for channels and ranks)."""
    parts = [str(config.get("workload", "?"))]
    keys = tuple(keys)
    if "batch" in keys and config.get("batch") is not None:
        parts.append(f"batch {config['batch']}")
    if "memory" in keys:
        mem = str((memory or {}).get("name") or config.get("memory") or "")
        ch = (memory or {}).get("channels") or config.get("channels")
        rk = (memory or {}).get("ranks") or config.get("ranks")
        extra = " ".join(x for x in (f"{ch}ch" if ch else "", f"{rk}r" if rk else "") if x)
        parts.append(f"{mem} {extra}".strip())
    if "optimizer" in keys and config.get("optimizer"):
        parts.append(f"{config['optimizer']}/{config.get('precision', '?')}")
    if "npu" in keys and config.get("npu"):
        parts.append(f"NPU {config['npu']}")
    return ", ".join(p for p in parts if p)


__all__ = ["DEFAULT_FORMATS", "FORMATS", "RUN_LABELS", "UJ", "US", "check_formats",
           "config_label", "figure", "legend_outside", "save", "save_one"]
