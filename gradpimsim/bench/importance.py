"""The task-boundary programs of a regularized optimizer on the bench: host against GradPIM.

``fisher`` (one sample's squared gradient added to the accumulator ``F``) and ``consolidate``
(``omega += F/N``, ``theta_old = W``) from :mod:`gradpimsim.pim.importance`, over N
parameters placed as one co-located group (:func:`~gradpimsim.pim.importance.importance_tensors`).
The host side reads and writes the same roles over the bus
(:func:`~gradpimsim.bench.host_update.run_host_update` with the stage's roles); the GradPIM
side runs the program on the engine.  In functional mode the result is compared bit for bit
with ``reference.fisher_step`` / ``reference.consolidate``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from gradpimsim.bench.host_update import host_bound_cycles, run_host_update
from gradpimsim.bench.update import UpdateBench
from gradpimsim.config import MemoryConfig
from gradpimsim.config.pim import PimConfig
from gradpimsim.config.training import OptimizerConfig, PrecisionPolicy
from gradpimsim.dram.commands import Command
from gradpimsim.host.allocator import Allocator
from gradpimsim.pim import reference
from gradpimsim.pim.bounds import pim_bounds
from gradpimsim.pim.engine import PimEngine
from gradpimsim.pim.functional import PimArray
from gradpimsim.pim.importance import (
    build_importance_program,
    importance_roles,
    importance_tensors,
    importance_traffic,
    stage_roles,
)
from gradpimsim.pim.kernels import UpdateTarget
from gradpimsim.pim.layout import ColocatedPolicy
from gradpimsim.pim.store import DramStore
from gradpimsim.pim.values import seeded_gradient


def run_importance_bench(cfg: MemoryConfig, params: int, stage: str,
                         optimizer: OptimizerConfig, precision: PrecisionPolicy, *,
                         pim: PimConfig | None = None, functional: bool = True,
                         first: bool = False, samples: int = 8, seed: int = 0,
                         pim_sink: Callable[[Command], None] | None = None,
                         host_sink_factory: Callable[[int], Any] | None = None) -> UpdateBench:
    """Both sides of one boundary program over ``params`` parameters (see the docstring)."""
    if params < 1:
        raise ValueError("params must be >= 1")
    pim = pim or PimConfig()
    alloc = Allocator(cfg, ColocatedPolicy(fit_banks=True))
    placements = alloc.place_group("p", importance_tensors(params, precision))
    targets = [UpdateTarget("p", params, placements)]
    start = time.perf_counter()
    program = build_importance_program(targets, stage, optimizer, precision, cfg, pim,
                                       samples=samples, first=first, amap=alloc.amap)
    program_s = time.perf_counter() - start
    array = expect = None
    if functional:
        store = DramStore(cfg, alloc.amap)
        expect = _fill(store, placements, params, stage, precision, first, samples,
                       np.random.default_rng(seed))
        array = PimArray(cfg, store, pim)
    pim_res = PimEngine(cfg, pim, sink=pim_sink, array=array).run(program)
    dtypes = importance_roles(precision)
    reads, writes = stage_roles(stage, first)
    roles = ([(r, dtypes[r]) for r in reads], [(r, dtypes[r]) for r in writes])
    host_res = run_host_update(targets, optimizer, precision, cfg, roles=roles,
                               sink_factory=host_sink_factory)
    read, write = importance_traffic(stage, precision, first)
    assert host_res.bus_bytes >= (read + write) * params
    bench = UpdateBench(cfg, params, optimizer, precision, "colocated", host_res, pim_res,
                        pim_bounds(program, cfg, pim), host_bound_cycles(host_res.bus_bytes, cfg),
                        program_s=program_s, program=stage)
    if array is not None and expect is not None:
        for role, want in expect.items():
            got = array.store.read_tensor(placements[role], "fp32", params)
            if not np.array_equal(got.view(np.uint32), want.view(np.uint32)):
                bench.mismatches.append(f"{role} differs from the reference")
        bench.verified = not bench.mismatches
    return bench


def _fill(store: DramStore, pl: dict[str, Any], n: int, stage: str, prec: PrecisionPolicy,
          first: bool, samples: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Seeded values in DRAM; returns what each written role must hold afterwards."""
    w = rng.standard_normal(n).astype(np.float32)
    store.write_tensor(pl["weight"], w, "fp32")
    fisher = (rng.standard_normal(n) ** 2 * 0.01).astype(np.float32)
    store.write_tensor(pl["fisher"], fisher, "fp32")
    omega = np.abs(rng.standard_normal(n)).astype(np.float32)
    store.write_tensor(pl["omega"], omega, "fp32")
    if stage == "consolidate":
        new_omega, theta_old = reference.consolidate(omega, fisher, w, samples)
        return {"omega": new_omega, "theta_old": theta_old}
    g = seeded_gradient(rng, n, prec.grad_dtype)
    store.write_tensor(pl["grad"], g, prec.grad_dtype)
    wide = reference.widen_grad(g, prec.grad_dtype)
    return {"fisher": reference.fisher_step(None if first else fisher, wide)}


__all__ = ["run_importance_bench"]
