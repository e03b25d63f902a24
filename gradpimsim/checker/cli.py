"""``gradpimsim check``: legality report for a DRAMsim3-style command trace.

Exit codes: 0 the trace is legal, 1 it breaks rules, 2 it cannot be judged (bad configuration,
missing file, malformed line, clock going backwards...) with the file and line in the message.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gradpimsim.checker.offline import check_trace
from gradpimsim.checker.report import CheckReport
from gradpimsim.checker.rules import RULES
from gradpimsim.config import ConfigError, MemoryConfig, load_config
from gradpimsim.config.pim import PimConfig
from gradpimsim.options import int_range, nonneg_int
from gradpimsim.trace.cmdtrace import CommandTraceError

EXIT_OK, EXIT_VIOLATIONS, EXIT_UNUSABLE = 0, 1, 2


def add_parser(subparsers: Any) -> None:
    """Register the ``check`` subcommand."""
    p = subparsers.add_parser(
        "check",
        help="check a command trace for DDR4 (+ GradPIM) protocol legality",
        description="Check every command of a DRAMsim3-style command trace (plain or .gz) "
        "against the DDR4 timing and state rules (and the GradPIM rules with --pim). "
        "Exit code 0: legal, 1: violations, 2: unusable input.",
    )
    p.add_argument("trace", metavar="CMD_TRACE", help="command trace: "
                   "'<clk> <cmd> <channel> <rank> <bankgroup> <bank> <row hex> <col hex>' lines")
    p.add_argument("--config", "-c", required=True, metavar="PRESET|FILE",
                   help="memory configuration: preset name (ddr4-2400, ddr4-3200-x16-2r...), "
                   ".toml or DRAMsim3 .ini file")
    p.add_argument("--pim", action="store_true",
                   help="accept GradPIM commands and check the PIM rules (default PIM knobs)")
    p.add_argument("--json", metavar="FILE|-", help="write the report as JSON ('-': stdout; the "
                   "summary then goes to stderr)")
    p.add_argument("--show", type=int_range(0, 1 << 20), default=10, metavar="N",
                   help="violations to print in detail (default 10)")
    p.add_argument("--keep", type=int_range(0, 1 << 24), default=1000, metavar="N",
                   help="violations to keep for the JSON report (default 1000)")
    p.add_argument("--end-clk", type=nonneg_int, default=None, metavar="CLK",
                   help="check refresh obligations up to this clock (default: last command)")
    p.add_argument("--channel", type=nonneg_int, default=None, metavar="N",
                   help="the channel of commands written with channel -1 (DRAMsim3 writes one "
                   "file per channel and marks refresh commands so; default: the channel of "
                   "the file's other commands, else 0)")
    p.add_argument("--force", action="store_true",
                   help="replace a --json file that gradpimsim did not write")
    p.set_defaults(func=run)


#: The mark of ``check --json`` reports (see ``gradpimsim.io_safety``).
REPORT_SCHEMA = "gradpimsim.check/1"


def _error(message: str) -> int:
    from gradpimsim.errors import print_error

    print_error(message)
    return EXIT_UNUSABLE


def _load(spec: str) -> MemoryConfig:
    try:
        return load_config(spec)
    except ImportError as exc:  # an importer that is not installed / built
        raise ConfigError("config", f"cannot read {spec}: {exc}") from None
    except OSError as exc:
        raise ConfigError("config", f"cannot read {spec}: {exc.strerror or exc}") from None


def run(args: argparse.Namespace) -> int:
    """Check the trace and report; returns the exit code."""
    from gradpimsim.io_safety import output, preflight

    try:
        cfg = _load(args.config)
    except ConfigError as exc:
        return _error(str(exc))
    preflight([output("--json", args.json, "json")], [args.trace, args.config], force=args.force)
    if args.channel is not None and args.channel >= cfg.org.channels:
        return _error(f"--channel {args.channel}: {cfg.name} has {cfg.org.channels} channel(s), "
                      f"0 to {cfg.org.channels - 1}")
    pim = PimConfig() if args.pim else None
    try:
        report = check_trace(args.trace, cfg, pim, keep=max(args.keep, args.show),
                             end_clk=args.end_clk, channel=args.channel)
    except CommandTraceError as exc:
        return _error(str(exc))
    console = Console(stderr=args.json == "-", highlight=False)
    print_summary(console, report, args.trace, cfg, args.show)
    if args.json:
        from gradpimsim.io_safety import atomic_write_text

        data = {"schema": REPORT_SCHEMA, "trace": str(args.trace), **report.to_dict()}
        data["violations"] = data["violations"][: args.keep]
        text = json.dumps(data, indent=2, allow_nan=False)
        if args.json == "-":
            sys.stdout.write(text + "\n")
        else:
            atomic_write_text(args.json, text + "\n")
    return EXIT_OK if report.ok else EXIT_VIOLATIONS


def print_summary(console: Console, report: CheckReport, trace: str, cfg: MemoryConfig,
                  show: int) -> None:
    """The human-readable report: what was seen, what broke, refresh behaviour."""
    console.print(f"[bold]{escape(str(trace))}[/]: {report.commands:,} commands up to clk "
                  f"{report.end_clk:,}, config {cfg.name}" + (" + GradPIM" if report.pim else ""),
                  soft_wrap=True)  # one line however long the path: greppable when piped
    if report.by_type:
        types = Table(title="Commands", title_justify="left")
        types.add_column("command")
        types.add_column("count", justify="right")
        for name, n in sorted(report.by_type.items(), key=lambda kv: -kv[1]):
            types.add_row(name, f"{n:,}")
        console.print(types)
    if report.refresh_gaps and any(g.refreshes for g in report.refresh_gaps.values()):
        refi = cfg.timing.tREFI
        gaps = Table(title=f"Refresh (tREFI = {refi} cycles)", title_justify="left")
        for col in ("rank", "REFs", "min gap", "mean gap", "max gap", "mean / tREFI"):
            gaps.add_column(col, justify="right" if col != "rank" else "left")
        for (ch, rk), g in sorted(report.refresh_gaps.items()):
            ratio = f"{g.mean / refi:.3f}" if g.count else "-"
            gaps.add_row(f"ch{ch} ra{rk}", f"{g.refreshes:,}", f"{g.min:,}" if g.count else "-",
                         f"{g.mean:,.1f}" if g.count else "-", f"{g.max:,}" if g.count else "-",
                         ratio)
        console.print(gaps)
    if report.ok:
        console.print("[bold green]LEGAL[/]: no protocol violations")
        return
    rules = Table(title="Violations", title_justify="left")
    rules.add_column("rule")
    rules.add_column("count", justify="right")
    rules.add_column("what it checks")
    for rule, n in sorted(report.by_rule.items(), key=lambda kv: -kv[1]):
        rules.add_row(rule, f"{n:,}", RULES.get(rule, ""))
    console.print(rules)
    shown = report.violations[:show]
    if shown:
        console.print(f"First {len(shown)} violation(s):")
        for v in shown:
            console.print(f"  {v}", markup=False, soft_wrap=True)
    console.print(f"[bold red]ILLEGAL[/]: {report.total_violations:,} violation(s) of "
                  f"{len(report.by_rule)} rule(s)")
