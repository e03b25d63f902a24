"""Results of an iteration run: figures, per-task records, and the files they are written to.

``RunResult.to_dict()`` follows the ``gradpimsim.results/1`` schema (documented in
``docs/iteration.md``); the same figures are available as objects and tidy pandas DataFrames
(``summary_df``, ``phases_df``, ``energy_df``, ``bandwidth_df``, ``traffic_df``,
``utilization_df``, ``tasks_df``: :mod:`gradpimsim.system.tables`).
Writers: ``results.json`` (every figure, the full configuration, the gradpimsim version and the
time of the run), ``tasks.csv`` (one row per task) and ``timeline.json`` (Chrome trace-event
format, :mod:`gradpimsim.system.timeline`; opens in Perfetto).  Each file is written to a
temporary name and renamed, so a reader never sees half a file.  ``CompareResult.save`` and
``load`` round-trip a comparison through one JSON file (every figure and task record; not the
DRAM contents of a functional run).
"""

from __future__ import annotations

import csv
import datetime
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gradpimsim.config import MemoryConfig
from gradpimsim.config.pim import PimConfig
from gradpimsim.system.config import RunConfig
from gradpimsim.system.executor import PHASES, Executor, TaskRecord
from gradpimsim.system.memory import MemorySystem
from gradpimsim.system.timeline import chrome_trace

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

    def _runs(self) -> dict[str, RunResult]:
        return {"pim" if self.config.pim else "baseline": self}

    def summary_df(self) -> pd.DataFrame:
        """One row: the run's headline figures (``tables.run_row``; units in the names)."""
        from gradpimsim.system.tables import summary_frame

        return summary_frame(self._runs())

    def energy_df(self) -> pd.DataFrame:
        """Energy per window and component, ``energy_uj`` (``tables.energy_frame``)."""
        from gradpimsim.system.tables import energy_frame

        return energy_frame(self._runs())

    def bandwidth_df(self) -> pd.DataFrame:
        """Bus bandwidth per channel and bin, ``bandwidth_gbs`` (``tables.bandwidth_frame``)."""
        from gradpimsim.system.tables import bandwidth_frame

        return bandwidth_frame(self._runs())

    def traffic_df(self) -> pd.DataFrame:
        """Bus bytes per phase, tensor class and direction (``tables.traffic_frame``)."""
        from gradpimsim.system.tables import traffic_frame

        return traffic_frame(self._runs())

    def utilization_df(self) -> pd.DataFrame:
        """PIM units' utilization per window (``tables.utilization_frame``)."""
        from gradpimsim.system.tables import utilization_frame

        return utilization_frame(self._runs())

    @classmethod
    def from_dict(cls, data: dict[str, Any], config: dict[str, Any] | None = None
                  ) -> RunResult:
        """A run back from its ``to_dict()`` (``tasks``: a list of task dicts, optional).
        Restores every figure; not the DRAM contents of a functional run."""
        tasks = [_task(t) for t in data.get("tasks", [])]
        return cls(RunConfig.from_dict(dict(config if config is not None else data["config"])),
                   data["memory"], data["cycles"], data["tCK_ns"], data["phases"], tasks,
                   data["dram"], data["pim_units"], data["energy_nj"],
                   data["energy_by_phase_nj"], data["bandwidth"], data["wall_s"],
                   interrupted=data.get("interrupted", False), verified=data.get("verified"),
                   mismatches=list(data.get("mismatches", [])),
                   peak_rss_mb=data.get("peak_rss_mb"),
                   schedule_violations=list(data.get("schedule_violations", [])),
                   traffic=data.get("traffic", {}), overlap=dict(data.get("overlap", {})),
                   pim_utilization=data.get("pim_utilization", {}))

    def save(self, path: str | Path, *, force: bool = False) -> Path:
        """This run as a results JSON with its task records (``RunResult.load`` reads it)."""
        return _save(path, results_dict(self.config, self._runs()), self._runs(), force)

    @classmethod
    def load(cls, path: str | Path) -> RunResult:
        """A run saved by :meth:`save` or written by ``gradpimsim run --out``."""
        data, runs = _load(path)
        if len(runs) != 1:
            raise ValueError(f"{path}: holds {len(runs)} runs; use CompareResult.load")
        return next(iter(runs.values()))


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

    def to_dict(self, *, started: datetime.datetime | None = None) -> dict[str, Any]:
        data = results_dict(self.config, self.runs(), self.speedup, self.weights_match,
                            started=started)
        data["overlap"] = self.overlap
        return data

    def summary_df(self) -> pd.DataFrame:
        """One row per run (``tables.run_row``) with the comparison's figures repeated:
        ``speedup``, ``ideal_speedup``, ``gain_captured``... (units in the names)."""
        from gradpimsim.system.tables import comparison_metrics, summary_frame

        return summary_frame(self.runs(), comparison_metrics(self))

    def row(self) -> dict[str, Any]:
        """The comparison as one flat row (``tables.comparison_row``): what a ``compare``
        sweep point and ``compare_many`` record."""
        from gradpimsim.system.tables import comparison_row

        return comparison_row(self)

    def energy_df(self) -> pd.DataFrame:
        from gradpimsim.system.tables import energy_frame

        return energy_frame(self.runs())

    def bandwidth_df(self) -> pd.DataFrame:
        from gradpimsim.system.tables import bandwidth_frame

        return bandwidth_frame(self.runs())

    def traffic_df(self) -> pd.DataFrame:
        from gradpimsim.system.tables import traffic_frame

        return traffic_frame(self.runs())

    def utilization_df(self) -> pd.DataFrame:
        from gradpimsim.system.tables import utilization_frame

        return utilization_frame(self.runs())

    def save(self, path: str | Path, *, force: bool = False) -> Path:
        """The comparison as one JSON file: ``results.json``'s content plus every task record
        (:meth:`load` restores the figures, the DataFrames and the plots; not the DRAM
        contents of a functional run).  Written atomically; an existing file gradpimsim did
        not write is replaced only with ``force``."""
        return _save(path, self.to_dict(), self.runs(), force)

    @classmethod
    def load(cls, path: str | Path) -> CompareResult:
        """A comparison saved by :meth:`save`, or a ``results.json`` written by ``compare
        --out`` (its task records then come from the ``tasks.csv`` beside it, if there)."""
        data, runs = _load(path)
        if "baseline" not in runs:
            raise ValueError(f"{path}: holds no baseline run; use RunResult.load")
        return cls(RunConfig.from_dict(dict(data["config"])), runs["baseline"],
                   runs.get("pim"), weights_match=data.get("weights_match"),
                   overlap=dict(data.get("overlap") or {}))

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
                 weights_match: bool | None = None, *,
                 started: datetime.datetime | None = None) -> dict[str, Any]:
    """The ``results.json`` content: ``config`` is every ``RunConfig`` field (``compare
    --config results.json`` reproduces the run); ``gradpimsim`` says which version and build
    made it and when (``started``: default, the end minus the longest run's wall time)."""
    from gradpimsim.system.runfile import provenance

    if started is None and runs:
        started = (datetime.datetime.now(datetime.UTC)
                   - datetime.timedelta(seconds=max(r.wall_s for r in runs.values())))
    return {"schema": SCHEMA, "workload": run.workload, "config": run.to_dict(),
            "gradpimsim": provenance(started),
            "speedup": speedup, "weights_match": weights_match,
            "runs": {k: v.to_dict() for k, v in runs.items()}}


def _task(d: dict[str, Any]) -> TaskRecord:
    """A task record from its ``to_dict()`` or a ``tasks.csv`` row (accesses are not kept)."""
    def num(key: str) -> int:
        return int(d.get(key, -1))

    layer = d.get("layer")
    return TaskRecord(str(d["task"]), str(d["kind"]),
                      None if layer in (None, "") else str(layer), str(d["engine"]),
                      issue=num("issue"), compute_start=num("compute_start"),
                      compute_end=num("compute_end"), end=num("end"),
                      compute_cycles=int(d.get("compute_cycles", 0)),
                      read_bytes=int(d.get("read_bytes", 0)),
                      write_bytes=int(d.get("write_bytes", 0)))


def _save(path: str | Path, data: dict[str, Any], runs: dict[str, RunResult],
          force: bool) -> Path:
    from gradpimsim.io_safety import output, preflight

    p = Path(path)
    preflight([output("save", p, "json")], force=force)
    data = dict(data)
    data["runs"] = {name: {**data["runs"][name], "tasks": [t.to_dict() for t in r.tasks]}
                    for name, r in runs.items()}
    _atomic_write(p, json.dumps(data, indent=1, sort_keys=True, allow_nan=False) + "\n")
    return p


def _load(path: str | Path) -> tuple[dict[str, Any], dict[str, RunResult]]:
    from gradpimsim.io_safety import load_json_input

    p = Path(path)
    data = load_json_input(p)
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not a gradpimsim results file (schema {SCHEMA})")
    runs = {}
    tasks_csv = p.with_name("tasks.csv")
    csv_tasks: dict[str, list[dict[str, Any]]] = {}
    if any("tasks" not in r for r in data["runs"].values()) and tasks_csv.is_file():
        with open(tasks_csv, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                csv_tasks.setdefault(row["run"], []).append(row)
    for name, r in data["runs"].items():
        r = dict(r)
        if "tasks" not in r:
            r["tasks"] = csv_tasks.get(name, [])
        runs[name] = RunResult.from_dict(r)
    return data, runs


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
        trace = chrome_trace(runs)  # (system.timeline)
        trace["otherData"] = {"schema": TIMELINE_SCHEMA}
        _atomic_write(p, json.dumps(trace, allow_nan=False))
        written.append(p)
    return written
