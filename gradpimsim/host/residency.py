"""On-chip residency (``fusion="full"``): a pass's output stays in the NPU buffer for the next.

The rule, applied to the forward, loss and backward passes in program order (updates are left
out: a host update the NPU interleaves streams through the buffer's other half):

- when pass ``t`` writes a tensor range and the very next pass ``t+1`` reads exactly that
  range, and the ranges ``t+1`` takes from the buffer this way add up to no more than the
  residency budget (``NPUConfig.resident_bytes``, half the buffer by default), ``t+1`` takes
  it from the buffer: its DRAM read is dropped (listed in ``t+1``'s ``resident``);
- if no other task reads the value ``t`` wrote (any overlapping bytes, before a later task
  writes them again) and it is not a parameter's tensor, ``t``'s DRAM write is dropped too:
  the value never leaves the chip.
  Forward outputs are read again by backward, so they are still written; most activation
  gradients live only from one backward pass to the next, so they never reach DRAM.

Accumulated gradients (a partial sum a later pass adds to) are never dropped: they are read
again by definition.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gradpimsim.host.training import Access, TrainingSchedule


def _is_parameter(tensor: str) -> bool:
    return not tensor.startswith(("act:", "dact:"))


def apply_residency(schedule: TrainingSchedule, budget: int) -> None:
    """Drop the DRAM reads (and, where nothing else reads them, writes) the rule allows."""
    dag = schedule.dag
    program = schedule.program
    pos = {t: i for i, t in enumerate(program)}
    #: tensor -> [(program position, reads-or-resident ranges, write ranges)]
    index: dict[str, list[tuple[int, list[Access], list[Access]]]] = {}
    for i, t in enumerate(program):
        node = dag.nodes[t]
        touched: dict[str, tuple[list[Access], list[Access]]] = {}
        for r in node["reads"] + node["resident"]:
            touched.setdefault(r.tensor, ([], []))[0].append(r)
        for w in node["writes"]:
            touched.setdefault(w.tensor, ([], []))[1].append(w)
        for tensor, (rs, ws) in touched.items():
            index.setdefault(tensor, []).append((i, rs, ws))
    seq = [t for t in program if dag.nodes[t]["kind"] != "update"]
    for t, nxt in zip(seq, seq[1:], strict=False):
        producer, consumer = dag.nodes[t], dag.nodes[nxt]
        used = sum(a.nbytes for a in consumer["resident"])
        accumulated = set(producer["accumulates"])
        for w in list(producer["writes"]):
            if w not in consumer["reads"] or w.tensor in accumulated:
                continue
            if used + w.nbytes > budget:
                continue
            used += w.nbytes
            consumer["reads"] = [r for r in consumer["reads"] if r != w]
            consumer["resident"].append(w)
            if not _is_parameter(w.tensor) and \
                    _readers(index[w.tensor], pos[t], w) == [pos[nxt]]:
                producer["writes"] = [x for x in producer["writes"] if x != w]
                producer["onchip"].append(w)


def _readers(accesses: list[tuple[int, list[Access], list[Access]]], start: int,
             w: Access) -> list[int]:
    """Program positions after ``start`` that read the value written there to ``w``'s bytes:
    up to the next task that writes any of them (a task that reads and writes reads first)."""
    out = []
    for i, reads, writes in accesses:
        if i <= start:
            continue
        if any(_overlap(r, w) for r in reads):
            out.append(i)
        if any(_overlap(x, w) for x in writes):
            break
    return out


def _overlap(a: Access, b: Access) -> bool:
    return a.tensor == b.tensor and a.offset < b.offset + b.nbytes and \
        b.offset < a.offset + a.nbytes


__all__ = ["apply_residency"]
