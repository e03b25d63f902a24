"""How much of the update GradPIM hid behind backward, against the bound it could reach.

Per run (:func:`run_overlap`, in ``results.json`` as ``overlap``):

``backward_end``
    Cycle the last backward task finished.
``exposed_update_cycles``
    Cycles the iteration runs on after that: the update time nothing hid.
``update_work_at_backward_end``
    With PIM: the share of the update's PIM commands issued when backward ended (1.0: the
    update was done by then).  Host baseline: the share of update tasks finished by then.
``gradients_complete``
    Per parameter, the cycle its gradient was complete (its last weight-gradient write).

Per comparison (:func:`compare_overlap`, ``results.json`` top level ``overlap``):

``gain_captured``
    ``(baseline - PIM) / (baseline - baseline's backward end)``: the share of the update's time
    in the baseline that the PIM run removed.
``host_slowdown``
    PIM run's backward end / baseline's backward end: how much the update inside the DRAM
    slowed the NPU's backward traffic down.
``ideal_cycles`` and ``ideal_speedup``
    A lower bound on the PIM run: the baseline's backward end, or, where later, for any cycle
    ``T`` at which a gradient completes in the baseline, ``T`` plus a closed-form lower bound of
    the update work whose gradients complete at ``T`` or later, on all units together
    (:func:`work_bound_cycles`), and of each such tensor alone on the units its chunks reach:
    the part of the update that no overlap can hide.
``captured_of_ideal``
    ``(baseline - PIM) / (baseline - ideal)``: how close the run came to the bound.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from gradpimsim.config import MemoryConfig
from gradpimsim.config.pim import PimConfig
from gradpimsim.config.training import DTYPE_BYTES, OptimizerConfig, PrecisionPolicy
from gradpimsim.pim.bounds import column_ops_per_param
from gradpimsim.pim.datapath import COLUMN_BYTES

PIM_COMMANDS = ("PIM_RD", "PIM_WR", "PIM_OP")


def gradient_completions(tasks: list[Any]) -> dict[str, int]:
    """Parameter -> cycle its gradient was complete (the last ``<param>/grad`` write)."""
    out: dict[str, int] = {}
    for rec in tasks:
        if rec.kind == "update":
            continue
        for a in rec.accesses:
            if a.mode == "write" and a.tensor.endswith("/grad"):
                pid = a.tensor.rsplit("/", 1)[0]
                out[pid] = max(out.get(pid, -1), a.end)
    return out


def run_overlap(tasks: list[Any], phases: Mapping[str, Mapping[str, int]], cycles: int,
                counts_at_backward_end: Mapping[str, int] | None,
                counts: Mapping[str, int]) -> dict[str, Any]:
    """The per-run figures of the module docstring."""
    bwd_end = phases["backward"]["end"]
    if any(c in counts for c in PIM_COMMANDS):
        total = sum(counts.get(c, 0) for c in PIM_COMMANDS)
        before = sum((counts_at_backward_end or {}).get(c, 0) for c in PIM_COMMANDS)
        done = before / total if total else 1.0
    else:
        upd = [r for r in tasks if r.kind == "update"]
        done = (sum(1 for r in upd if 0 <= r.end <= bwd_end) / len(upd)) if upd else 1.0
    return {"backward_end": bwd_end, "exposed_update_cycles": max(cycles - bwd_end, 0),
            "update_work_at_backward_end": round(done, 6),
            "gradients_complete": gradient_completions(tasks)}


def update_work(numel: int, optimizer: OptimizerConfig, precision: PrecisionPolicy,
                step: int = 2) -> int:
    """Column operations of one parameter tensor's update (``column_ops_per_param``)."""
    return math.ceil(numel * column_ops_per_param(optimizer, precision, first_step=step == 1))


def work_bound_cycles(colops: int, cfg: MemoryConfig, pim: PimConfig,
                      commands_per_column_op: float, units: int) -> int:
    """A lower bound on ``colops`` column operations spread perfectly over ``units`` units:
    each unit one column every ``col_to_col``, and all commands (column ops x
    ``commands_per_column_op``, PIM_OPs included) over the command buses of the channels the
    units sit on, one per clock."""
    o = cfg.org
    t = pim.resolved(cfg.timing, cfg.burst_cycles)
    n_units = max(1, units)
    channels = max(1, min(o.channels, math.ceil(n_units / (o.ranks * o.bankgroups))))
    bank_group = math.ceil(colops / n_units) * t.col_to_col
    bus = math.ceil(colops * commands_per_column_op / channels)
    return max(bank_group, bus)


def tensor_units(numel: int, precision: PrecisionPolicy, cfg: MemoryConfig, units: int) -> int:
    """Units a tensor's update can use: one per chunk (a row of its widest role), at most all."""
    widest = max(DTYPE_BYTES[precision.master_dtype], DTYPE_BYTES[precision.grad_dtype])
    row_bytes = cfg.org.bursts_per_row * COLUMN_BYTES
    return max(1, min(units, math.ceil(numel * widest / row_bytes)))


def compare_overlap(base: Any, pim: Any, numels: Mapping[str, int], optimizer: OptimizerConfig,
                    precision: PrecisionPolicy, cfg: MemoryConfig, pim_config: PimConfig,
                    units: int, step: int) -> dict[str, Any]:
    """The per-comparison figures of the module docstring (``base``/``pim``: RunResults)."""
    b_end = base.overlap["backward_end"]
    p_end = pim.overlap["backward_end"]
    counts = pim.dram["commands"]
    cols = counts.get("PIM_RD", 0) + counts.get("PIM_WR", 0)
    per_col = sum(counts.get(c, 0) for c in PIM_COMMANDS) / cols if cols else 1.0
    ideal = b_end
    grads = base.overlap["gradients_complete"]
    # latest gradients first: the work from T on cannot start before T
    items = sorted(((grads.get(pid, b_end), n) for pid, n in numels.items()), reverse=True)
    work = 0
    for t, n in items:
        w = update_work(n, optimizer, precision, step)
        work += w
        alone = work_bound_cycles(w, cfg, pim_config, per_col,
                                  tensor_units(n, precision, cfg, units))
        together = work_bound_cycles(work, cfg, pim_config, per_col, units)
        ideal = max(ideal, t + alone, t + together)
    ideal = min(ideal, base.cycles)
    saved = base.cycles - pim.cycles
    room = base.cycles - b_end
    return {
        "gain_captured": round(saved / room, 6) if room > 0 else None,
        "host_slowdown": round(p_end / b_end, 6) if b_end else None,
        "ideal_cycles": ideal,
        "ideal_speedup": round(base.cycles / ideal, 6) if ideal else None,
        "captured_of_ideal": (round(saved / (base.cycles - ideal), 6)
                              if base.cycles > ideal else None),
    }


__all__ = ["compare_overlap", "gradient_completions", "run_overlap", "tensor_units",
           "update_work", "work_bound_cycles"]
