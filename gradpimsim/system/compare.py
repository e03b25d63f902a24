"""The same iteration without and with GradPIM: ``compare`` runs both and relates them.

``compare(run, jobs=2)`` runs the two simulations at the same time in two worker processes
(:mod:`gradpimsim.system.parallel`); this module sits above both ``simulate`` and ``parallel``
so that neither imports the other back.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from gradpimsim.config.pim import PimConfig
from gradpimsim.graph.loader import load_any
from gradpimsim.graph.schema import activation_bytes, param_bytes
from gradpimsim.system.config import RunConfig
from gradpimsim.system.overlap import compare_overlap
from gradpimsim.system.parallel import RunSpec, picklable, run_parallel
from gradpimsim.system.results import CompareResult, RunResult
from gradpimsim.system.simulate import ProgressHook, SinkFactory, simulate

#: The two runs of ``compare``, in the order they are reported.
RUNS = ("baseline", "pim")

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
    return _compared(run, base, with_pim, pim_config)


def _compare_parallel(run: RunConfig, chosen: dict[str, tuple[ProgressHook | None, Any]],
                      pim_config: PimConfig | None) -> CompareResult:
    specs = {name: RunSpec(run.with_pim(name == "pim"), sinks, pim_config)
             for name, (_, sinks) in chosen.items()}
    results = run_parallel(specs, {name: prog for name, (prog, _) in chosen.items()})
    base = results["baseline"]
    if base is None:  # interrupted before it had anything to show
        raise KeyboardInterrupt
    return _compared(run, base, results["pim"], pim_config)


def _compared(run: RunConfig, base: RunResult, with_pim: RunResult | None,
              pim_config: PimConfig | None = None) -> CompareResult:
    out = CompareResult(run, base, with_pim)
    if run.functional and with_pim is not None and not out.interrupted:
        out.weights_match = _same_weights(base, with_pim)
    if with_pim is not None and not out.interrupted and base.overlap and with_pim.overlap:
        out.overlap = compare_overlap(base, with_pim, base.param_numels,
                                      run.optimizer_config(), run.precision_policy(),
                                      run.memory_config(), pim_config or run.pim_config(),
                                      int(base.memory.get("param_units", 1)), run.step)
    return out


def _same_weights(a: RunResult, b: RunResult) -> bool:
    if a.store is None or b.store is None or a.targets is None:
        return False
    for pid, t in a.targets.items():
        for role, pl in t.placements.items():
            pl_b = b.targets[pid].placements[role]
            if not np.array_equal(a.store.read_placed(pl), b.store.read_placed(pl_b)):
                return False
    return True
