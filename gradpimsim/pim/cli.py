"""``gradpimsim update-bench``: one optimizer step on the host versus inside the DRAM.

Prints a table of the host update (NPU over the bus) against GradPIM (the timed engine), with
the closed-form bounds beside the simulated numbers, so every speedup can be traced to the
resource that sets it (data bus for the host; bank-group column slots or the command bus for
GradPIM).  A request the unit cannot execute is a user error (exit 2), never a host fallback.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gradpimsim.bench.update import LAYOUTS, UpdateBench, run_update_bench
from gradpimsim.config import ConfigError, load_config, load_pim_config
from gradpimsim.config.pim import PimConfig, parse_knob_options, pim_knobs, with_knobs
from gradpimsim.config.training import OPTIMIZERS, OptimizerConfig, precision
from gradpimsim.options import finite_float, positive_int
from gradpimsim.pim.errors import LayoutError

#: The mark of ``update-bench --json`` files (see ``gradpimsim.io_safety``).
BENCH_SCHEMA = "gradpimsim.update-bench/1"
#: ``--program``: the optimizer step, or a regularized optimizer's boundary programs.
PROGRAMS = ("step", "fisher", "consolidate")


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "update-bench",
        help="time one optimizer step on the host (over the bus) and with GradPIM",
        description="Time one optimizer update over N parameters: the NPU reading and writing "
        "gradient, weights and state over the memory bus, versus GradPIM units updating them "
        "inside the DRAM; prints both, their closed-form bounds and the speedup.",
    )
    p.add_argument("--params", type=positive_int, required=True, metavar="N",
                   help="parameters to update")
    p.add_argument("--optimizer", default="momentum", metavar="NAME",
                   help=f"optimizer ({', '.join(OPTIMIZERS)}; default momentum, momentum 0.9; "
                   "ewc-* adds the regularizer g + lambda*omega*(theta - theta_old))")
    p.add_argument("--reg-lambda", type=finite_float(0.0, 1e30), default=1.0, metavar="L",
                   help="regularizer strength of an ewc-* optimizer (default 1.0)")
    p.add_argument("--program", choices=PROGRAMS, default="step",
                   help="what to time: the optimizer step (default), or an ewc-* optimizer's "
                   "task-boundary program: fisher (one sample's squared gradient into the "
                   "accumulator; --step 1 is the first sample) or consolidate (omega += "
                   "fisher/N, theta_old = weights)")
    p.add_argument("--samples", type=positive_int, default=8, metavar="N",
                   help="consolidate: squared gradients in the accumulator (default 8)")
    p.add_argument("--precision", default="mixed", metavar="NAME",
                   help="precision policy (fp32, mixed, mixed-bf16, mixed-int8; default mixed)")
    p.add_argument("--config", "-c", default="ddr4-2400", metavar="PRESET|FILE",
                   help="memory preset or file (default ddr4-2400)")
    p.add_argument("--pim-knob", action="append", default=[], metavar="KEY=VALUE",
                   help="set a GradPIM unit knob over the memory file's [pim] section, e.g. "
                   "read_to_op=4, op_latency=8, has_sqrt_div=true (repeatable; "
                   "docs/gradpim.md section 1)")
    p.add_argument("--channels", type=positive_int, help="override the number of channels")
    p.add_argument("--ranks", type=positive_int, help="override the number of ranks per channel")
    p.add_argument("--layout", choices=LAYOUTS, default="colocated",
                   help="placement of weights/state/gradient (both sides use it; GradPIM "
                   "needs colocated)")
    p.add_argument("--step", type=positive_int, default=2,
                   help="optimizer step (default 2: steady state, the momentum buffer is read)")
    p.add_argument("--no-functional", action="store_true",
                   help="timing only: do not execute and verify the update on real values")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON ('-' = stdout)")
    p.add_argument("--cmd-trace", metavar="FILE",
                   help="write GradPIM's command stream to FILE (DRAMsim3 layout, PIM_* names; "
                   "channel by channel, each in clock order; .gz compresses)")
    p.add_argument("--force", action="store_true",
                   help="replace output files that gradpimsim did not write")
    p.set_defaults(func=run_update_bench_cli)


def run_update_bench_cli(args: argparse.Namespace) -> int:
    # ConfigError, not cli.UserError: it maps to exit 2 however the CLI module was loaded
    if args.params < 1:
        raise ConfigError("params", "--params must be >= 1")
    if args.step < 1:
        raise ConfigError("step", "--step counts from 1")
    from gradpimsim.bounds import check_update_bench
    from gradpimsim.io_safety import commit, create_partial, discard, output, preflight

    cfg = load_config(args.config, channels=args.channels, ranks=args.ranks)
    pim = bench_pim_config(args.config, args.pim_knob)
    base = args.optimizer.removeprefix("ewc-")
    momentum = 0.9 if base in ("momentum", "nesterov") else 0.0
    opt = OptimizerConfig(args.optimizer, momentum=momentum, reg_lambda=args.reg_lambda)
    prec = precision(args.precision)
    if args.program != "step" and not opt.regularized:
        raise ConfigError("program", f"--program {args.program} is the task boundary of a "
                                     "regularized optimizer: use --optimizer ewc-sgd, "
                                     "ewc-momentum or ewc-nesterov")
    check_update_bench(cfg, args.params, opt, prec, not args.no_functional)
    preflight([output("--json", args.json, "json"),
               output("--cmd-trace", args.cmd_trace, "cmd-trace")], [args.config],
              force=args.force)
    writer = partial = None
    if args.cmd_trace:
        from gradpimsim.trace.cmdtrace import CommandTraceWriter

        fd, partial = create_partial(Path(args.cmd_trace))
        writer = CommandTraceWriter(partial, fd=fd, header=f"gradpimsim update-bench "
                                    f"{args.params} params, {opt.name}, {prec.name}, {cfg.name}")
    try:
        sink = writer.write if writer is not None else None
        if args.program == "step":
            bench = run_update_bench(cfg, args.params, opt, prec, pim=pim, layout=args.layout,
                                     functional=not args.no_functional, step=args.step,
                                     pim_sink=sink)
        else:
            from gradpimsim.bench.importance import run_importance_bench

            if args.layout != "colocated":
                raise LayoutError("the boundary programs run on the co-located layout only")
            bench = run_importance_bench(cfg, args.params, args.program, opt, prec, pim=pim,
                                         functional=not args.no_functional,
                                         first=args.step == 1, samples=args.samples,
                                         pim_sink=sink)
        if writer is not None and partial is not None:
            writer.close()
            commit(partial, Path(args.cmd_trace))
            writer = partial = None
    except LayoutError as exc:
        raise ConfigError("layout", f"{args.layout!r}: {exc}") from None
    finally:
        if writer is not None:
            writer.close()
        discard(partial)
    console = Console()
    console.print(bench_table(bench))
    if bench.verified is not None:
        if bench.verified:
            console.print("functional check: GradPIM result bit-exact with the reference "
                          "optimizer")
        else:
            console.print("[bold red]functional check failed:[/] " + "; ".join(bench.mismatches))
    if args.program == "step" and opt.regularized:
        console.print(regularizer_note(opt, prec, first_step=args.step == 1))
    if args.json:
        from gradpimsim.trace.cli import write_json_atomic

        write_json_atomic(args.json, {"schema": BENCH_SCHEMA, **bench.to_dict(),
                                      "pim_units": pim_knobs(pim)})
    return 0 if bench.verified in (None, True) else 1


def bench_pim_config(memory: str, items: list[str]) -> PimConfig:
    """The units of the bench: the memory file's ``[pim]`` section, then ``--pim-knob``s."""
    return with_knobs(load_pim_config(memory), parse_knob_options(items), source="--pim-knob")


def regularizer_note(opt: OptimizerConfig, prec: Any, *, first_step: bool = False) -> str:
    """What the regularizer's two read-only tensors add on each side, against the same
    optimizer without it (closed forms: host bus bytes, GradPIM column operations)."""
    import dataclasses

    from gradpimsim.bench.update import update_bytes_per_param
    from gradpimsim.pim.bounds import column_ops_per_param

    base = dataclasses.replace(opt, name=opt.base)
    hb, rb = update_bytes_per_param(base, prec), update_bytes_per_param(opt, prec)
    hc = column_ops_per_param(base, prec, first_step=first_step)
    rc = column_ops_per_param(opt, prec, first_step=first_step)
    return (f"regularizer: omega and theta_old add {rb - hb} B per parameter to the host's "
            f"update ({opt.base} {hb} B -> {rb} B, x{rb / hb:.2f}) and {rc - hc:.3f} column "
            f"operations to GradPIM's ({hc:.4f} -> {rc:.4f}, x{rc / hc:.2f}), plus 3 PIM_OPs "
            "per 16 parameters: both sides grow alike, so the update's speedup does not grow "
            "with the extra state; the iteration's does, with the update's share of it "
            "(docs/related-methods.md)")


def _us(cycles: int, tck: float) -> str:
    return f"{cycles * tck / 1000:,.1f} us"


def bench_table(b: UpdateBench) -> Table:
    """Host versus GradPIM, simulated and closed-form, side by side."""
    cfg = b.cfg
    tck = cfg.timing.tCK_ns
    h, p, pb = b.host, b.pim, b.pim_bounds
    what = "" if b.program == "step" else f" {b.program} program"
    table = Table(title=escape(f"update-bench: {b.params:,} params, {b.optimizer.name}{what}, "
                               f"{b.precision.name}, {cfg.name}, {b.layout} layout"),
                  show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("host (NPU over the bus)", justify="right")
    table.add_column("GradPIM", justify="right")
    table.add_row("cycles (simulated)", f"{h.cycles:,}", f"{p.cycles:,}")
    table.add_row("time (simulated)", _us(h.cycles, tck), _us(p.cycles, tck))
    table.add_row("external bus bytes", f"{h.bus_bytes:,}", f"{p.bus_bytes:,}")
    table.add_row("DRAM commands", f"{h.commands:,}", f"{p.commands:,}")
    table.add_row("internal column ops", "-", f"{p.column_ops:,}")
    table.add_row("PIM_OPs", "-", f"{p.pim_ops:,}")
    table.add_row("activations", f"{h.counts.get('ACT', 0):,}", f"{p.activations:,}")
    table.add_row("refreshes", f"{h.counts.get('REF', 0):,}", f"{p.counts.get('REF', 0):,}")
    table.add_row("PIM unit utilization (mean)", "-", f"{100 * p.mean_utilization:.1f}%")
    table.add_row("bound: host bus bytes / peak bandwidth",
                  f"{b.host_bound:,} ({_us(b.host_bound, tck)})", "-")
    table.add_row("bound: column ops per bank group x tCCD_L (+ turnarounds)", "-",
                  f"{pb['bank_group']:,} ({_us(pb['bank_group'], tck)})")
    table.add_row("bound: command bus (one command per clock)", "-",
                  f"{pb['command_bus']:,} ({_us(pb['command_bus'], tck)})")
    table.add_row("bound: unit dependence chain (PIM_OP latency)", "-",
                  f"{pb['unit_chain']:,} ({_us(pb['unit_chain'], tck)})")
    table.add_row("simulated / closed-form bound", f"{b.host_ratio:.3f}", f"{b.pim_ratio:.3f}")
    table.add_row("[bold]speedup (simulated)[/]", "", f"[bold]{b.speedup:.2f}x[/]")
    table.add_row("speedup (closed-form bounds)", "", f"{b.bound_speedup:.2f}x")
    table.add_row("engine wall time / commands per s", f"{h.wall_s:.2f} s",
                  f"{p.wall_s:.2f} s / {p.commands_per_s:,.0f}")
    return table
