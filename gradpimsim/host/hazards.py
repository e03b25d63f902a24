"""Data hazards between the tasks of an iteration, derived from their DRAM accesses.

Given the program order (the reference sequential semantics, ``TrainingSchedule.program``)
and each task's reads, writes and accumulations, every pair of accesses to overlapping bytes
of one tensor is ordered as the program orders it:

- **read after write** (``raw``): a read waits until the writes whose values it sees are
  complete: walking back from the read, every overlapping write up to and including the most
  recent plain write that covers the read's whole range;
- **write after read** (``war``): a write waits until the reads of the value it replaces are
  complete (every overlapping read since the most recent covering write);
- **write after write** (``waw``): a write waits until the earlier overlapping writes are
  complete, up to the most recent covering plain write.

Accumulations commute with each other (gradient sums: ``accumulates`` of a task): two of them
need no order, but each is ordered against plain writes and reads like a write.  Accesses of
one task to its own tensor are its own business.  The result is a list of :class:`Wait` per
task and one DAG edge per ordered pair of tasks, labelled with the hazards behind it.  The
executor turns the waits into SimPy waits; ``gradpimsim.system.verify`` checks an executed
schedule against the same rules, independently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gradpimsim.host.training import Access, TrainingSchedule

READ, WRITE, ACC = "read", "write", "acc"


@dataclass(frozen=True)
class Wait:
    """``task``'s ``access`` ("read" or "write") of ``tensor`` waits until ``pred``'s
    ``pred_access`` of the same tensor is complete; ``kind`` is raw, war or waw."""

    pred: str
    tensor: str
    pred_access: str
    access: str
    kind: str


def _overlaps(a: Access, b: Access) -> bool:
    return a.offset < b.offset + b.nbytes and b.offset < a.offset + a.nbytes


def _covers(a: Access, b: Access) -> bool:
    """``a`` covers all of ``b``."""
    return a.offset <= b.offset and b.offset + b.nbytes <= a.offset + a.nbytes


def access_modes(node: dict[str, Any]) -> list[tuple[Access, str]]:
    """A task's DRAM accesses with their mode: reads, then writes (plain or accumulating)."""
    acc = set(node.get("accumulates", ()))
    out = [(r, READ) for r in node["reads"]]
    out += [(w, ACC if w.tensor in acc else WRITE) for w in node["writes"]]
    return out


def hazard_waits(program: list[str], nodes: Any) -> dict[str, list[Wait]]:
    """The waits of every task of ``program`` (``nodes[task]``: the task's attribute dict)."""
    history: dict[str, list[tuple[str, Access, str]]] = {}
    waits: dict[str, list[Wait]] = {}
    for t in program:
        mine: list[Wait] = []
        accesses = access_modes(nodes[t])
        for rng, mode in accesses:
            for pred, prev, pmode in reversed(history.get(rng.tensor, ())):
                if pred == t or not _overlaps(prev, rng):
                    continue
                covering = pmode == WRITE and _covers(prev, rng)
                if mode == READ:
                    if pmode != READ:
                        mine.append(Wait(pred, rng.tensor, "write", "read", "raw"))
                elif pmode == READ:
                    mine.append(Wait(pred, rng.tensor, "read", "write", "war"))
                elif not (mode == ACC and pmode == ACC):
                    mine.append(Wait(pred, rng.tensor, "write", "write", "waw"))
                if covering:
                    break
        for rng, mode in accesses:
            history.setdefault(rng.tensor, []).append((t, rng, mode))
        waits[t] = list(dict.fromkeys(mine))
    return waits


def derive_hazards(schedule: TrainingSchedule) -> None:
    """Replace the DAG's edges by the hazards of the program order; store the waits."""
    dag = schedule.dag
    dag.remove_edges_from(list(dag.edges))
    waits = hazard_waits(schedule.program, dag.nodes)
    for t, ws in waits.items():
        for w in ws:
            if dag.has_edge(w.pred, t):
                dag.edges[w.pred, t]["hazards"].append(f"{w.kind}:{w.tensor}")
            else:
                dag.add_edge(w.pred, t, hazards=[f"{w.kind}:{w.tensor}"])
    schedule.waits = dict(waits)


__all__ = ["ACC", "READ", "WRITE", "Wait", "access_modes", "derive_hazards", "hazard_waits"]
