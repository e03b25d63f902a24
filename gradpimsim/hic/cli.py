"""``gradpimsim hic``: PCM programming events, accumulator traffic, lifetime and energy of
hybrid in-memory computing training (an event-count model, not the DDR4 timing model)."""

from __future__ import annotations

import argparse
import math
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gradpimsim.options import finite_float, int_range, nonneg_int, positive_int

console = Console()


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "hic", help="hybrid in-memory (PCM) training: programming events, lifetime, energy",
        description="Train WORKLOAD's GEMM weights held in phase-change memory (binary devices "
        "for the high bits, one multi-level device for the low digit) with a low-precision "
        "update accumulator per weight, on seeded gradients, and count accumulator accesses "
        "and PCM programming events per iteration and per device; project the lifetime "
        "against the endurance and the energy from per-event figures.  A comparison model "
        "(docs/related-methods.md), separate from the DDR4/GradPIM simulation.")
    p.add_argument("workload", metavar="WORKLOAD",
                   help="built-in workload or graph file (e.g. resnet32)")
    p.add_argument("--iterations", type=int_range(1, 10**7), default=100, metavar="N",
                   help="training iterations to simulate (default 100)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="gradient and weight seed")
    p.add_argument("--grad-std", type=finite_float(1e-30, 1e30), default=0.01, metavar="S",
                   help="std of the seeded i.i.d. normal gradients (default 0.01)")
    p.add_argument("--lr", type=finite_float(1e-30, 1e30), default=0.1,
                   help="learning rate (default 0.1)")
    p.add_argument("--binary-devices", type=int_range(0, 30), default=6, metavar="B",
                   help="binary PCM devices per weight (default 6)")
    p.add_argument("--mlc-levels", type=int_range(2, 1 << 16), default=4, metavar="L",
                   help="levels of the multi-level PCM device (default 4)")
    p.add_argument("--weight-max", type=finite_float(1e-30, 1e30), default=1.0,
                   help="weights span [-W, W) (default 1.0)")
    p.add_argument("--acc-bits", type=int_range(2, 31), default=8,
                   help="update accumulator width, signed (default 8)")
    p.add_argument("--acc-frac-bits", type=int_range(0, 29), default=4,
                   help="accumulator bits below one weight step (default 4)")
    p.add_argument("--endurance", type=finite_float(1.0, 1e30), default=1e8,
                   help="programming cycles a PCM device survives (default 1e8)")
    p.add_argument("--iterations-per-run", type=positive_int, default=64_000, metavar="N",
                   help="iterations of one training run, for lifetime in runs (default 64000)")
    p.add_argument("--params", choices=("gemm", "all"), default="gemm",
                   help="parameters held in PCM: GEMM weights (default) or all")
    p.add_argument("--layers", action="store_true", help="also print one row per tensor")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON ('-' = stdout)")
    p.add_argument("--force", action="store_true",
                   help="replace an output file that gradpimsim did not write")
    p.set_defaults(func=run_hic_cli)


def run_hic_cli(args: argparse.Namespace) -> int:
    from gradpimsim.graph.loader import load_any
    from gradpimsim.hic.model import HicConfig, run_hic, seeded_gradients
    from gradpimsim.io_safety import output, preflight
    from gradpimsim.trace.cli import write_json_atomic

    preflight([output("--json", args.json, "json")], [args.workload], force=args.force)
    cfg = HicConfig(binary_devices=args.binary_devices, mlc_levels=args.mlc_levels,
                    weight_max=args.weight_max, acc_bits=args.acc_bits,
                    acc_frac_bits=args.acc_frac_bits, lr=args.lr, endurance=args.endurance,
                    iterations_per_run=args.iterations_per_run)
    graph = load_any(args.workload)
    from gradpimsim.bounds import check_hic
    from gradpimsim.graph.schema import numel
    from gradpimsim.hic.model import pcm_parameters

    sizes = [numel(p["shape"]) for p in pcm_parameters(graph, args.params).values()]
    check_hic(sum(sizes), max(sizes, default=0), cfg.devices_per_weight)
    report = run_hic(graph, cfg, args.iterations, seed=args.seed, which=args.params,
                     gradients=seeded_gradients(args.seed, args.grad_std))
    console.print(report_table(report))
    if args.layers:
        console.print(layer_table(report))
    if args.json:
        write_json_atomic(args.json, report.to_dict())
    return 0


def _num(x: float) -> str:
    if not math.isfinite(x):
        return "never"
    return f"{x:,.4g}" if abs(x) < 1e6 else f"{x:.3e}"


def report_table(r: Any) -> Table:
    c = r.cfg
    t = Table(title=escape(
        f"HIC model: {r.workload}, {r.iterations} iterations, {r.weights:,} weights in PCM "
        f"({c.binary_devices} binary + 1 MLC of {c.mlc_levels} levels each, {r.devices:,} "
        f"devices), {c.acc_bits}-bit accumulator"), header_style="bold")
    t.add_column("per iteration")
    t.add_column("events", justify="right")
    t.add_column("energy (pJ)", justify="right")
    per, energy = r.per_iteration(), r.energy_per_iteration_pj()
    t.add_row("accumulator reads", _num(per["acc_reads"]), _num(energy["acc_read"]))
    t.add_row("accumulator writes", _num(per["acc_writes"]), _num(energy["acc_write"]))
    t.add_row("threshold crossings (weights)", _num(per["crossings"]), "")
    t.add_row("MLC programming events", _num(per["mlc_programs"]), _num(energy["mlc_program"]))
    t.add_row("binary programming events", _num(per["binary_programs"]),
              _num(energy["binary_program"]))
    t.add_row("[bold]PCM programming events[/]", f"[bold]{_num(per['programs'])}[/]",
              f"[bold]{_num(energy['total'])}[/] (all)")
    t.add_row("lost updates (saturation)", _num(per["lost_updates"]), "")
    t.add_row("per device: most programmed (events/iteration)", _num(r.worst_device_rate), "")
    t.add_row("per device: mean (events/iteration)",
              _num(r.mean_device_events / r.iterations), "")
    t.add_row(f"lifetime at endurance {c.endurance:.0e} (worst device)",
              f"{_num(r.lifetime_iterations)} iterations", "")
    t.add_row(f"  = training runs of {c.iterations_per_run:,} iterations",
              _num(r.lifetime_runs), "")
    return t


def layer_table(r: Any) -> Table:
    t = Table(title="per tensor", header_style="bold")
    for col in ("tensor", "weights", "programs/iter", "MLC/iter", "binary/iter",
                "worst device/iter"):
        t.add_column(col, justify="left" if col == "tensor" else "right")
    for layer in r.layers:
        d = layer.to_dict(r.iterations)
        t.add_row(escape(layer.name), f"{layer.weights:,}", _num(d["programs_per_iteration"]),
                  _num(d["mlc_programs_per_iteration"]),
                  _num(d["binary_programs_per_iteration"]),
                  _num(d["max_device_events_per_iteration"]))
    return t
