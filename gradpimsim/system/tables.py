"""Flat rows and tidy tables of results: what the DataFrames, ``compare_many`` and the studies'
tables are made of.  Column names carry their units:

``_cycles`` DRAM clock cycles; ``_us`` microseconds; ``_bytes`` bytes; ``_gbs`` GB/s (10^9 bytes
per second); ``_uj`` microjoules.  Names without a unit are ratios: ``speedup`` (baseline time /
PIM time), ``*_share``/``*_utilization``/``*_rate`` (fractions between 0 and 1).

Per run (:func:`run_row`):

``cycles``, ``time_us``
    The iteration.
``forward_us``, ``backward_us``, ``update_us``
    Each phase from its first start to its last end (phases overlap: they do not add up).
``backward_end_us``, ``update_exposed_us``, ``update_share``
    When backward ended; the time the iteration ran on after it (the update nothing hid) and
    its share of the iteration.
``update_done_at_backward_end``
    The share of the update's work done when backward ended (``system.overlap``).
``read_bytes``, ``write_bytes``
    DRAM bus traffic (a PIM update moves its data inside the DRAM, not over the bus).
``bandwidth_gbs``, ``bandwidth_utilization``, ``row_hit_rate``
    Mean bus bandwidth over the iteration, its share of the peak, row-buffer hits per column.
``pim_utilization``, ``pim_column_ops``, ``pim_ops``
    GradPIM units' column-path utilization over the iteration and their commands.
``energy_uj``, ``energy_<component>_uj``
    DRAM and PIM energy; the components add up to ``energy_uj``.
``placement_resolved``
    The placement the run used (``auto`` resolved: ``bank-partition`` if it fits).
``traffic_<class>_<read|write>_bytes``
    Bus traffic by tensor class (``host.traffic``); they add up to ``read_bytes``/``write_bytes``.

Per comparison (:func:`comparison_row`): the configuration's fields, ``speedup``,
``ideal_speedup``, ``ideal_time_us``, ``gain_captured``, ``captured_of_ideal``,
``host_slowdown`` (``system.overlap``), then every run column prefixed ``baseline_``/``pim_``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gradpimsim.host.traffic import CLASSES
from gradpimsim.stats.energy import COMPONENTS as ENERGY_COMPONENTS

if TYPE_CHECKING:
    import pandas as pd

    from gradpimsim.system.results import CompareResult, RunResult

#: Comparison figures (``system.overlap.compare_overlap``) copied into a comparison row.
OVERLAP_KEYS = ("gain_captured", "captured_of_ideal", "host_slowdown", "ideal_speedup")


def _us(r: RunResult, cycles: int | float) -> float:
    return round(cycles * r.tCK_ns / 1000.0, 4)


def slug(text: str) -> str:
    """A column-name part: lower case, words joined by underscores."""
    return "_".join(str(text).lower().replace("-", " ").split())


def run_row(r: RunResult) -> dict[str, Any]:
    """The headline figures of one run, flat, units in the names (module docstring)."""
    ov = r.overlap or {}
    row: dict[str, Any] = {"cycles": r.cycles, "time_us": _us(r, r.cycles)}
    for phase in ("forward", "backward", "update"):
        row[f"{phase}_us"] = _us(r, (r.phases.get(phase) or {}).get("cycles", 0))
    if ov:
        row["backward_end_us"] = _us(r, ov["backward_end"])
        row["update_exposed_us"] = _us(r, ov["exposed_update_cycles"])
        row["update_share"] = (round(ov["exposed_update_cycles"] / r.cycles, 6)
                               if r.cycles else 0.0)
        row["update_done_at_backward_end"] = ov["update_work_at_backward_end"]
    d = r.dram
    row.update({"read_bytes": d["read_bytes"], "write_bytes": d["write_bytes"],
                "bandwidth_gbs": d["bandwidth_gbs"], "bandwidth_utilization": d["utilization"],
                "row_hit_rate": d["row_hit_rate"],
                "pim_utilization": r.pim_units.get("utilization", 0.0),
                "pim_column_ops": r.pim_units.get("column_ops", 0),
                "pim_ops": r.pim_units.get("ops", 0)})
    e = r.energy_nj
    # (not rounded: the components must still add up to the total in the table)
    row["energy_uj"] = float(e.get("total", 0.0)) / 1e3
    for comp in ENERGY_COMPONENTS:
        row[f"energy_{comp}_uj"] = float(e.get(comp, 0.0)) / 1e3
    by_class = traffic_by_class(r.traffic)
    for cls in CLASSES:
        for direction in ("read", "write"):
            row[f"traffic_{slug(cls)}_{direction}_bytes"] = by_class.get((cls, direction), 0)
    row["placement_resolved"] = r.memory.get("placement", "")
    row["wall_s"] = round(r.wall_s, 3)
    return row


def traffic_by_class(traffic: dict[str, dict[str, dict[str, int]]]) -> dict[tuple[str, str], int]:
    """(tensor class, read|write) -> bytes over all phases."""
    out: dict[tuple[str, str], int] = {}
    for classes in traffic.values():
        for cls, rw in classes.items():
            for direction in ("read", "write"):
                out[(cls, direction)] = out.get((cls, direction), 0) + int(rw.get(direction, 0))
    return out


def comparison_metrics(c: CompareResult) -> dict[str, Any]:
    """Speedup and the overlap figures of a comparison (None where a run is missing)."""
    ov = c.overlap or {}
    out: dict[str, Any] = {"speedup": round(c.speedup, 6) if c.speedup else None}
    for key in OVERLAP_KEYS:
        out[key] = ov.get(key)
    ideal = ov.get("ideal_cycles")
    out["ideal_time_us"] = _us(c.baseline, ideal) if ideal is not None else None
    return out


def comparison_row(c: CompareResult, *, config: bool = True) -> dict[str, Any]:
    """One comparison as one flat row: configuration, comparison figures, both runs'."""
    row: dict[str, Any] = {}
    if config:
        row.update({k: v for k, v in c.config.to_dict().items()
                    if k not in ("pim", "extra")})
    row.update(comparison_metrics(c))
    for name, r in c.runs().items():
        row.update({f"{name}_{k}": v for k, v in run_row(r).items()})
    return row


# ---------------------------------------------------------------------- tidy DataFrames
def summary_frame(runs: dict[str, RunResult], extra: dict[str, Any] | None = None
                  ) -> pd.DataFrame:
    """One row per run: ``run``, ``workload``, :func:`run_row` and ``extra`` columns."""
    import pandas as pd

    rows = [{"run": name, "workload": r.config.workload, **run_row(r), **(extra or {})}
            for name, r in runs.items()]
    return pd.DataFrame(rows)


def energy_frame(runs: dict[str, RunResult]) -> pd.DataFrame:
    """One row per (run, window, component): ``energy_uj``; window ``iteration`` is the whole
    run, ``forward``/``backward``/``update`` the consecutive windows that add up to it."""
    import pandas as pd

    rows = []
    for name, r in runs.items():
        windows = {"iteration": r.energy_nj, **r.energy_by_phase_nj}
        for window, comps in windows.items():
            for comp in ENERGY_COMPONENTS:
                rows.append({"run": name, "window": window, "component": comp,
                             "energy_uj": float(comps.get(comp, 0.0)) / 1e3})
    return pd.DataFrame(rows, columns=["run", "window", "component", "energy_uj"])


def bandwidth_frame(runs: dict[str, RunResult]) -> pd.DataFrame:
    """One row per (run, channel, bin): its start and end, bytes moved and GB/s."""
    import pandas as pd

    rows = []
    for name, r in runs.items():
        width = r.bandwidth.get("bin_cycles") or 1
        seconds = width * r.tCK_ns * 1e-9
        for ch, bins in enumerate(r.bandwidth.get("channels", [])):
            for i, b in enumerate(bins):
                rows.append({"run": name, "channel": ch, "start_us": _us(r, i * width),
                             "end_us": _us(r, (i + 1) * width), "bytes": b,
                             "bandwidth_gbs": b / seconds / 1e9})
    return pd.DataFrame(rows, columns=["run", "channel", "start_us", "end_us", "bytes",
                                       "bandwidth_gbs"])


def traffic_frame(runs: dict[str, RunResult]) -> pd.DataFrame:
    """One row per (run, phase, tensor class, direction): ``bytes`` over the bus."""
    import pandas as pd

    rows = [{"run": name, "phase": phase, "tensor_class": cls, "direction": direction,
             "bytes": int(rw.get(direction, 0))}
            for name, r in runs.items() for phase, classes in r.traffic.items()
            for cls, rw in classes.items() for direction in ("read", "write")]
    return pd.DataFrame(rows, columns=["run", "phase", "tensor_class", "direction", "bytes"])


def utilization_frame(runs: dict[str, RunResult]) -> pd.DataFrame:
    """One row per (run, PIM unit, window): the unit's column-path ``utilization``."""
    import pandas as pd

    rows = []
    for name, r in runs.items():
        util = r.pim_utilization or {}
        width = util.get("bin_cycles") or 1
        for unit, windows in (util.get("units") or {}).items():
            for i, u in enumerate(windows):
                rows.append({"run": name, "unit": unit, "start_us": _us(r, i * width),
                             "end_us": _us(r, (i + 1) * width), "utilization": u})
    return pd.DataFrame(rows, columns=["run", "unit", "start_us", "end_us", "utilization"])


def long_form(table: pd.DataFrame) -> pd.DataFrame:
    """Comparison rows (``baseline_*``/``pim_*`` columns) as one row per run: the run columns
    lose their prefix and a ``run`` column says which; the other columns repeat."""
    import dataclasses

    import pandas as pd

    from gradpimsim.system.config import RunConfig

    config = {f.name for f in dataclasses.fields(RunConfig)}  # pim_policy is no run's column

    def of_run(c: str, name: str) -> bool:
        return c.startswith(f"{name}_") and c not in config

    shared = [c for c in table.columns if not (of_run(c, "baseline") or of_run(c, "pim"))]
    frames = []
    for name in ("baseline", "pim"):
        cols = [c for c in table.columns if of_run(c, name)]
        if not cols:
            continue
        part = table[shared + cols].rename(columns={c: c[len(name) + 1:] for c in cols})
        part.insert(0, "run", name)
        frames.append(part)
    return pd.concat(frames, ignore_index=True) if frames else table.iloc[0:0]


__all__ = ["ENERGY_COMPONENTS", "bandwidth_frame", "comparison_metrics", "comparison_row",
           "energy_frame", "long_form", "run_row", "slug", "summary_frame", "traffic_by_class",
           "traffic_frame", "utilization_frame"]
