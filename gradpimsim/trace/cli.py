"""``gradpimsim trace``: replay a DRAMsim3-style request trace and print memory statistics."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from gradpimsim.config import MemoryConfig, load_config
from gradpimsim.options import positive_int

console = Console()


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "trace",
        help="replay a request trace (0x<addr> READ|WRITE <cycle>) through the DDR4 model",
        description="Replay a DRAMsim3-style request trace (plain or .gz, streamed) and print "
        "completion cycle, bandwidth, latency, row-hit rate and command counts.",
    )
    p.add_argument("trace", metavar="TRACE", nargs="?", help="request trace file (.gz accepted)")
    p.add_argument(
        "--sample",
        action="store_true",
        help="replay the bundled sample trace (20,000 mixed requests)",
    )
    add_memory_options(p)
    p.add_argument(
        "--json", metavar="FILE", help="also write the statistics as JSON ('-' = stdout)"
    )
    p.add_argument(
        "--cmd-trace",
        metavar="FILE",
        help="stream every issued command to FILE in DRAMsim3 command-trace format",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="attach the protocol checker online and report any violation",
    )
    p.add_argument(
        "--no-batch",
        action="store_true",
        help="issue column commands one by one (for cross-checking; slower)",
    )
    p.add_argument("--wrap", action="store_true",
                   help="fold addresses beyond the memory's capacity into it (modulo the "
                   "capacity) instead of stopping with an error")
    p.add_argument("--force", action="store_true",
                   help="replace output files that gradpimsim did not write")
    p.set_defaults(func=run_trace)


def add_memory_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        "-c",
        default="ddr4-2400",
        metavar="PRESET|FILE",
        help="preset (ddr4-2400, ddr4-3200-x16-2r-2ch, ...), a .toml or a DRAMsim3 .ini "
        "(default: ddr4-2400)",
    )
    p.add_argument("--channels", type=positive_int, help="override the number of channels")
    p.add_argument("--ranks", type=positive_int, help="override the number of ranks per channel")
    p.add_argument("--page-policy", choices=("open", "closed", "adaptive"))
    p.add_argument("--scheduler", choices=("fr-fcfs", "fcfs"))
    p.add_argument("--mapping", metavar="FIELDS", help="address mapping, e.g. rochrababgco")


def memory_config(args: argparse.Namespace) -> MemoryConfig:
    over: dict[str, Any] = {}
    if args.page_policy:
        over["page_policy"] = args.page_policy
    if args.scheduler:
        over["scheduler"] = args.scheduler
    if args.mapping:
        over["address_mapping"] = args.mapping
    return load_config(args.config, channels=args.channels, ranks=args.ranks, **over)


def stats_table(stats: dict[str, Any], title: str) -> Table:
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        (
            "requests (reads / writes)",
            f"{stats['requests']:,} ({stats['reads']:,} / {stats['writes']:,})",
        ),
        ("completion cycle", f"{stats['completion_cycle']:,}"),
        ("simulated time", f"{stats['simulated_ns'] / 1000:,.3f} us"),
        (
            "bandwidth",
            f"{stats['bandwidth_gbs']:.3f} GB/s ({stats['bandwidth_pct_of_peak']:.1f}% "
            f"of {stats['peak_bandwidth_gbs']:.1f})",
        ),
        (
            "read latency mean / p50 / p99",
            f"{stats['read_latency_mean']:.1f} / "
            f"{stats['read_latency_p50']} / {stats['read_latency_p99']} cycles",
        ),
        ("row-buffer hit rate", f"{100 * stats['row_hit_rate']:.2f}%"),
        ("refreshes", f"{stats['refreshes']:,}"),
    ]
    energy = stats.get("energy_nj") or {}
    if energy:
        rows.append(("DRAM energy", f"{energy['total'] / 1000:,.3f} uJ "
                                    f"({energy['average_power_mw']:,.0f} mW average)"))
    for name, count in stats["commands"].items():
        rows.append((f"  {name}", f"{count:,}"))
    for k, v in rows:
        table.add_row(k, v)
    return table


#: The mark of ``trace --json`` statistics (see ``gradpimsim.io_safety``).
STATS_SCHEMA = "gradpimsim.trace-stats/1"


def write_json_atomic(path: str, data: dict[str, Any]) -> None:
    """Write JSON so that a reader never sees half a file (strict JSON: no NaN or Infinity)."""
    from gradpimsim.io_safety import atomic_write_text

    text = json.dumps(data, indent=2, sort_keys=True, allow_nan=False)
    if path == "-":
        print(text)
        return
    atomic_write_text(path, text + "\n")


def sample_trace() -> Path:
    """The request trace shipped with the package."""
    from importlib import resources

    return Path(str(resources.files("gradpimsim").joinpath("data", "sample.trace.gz")))


def run_trace(args: argparse.Namespace) -> int:
    from gradpimsim.bounds import check_memory_system
    from gradpimsim.errors import UserError
    from gradpimsim.io_safety import commit, create_partial, discard, output, preflight
    from gradpimsim.trace.cmdtrace import TRACE_HEADER, CommandTraceWriter
    from gradpimsim.trace.replay import replay_trace

    if args.sample:
        args.trace = str(sample_trace())
    if not args.trace:
        raise UserError("give a TRACE file, or --sample for the bundled one")
    from gradpimsim.io_safety import check_input_file

    check_input_file("TRACE", args.trace)
    cfg = memory_config(args)
    check_memory_system(cfg)
    preflight([output("--json", args.json, "json"),
               output("--cmd-trace", args.cmd_trace, "cmd-trace")],
              [args.trace, args.config], force=args.force)
    sinks = []
    writer = None
    partial = None
    if args.cmd_trace:
        fd, partial = create_partial(Path(args.cmd_trace))
        writer = CommandTraceWriter(partial, header=TRACE_HEADER, fd=fd)
        sinks.append(writer.write)
    checker = None
    if args.check:
        from gradpimsim.checker.core import ProtocolChecker

        checker = ProtocolChecker(cfg, keep=20)
        sinks.append(checker.observe)
    sink = sinks[0] if len(sinks) == 1 else (lambda c: [s(c) for s in sinks]) if sinks else None
    t0 = time.perf_counter()
    try:
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TextColumn("{task.completed:,} requests"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
            disable=not sys.stderr.isatty(),  # a log or a pipe gets no progress lines
        ) as progress:
            task = progress.add_task(f"replaying {escape(Path(args.trace).name)}", total=None)
            result = replay_trace(
                args.trace,
                cfg,
                sink=sink,
                batch_runs=not args.no_batch,
                on_progress=lambda n: progress.update(task, completed=n),
                wrap=args.wrap,
            )
        wall = time.perf_counter() - t0
        if writer is not None:
            writer.close()
            writer = None
            commit(partial, Path(args.cmd_trace))
            partial = None
    except BaseException:
        if writer is not None:
            writer.close()
        discard(partial)
        raise
    stats = {"schema": STATS_SCHEMA, **result.stats}
    stats["wall_seconds"] = round(wall, 3)
    stats["requests_per_second"] = round(stats["requests"] / wall) if wall > 0 else 0
    if checker is not None:
        report = checker.finish(stats["completion_cycle"])
        stats["violations"] = report.total_violations
    title = f"{escape(Path(args.trace).name)} on {cfg.name}"
    if result.interrupted:
        title += " (INTERRUPTED: partial results)"
    console.print(stats_table(stats, title))
    console.print(
        f"[dim]{stats['requests']:,} requests in {wall:.2f} s wall "
        f"({stats['requests_per_second']:,} requests/s)[/]"
    )
    if args.json:
        write_json_atomic(args.json, stats)
    if checker is not None:
        if stats["violations"]:
            console.print(f"[bold red]{stats['violations']} protocol violations[/]")
            for v in report.violations[:5]:
                console.print(f"  {v}", markup=False)
            return 1
        console.print("[green]checker: every command legal[/]")
    return 130 if result.interrupted else 0
