"""timeline.json as Perfetto reads it: every track properly nested, lanes for concurrent spans,
counters for bandwidth and each PIM unit's utilization, times that read back exactly."""

from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from gradpimsim.cli import main
from gradpimsim.system import RunConfig, compare
from gradpimsim.system.results import CompareResult
from gradpimsim.system.timeline import chrome_trace, lanes, us_of_ns


@pytest.fixture(scope="module")
def result() -> CompareResult:
    return compare(RunConfig(workload="mlp-tiny", batch=4, channels=2))


def _ns(x: float, reader: str) -> int:
    """A trace time (µs) as a reader turns it into ns: rounded (Perfetto) or truncated."""
    return round(x * 1000.0) if reader == "round" else int(x * 1000.0)


def improper(trace: dict[str, Any], reader: str = "round") -> dict[tuple[int, int], int]:
    """Per (pid, tid): complete events that partly overlap another (neither nested nor apart),
    in integer ns as the reader converts them."""
    tracks: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    for e in trace["traceEvents"]:
        if e["ph"] == "X":
            a = _ns(e["ts"], reader)
            tracks[(e["pid"], e["tid"])].append((a, a + _ns(e["dur"], reader)))
    bad = {}
    for key, spans in tracks.items():
        spans.sort(key=lambda s: (s[0], -s[1]))
        stack: list[int] = []
        n = 0
        for start, end in spans:
            while stack and stack[-1] <= start:
                stack.pop()
            if stack and end > stack[-1]:
                n += 1
            stack.append(end)
        if n:
            bad[key] = n
    return bad


def test_lanes_by_hand() -> None:
    # [0,10) [5,8) [8,12) [10,20) [11,13): lane 0 takes 0-10 then 10-20; lane 1 takes 5-8 then
    # 8-12; 11-13 overlaps both lanes (10-20 and 8-12), so lane 2
    spans = [(0, 10), (5, 8), (8, 12), (10, 20), (11, 13)]
    assert lanes(spans) == [0, 1, 1, 0, 2]
    assert lanes([(3, 4), (3, 4), (3, 4)]) == [0, 1, 2]
    assert lanes([(0, 5), (5, 9)]) == [0, 0]  # touching spans share a lane


def test_times_read_back_exactly() -> None:
    rng = random.Random(7)
    for ns in [0, 1, 999, 1_000, 123_456_789] + [rng.randrange(10**13) for _ in range(20_000)]:
        x = float(repr(us_of_ns(ns)))  # as written to JSON and parsed back
        assert round(x * 1000.0) == ns and int(x * 1000.0) == ns, ns
        assert abs(x - ns / 1000.0) <= math.ulp(x)


def test_every_track_is_properly_nested(result: CompareResult, tmp_path: Path) -> None:
    trace = chrome_trace(result.runs())
    text = json.dumps(trace)  # what write_outputs writes, parsed back
    trace = json.loads(text)
    for reader in ("round", "trunc"):
        assert improper(trace, reader) == {}, reader
    assert "displayTimeUnit" not in trace  # some Perfetto versions read "ns" as the ts unit


def test_concurrent_spans_get_lanes_and_every_task_is_drawn(result: CompareResult) -> None:
    trace = chrome_trace(result.runs())
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in trace["traceEvents"]
             if e["ph"] == "M" and e["name"] == "thread_name"}
    spans: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in trace["traceEvents"]:
        if e["ph"] == "X":
            spans[f"{e['pid']}:{names[(e['pid'], e['tid'])]}"].append(e)
    pim_pid = 2
    pim_tracks = [k for k in spans if k.startswith(f"{pim_pid}:GradPIM")]
    assert len(pim_tracks) > 1, "PIM programs run concurrently: more than one lane"
    # one span per finished PIM program, over all its lanes, each at its own cycles
    programs = [t for t in result.pim.tasks if t.engine == "pim" and t.end >= 0]
    drawn = [e for k in pim_tracks for e in spans[k]]
    assert len(drawn) == len(programs)
    tck = result.pim.tCK_ns
    want = sorted((round(t.issue * tck), round(t.end * tck)) for t in programs)
    got = sorted((round(e["ts"] * 1000), round((e["ts"] + e["dur"]) * 1000)) for e in drawn)
    assert got == want
    # phases: one track each, spanning the phase's cycles
    for pid, run in ((1, result.baseline), (2, result.pim)):
        for phase, v in run.phases.items():
            (e,) = spans[f"{pid}:phase: {phase}"]
            assert round(e["ts"] * 1000) == round(v["start"] * run.tCK_ns)
            assert round((e["ts"] + e["dur"]) * 1000) == round(v["end"] * run.tCK_ns)


def test_npu_tracks_are_the_task_table(result: CompareResult) -> None:
    """Every finished NPU task of both runs is drawn as its three stages, by name, at the
    cycles of the task table: DMA in [issue, compute_start), compute [compute_start,
    compute_end), DMA out [compute_end, end), in ns (cycles x tCK, rounded); a stage of no
    length (a task whose outputs stay on chip) is an empty span."""
    trace = chrome_trace(result.runs())
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in trace["traceEvents"]
             if e["ph"] == "M" and e["name"] == "thread_name"}
    stages = {"NPU DMA in": ("issue", "compute_start"),
              "NPU compute": ("compute_start", "compute_end"),
              "NPU DMA out": ("compute_end", "end")}
    for pid, run in ((1, result.baseline), (2, result.pim)):
        tasks = [t for t in run.tasks if t.engine != "pim" and t.end >= 0]
        assert tasks
        for track, (a, b) in stages.items():
            want = sorted((t.task, round(getattr(t, a) * run.tCK_ns),
                           round(getattr(t, b) * run.tCK_ns)) for t in tasks
                          if 0 <= getattr(t, a) <= getattr(t, b))
            got = sorted((e["name"], round(e["ts"] * 1000), round((e["ts"] + e["dur"]) * 1000))
                         for e in trace["traceEvents"] if e["ph"] == "X" and e["pid"] == pid
                         and names[(pid, e["tid"])].split(" #")[0] == track)
            assert got == want, track


def test_counters_for_bandwidth_and_each_pim_unit(result: CompareResult) -> None:
    trace = chrome_trace(result.runs())
    counters: dict[tuple[int, str], list[tuple[float, float]]] = defaultdict(list)
    for e in trace["traceEvents"]:
        if e["ph"] == "C":
            (value,) = e["args"].values()
            counters[(e["pid"], e["name"])].append((e["ts"], value))
    pim = result.pim
    units = pim.pim_utilization["units"]
    assert len(units) == 2 * 4  # two channels x one rank x four bank groups
    width = pim.pim_utilization["bin_cycles"]
    for unit, windows in units.items():
        series = counters[(2, f"PIM util {unit}")]
        assert [v for _, v in series[:-1]] == pytest.approx([100 * u for u in windows])
        assert series[-1] == (pytest.approx(len(windows) * width * pim.tCK_ns / 1000), 0.0)
    assert not any(name.startswith("PIM util") for pid, name in counters if pid == 1)
    bins = pim.bandwidth["channels"]
    seconds = pim.bandwidth["bin_cycles"] * pim.tCK_ns * 1e-9
    for ch in range(2):
        series = counters[(2, f"DRAM bandwidth ch{ch}")]
        assert [v for _, v in series[:-1]] == pytest.approx([b / seconds / 1e9
                                                             for b in bins[ch]])


def test_the_file_keeps_its_mark(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["compare", "mlp-tiny", "--batch", "2", "--out", str(out)]) == 0
    trace = json.loads((out / "timeline.json").read_text())
    assert trace["otherData"]["schema"] == "gradpimsim.timeline/1"
    assert improper(trace) == {}
    assert main(["compare", "mlp-tiny", "--batch", "2", "--out", str(out)]) == 0  # ours: replaced
