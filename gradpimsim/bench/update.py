"""The update bench: one optimizer step over N parameters, on the host and with GradPIM.

Both sides use the same placement (``layout``, default the co-located GradPIM layout, which the
PIM kernels need) and the same memory configuration.  The host side is
:func:`~gradpimsim.bench.host_update.run_host_update` (bus-bound NPU update on the host
controller); the GradPIM side is :class:`~gradpimsim.pim.engine.PimEngine` on the program
:func:`~gradpimsim.pim.kernels.build_program` generates (steady state: ``step`` 2, the momentum
buffer is read).  In functional mode the DRAM holds random weights, state and gradients, the
engine executes every instruction at its issue cycle, and the result is compared bit for bit
with the numpy reference optimizer (``verified``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gradpimsim.bench.host_update import HostResult, host_bound_cycles, run_host_update
from gradpimsim.config import MemoryConfig
from gradpimsim.config.pim import PimConfig
from gradpimsim.config.training import OptimizerConfig, PrecisionPolicy
from gradpimsim.dram.commands import Command
from gradpimsim.host.allocator import Allocator
from gradpimsim.pim.bounds import pim_bounds
from gradpimsim.pim.engine import EngineResult, PimEngine
from gradpimsim.pim.functional import PimArray
from gradpimsim.pim.kernels import UpdateTarget, build_program, check_supported
from gradpimsim.pim.layout import ColocatedPolicy, update_tensors
from gradpimsim.pim.store import DramStore
from gradpimsim.pim.values import fill_parameters, verify_parameters

LAYOUTS = ("colocated", "naive")


@dataclass
class UpdateBench:
    """Both runs and their bounds (cycles are DRAM clock cycles of ``cfg``)."""

    cfg: MemoryConfig
    params: int
    optimizer: OptimizerConfig
    precision: PrecisionPolicy
    layout: str
    host: HostResult
    pim: EngineResult
    pim_bounds: dict[str, int]
    host_bound: int
    verified: bool | None = None
    mismatches: list[str] = field(default_factory=list)
    #: Wall time spent generating the GradPIM program (not part of ``pim.wall_s``).
    program_s: float = 0.0
    #: What was timed: the optimizer ``step``, or a regularized optimizer's task-boundary
    #: program (``fisher``, ``consolidate``: ``bench.importance``).
    program: str = "step"

    @property
    def speedup(self) -> float:
        return self.host.cycles / self.pim.cycles if self.pim.cycles else 0.0

    @property
    def bound_speedup(self) -> float:
        b = self.pim_bounds["bound"]
        return self.host_bound / b if b else 0.0

    @property
    def pim_ratio(self) -> float:
        """Simulated GradPIM cycles / closed-form bound."""
        b = self.pim_bounds["bound"]
        return self.pim.cycles / b if b else 0.0

    @property
    def host_ratio(self) -> float:
        return self.host.cycles / self.host_bound if self.host_bound else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.cfg.name, "params": self.params, "optimizer": self.optimizer.name,
            "precision": self.precision.name, "layout": self.layout, "program": self.program,
            "host": self.host.to_dict(), "pim": self.pim.to_dict(),
            "pim_bounds": dict(self.pim_bounds), "host_bound_cycles": self.host_bound,
            "speedup": self.speedup, "bound_speedup": self.bound_speedup,
            "pim_ratio_to_bound": self.pim_ratio, "host_ratio_to_bound": self.host_ratio,
            "verified": self.verified, "program_s": self.program_s,
        }


def run_update_bench(cfg: MemoryConfig, params: int, optimizer: OptimizerConfig,
                     precision: PrecisionPolicy, *, pim: PimConfig | None = None,
                     layout: str = "colocated", functional: bool = True, step: int = 2,
                     seed: int = 0,
                     pim_sink: Callable[[Command], None] | None = None,
                     host_sink_factory: Callable[[int], Any] | None = None) -> UpdateBench:
    """Run both sides of the update bench (see the module docstring).

    Raises :class:`~gradpimsim.pim.errors.PimCapabilityError` (a ``ConfigError``) when the unit
    cannot run the optimizer/precision, and :class:`~gradpimsim.pim.errors.LayoutError` for a
    layout the units cannot reach (``naive``).
    """
    if params < 1:
        raise ValueError("params must be >= 1")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    pim = pim or PimConfig()
    check_supported(optimizer, precision, pim)  # before any work
    alloc = Allocator(cfg, ColocatedPolicy(fit_banks=True) if layout == "colocated" else "naive")
    placements = alloc.place_group("p", update_tensors(params, optimizer, precision))
    targets = [UpdateTarget("p", params, placements)]
    start = time.perf_counter()
    # stored, not lazy: generating instructions is slower than scheduling them, and the
    # engine's commands/s should measure the engine (about 70 MB per million parameters)
    program = build_program(targets, optimizer, precision, cfg, pim, step=step,
                            amap=alloc.amap)
    program_s = time.perf_counter() - start
    array = refs = None
    if functional:
        store = DramStore(cfg, alloc.amap)
        refs = fill_parameters(store, targets, optimizer, precision, np.random.default_rng(seed))
        array = PimArray(cfg, store, pim)
    pim_res = PimEngine(cfg, pim, sink=pim_sink, array=array).run(program)
    host_res = run_host_update(targets, optimizer, precision, cfg, sink_factory=host_sink_factory)
    read, write = precision.update_bytes(optimizer)
    assert host_res.bus_bytes >= (read + write) * params
    bench = UpdateBench(cfg, params, optimizer, precision, layout, host_res, pim_res,
                        pim_bounds(program, cfg, pim), host_bound_cycles(host_res.bus_bytes, cfg),
                        program_s=program_s)
    if functional and array is not None and refs is not None:
        bench.mismatches = verify_parameters(array.store, targets, refs, optimizer, precision, step)
        bench.verified = not bench.mismatches
    return bench


def update_bytes_per_param(optimizer: OptimizerConfig, precision: PrecisionPolicy) -> int:
    """Host bus bytes per parameter (reads + writes)."""
    read, write = precision.update_bytes(optimizer)
    return read + write

