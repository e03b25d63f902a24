"""Bounds before work: estimate what a command will need, and refuse what cannot fit, up front.

A simulation that cannot finish should say so before it starts, with the estimate, instead of
spending minutes and gigabytes expanding its input first.  Each check here is a cheap formula
over the configuration, never the work itself:

- :func:`check_memory_system`: the controllers' and device state's host memory, which grows with
  channels x ranks x banks (measured: about 16 KiB per channel plus 1.8 KiB per bank);
- :func:`check_update_bench`: the DRAM capacity that the parameters, gradients and optimizer state
  take, and the host memory of the stored PIM program (about 70 bytes per parameter) plus, when
  the update is executed on real values, the arrays holding them;
- :func:`check_workload`: the DRAM capacity a training iteration needs at least (every parameter's
  master copy, gradient, optimizer state and low-precision copy, plus the largest activation);
- :func:`check_hic`: the host memory of the HIC (PCM) model's per-weight state;
- sweep points are counted before they are expanded (``gradpimsim.sweep.spec``).

The host memory budget is half of this machine's physical memory, or ``GRADPIMSIM_MEMORY_MB``.
Capacity bounds are exact lower bounds: a run refused here could not have been placed anyway.
"""

from __future__ import annotations

import os
from typing import Any

from gradpimsim.errors import BoundsError

#: Host bytes the memory-system model takes per channel and per bank (measured with
#: tracemalloc on the pure-Python build, rounded up).
BYTES_PER_CHANNEL = 20 * 1024
BYTES_PER_BANK = 2 * 1024
#: Host bytes per parameter of ``update-bench``: the stored PIM program (see pim/bench.py) and,
#: with the functional check, the DRAM contents and the reference optimizer's arrays.
PROGRAM_BYTES_PER_PARAM = 80
FUNCTIONAL_BYTES_PER_PARAM = 64
#: Host bytes of ``gradpimsim hic`` per weight held in PCM (code and accumulator, 4 + 4), per
#: device (an event counter, 4), and per weight of the largest tensor (one step's float64 and
#: int64 temporaries; measured with tracemalloc: 53 B a weight in all on ResNet-18).
HIC_BYTES_PER_WEIGHT = 8
HIC_BYTES_PER_DEVICE = 4
HIC_STEP_BYTES_PER_WEIGHT = 128


def memory_budget() -> int:
    """Host memory a single command may plan to use, in bytes."""
    env = os.environ.get("GRADPIMSIM_MEMORY_MB", "").strip()
    if env:
        try:
            return max(1, int(env)) * 2**20
        except ValueError:
            raise BoundsError(f"GRADPIMSIM_MEMORY_MB={env!r}: expected a whole number of "
                              "MB") from None
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (OSError, ValueError, AttributeError):
        return 4 * 2**30


def fmt_bytes(n: float) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n:,.0f} B"


def _budget_check(what: str, need: int, fix: str) -> None:
    budget = memory_budget()
    if need > budget:
        raise BoundsError(f"{what} would need about {fmt_bytes(need)} of host memory, more than "
                          f"the {fmt_bytes(budget)} allowed (half of this machine's memory, or "
                          f"GRADPIMSIM_MEMORY_MB); {fix}")


def memory_system_bytes(cfg: Any) -> int:
    """Estimated host bytes of the controllers and device state of ``cfg``."""
    o = cfg.org
    return o.channels * (BYTES_PER_CHANNEL + o.ranks * o.banks_per_rank * BYTES_PER_BANK)


def check_memory_system(cfg: Any) -> None:
    """Refuse a memory system whose model alone would not fit in host memory."""
    o = cfg.org
    _budget_check(f"modelling {o.channels:,} channel(s) x {o.ranks:,} rank(s) x "
                  f"{o.banks_per_rank:,} banks", memory_system_bytes(cfg),
                  "use fewer channels, ranks or banks")


def _capacity_check(what: str, need: int, cfg: Any) -> None:
    have = cfg.org.total_bytes
    if need > have:
        raise BoundsError(f"{what} needs at least {fmt_bytes(need)} of DRAM, but {cfg.name} holds "
                          f"{fmt_bytes(have)}; use more channels or ranks, or a smaller size")


def check_update_bench(cfg: Any, params: int, optimizer: Any, precision: Any,
                       functional: bool) -> None:
    """``update-bench``: the tensors fit in DRAM, and the program (and arrays) in host memory."""
    from gradpimsim.pim.layout import update_tensors

    check_memory_system(cfg)
    dram = sum(update_tensors(params, optimizer, precision).values())
    _capacity_check(f"updating {params:,} parameters ({optimizer.name}, {precision.name})",
                    dram, cfg)
    host = params * (PROGRAM_BYTES_PER_PARAM + (FUNCTIONAL_BYTES_PER_PARAM if functional else 0))
    _budget_check(f"update-bench over {params:,} parameters", host,
                  "use fewer parameters" + ("" if not functional else
                                            ", or --no-functional (timing only)"))


def check_workload(graph: Any, cfg: Any, optimizer: Any, precision: Any) -> None:
    """A training iteration of ``graph`` fits in DRAM: parameters with their gradients, state
    and copies, plus the largest single activation (a lower bound of what is placed)."""
    from gradpimsim.graph.schema import TENSOR_DTYPE_BYTES, numel, parameters
    from gradpimsim.pim.layout import update_tensors

    params = sum(numel(p["shape"]) for p in parameters(graph).values())
    need = sum(update_tensors(params, optimizer, precision).values()) if params else 0
    largest = max((numel(d["out_shape"]) * TENSOR_DTYPE_BYTES.get(d.get("out_dtype", "fp32"), 4)
                   for _, d in graph.nodes(data=True)), default=0)
    _capacity_check(f"{graph.graph.get('name', 'the workload')} at batch "
                    f"{graph.graph.get('batch', '?')} ({params:,} parameters, largest "
                    f"activation {fmt_bytes(largest)})", need + largest, cfg)


def check_hic(weights: int, largest: int, devices_per_weight: int) -> None:
    """``hic``: the model's per-weight state (and one tensor's step) fit in host memory."""
    need = weights * (HIC_BYTES_PER_WEIGHT + HIC_BYTES_PER_DEVICE * devices_per_weight) + \
        largest * HIC_STEP_BYTES_PER_WEIGHT
    _budget_check(f"the HIC model of {weights:,} weights in PCM", need,
                  "hold fewer parameters in PCM (--params gemm) or use a smaller workload")
