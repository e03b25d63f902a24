"""Where an iteration's DRAM traffic comes from: bytes per pass, tensor class and phase.

Counted from the NPU's plan (``NPUModel.schedule_costs``): every DMA transfer of every task the
NPU runs, tiling re-reads included, each rounded up to whole 64-byte bursts as the DRAM moves
them (transfers start on burst boundaries outside the legacy order, so the rounding only adds
the tail of a tensor whose size is not a multiple of 64).  The simulated DRAM byte counters
equal these sums (``tests/test_traffic.py``).  The counting rules behind each task's transfers
are in ``docs/iteration.md``.

Tensor classes: ``input`` (the batch), ``activations`` (``act:``), ``activation gradients``
(``dact:``), ``weights`` (master and low-precision copy), ``weight gradients`` and
``optimizer state`` (momentum, Adam's moments).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gradpimsim.host.training import PHASE_OF_KIND

CLASSES = ("input", "activations", "activation gradients", "weights", "weight gradients",
           "optimizer state")


def tensor_class(name: str, tensors: Mapping[str, Any] | None = None) -> str:
    """The class of a tensor by its name (see the module docstring)."""
    if name.startswith("dact:"):
        return "activation gradients"
    if name.startswith("act:"):
        spec = tensors.get(name) if tensors is not None else None
        return "input" if spec is not None and spec.kind == "input" else "activations"
    role = name.rsplit("/", 1)[-1]
    if role in ("weight", "weight_copy"):
        return "weights"
    if role == "grad":
        return "weight gradients"
    return "optimizer state"


def burst_bytes(nbytes: int, burst: int = 64) -> int:
    """Bytes the DRAM moves for a transfer starting on a burst boundary."""
    return -(-nbytes // burst) * burst


@dataclass(frozen=True)
class TrafficRow:
    """Bytes one task moves for one tensor class."""

    task: str
    layer: str | None
    kind: str
    phase: str
    tensor_class: str
    read_bytes: int
    write_bytes: int


def traffic_rows(schedule: Any, costs: Mapping[str, Any], tasks: Iterable[str] | None = None,
                 burst: int = 64) -> list[TrafficRow]:
    """One row per (task, tensor class) with bytes, for ``tasks`` (default: every task)."""
    dag = schedule.dag
    rows = []
    for t in (schedule.order() if tasks is None else tasks):
        node = dag.nodes[t]
        per: dict[str, list[int]] = {}
        for tr in costs[t].transfers:
            cls = tensor_class(tr.tensor_name, schedule.tensors)
            slot = per.setdefault(cls, [0, 0])
            slot[1 if tr.is_write else 0] += burst_bytes(tr.nbytes, burst)
        for cls, (r, w) in per.items():
            rows.append(TrafficRow(t, node.get("layer"), node["kind"],
                                   PHASE_OF_KIND[node["kind"]], cls, r, w))
    return rows


def by_phase_and_class(rows: Iterable[TrafficRow]) -> dict[str, dict[str, dict[str, int]]]:
    """``{phase: {class: {"read": bytes, "write": bytes}}}`` (classes with traffic only)."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for r in rows:
        slot = out.setdefault(r.phase, {}).setdefault(r.tensor_class, {"read": 0, "write": 0})
        slot["read"] += r.read_bytes
        slot["write"] += r.write_bytes
    return out


def by_layer(rows: Iterable[TrafficRow]) -> dict[str, dict[str, int]]:
    """``{layer: {"forward": bytes, "backward": bytes, "update": bytes}}`` read + written;
    update tasks are listed under their parameter."""
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        key = r.layer if r.layer is not None else r.task.split(":", 1)[-1]
        slot = out.setdefault(key, {"forward": 0, "backward": 0, "update": 0})
        slot[r.phase] += r.read_bytes + r.write_bytes
    return out


__all__ = ["CLASSES", "TrafficRow", "burst_bytes", "by_layer", "by_phase_and_class",
           "tensor_class", "traffic_rows"]
