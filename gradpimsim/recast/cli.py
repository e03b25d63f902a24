"""``gradpimsim recast``: simulate and summarise a network-recasting schedule.

Every block of the teacher (or ``--blocks``) is recast in turn into a ``--student`` block,
``--iterations`` iterations each; each block's iteration is simulated with the update on the
host and on GradPIM (``gradpimsim compare recast:TEACHER:BLOCK:STUDENT`` for one block), and
the schedule's time is the sum.  One table row per block as it finishes, then the totals.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gradpimsim.host.npu import DEFAULT_NPU
from gradpimsim.options import positive_int

console = Console()


def _blocks(text: str) -> list[int]:
    """``0,3,5-7`` -> [0, 3, 5, 6, 7]."""
    out: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            out += list(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected block numbers like 0,3,5-7, got "
                                         f"{text[:40]!r}") from None
    return out


def add_parser(subparsers: Any) -> None:
    from workloads.recast import STUDENTS, TEACHERS

    p = subparsers.add_parser(
        "recast", help="simulate a network-recasting schedule (every block, with and without "
        "GradPIM)",
        description="Recast every block of a teacher network into a student block, one block "
        "after the other, ITERATIONS training iterations each: each block's iteration is "
        "simulated with the update on the host and on GradPIM, and the schedule summed.")
    p.add_argument("teacher", metavar="TEACHER", choices=sorted(TEACHERS),
                   help=f"teacher network ({', '.join(sorted(TEACHERS))})")
    p.add_argument("--student", choices=STUDENTS, default="plain",
                   help="student block type (default plain: two 3x3 conv layers, no shortcut)")
    p.add_argument("--width", type=positive_int, default=None,
                   help="inner width of the student block (default: the teacher block's; "
                   "half for a bottleneck student)")
    p.add_argument("--iterations", type=positive_int, default=1, metavar="N",
                   help="training iterations per block (default 1)")
    p.add_argument("--blocks", type=_blocks, default=None, metavar="LIST",
                   help="blocks to recast, e.g. 0,3,5-7 (default: all, in order)")
    p.add_argument("--batch", type=positive_int, help="batch size (default: the teacher's)")
    p.add_argument("--memory", "-c", "--config", dest="memory", default="ddr4-2400",
                   metavar="PRESET|FILE", help="memory preset or file (default ddr4-2400)")
    p.add_argument("--channels", type=positive_int, help="override the number of channels")
    p.add_argument("--ranks", type=positive_int, help="override the number of ranks per channel")
    p.add_argument("--optimizer", default="momentum", metavar="NAME",
                   help="optimizer of the student block (default momentum)")
    p.add_argument("--precision", default="mixed", metavar="POLICY",
                   help="fp32, mixed (fp16), mixed-bf16, mixed-int8 (default mixed)")
    p.add_argument("--npu", default=DEFAULT_NPU, metavar="PRESET|FILE",
                   help=f"NPU preset or .toml (default {DEFAULT_NPU})")
    p.add_argument("--functional", action="store_true",
                   help="execute the updates on real values and check them bit for bit")
    p.add_argument("--jobs", "-j", type=positive_int, default=1, metavar="N",
                   help="2: each block's two runs at the same time in worker processes "
                   "(default 1)")
    p.add_argument("--json", metavar="FILE", help="also write the schedule as JSON ('-' = "
                   "stdout)")
    p.add_argument("--force", action="store_true",
                   help="replace an output file that gradpimsim did not write")
    p.set_defaults(func=run_recast_cli)


def run_recast_cli(args: argparse.Namespace) -> int:
    from gradpimsim.bounds import check_memory_system
    from gradpimsim.io_safety import output, preflight
    from gradpimsim.recast.schedule import BlockResult, run_schedule
    from gradpimsim.system.config import RunConfig
    from gradpimsim.trace.cli import write_json_atomic

    preflight([output("--json", args.json, "json")], [], force=args.force)
    run = RunConfig(batch=args.batch, memory=args.memory, channels=args.channels,
                    ranks=args.ranks, optimizer=args.optimizer, precision=args.precision,
                    npu=args.npu, functional=args.functional)
    check_memory_system(run.memory_config())
    table = Table(title=escape(f"recasting {args.teacher} into {args.student} blocks, "
                               f"{args.iterations} iteration(s) per block, {run.optimizer} / "
                               f"{run.precision}, {run.memory}"), header_style="bold")
    for col in ("block", "teacher params", "student params", "host iter (us)",
                "GradPIM iter (us)", "host update (us)", "GradPIM update (us)", "speedup"):
        table.add_column(col, justify="left" if col == "block" else "right")

    def row(b: BlockResult) -> None:
        us = b.tCK_ns / 1000
        table.add_row(f"{b.block} {b.prefix}", f"{b.teacher_params:,}", f"{b.student_params:,}",
                      f"{b.baseline_cycles * us:,.1f}", f"{b.pim_cycles * us:,.1f}",
                      f"{b.baseline_update_cycles * us:,.1f}",
                      f"{b.pim_update_cycles * us:,.1f}", f"{b.speedup:.3f}x")
        console.print(f"[dim]block {b.block} ({b.prefix}): {b.speedup:.3f}x[/]")

    result = run_schedule(args.teacher, args.student, args.iterations, args.blocks, run,
                          width=args.width, jobs=args.jobs, on_block=row)
    console.print(table)
    console.print(f"schedule: host {result.total_us('baseline'):,.1f} us, GradPIM "
                  f"{result.total_us('pim'):,.1f} us, speedup {result.speedup:.3f}x "
                  f"({len(result.blocks)} blocks x {args.iterations} iterations)")
    if result.verified is not None:
        console.print("functional: every block bit-exact on both sides" if result.verified
                      else "[bold red]functional check failed[/]")
    if args.json:
        write_json_atomic(args.json, result.to_dict())
    return 0 if result.verified in (None, True) else 1
