"""Assemble and run one training iteration (``compare.py`` runs it with and without GradPIM).

``simulate(RunConfig)`` builds the workload graph, the training task DAG, the NPU cost model,
the placement of every tensor (the same layout rules in both runs), the memory system and the
executor, runs the SimPy environment to the end of the iteration and returns a
:class:`~gradpimsim.system.results.RunResult`.  A ``KeyboardInterrupt`` stops the run and returns
what finished, marked ``interrupted``.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from gradpimsim.config import MemoryConfig
from gradpimsim.config.pim import PimConfig, pim_knobs
from gradpimsim.dram.commands import CommandSink
from gradpimsim.graph.loader import load_any
from gradpimsim.host.allocator import Allocator, place_iteration
from gradpimsim.host.npu import NPUModel, TaskCost
from gradpimsim.host.traffic import by_phase_and_class, traffic_rows
from gradpimsim.host.training import TrainingSchedule, expand_training, group_tensor_name
from gradpimsim.pim.functional import PimArray
from gradpimsim.pim.kernels import UpdateTarget, build_program, check_supported
from gradpimsim.pim.layout import ColocatedPolicy, update_roles
from gradpimsim.pim.store import DramStore
from gradpimsim.runtime import simulation_gc
from gradpimsim.system.config import RunConfig
from gradpimsim.system.executor import Executor, TaskRecord
from gradpimsim.system.memory import MemorySystem
from gradpimsim.system.overlap import run_overlap
from gradpimsim.system.results import RunResult, collect
from gradpimsim.system.values import (
    GradientWriter,
    HostUpdater,
    fill_parameters,
    last_gradient_writers,
    verify_parameters,
)
from gradpimsim.system.verify import verify_schedule

ProgressHook = Callable[[TaskRecord, int, int], None]
SinkFactory = Callable[[int], CommandSink | None]


@dataclass
class Plan:
    """Everything an iteration is decided from before it runs: the task DAG, what each task
    costs the NPU and where every tensor lives (the traffic audit reads this too)."""

    cfg: MemoryConfig
    schedule: TrainingSchedule
    npu: NPUModel
    costs: dict[str, TaskCost]
    alloc: Allocator


def plan(run: RunConfig) -> Plan:
    """Expand, cost and place the iteration ``run`` describes (no simulation)."""
    cfg = run.memory_config()
    graph = load_any(run.workload, batch=run.batch, seq_len=run.seq_len)
    npu = NPUModel(run.npu)
    schedule = expand_training(graph, run.optimizer_config(), run.precision_policy(),
                               run.dataflow(npu.cfg.residency_budget))
    costs = npu.schedule_costs(schedule)
    layout = (lambda: ColocatedPolicy(fit_banks=True)) if run.layout == "colocated" else (
        lambda: "naive")
    placement = "shared" if run.layout == "naive" else run.placement
    alloc = place_iteration(schedule, cfg, layout, placement, run.param_banks)
    return Plan(cfg, schedule, npu, costs, alloc)


def simulate(run: RunConfig, *, progress: ProgressHook | None = None,
             sink_factory: SinkFactory | None = None,
             pim_config: PimConfig | None = None) -> RunResult:
    """Simulate one iteration as configured (``run.pim`` chooses where the update runs)."""
    wall = time.perf_counter()
    opt = run.optimizer_config()
    prec = run.precision_policy()
    pim = pim_config or run.pim_config()
    if run.pim:
        check_supported(opt, prec, pim)  # an update the unit cannot do is an error, up front
    p = plan(run)
    cfg, schedule, npu, costs, alloc = p.cfg, p.schedule, p.npu, p.costs, p.alloc

    env = simpy.Environment()
    store = array = None
    refs: dict[str, Any] = {}
    targets = {pid: _target(pid, roles, opt, prec, alloc) for pid, roles in
               schedule.groups.items()}
    grad_writer = None
    if run.functional:
        store = DramStore(cfg, alloc.amap)
        refs = fill_parameters(store, list(targets.values()), opt, prec,
                               np.random.default_rng(run.seed), gradients=False)
        grad_writer = GradientWriter(store, targets, dict(zip(targets, refs, strict=True)),
                                     prec, last_gradient_writers(schedule.program,
                                                                 schedule.dag.nodes))
        if run.pim:
            array = PimArray(cfg, store, pim)
    util_width = run.bin_cycles * UTIL_BINS_PER_BIN
    memory = MemorySystem(env, cfg, pim=pim, policy=run.pim_policy, array=array,
                          sink_factory=sink_factory, batch_runs=run.batch_runs,
                          bin_cycles=run.bin_cycles, util_bin=util_width if run.pim else 0,
                          wait_bound=run.pim_wait_bound)

    def pim_program(task: str) -> Any:
        pid = schedule.dag.nodes[task]["param"]
        return build_program([targets[pid]], opt, prec, cfg, pim, step=run.step,
                             amap=alloc.amap, lazy=True)

    host_update = None
    if run.functional and not run.pim and store is not None:
        host_update = HostUpdater(store, targets, opt, prec, run.step)
    total = len(schedule.dag)
    done_count = [0]

    def on_task_done(rec: TaskRecord, cycle: int) -> None:
        done_count[0] += 1
        if progress is not None:
            progress(rec, done_count[0], total)

    executor = Executor(env, cfg, schedule, costs, npu, alloc, memory,
                        pim_program=pim_program if run.pim else None,
                        update_policy=run.resolved_update_policy(),
                        on_task_done=on_task_done, on_host_update=host_update,
                        on_write_done=grad_writer)
    windows = _window_snapshots(env, executor, memory)
    interrupted = False
    try:
        with simulation_gc():
            env.run(until=executor.all_done)
    except KeyboardInterrupt:
        interrupted = True
    result = collect(run, cfg, executor, memory, windows, wall_s=time.perf_counter() - wall,
                     interrupted=interrupted, pim=pim)
    result.overlap = run_overlap(result.tasks, result.phases, result.cycles,
                                 windows.get("backward", {}).get("counts"),
                                 result.dram["commands"])
    col = pim.resolved(cfg.timing, cfg.burst_cycles).col_to_col
    result.pim_utilization = {"bin_cycles": util_width,
                              "units": memory.pim_utilization(util_width, col)}
    result.param_numels = {pid: t.numel for pid, t in targets.items()}
    split = alloc.split
    result.memory["param_units"] = (cfg.org.channels * len(split.param_ranks)
                                    * cfg.org.bankgroups)
    result.memory["placement"] = alloc.split.name
    if run.pim:  # the units this run's update ran on (results.json)
        result.memory["pim_units"] = pim_knobs(pim)
    result.memory["placement_detail"] = alloc.split.describe(cfg)
    result.schedule_violations = verify_schedule(schedule.program, schedule.dag.nodes,
                                                 executor.records.values())
    result.traffic = by_phase_and_class(traffic_rows(schedule, costs, executor.npu_tasks,
                                                     cfg.org.burst_bytes))
    if run.functional and store is not None and not interrupted:
        result.mismatches = verify_parameters(store, list(targets.values()), refs, opt, prec,
                                              run.step)
        result.verified = not result.mismatches
        result.store = store
        result.targets = targets
    result.peak_rss_mb = _peak_rss_mb()
    return result


def _peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (``ru_maxrss`` is KiB on Linux)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _target(pid: str, roles: dict[str, int], opt: Any, prec: Any,
            alloc: Allocator) -> UpdateTarget:
    dtypes = update_roles(opt, prec)
    numel = roles["weight"] // _dtype_bytes(dtypes["weight"])
    placements = {r: alloc.lookup(group_tensor_name(pid, r)) for r in roles}
    return UpdateTarget(pid, numel, placements)


def _dtype_bytes(dtype: str) -> int:
    from gradpimsim.config.training import DTYPE_BYTES

    return DTYPE_BYTES[dtype]


#: PIM units count their column operations in windows of this many bandwidth bins.
UTIL_BINS_PER_BIN = 10


def _window_snapshots(env: simpy.Environment, executor: Executor,
                      memory: MemorySystem) -> dict[str, Any]:
    """Counter snapshots when the forward and the backward tasks have all finished."""
    snaps: dict[str, Any] = {}
    for phase in ("forward", "backward"):
        evs = [executor.finished[t] for t, r in executor.records.items() if r.phase == phase]
        if not evs:
            continue

        def take(_e: simpy.Event, phase: str = phase) -> None:
            snaps[phase] = memory.snapshot(int(env.now))

        simpy.AllOf(env, evs).callbacks.append(take)
    return snaps
