"""Runner registry and sweep execution (in-process, or on Dask distributed).

A runner is ``fn(params: dict) -> dict[str, int | float | str | bool]``: one point's full
parameter dict in, flat metrics out.  ``update-bench`` is built in; ``iteration`` comes from
``gradpimsim.system.sweep_runner`` when that module exists (imported lazily, on first use, so
there is no import cycle): importing it must call :func:`register_runner` (or it may define
a function ``run(params)`` that is registered as ``iteration``).

:func:`run_sweep` skips points whose key the table already holds (``ok``; ``failed`` too unless
``retry_failed``), runs the rest, and appends each result the moment it arrives
(``dask.distributed.as_completed``).  A point that raises is recorded as ``failed`` with its
error and does not stop the others.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import gradpimsim
from gradpimsim.sweep import spec as spec_module
from gradpimsim.sweep.spec import SweepSpec, load_spec, point_key
from gradpimsim.sweep.store import ResultStore, load_results

Metrics = dict[str, int | float | str | bool]
Runner = Callable[[dict[str, Any]], Metrics]

_RUNNERS: dict[str, Runner] = {}
#: Modules that may register more runners, imported on first lookup (missing ones are skipped).
LAZY_RUNNER_MODULES = ("gradpimsim.system.sweep_runner",)
_lazy_done = False


def register_runner(kind: str, fn: Runner) -> None:
    """Register (or replace) the runner of a sweep kind."""
    if not callable(fn):
        raise TypeError(f"runner for {kind!r} must be callable")
    _RUNNERS[kind] = fn


def _load_lazy() -> None:
    global _lazy_done
    if _lazy_done:
        return
    _lazy_done = True
    from gradpimsim.sweep import run_keys
    from gradpimsim.sweep.spec import KindSchema, register_schema

    for kind, without in run_keys.KINDS.items():  # every RunConfig field a key of each
        register_schema(kind, KindSchema(**run_keys.run_schema(without=without)))
    for name in LAZY_RUNNER_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue  # not built yet
            raise
        if "iteration" not in _RUNNERS and callable(getattr(module, "run", None)):
            register_runner("iteration", module.run)
        for kind, fn in getattr(module, "RUNNERS", {}).items():  # more kinds (compare)
            if kind not in _RUNNERS:
                register_runner(kind, fn)
        schema = getattr(module, "SCHEMA", None)
        if schema is not None:  # optional: the iteration keys' checks and defaults
            from gradpimsim.sweep.spec import register_schema

            register_schema("iteration", schema)


def known_kinds() -> list[str]:
    """Kinds with a runner (the lazy modules included)."""
    _load_lazy()
    return list(_RUNNERS)


spec_module.known_kinds = known_kinds  # what a spec's kind is checked against (see sweep/spec.py)


def get_runner(kind: str) -> Runner:
    _load_lazy()
    try:
        return _RUNNERS[kind]
    except KeyError:
        raise KeyError(f"no runner registered for sweep kind {kind!r}; known: "
                       f"{', '.join(sorted(_RUNNERS))}") from None


# -- built-in runners ------------------------------------------------------------------------
def update_bench_runner(params: dict[str, Any]) -> Metrics:
    """One ``update-bench`` point: host versus GradPIM optimizer step, flat metrics."""
    from gradpimsim.bench.update import run_update_bench
    from gradpimsim.config import load_config, load_pim_config
    from gradpimsim.config.training import OptimizerConfig, precision

    memory = params.get("memory", "ddr4-2400")
    cfg = load_config(memory, channels=params.get("channels"), ranks=params.get("ranks"))
    name = params.get("optimizer", "momentum")
    base = OptimizerConfig(name).base  # an ewc-* optimizer's momentum is its base's
    opt = OptimizerConfig(name, momentum=0.9 if base in ("momentum", "nesterov") else 0.0)
    b = run_update_bench(cfg, int(params["params"]), opt, precision(params.get("precision",
                         "mixed")), pim=load_pim_config(memory),
                         layout=params.get("layout", "colocated"),
                         functional=bool(params.get("functional", True)),
                         step=int(params.get("step", 2)))
    h, p = b.host, b.pim
    metrics: Metrics = {
        "config": cfg.name,
        "host_cycles": h.cycles, "pim_cycles": p.cycles, "speedup": b.speedup,
        "bound_speedup": b.bound_speedup,
        "host_time_us": h.time_us, "pim_time_us": p.time_us,
        "host_bus_bytes": h.bus_bytes, "pim_bus_bytes": p.bus_bytes,
        "host_commands": h.commands, "pim_commands": p.commands,
        "host_activations": h.counts.get("ACT", 0), "pim_activations": p.activations,
        "pim_column_ops": p.column_ops, "pim_ops": p.pim_ops,
        "pim_utilization": p.mean_utilization,
        "host_bound_cycles": b.host_bound, "pim_bound_cycles": b.pim_bounds["bound"],
        "verified": "" if b.verified is None else b.verified,
    }
    return metrics


register_runner("update-bench", update_bench_runner)


# -- one point -----------------------------------------------------------------------------
def run_point(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run one point and return its table row; never raises for a failure of the point."""
    start = time.perf_counter()
    row: dict[str, Any] = {"key": point_key(kind, params), "kind": kind,
                           "version": gradpimsim.__version__}
    try:
        metrics = get_runner(kind)(dict(params))
        row.update(status="ok", error="")
    except Exception as exc:  # recorded, not raised: one bad point must not stop a sweep
        metrics = {}
        row.update(status="failed", error=f"{type(exc).__name__}: {exc}")
    row["wall_s"] = round(time.perf_counter() - start, 6)
    for k, v in params.items():
        row[k] = v
    for k, v in metrics.items():
        row[k if k not in row else f"metric_{k}"] = v
    return row


# -- a whole sweep ---------------------------------------------------------------------------
class _Progress:
    """Points done / running / failed and elapsed time (rich, on stderr)."""

    def __init__(self, total: int, skipped: int, workers: int, enabled: bool) -> None:
        self.total, self.skipped, self.workers = total, skipped, workers
        self.done = self.failed = 0
        self.start = time.perf_counter()
        self._progress = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("sweep"), BarColumn(), TextColumn("{task.description}"),
                TimeElapsedColumn(), console=Console(stderr=True), transient=False)
            self._task = self._progress.add_task(self._text(), total=total)
            self._progress.start()

    def _text(self) -> str:
        pending = self.total - self.done
        running = min(self.workers, pending)
        return (f"{self.done}/{self.total} done, {running} running, {self.failed} failed"
                + (f" ({self.skipped} already in the table)" if self.skipped else ""))

    def update(self, ok: bool) -> None:
        self.done += 1
        self.failed += not ok
        if self._progress is not None:
            self._progress.update(self._task, completed=self.done, description=self._text())

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def default_workers() -> int:
    return max(2, min(os.cpu_count() or 2, 8))


def run_sweep(spec_or_path: str | Path | Mapping[str, Any] | SweepSpec, out: str | Path, *,
              workers: int | None = None, scheduler: str | None = None, serial: bool = False,
              retry_failed: bool = False, progress: bool = True, repair: bool = False,
              security: Any = None, connect_timeout: float = 5.0,
              max_points: int | None = None) -> Any:
    """Run every point of the spec not yet in ``out``; return the whole table as a DataFrame.

    ``serial`` runs in this process without Dask; otherwise ``scheduler`` (an address) connects
    to a running Dask scheduler, or a local cluster of ``workers`` single-threaded worker
    processes is started (default :func:`default_workers`); ``security`` is Dask's TLS
    ``Security`` for it (see :mod:`gradpimsim.sweep.remote`).  A corrupt table stops the sweep
    (file and line) unless ``repair`` moves its bad rows aside.
    """
    spec = load_spec(spec_or_path, max_points=max_points)
    store = ResultStore(out, repair=repair)
    status = store.status()
    if retry_failed:
        store.drop(k for k, s in status.items() if s != "ok")
        status = store.status()
    todo = [(point_key(spec.kind, p), p) for p in spec.points]
    todo = [(k, p) for k, p in todo if k not in status]
    skipped = len(spec.points) - len(todo)
    n_workers = 1 if serial else (workers or default_workers())
    client = None
    if scheduler and todo and not serial:  # before the progress bar: a refusal is one line
        from gradpimsim.sweep.remote import connect

        client = connect(scheduler, security, connect_timeout)
    bar = _Progress(len(todo), skipped, n_workers, progress and bool(todo))
    try:
        if serial or not todo:
            for _, params in todo:
                row = run_point(spec.kind, params)
                store.append(row)
                bar.update(row["status"] == "ok")
        else:
            _run_dask(spec.kind, todo, store, bar, n_workers, client)
    finally:
        bar.close()
        if client is not None:
            client.close()
    return load_results(out)


def _run_dask(kind: str, todo: list[tuple[str, dict[str, Any]]], store: ResultStore,
              bar: _Progress, n_workers: int, remote: Any = None) -> None:
    """Run ``todo`` on ``remote`` (a connected client, closed by the caller) or on a local
    cluster of ``n_workers`` processes started here."""
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if remote is not None:
        client = remote
    else:
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    try:
        futures = {}
        for key, params in todo:
            fut = client.submit(run_point, kind, params, pure=False)
            futures[fut] = (key, params)
        for fut in as_completed(list(futures)):
            key, params = futures.pop(fut)
            try:
                row = fut.result()
            except Exception as exc:  # the worker died (KilledWorker) or could not run it
                row = {"key": key, "kind": kind, "version": gradpimsim.__version__,
                       "status": "failed", "error": f"{type(exc).__name__}: {exc}",
                       "wall_s": "", **params}
            store.append(row)
            bar.update(row["status"] == "ok")
    finally:
        if cluster is not None:
            client.close()
            cluster.close()
