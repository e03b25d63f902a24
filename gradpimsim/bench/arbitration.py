"""The arbitration micro-benchmark: a GradPIM update beside a host read stream on one channel.

PIM updates ``params`` parameters (momentum, mixed precision) placed on rank 0 while the host
streams reads that always have a request queued: ``host="other-rank"`` reads rank 1,
``"same-rank"`` reads rows of rank 0 that the update does not use (every bank), ``"none"`` runs
PIM alone.  With ``pim=False`` the host stream runs alone.  The figures: when PIM finished, when
the host's last read finished, and every read's completion cycle (to compare host schedules with
and without PIM exactly).  ``benchmarks/bench_overlap.py`` prints them per arbitration policy;
``tests/test_arbitration.py`` pins their bounds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gradpimsim.arbiter.shared_channel import SharedChannel
from gradpimsim.config import MemoryConfig, load_config
from gradpimsim.config.pim import PimConfig
from gradpimsim.config.training import OptimizerConfig, precision
from gradpimsim.controller.request import Request
from gradpimsim.dram.commands import CommandSink
from gradpimsim.host.allocator import Allocator
from gradpimsim.host.placement import Partition
from gradpimsim.pim.kernels import UpdateTarget, build_program
from gradpimsim.pim.layout import ColocatedPolicy, update_tensors

HOSTS = ("none", "other-rank", "same-rank")


@dataclass
class ArbitrationResult:
    """One case: PIM's finish (-1 without PIM), the host's last completion (-1 without host),
    each host request's completion, and the shared channel (for its counters)."""

    pim_end: int
    host_end: int
    host_dones: list[int] = field(default_factory=list)
    shared: SharedChannel | None = None


def run_case(host: str = "other-rank", policy: str = "host-first", *, params: int = 65536,
             reads: int = 4000, ncols: int = 16, pim: bool = True,
             cfg: MemoryConfig | None = None, pim_config: PimConfig | None = None,
             sink: CommandSink | None = None, wait_bound: int | None = None
             ) -> ArbitrationResult:
    """Run one case to the end (see the module docstring)."""
    if host not in HOSTS:
        raise ValueError(f"host must be one of {HOSTS}")
    cfg = cfg or load_config("ddr4-2400", ranks=2)
    pc = pim_config or PimConfig()
    o = cfg.org
    shared = SharedChannel.build(cfg, pc, policy=policy, sink=sink, wait_bound=wait_bound)
    done = {"pim": -1}
    if pim:
        ranks = tuple(range(o.ranks))
        banks = tuple(range(o.banks_per_group))
        split = Partition("rank0", (0,), banks, ranks[1:], banks)
        alloc = Allocator(cfg, ColocatedPolicy(), split)
        opt, prec = OptimizerConfig("momentum"), precision("mixed")
        placed = alloc.place_group("p", update_tensors(params, opt, prec))
        program = build_program([UpdateTarget("p", params, placed)], opt, prec, cfg, pc,
                                amap=alloc.amap)
        units = {(r, bg): p for (c, r, bg), p in program.units.items() if c == 0}
        sets = {r: s for (c, r), s in program.prologue.items() if c == 0}

        def finished(cycle: int) -> None:
            done["pim"] = cycle

        shared.add_program(units, sets, on_done=finished)
    reqs: list[Request] = []
    if host != "none":
        rank = 1 if host == "other-rank" else 0
        dev = shared.ctrl.dev
        per_row = o.bursts_per_row // ncols
        for k in range(reads):
            bank = k % o.banks_per_rank
            bg, ba = divmod(bank, o.banks_per_group)
            row = (k // o.banks_per_rank) // per_row
            col = (k // o.banks_per_rank) % per_row * ncols
            req = Request(k * 64, False, 0, dev.flat_bank(rank, bg, ba), row, col, rank,
                          ncols=ncols)
            reqs.append(req)
            shared.submit(req)
    shared.drain()
    if any(r.done < 0 for r in reqs):
        raise RuntimeError(f"{sum(r.done < 0 for r in reqs)} host requests never completed")
    return ArbitrationResult(done["pim"], max((r.done for r in reqs), default=-1),
                             [r.done for r in reqs], shared)


__all__ = ["ArbitrationResult", "HOSTS", "run_case"]
