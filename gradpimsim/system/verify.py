"""Schedule verifier: did an executed iteration respect every data hazard?

Replays the DRAM access windows an executed iteration recorded (per task and tensor: first
transfer submitted, last transfer completed; a PIM program's whole span) against the program
order, the reference sequential semantics of the iteration, and proves that no read saw a
value written by the wrong task.  It is written from the rules, not from the executor's or
the hazard module's code, so a wait the executor forgets (or a hazard the analysis misses) is
caught here.  For every pair of accesses to overlapping bytes of one tensor by two tasks, with
``a`` before ``b`` in program order:

- ``a`` writes, ``b`` reads: ``a``'s writes are complete before ``b``'s reads start;
- ``a`` reads, ``b`` writes: ``a``'s reads are complete before ``b``'s writes start;
- both write: ``a``'s writes are complete before ``b``'s start, unless both accumulate into a
  gradient (sums commute).

Checking every earlier access, not only the nearest, is equivalent (the nearest ones chain) and
needs no notion of which write a read "sees".  On-chip handoffs (``resident`` inputs) must come
from the pass the NPU ran just before, which is checked too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class _Access:
    order: int
    task: str
    offset: int
    nbytes: int
    mode: str  # "read", "write" or "acc"
    start: int
    end: int


def verify_schedule(program: list[str], nodes: Mapping[str, Any], records: Iterable[Any],
                    *, limit: int = 50) -> list[str]:
    """Violations of the executed schedule (empty: every hazard was respected).

    ``program`` and ``nodes`` are ``TrainingSchedule.program`` and ``schedule.dag.nodes``;
    ``records`` the executed ``TaskRecord`` objects (with their ``accesses``).  Tasks that did
    not run (an interrupted iteration) are skipped.
    """
    recs = {r.task: r for r in records}
    pos = {t: i for i, t in enumerate(program)}
    per_tensor: dict[str, list[_Access]] = {}
    bad: list[str] = []
    for t in program:
        rec = recs.get(t)
        if rec is None or rec.end < 0:
            continue
        node = nodes[t]
        windows: dict[tuple[str, str], tuple[int, int]] = {}
        for a in rec.accesses:
            key = (a.tensor, a.mode)
            lo, hi = windows.get(key, (a.start, a.end))
            windows[key] = (min(lo, a.start), max(hi, a.end))
        acc = set(node.get("accumulates", ()))
        for kind, items in (("read", node["reads"]), ("write", node["writes"])):
            for x in items:
                w = windows.get((x.tensor, kind))
                if w is None:
                    bad.append(f"{t}: no recorded {kind} of {x.tensor}")
                    continue
                mode = "acc" if kind == "write" and x.tensor in acc else kind
                per_tensor.setdefault(x.tensor, []).append(
                    _Access(pos[t], t, x.offset, x.nbytes, mode, w[0], w[1]))
    for tensor, accesses in per_tensor.items():
        accesses.sort(key=lambda a: a.order)
        for i, b in enumerate(accesses):
            for a in accesses[:i]:
                if a.task == b.task or not (a.offset < b.offset + b.nbytes
                                            and b.offset < a.offset + a.nbytes):
                    continue
                if a.mode == "read" and b.mode == "read":
                    continue
                if a.mode == "acc" and b.mode == "acc":
                    continue
                if a.end > b.start:
                    what = {("read", "write"): "write after read",
                            ("read", "acc"): "write after read"}.get(
                        (a.mode, b.mode),
                        "read after write" if b.mode == "read" else "write after write")
                    bad.append(f"{what} on {tensor}: {b.task} ({b.mode} from cycle {b.start}) "
                               f"before {a.task} ({a.mode} done at cycle {a.end})")
                    if len(bad) >= limit:
                        return bad
    bad += _check_resident(program, nodes, recs)
    return bad[:limit]


def _check_resident(program: list[str], nodes: Mapping[str, Any],
                    recs: Mapping[str, Any]) -> list[str]:
    """Each on-chip input comes from the pass the NPU computed just before."""
    pos = {t: i for i, t in enumerate(program)}
    npu = sorted((r for r in recs.values() if r.engine == "npu" and r.compute_start >= 0
                  and nodes[r.task]["kind"] != "update"),
                 key=lambda r: (r.compute_start, pos[r.task]))
    bad = []
    for prev, cur in zip(npu, npu[1:], strict=False):
        made = set(nodes[prev.task]["writes"]) | set(nodes[prev.task].get("onchip", ()))
        for x in nodes[cur.task].get("resident", ()):
            if x not in made:
                bad.append(f"{cur.task}: takes {x.tensor} from the buffer, but {prev.task} "
                           "(the pass before it) did not produce it")
    return bad


__all__ = ["verify_schedule"]
