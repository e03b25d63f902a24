"""``timeline.json``: the iteration in Chrome's trace-event format, as Perfetto shows it.

Perfetto draws complete events (``"ph": "X"``) of one thread as a stack of slices and drops
those that overlap without nesting, so every track here holds spans that never partly overlap:

- one process per run (``baseline``, ``pim``);
- the phases ``forward``, ``backward``, ``update`` each on its own track (with PIM the update
  runs during backward);
- ``NPU compute``: one task at a time (one compute engine);
- ``NPU DMA in`` / ``NPU DMA out`` and ``GradPIM``: transfers and PIM programs run
  concurrently, so they are laid out on *lanes* (``NPU DMA out #2``...): each span goes to the
  first lane free at its start (interval partitioning: the fewest lanes that can hold them);
- counters (``"ph": "C"``): DRAM bandwidth per channel (GB/s per bin) and, with PIM, each
  bank-group unit's column-path utilization per window (%), back to zero at the end.

Times are integer nanoseconds written in microseconds (the format's unit), so the end of one
span and the start of the next are the same number when they are the same cycle.  A reader
multiplies by 1000 and rounds (Perfetto today) or truncates (older Perfetto): each number is
the double nearest ``ns / 1000`` or, where that one times 1000 falls short of ``ns``, the next
double up, so either reading gives back ``ns`` exactly and touching spans never overlap.  There
is no ``displayTimeUnit``: some Perfetto versions took ``"ns"`` there to mean the timestamps'
unit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

#: Tracks in the order they are listed (``thread_sort_index``); lanes follow their track.
TRACKS = ("phase: forward", "phase: backward", "phase: update", "NPU compute", "NPU DMA in",
          "NPU DMA out", "GradPIM")


def us_of_ns(ns: int) -> float:
    """``ns`` nanoseconds as microseconds that read back (x 1000, rounded or truncated) as
    ``ns`` exactly."""
    x = ns / 1000.0
    if int(x * 1000.0) < ns:
        x = math.nextafter(x, math.inf)
    return x


def lanes(spans: Iterable[tuple[int, int]]) -> list[int]:
    """The lane of each ``(start, end)`` span, in input order: the first lane whose last span
    ended at or before this one's start (spans taken in order of start)."""
    items = list(spans)
    order = sorted(range(len(items)), key=lambda i: (items[i][0], items[i][1]))
    ends: list[int] = []
    out = [0] * len(items)
    for i in order:
        start, end = items[i]
        for lane, last in enumerate(ends):
            if last <= start:
                ends[lane] = end
                out[i] = lane
                break
        else:
            ends.append(end)
            out[i] = len(ends) - 1
    return out


class _Run:
    """The events of one run (one trace process)."""

    def __init__(self, pid: int, tck_ns: float) -> None:
        self.pid = pid
        self.tck_ns = tck_ns
        self.events: list[dict[str, Any]] = []
        self.tids: dict[str, int] = {}

    def ns(self, cycle: int) -> int:
        return round(cycle * self.tck_ns)

    def us(self, cycle: int) -> float:
        """``cycle`` in microseconds, rounded to the nanosecond (see :func:`us_of_ns`)."""
        return us_of_ns(self.ns(cycle))

    def tid(self, track: str) -> int:
        if track not in self.tids:
            self.tids[track] = len(self.tids) + 1
        return self.tids[track]

    def span(self, track: str, name: str, cat: str, start: int, end: int,
             args: Mapping[str, Any]) -> None:
        a = self.ns(start)
        self.events.append({"ph": "X", "name": name, "cat": cat, "pid": self.pid,
                            "tid": self.tid(track), "ts": us_of_ns(a),
                            "dur": us_of_ns(self.ns(end) - a), "args": dict(args)})

    def laned(self, track: str, spans: list[tuple[str, str, int, int, dict[str, Any]]]) -> None:
        """Spans that may overlap, one lane (track) per concurrent span."""
        for (name, cat, a, b, args), lane in zip(spans, lanes((s[2], s[3]) for s in spans),
                                                 strict=True):
            self.span(track if lane == 0 else f"{track} #{lane + 1}", name, cat, a, b, args)

    def counter(self, name: str, cycle: int, key: str, value: float) -> None:
        self.events.append({"ph": "C", "name": name, "pid": self.pid, "ts": self.us(cycle),
                            "args": {key: round(value, 6)}})

    def metadata(self, label: str) -> list[dict[str, Any]]:
        meta = [{"ph": "M", "name": "process_name", "pid": self.pid, "tid": 0,
                 "args": {"name": label}},
                {"ph": "M", "name": "process_sort_index", "pid": self.pid, "tid": 0,
                 "args": {"sort_index": self.pid}}]
        for track, tid in self.tids.items():
            meta.append({"ph": "M", "name": "thread_name", "pid": self.pid, "tid": tid,
                         "args": {"name": track}})
            meta.append({"ph": "M", "name": "thread_sort_index", "pid": self.pid, "tid": tid,
                         "args": {"sort_index": _sort_index(track)}})
        return meta


def _sort_index(track: str) -> int:
    base, _, lane = track.partition(" #")
    rank = TRACKS.index(base) if base in TRACKS else len(TRACKS)
    return rank * 1000 + (int(lane) if lane else 1)


def _valid(a: int, b: int) -> bool:
    return 0 <= a <= b


def chrome_trace(runs: Mapping[str, Any]) -> dict[str, Any]:
    """Trace-event JSON of ``runs`` (name -> ``RunResult``); see the module docstring."""
    events: list[dict[str, Any]] = []
    for pid, (name, r) in enumerate(runs.items(), start=1):
        run = _Run(pid, r.tCK_ns)
        for phase in ("forward", "backward", "update"):
            v = r.phases.get(phase)
            if v and _valid(v["start"], v["end"]):
                run.span(f"phase: {phase}", phase, "phase", v["start"], v["end"],
                         {"cycles": v["cycles"]})
        dma_in: list[tuple[str, str, int, int, dict[str, Any]]] = []
        dma_out: list[tuple[str, str, int, int, dict[str, Any]]] = []
        pim: list[tuple[str, str, int, int, dict[str, Any]]] = []
        compute: list[tuple[str, str, int, int, dict[str, Any]]] = []
        for t in r.tasks:
            if t.end < 0:
                continue
            if t.engine == "pim":
                if _valid(t.issue, t.end):
                    pim.append((t.task, t.phase, t.issue, t.end, {"cycles": t.end - t.issue}))
                continue
            if _valid(t.issue, t.compute_start):
                dma_in.append((t.task, t.phase, t.issue, t.compute_start,
                               {"bytes": t.read_bytes}))
            if _valid(t.compute_start, t.compute_end):
                compute.append((t.task, t.phase, t.compute_start, t.compute_end,
                                {"cycles": t.compute_cycles}))
            if _valid(t.compute_end, t.end):
                dma_out.append((t.task, t.phase, t.compute_end, t.end,
                                {"bytes": t.write_bytes}))
        run.laned("NPU compute", compute)  # one engine: one lane unless tasks overlap
        run.laned("NPU DMA in", dma_in)
        run.laned("NPU DMA out", dma_out)
        run.laned("GradPIM", pim)
        _bandwidth_counters(run, r)
        _utilization_counters(run, r)
        events += run.metadata(f"{name} ({r.config.workload})") + run.events
    return {"traceEvents": events}


def _bandwidth_counters(run: _Run, r: Any) -> None:
    width = r.bandwidth.get("bin_cycles") or 1
    seconds = width * r.tCK_ns * 1e-9
    for ch, bins in enumerate(r.bandwidth.get("channels", [])):
        for i, b in enumerate(bins):
            run.counter(f"DRAM bandwidth ch{ch}", i * width, "GB/s", b / seconds / 1e9)
        if bins:
            run.counter(f"DRAM bandwidth ch{ch}", len(bins) * width, "GB/s", 0.0)


def _utilization_counters(run: _Run, r: Any) -> None:
    util = r.pim_utilization or {}
    width = util.get("bin_cycles") or 1
    for unit, windows in (util.get("units") or {}).items():
        for i, u in enumerate(windows):
            run.counter(f"PIM util {unit}", i * width, "%", 100.0 * u)
        if windows:
            run.counter(f"PIM util {unit}", len(windows) * width, "%", 0.0)


__all__ = ["TRACKS", "chrome_trace", "lanes", "us_of_ns"]
