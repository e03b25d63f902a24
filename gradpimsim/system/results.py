"""Results of an iteration run: figures, per-task records, and the files they are written to.

``RunResult.to_dict()`` follows the ``gradpimsim.results/1`` schema (documented in
``docs/iteration.md``); the same figures are available as objects and pandas DataFrames.
Writers: ``results.json`` (every figure plus the full configuration), ``tasks.csv`` (one row per
task) and ``timeline.json`` (Chrome trace-event format: phases and tasks per engine, bandwidth
counters per channel; opens in Perfetto or chrome://tracing).  Each file is written to a
temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gradpimsim.config import MemoryConfig
from gradpimsim.config.pim import PimConfig
from gradpimsim.system.config import RunConfig
from gradpimsim.system.executor import PHASES, Executor, TaskRecord
from gradpimsim.system.memory import MemorySystem

if TYPE_CHECKING:
    import pandas as pd

SCHEMA = "gradpimsim.results/1"
COLUMN = ("RD", "RDA", "WR", "WRA")


@dataclass
class RunResult:
    """One simulated iteration."""

    config: RunConfig
    memory: dict[str, Any]
    cycles: int
    tCK_ns: float
    phases: dict[str, dict[str, int]]
    tasks: list[TaskRecord]
    dram: dict[str, Any]
    pim_units: dict[str, Any]
    energy_nj: dict[str, float]
    energy_by_phase_nj: dict[str, dict[str, float]]
    bandwidth: dict[str, Any]
    wall_s: float
    interrupted: bool = False
    verified: bool | None = None
    mismatches: list[str] = field(default_factory=list)
    store: Any = None  # functional mode: the DRAM contents at the end
    targets: Any = None
    #: Peak resident memory of the process that simulated this run, up to the run's end, in MB.
    #: With ``compare(jobs=2)`` that is the run's own worker; in one process it includes
    #: whatever ran before (with ``jobs=1`` the PIM run's figure covers the baseline too).
    peak_rss_mb: float | None = None
    #: What the schedule verifier found (``system.verify``): empty when every data hazard of
    #: the iteration was respected.
    schedule_violations: list[str] = field(default_factory=list)
    #: Planned DRAM bytes of the NPU's transfers by phase and tensor class
    #: (``host.traffic.by_phase_and_class``); they add up to ``dram`` read and write bytes.
    traffic: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    #: How much update time was exposed after backward (``system.overlap.run_overlap``).
    overlap: dict[str, Any] = field(default_factory=dict)
    #: PIM runs: per unit, its column-path utilization per window (``bin_cycles`` wide).
    pim_utilization: dict[str, Any] = field(default_factory=dict)
    #: Parameter -> elements (what the ideal bound of a comparison needs).
    param_numels: dict[str, int] = field(default_factory=dict)

    @property
    def time_us(self) -> float:
        return self.cycles * self.tCK_ns / 1000.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "pim": self.config.pim, "cycles": self.cycles, "time_us": round(self.time_us, 4),
            "tCK_ns": self.tCK_ns, "phases": self.phases, "dram": self.dram,
            "pim_units": self.pim_units, "energy_nj": self.energy_nj,
            "energy_by_phase_nj": self.energy_by_phase_nj, "bandwidth": self.bandwidth,
            "tasks_done": sum(1 for t in self.tasks if t.end >= 0),
            "tasks_total": len(self.tasks), "interrupted": self.interrupted,
            "verified": self.verified, "mismatches": self.mismatches[:20],
            "schedule_ok": not self.schedule_violations, "traffic": self.traffic,
            "overlap": {k: v for k, v in self.overlap.items() if k != "gradients_complete"},
            "pim_utilization": self.pim_utilization,
            "schedule_violations": self.schedule_violations[:20],
            "wall_s": round(self.wall_s, 3), "peak_rss_mb": self.peak_rss_mb,
            "config": self.config.to_dict(), "memory": self.memory,
        }

    def tasks_df(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([t.to_dict() for t in self.tasks])

    def phases_df(self) -> pd.DataFrame:
        import pandas as pd

        rows = [{"phase": p, **v, "time_us": v["cycles"] * self.tCK_ns / 1000.0}
                for p, v in self.phases.items()]
        return pd.DataFrame(rows)


@dataclass
class CompareResult:
    """The same iteration without (``baseline``) and with GradPIM (``pim``)."""

    config: RunConfig
    baseline: RunResult
    pim: RunResult | None
    weights_match: bool | None = None
    #: Gain captured, host slowdown and the ideal bound (``system.overlap.compare_overlap``).
    overlap: dict[str, Any] = field(default_factory=dict)

    @property
    def speedup(self) -> float | None:
        # either interrupted (in parallel the PIM run may finish while the baseline is stopped)
        if self.pim is None or not self.pim.cycles or self.interrupted:
            return None
        return self.baseline.cycles / self.pim.cycles

    @property
    def interrupted(self) -> bool:
        return self.pim is None or self.baseline.interrupted or self.pim.interrupted

    def runs(self) -> dict[str, RunResult]:
        out = {"baseline": self.baseline}
        if self.pim is not None:
            out["pim"] = self.pim
        return out

    def to_dict(self) -> dict[str, Any]:
        data = results_dict(self.config, self.runs(), self.speedup, self.weights_match)
        data["overlap"] = self.overlap
        return data

    def phases_df(self) -> pd.DataFrame:
        """Per-phase figures of both runs, one row per (run, phase)."""
        return self._stacked(RunResult.phases_df)

    def tasks_df(self) -> pd.DataFrame:
        """Per-task records of both runs, one row per (run, task)."""
        return self._stacked(RunResult.tasks_df)

    def _stacked(self, frame: Any) -> pd.DataFrame:
        import pandas as pd

        frames = []
        for name, r in self.runs().items():
            df = frame(r)
            df.insert(0, "run", name)
            frames.append(df)
        return pd.concat(frames, ignore_index=True)


def results_dict(run: RunConfig, runs: dict[str, RunResult], speedup: float | None = None,
                 weights_match: bool | None = None) -> dict[str, Any]:
    return {"schema": SCHEMA, "workload": run.workload, "config": run.to_dict(),
            "speedup": speedup, "weights_match": weights_match,
            "runs": {k: v.to_dict() for k, v in runs.items()}}


# ---------------------------------------------------------------------- collection
def collect(run: RunConfig, cfg: MemoryConfig, ex: Executor, memory: MemorySystem,
            windows: dict[str, Any], *, wall_s: float, interrupted: bool,
            pim: PimConfig) -> RunResult:
    """Figures of a finished (or interrupted) run."""
    end = max([r.end for r in ex.records.values() if r.end >= 0] + [0])
    final = memory.snapshot(end)
    counts = final["counts"]
    columns = sum(counts.get(c, 0) for c in COLUMN)
    misses = sum(c.row_misses for c in memory.controllers)
    seconds = end * cfg.timing.tCK_ns * 1e-9
    nbytes = memory.read_bytes + memory.write_bytes
    bw = nbytes / seconds / 1e9 if seconds else 0.0
    peak = cfg.peak_bandwidth_gbs * cfg.org.channels
    dram = {"read_bytes": memory.read_bytes, "write_bytes": memory.write_bytes,
            "requests": memory.requests, "bandwidth_gbs": round(bw, 4),
            "peak_bandwidth_gbs": round(peak, 4),
            "utilization": round(bw / peak, 6) if peak else 0.0,
            "row_hit_rate": round(1.0 - misses / columns, 6) if columns else 0.0,
            "commands": {k: v for k, v in sorted(counts.items()) if v}}
    units = cfg.org.channels * cfg.org.ranks * cfg.org.bankgroups
    col_ops = counts.get("PIM_RD", 0) + counts.get("PIM_WR", 0)
    spacing = pim.resolved(cfg.timing, cfg.burst_cycles).col_to_col
    pim_units = {"units": units, "column_ops": col_ops, "ops": counts.get("PIM_OP", 0),
                 "utilization": round(col_ops * spacing / (end * units), 6) if end else 0.0}
    energy = memory.energy(final)
    by_phase: dict[str, dict[str, float]] = {}
    prev = memory.empty_snapshot()
    for phase in PHASES:
        snap = windows.get(phase, final) if phase != "update" else final
        by_phase[phase] = memory.energy(snap, prev)
        prev = snap
    width = memory.bin_cycles
    bandwidth = {"bin_cycles": width, "channels": [list(b) for b in memory.bins]}
    return RunResult(run, {"name": cfg.name, "channels": cfg.org.channels,
                           "ranks": cfg.org.ranks, "device_width": cfg.org.device_width},
                     end, cfg.timing.tCK_ns, ex.phases(), list(ex.records.values()), dram,
                     pim_units, energy, by_phase, bandwidth, wall_s, interrupted)


# ---------------------------------------------------------------------- files
def _atomic_write(path: Path, text: str) -> None:
    """Write through an exclusive, unpredictable temporary file (see ``gradpimsim.io_safety``)."""
    from gradpimsim.io_safety import atomic_write_text

    atomic_write_text(path, text)


#: The mark of gradpimsim's timelines (``otherData`` is the trace-event format's free field).
TIMELINE_SCHEMA = "gradpimsim.timeline/1"


def write_outputs(out: str | Path, data: dict[str, Any], runs: dict[str, RunResult], *,
                  timeline: bool = True) -> list[Path]:
    """``results.json``, ``tasks.csv`` and (optionally) ``timeline.json`` in directory ``out``.

    Each is written atomically; the command checked beforehand that each is ours to replace
    (``gradpimsim.system.preflight``).  Non-finite numbers are refused (strict JSON).
    """
    from gradpimsim.io_safety import atomic_open

    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    written = []
    p = d / "results.json"
    _atomic_write(p, json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")
    written.append(p)
    p = d / "tasks.csv"
    with atomic_open(p, "w", newline="") as fh:
        w = None
        for name, r in runs.items():
            for t in r.tasks:
                row = {"run": name, **t.to_dict()}
                if w is None:
                    w = csv.DictWriter(fh, fieldnames=list(row))
                    w.writeheader()
                w.writerow(row)
    written.append(p)
    if timeline:
        p = d / "timeline.json"
        trace = chrome_trace(runs)
        trace["otherData"] = {"schema": TIMELINE_SCHEMA}
        _atomic_write(p, json.dumps(trace, allow_nan=False))
        written.append(p)
    return written


def chrome_trace(runs: dict[str, RunResult]) -> dict[str, Any]:
    """Trace-event JSON: one process per run; threads for phases, NPU compute, DMA, GradPIM."""
    events: list[dict[str, Any]] = []
    threads = {"phases": 0, "NPU compute": 1, "NPU DMA in": 2, "NPU DMA out": 3, "GradPIM": 4}
    for pid, (name, r) in enumerate(runs.items(), start=1):
        us = r.tCK_ns / 1000.0
        events.append({"ph": "M", "name": "process_name", "pid": pid, "tid": 0,
                       "args": {"name": f"{name} ({r.config.workload})"}})
        for tname, tid in threads.items():
            events.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                           "args": {"name": tname}})

        def span(name: str, cat: str, tid: int, a: int, b: int, args: dict[str, Any],
                 pid: int = pid, us: float = us) -> None:
            if a >= 0 and b >= a:
                events.append({"ph": "X", "name": name, "cat": cat, "pid": pid, "tid": tid,
                               "ts": a * us, "dur": (b - a) * us, "args": args})

        for phase, v in r.phases.items():
            span(phase, "phase", 0, v["start"], v["end"], {"cycles": v["cycles"]})
        for t in r.tasks:
            if t.end < 0:
                continue
            if t.engine == "pim":
                span(t.task, t.phase, 4, t.issue, t.end, {"cycles": t.end - t.issue})
                continue
            span(t.task, t.phase, 2, t.issue, t.compute_start, {"bytes": t.read_bytes})
            span(t.task, t.phase, 1, t.compute_start, t.compute_end,
                 {"cycles": t.compute_cycles})
            span(t.task, t.phase, 3, t.compute_end, t.end, {"bytes": t.write_bytes})
        width = r.bandwidth["bin_cycles"]
        seconds = width * r.tCK_ns * 1e-9
        for ch, bins in enumerate(r.bandwidth["channels"]):
            for i, b in enumerate(bins):
                events.append({"ph": "C", "name": f"bandwidth ch{ch}", "pid": pid,
                               "ts": i * width * us, "args": {"GB/s": b / seconds / 1e9}})
    return {"traceEvents": events, "displayTimeUnit": "ns"}
