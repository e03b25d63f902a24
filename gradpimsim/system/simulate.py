"""Assemble and run one training iteration; ``compare`` runs it with and without GradPIM.

``simulate(RunConfig)`` builds the workload graph, the training task DAG, the NPU cost model,
the placement of every tensor (the same layout rules in both runs), the memory system and the
executor, runs the SimPy environment to the end of the iteration and returns a
:class:`~gradpimsim.system.results.RunResult`.  A ``KeyboardInterrupt`` stops the run and returns
what finished, marked ``interrupted``.  ``compare(run, jobs=2)`` runs the two simulations at the
same time in two worker processes (:mod:`gradpimsim.system.parallel`).
"""

from __future__ import annotations

import os
import resource
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from gradpimsim.config import MemoryConfig
from gradpimsim.controller.controller import CommandSink
from gradpimsim.graph.cli import load_any
from gradpimsim.graph.schema import activation_bytes, param_bytes
from gradpimsim.host.allocator import Allocator, place_schedule
from gradpimsim.host.npu import NPUModel, TaskCost
from gradpimsim.host.traffic import by_phase_and_class, traffic_rows
from gradpimsim.host.training import TrainingSchedule, expand_training, group_tensor_name
from gradpimsim.pim.config import PimConfig
from gradpimsim.pim.functional import PimArray
from gradpimsim.pim.kernels import UpdateTarget, build_program, check_supported
from gradpimsim.pim.layout import ColocatedPolicy, update_roles
from gradpimsim.pim.store import DramStore
from gradpimsim.runtime import simulation_gc
from gradpimsim.system.config import RunConfig
from gradpimsim.system.executor import Executor, TaskRecord
from gradpimsim.system.memory import MemorySystem
from gradpimsim.system.results import CompareResult, RunResult, collect
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
#: The two runs of ``compare``, in the order they are reported.
RUNS = ("baseline", "pim")


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
    alloc = Allocator(cfg, ColocatedPolicy() if run.layout == "colocated" else "naive")
    place_schedule(schedule, alloc)
    return Plan(cfg, schedule, npu, costs, alloc)


def simulate(run: RunConfig, *, progress: ProgressHook | None = None,
             sink_factory: SinkFactory | None = None,
             pim_config: PimConfig | None = None) -> RunResult:
    """Simulate one iteration as configured (``run.pim`` chooses where the update runs)."""
    wall = time.perf_counter()
    opt = run.optimizer_config()
    prec = run.precision_policy()
    pim = pim_config or PimConfig()
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
    memory = MemorySystem(env, cfg, pim=pim, policy=run.pim_policy, array=array,
                          sink_factory=sink_factory, batch_runs=run.batch_runs,
                          bin_cycles=run.bin_cycles)

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


#: Below this much parameter and activation data a workload's two runs take about as long as
#: starting a worker process (~1 s: a fresh interpreter imports the simulator), so ``compare``
#: runs them in this process: mlp-small moves ~3 MiB, resnet18 at batch 1 ~77 MiB.
PARALLEL_MIN_BYTES = 16 * 2**20


def auto_jobs(run: RunConfig) -> int:
    """``compare``'s default ``jobs``: 2 (both runs at once) with two or more cores, unless
    the workload is too small to repay starting the workers."""
    if (os.cpu_count() or 1) < 2:
        return 1
    graph = load_any(run.workload, batch=run.batch, seq_len=run.seq_len)
    moved = param_bytes(graph) + activation_bytes(graph)
    return 2 if moved >= PARALLEL_MIN_BYTES else 1


def compare(run: RunConfig, *, progress: ProgressHook | None = None,
            sink_factory: SinkFactory | None = None,
            pim_config: PimConfig | None = None,
            per_run: Callable[[str], tuple[ProgressHook | None, Any]] | None = None,
            jobs: int = 1) -> CompareResult:
    """The same iteration without and with GradPIM; ``speedup`` = baseline / PIM cycles.

    ``per_run(name)`` (name ``"baseline"`` or ``"pim"``) may return that run's own progress
    hook and sink factory instead of the shared ``progress``/``sink_factory``.

    ``jobs=1`` runs the baseline, then the PIM run, in this process; if the baseline is
    interrupted the PIM run is not started (``pim`` is None).  ``jobs >= 2`` runs both at the
    same time, each in its own worker process, and returns the same figures.  Progress hooks
    still run here, called in each run's task order (the two runs interleave).  Sink factories
    are sent to the workers, so they must pickle; a worker calls its factory's ``close()``, if
    it has one, when its run ends (:class:`~gradpimsim.trace.cmdtrace.CommandTraceFile` works
    this way).  If a sink factory does not pickle (a lambda, an open writer), the runs fall
    back to ``jobs=1`` with a ``RuntimeWarning``.  On Ctrl-C both runs come back marked
    ``interrupted``; a run interrupted before it had a result is ``None``, which for the
    baseline re-raises ``KeyboardInterrupt`` (as it propagates with ``jobs=1``).  Workers are
    started with ``spawn`` and import the main module, so a script calling this needs the usual
    ``if __name__ == "__main__":`` guard.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")

    def hooks(name: str) -> tuple[ProgressHook | None, Any]:
        return per_run(name) if per_run is not None else (progress, sink_factory)

    if jobs == 1:
        return _compare_sequential(run, hooks, pim_config)
    from gradpimsim.system.parallel import picklable

    chosen = {name: hooks(name) for name in RUNS}
    if all(picklable(sinks) for _, sinks in chosen.values()):
        return _compare_parallel(run, chosen, pim_config)
    warnings.warn(f"compare(jobs={jobs}): a sink factory cannot be sent to a worker process "
                  "(it does not pickle), so the runs go one after the other in this process",
                  RuntimeWarning, stacklevel=2)
    return _compare_sequential(run, chosen.__getitem__, pim_config)


def _compare_sequential(run: RunConfig, hooks: Callable[[str], tuple[ProgressHook | None, Any]],
                        pim_config: PimConfig | None) -> CompareResult:
    prog, sinks = hooks("baseline")
    base = simulate(run.with_pim(False), progress=prog, sink_factory=sinks,
                    pim_config=pim_config)
    if base.interrupted:
        return CompareResult(run, base, None)
    prog, sinks = hooks("pim")
    with_pim = simulate(run.with_pim(True), progress=prog, sink_factory=sinks,
                        pim_config=pim_config)
    return _compared(run, base, with_pim)


def _compare_parallel(run: RunConfig, chosen: dict[str, tuple[ProgressHook | None, Any]],
                      pim_config: PimConfig | None) -> CompareResult:
    from gradpimsim.system.parallel import RunSpec, run_parallel

    specs = {name: RunSpec(run.with_pim(name == "pim"), sinks, pim_config)
             for name, (_, sinks) in chosen.items()}
    results = run_parallel(specs, {name: prog for name, (prog, _) in chosen.items()})
    base = results["baseline"]
    if base is None:  # interrupted before it had anything to show
        raise KeyboardInterrupt
    return _compared(run, base, results["pim"])


def _compared(run: RunConfig, base: RunResult, with_pim: RunResult | None) -> CompareResult:
    out = CompareResult(run, base, with_pim)
    if run.functional and with_pim is not None and not out.interrupted:
        out.weights_match = _same_weights(base, with_pim)
    return out


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


def _same_weights(a: RunResult, b: RunResult) -> bool:
    if a.store is None or b.store is None or a.targets is None:
        return False
    for pid, t in a.targets.items():
        for role, pl in t.placements.items():
            pl_b = b.targets[pid].placements[role]
            if not np.array_equal(a.store.read_placed(pl), b.store.read_placed(pl_b)):
                return False
    return True
