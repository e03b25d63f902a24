"""``gradpimsim run`` and ``gradpimsim compare``: one training iteration, with or without PIM.

``compare`` runs the same iteration twice (host update over the bus, then GradPIM) and prints
one table with both and the speedup.  ``--out DIR`` writes results.json (every figure and the
full configuration), tasks.csv and timeline.json (Perfetto).  ``compare --jobs 2`` (the default
on a machine with two cores or more) simulates both at the same time in two worker processes.
Ctrl-C stops the run, writes what finished (marked ``interrupted``) and exits 130.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gradpimsim.config.pim import parse_knob_options
from gradpimsim.graph.importers.python_entry import AllowPython
from gradpimsim.host.fusion import FUSION_POLICIES
from gradpimsim.host.npu import DEFAULT_NPU
from gradpimsim.host.placement import PLACEMENTS
from gradpimsim.host.training import BACKWARD_PASSES, TASK_ORDERS
from gradpimsim.options import nonneg_int, positive_int
from gradpimsim.system.config import LAYOUTS, PIM_POLICIES, UPDATE_POLICIES, RunConfig
from gradpimsim.system.runfile import Default, mark_defaults, merge

if TYPE_CHECKING:  # the simulator itself is imported when a command runs, not for --help
    from gradpimsim.system.executor import TaskRecord
    from gradpimsim.system.results import RunResult

#: Piped or redirected, rich would wrap at 80 columns, mid-phrase: a wide table stays whole.
console = Console(width=None if sys.stdout.isatty() else 200)


def add_parser(subparsers: Any) -> None:
    run = subparsers.add_parser(
        "run", help="simulate one training iteration (host update, or --pim for GradPIM)",
        description="Simulate one training iteration of WORKLOAD on the NPU and DDR4 memory, "
        "with the optimizer update on the host (default) or inside the DRAM (--pim).")
    _common(run)
    run.add_argument("--pim", action=argparse.BooleanOptionalAction, default=False,
                     help="run the optimizer update on GradPIM units (default: on the host)")
    run.set_defaults(func=_run)
    cmp_ = subparsers.add_parser(
        "compare", help="simulate one training iteration without and with GradPIM",
        description="Simulate one training iteration of WORKLOAD twice, with the update on the "
        "host and on GradPIM, and print both with the speedup.")
    _common(cmp_)
    cmp_.add_argument("--jobs", "-j", type=int, default=None, metavar="N",
                      help="processes: 2 simulates both runs at the same time, each in its own "
                      "process; 1 runs them one after the other in this one (default: 2 with "
                      "2+ cores unless the workload is small, e.g. mlp-small, where starting a "
                      "worker takes longer than its run; more than 2 uses 2)")
    cmp_.set_defaults(func=_compare)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("workload", metavar="WORKLOAD", nargs="?", default=None,
                   help="built-in workload (see `gradpimsim workloads list`), a graph file "
                   "(.json, SCALE-Sim .csv, .onnx) or python:MODULE:FUNCTION[@SHAPES] "
                   "(needs --allow-python)")
    p.add_argument("--allow-python", action=AllowPython)
    p.add_argument("--config", metavar="RUN.toml|results.json", dest="run_file",
                   help="take every setting from a run file, or from the config of a "
                   "results.json to reproduce it; options given here override the file "
                   "(docs/iteration.md)")
    p.add_argument("--memory", "-c", dest="memory", default="ddr4-2400",
                   metavar="PRESET|FILE", help="memory preset, .toml or DRAMsim3 .ini "
                   "(default ddr4-2400)")
    p.add_argument("--channels", type=positive_int, help="override the number of channels")
    p.add_argument("--ranks", type=positive_int, help="override the number of ranks per channel")
    p.add_argument("--batch", type=positive_int, help="batch size (default: the workload's)")
    p.add_argument("--seq-len", type=positive_int, help="sequence length (sequence models)")
    p.add_argument("--optimizer", default="momentum", metavar="NAME",
                   help="sgd, momentum, nesterov, adam, adamw; ewc-sgd, ewc-momentum, ewc-nesterov "
                   "add the regularizer g + lambda*omega*(theta - theta_old) (default momentum)")
    p.add_argument("--precision", default="mixed", metavar="POLICY",
                   help="fp32, mixed (fp16), mixed-bf16, mixed-int8 (default mixed)")
    p.add_argument("--npu", default=DEFAULT_NPU, metavar="PRESET|FILE",
                   help=f"NPU preset (edge, small, mid, large; default {DEFAULT_NPU}) or .toml")
    p.add_argument("--fusion", choices=FUSION_POLICIES, default="full",
                   help="which layers the NPU fuses into one pass (default full: elementwise "
                   "layers and BatchNorm fused, outputs kept on chip when they fit; none: "
                   "every layer round-trips DRAM, as before 0.2)")
    p.add_argument("--task-order", choices=TASK_ORDERS, default="autograd",
                   help="backward in autograd order (default), or legacy: every data "
                   "gradient before any weight gradient (needs --fusion none --backward split)")
    p.add_argument("--backward", choices=BACKWARD_PASSES, default="fused",
                   help="a layer's data and weight gradients in one pass that reads the "
                   "output gradient once (fused, default) or in two passes (split)")
    p.add_argument("--update-policy", choices=UPDATE_POLICIES, default="auto",
                   help="when an update starts: overlap (as soon as its gradient is complete "
                   "and its weights are no longer read; the host then runs it between "
                   "backward passes), after-backward, or auto (default: the host after "
                   "backward, GradPIM overlapped)")
    p.add_argument("--placement", choices=PLACEMENTS, default="auto",
                   help="parameters apart from activations: bank-partition (a subset of the "
                   "banks of every bank group), rank-partition, shared (every bank), or auto "
                   "(default: bank-partition if it fits, else shared); both runs")
    p.add_argument("--param-banks", type=int, default=None, metavar="K",
                   help="with bank-partition: banks per bank group for parameters (default: "
                   "what the update's operands need)")
    p.add_argument("--layout", choices=LAYOUTS, default="colocated",
                   help="placement of each parameter's weight/gradient/state (both runs)")
    p.add_argument("--pim-policy", choices=PIM_POLICIES, default="host-first",
                   help="arbitration between NPU traffic and PIM streams: host-first (bus "
                   "ties to the host; PIM waits for banks the host serves), pim-first, fair "
                   "(neither side waits more than --pim-wait-bound cycles for a bank the "
                   "other keeps), throttled (PIM only uses what the host leaves idle)")
    p.add_argument("--pim-wait-bound", type=int, default=None, metavar="CYCLES",
                   help="with --pim-policy fair: the wait bound (default 1000 cycles)")
    p.add_argument("--pim-knob", action="append", default=[], metavar="KEY=VALUE",
                   help="a GradPIM unit knob over the memory TOML's [pim] section, e.g. "
                   "vector_registers=16, op_latency=8, has_sqrt_div=true (repeatable; "
                   "docs/gradpim.md lists them)")
    p.add_argument("--step", type=positive_int, default=2,
                   help="optimizer step simulated (default 2)")
    p.add_argument("--seed", type=nonneg_int, default=0,
                   help="seed of the values --functional fills the parameters with (default 0)")
    p.add_argument("--functional", action="store_true",
                   help="update real values too and verify them (small models only)")
    p.add_argument("--no-batch", action="store_true",
                   help="one scheduler decision per command (slow; for cross-checks)")
    p.add_argument("--bin-cycles", type=positive_int, default=10_000,
                   help="bandwidth-over-time bin width in DRAM cycles (default 10000)")
    p.add_argument("--out", metavar="DIR",
                   help="write results.json, tasks.csv and timeline.json to DIR")
    p.add_argument("--no-timeline", action="store_true", help="with --out: skip timeline.json")
    p.add_argument("--cmd-trace", metavar="FILE",
                   help="stream every DRAM command to FILE (DRAMsim3 layout; .gz compresses; "
                   "compare writes FILE's baseline and pim variants)")
    p.add_argument("--force", action="store_true",
                   help="replace output files that gradpimsim did not write")
    mark_defaults(p, set(RUN_OPTIONS))


#: Option ``dest`` -> RunConfig field, for the options that set one: every option whose
#: ``dest`` is a field's name, and ``--no-batch`` (``batch_runs`` inverted).
RUN_OPTIONS = {**{f.name: f.name for f in dataclasses.fields(RunConfig)},
               "no_batch": "batch_runs"}


def _config(args: argparse.Namespace, pim: bool | None) -> RunConfig:
    """The run: options typed here, over the ``--config`` file, over the defaults
    (``pim``: None takes it from the options/file, as ``run`` does)."""
    from gradpimsim.system.runfile import load_run_file

    given = {field: getattr(args, dest) for dest, field in RUN_OPTIONS.items()
             if hasattr(args, dest)}
    if "batch_runs" in given:
        v = given["batch_runs"]
        given["batch_runs"] = Default(True) if isinstance(v, Default) else not v
    if pim is not None:
        given["pim"] = pim
    file_values = load_run_file(args.run_file) if args.run_file else None
    typed_knobs = parse_knob_options(getattr(args, "pim_knob", None) or [])
    if typed_knobs:  # each typed knob over the file's knobs (not the whole table)
        given["pim_knobs"] = {**(file_values or {}).get("pim_knobs", {}), **typed_knobs}
    return merge(given, file_values)


def _user_errors(func: Any) -> Any:
    """Our input errors (unknown workload, layout the units cannot reach) are exit-2 errors."""
    def wrapped(args: argparse.Namespace) -> int:
        from gradpimsim.cli import UserError
        from gradpimsim.config.model import ConfigError
        from gradpimsim.graph.schema import GraphError
        from gradpimsim.host.allocator import OutOfMemory
        from gradpimsim.pim.errors import LayoutError

        try:
            return int(func(args))
        except (GraphError, LayoutError) as exc:
            raise UserError(str(exc)) from None
        except ConfigError as exc:
            raise UserError(str(exc)) from None
        except OutOfMemory as exc:
            raise UserError(f"the workload does not fit in memory: {exc}; use more channels "
                            "or ranks, or a smaller batch") from None
    return wrapped


class _Progress:
    """Rich progress: tasks done, the current phase and layer, simulated and wall time."""

    def __init__(self, progress: Progress, label: str, tck_ns: float) -> None:
        self.progress = progress
        self.label = label
        self.tck_ns = tck_ns
        self.task = progress.add_task(label, total=None, sim="")

    def __call__(self, rec: TaskRecord, done: int, total: int) -> None:
        where = rec.layer or rec.task.split(":", 1)[-1]
        self.progress.update(self.task, total=total, completed=done,
                             description=f"{self.label} {rec.phase:8s} {where[:28]}",
                             sim=f"{rec.end * self.tck_ns / 1000:,.1f} µs simulated")


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[sim]}"), TimeElapsedColumn(),
                    console=Console(stderr=True), transient=True)


def _trace_file(path: str | None, suffix: str) -> Any:
    """``--cmd-trace`` as a sink factory (picklable, so a worker process can write it)."""
    if not path:
        return None
    from gradpimsim.trace.cmdtrace import CommandTraceFile

    p = Path(path)
    if suffix:
        stem, dot, ext = p.name.partition(".")
        p = p.with_name(f"{stem}.{suffix}{dot}{ext}")
    return CommandTraceFile(p)


def _discard(files: dict[str, Any]) -> None:
    """A run failed: remove its unfinished command traces (a worker's too)."""
    for f in files.values():
        if f is not None:
            f.discard()


def _close(files: dict[str, Any], finished: dict[str, Any]) -> list[Path]:
    """Finish the trace files of the runs in ``finished``; paths of those written.

    A run simulated here has its file closed now; one simulated by a worker process was
    closed by that worker before it sent its result.
    """
    out = []
    for name, f in files.items():
        if f is not None and (f.close() or (name in finished and f.path.exists())):
            out.append(f.path)
    return out


@_user_errors
def _run(args: argparse.Namespace) -> int:
    from gradpimsim.system.preflight import preflight_run
    from gradpimsim.system.results import results_dict
    from gradpimsim.system.simulate import simulate

    run = _config(args, None)
    preflight_run(args, run, ("",))
    cfg = run.memory_config()
    trace = _trace_file(args.cmd_trace, "")
    t0 = time.perf_counter()
    started = _now()
    try:
        with _progress() as prog:
            res = simulate(run, progress=_Progress(prog, "GradPIM" if run.pim else "baseline",
                                                   cfg.timing.tCK_ns),
                           sink_factory=trace)
    except BaseException:
        _discard({"run": trace})
        raise
    name = "pim" if run.pim else "baseline"
    paths = _close({name: trace}, {name: res})
    console.print(results_table({name: res}, None, run))
    data = results_dict(run, {name: res}, started=started)
    return _finish(args, data, {name: res}, res.interrupted, paths, time.perf_counter() - t0)


@_user_errors
def _compare(args: argparse.Namespace) -> int:
    from gradpimsim.cli import UserError
    from gradpimsim.system.compare import auto_jobs, compare
    from gradpimsim.system.preflight import preflight_run

    if args.jobs is not None and args.jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {args.jobs}")
    run = _config(args, False)
    preflight_run(args, run, ("baseline", "pim") if args.cmd_trace else ())
    jobs = args.jobs if args.jobs is not None else auto_jobs(run)
    cfg = run.memory_config()
    traces: dict[str, Any] = {}
    t0 = time.perf_counter()
    started = _now()
    labels = {"baseline": "baseline", "pim": "GradPIM "}

    def per_run(name: str) -> tuple[_Progress, Any]:
        traces[name] = _trace_file(args.cmd_trace, name)
        return _Progress(prog, labels[name], cfg.timing.tCK_ns), traces[name]

    try:
        with _progress() as prog:
            result = compare(run, per_run=per_run, jobs=jobs)
    except BaseException:
        _discard(traces)
        raise
    runs = result.runs()
    paths = _close(traces, runs)
    console.print(results_table(runs, result.speedup, run, result.overlap))
    if run.functional:
        pim = result.pim
        console.print(f"functional: baseline {_verdict(result.baseline)}, GradPIM "
                      f"{_verdict(pim) if pim else 'not run'}; final weights "
                      f"{'identical' if result.weights_match else 'DIFFER'}")
    return _finish(args, result.to_dict(started=started), runs, result.interrupted, paths,
                   time.perf_counter() - t0)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _verdict(r: RunResult) -> str:
    if r.verified is None:
        return "not checked"
    return "bit-exact with the reference optimizer" if r.verified else \
        f"MISMATCH ({r.mismatches[0]})"


def _finish(args: argparse.Namespace, data: dict[str, Any], runs: dict[str, RunResult],
            interrupted: bool, paths: list[Path], wall: float) -> int:
    from gradpimsim.system.results import write_outputs

    if args.out:
        paths += write_outputs(args.out, data, runs, timeline=not args.no_timeline)
    for p in paths:
        console.print(f"[dim]wrote {escape(str(p))}[/]")
    console.print(f"[dim]{wall:.1f} s wall[/]")
    if interrupted:
        console.print("[yellow]interrupted: the figures above cover the tasks finished so far"
                      + (f"; saved in {args.out}" if args.out else "") + "[/]")
        return 130
    if any(r.verified is False or r.schedule_violations for r in runs.values()):
        for r in runs.values():
            for v in r.schedule_violations[:5]:
                console.print(f"[red]schedule violation: {escape(v)}[/]")
        return 1
    return 0


def _fmt_cycles(r: RunResult, cycles: int) -> str:
    return f"{cycles * r.tCK_ns / 1000:,.1f} µs ({cycles:,} cyc)"


def results_table(runs: dict[str, RunResult], speedup: float | None, run: RunConfig,
                  overlap: dict[str, Any] | None = None) -> Table:
    """The comparison table: one column per run (``overlap``: ``CompareResult.overlap``)."""
    title = (f"{run.workload} training iteration on {next(iter(runs.values())).memory['name']}"
             f", {run.optimizer} / {run.precision}")
    if any(r.interrupted for r in runs.values()):
        title += " (INTERRUPTED: partial)"
    t = Table(title=escape(title), header_style="bold")
    t.add_column("metric", no_wrap=True)
    labels = {"baseline": "host update", "pim": "GradPIM"}
    for name in runs:
        t.add_column(labels.get(name, name), justify="right", no_wrap=True)
    rs = list(runs.values())

    def row(label: str, fn: Any) -> None:
        t.add_row(label, *[fn(r) for r in rs])

    row("placement", lambda r: r.memory.get("placement", "-"))
    row("iteration time", lambda r: _fmt_cycles(r, r.cycles))
    for phase in ("forward", "backward", "update"):
        row(f"  {phase} (first start to last end)",
            lambda r, p=phase: _fmt_cycles(r, r.phases[p]["cycles"]))
    row("  update exposed after backward",
        lambda r: _fmt_cycles(r, r.overlap.get("exposed_update_cycles", 0)) if r.overlap
        else "-")
    row("  update done when backward ends",
        lambda r: f"{100 * r.overlap['update_work_at_backward_end']:.1f}%" if r.overlap
        else "-")
    row("DRAM bytes read / written",
        lambda r: f"{r.dram['read_bytes'] / 2**20:,.1f} / {r.dram['write_bytes'] / 2**20:,.1f}"
                  " MiB")
    row("bandwidth (utilization)",
        lambda r: f"{r.dram['bandwidth_gbs']:.2f} GB/s ({100 * r.dram['utilization']:.1f}%)")
    row("row-buffer hit rate", lambda r: f"{100 * r.dram['row_hit_rate']:.1f}%")
    row("PIM unit utilization",
        lambda r: f"{100 * r.pim_units['utilization']:.2f}%" if r.config.pim else "-")
    names = sorted({k for r in rs for k in r.dram["commands"]})
    for name in names:
        row(f"  {name}", lambda r, n=name: f"{r.dram['commands'].get(n, 0):,}")
    row("DRAM energy", lambda r: f"{r.energy_nj.get('total', 0) / 1e3:,.1f} µJ")
    for comp in ("background", "act", "read", "write", "io", "refresh", "pim_column",
                 "pim_op"):
        if any(r.energy_nj.get(comp) for r in rs):
            row(f"  {comp}", lambda r, c=comp: f"{r.energy_nj.get(c, 0) / 1e3:,.1f} µJ")
    row("schedule verified (hazards)",
        lambda r: "yes" if not r.schedule_violations
        else f"NO: {len(r.schedule_violations)} violations")
    row("wall time", lambda r: f"{r.wall_s:.1f} s")
    if speedup is not None:
        t.add_row("[bold]speedup (host / GradPIM)[/]", "", f"[bold]{speedup:.3f}x[/]")
    if overlap and overlap.get("ideal_speedup"):
        t.add_row("  ideal (update hidden but what cannot be)", "",
                  f"{overlap['ideal_speedup']:.3f}x")
        if overlap.get("gain_captured") is not None:
            t.add_row("  gain captured (of the baseline's update time)", "",
                      f"{100 * overlap['gain_captured']:.1f}%")
        if overlap.get("host_slowdown") is not None:
            t.add_row("  backward time vs baseline (host slowdown)", "",
                      f"{overlap['host_slowdown']:.3f}x")
    return t
