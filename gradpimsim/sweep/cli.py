"""``gradpimsim sweep SPEC.toml``: run a design-space sweep into one durable result table."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gradpimsim.config import ConfigError
from gradpimsim.errors import clip
from gradpimsim.options import finite_float, int_range, positive_int
from gradpimsim.sweep.spec import DEFAULT_MAX_POINTS


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="run a design-space sweep (a TOML spec) on Dask, resumable, into one CSV table",
        description="Run every point of a sweep spec (kind, [fixed], [grid] lists and/or "
        "[[points]]) and append each result to a CSV table as it finishes. A re-run skips the "
        "points already in the table. See docs/sweeps.md.",
    )
    p.add_argument("spec", metavar="SPEC.toml", help="the sweep specification")
    p.add_argument("--out", "-o", metavar="RESULTS.csv",
                   help="result table (default: the spec's name with .csv, next to it)")
    p.add_argument("--workers", "-j", type=int_range(1, 1024), metavar="N",
                   help="local Dask worker processes (default: CPU count, at least 2, at most 8)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="connect to a running Dask scheduler (tls://host:8786, or tcp:// on a "
                   "trusted network) instead; it runs pickled code: see docs/sweeps.md")
    p.add_argument("--tls-ca-file", metavar="FILE",
                   help="with --scheduler tls://...: CA certificate the scheduler's is checked "
                   "against")
    p.add_argument("--tls-cert", metavar="FILE", help="with --scheduler: this client's certificate")
    p.add_argument("--tls-key", metavar="FILE", help="with --scheduler: this client's private key")
    p.add_argument("--connect-timeout", type=finite_float(0.1, 600), default=5.0, metavar="S",
                   help="seconds to wait for --scheduler to answer (default 5)")
    p.add_argument("--max-points", type=positive_int, default=DEFAULT_MAX_POINTS, metavar="N",
                   help=f"refuse a spec of more points than this, before expanding it "
                   f"(default {DEFAULT_MAX_POINTS:,})")
    p.add_argument("--repair", action="store_true",
                   help="move corrupt rows of the table to RESULTS.csv.rejected and go on "
                   "(without it, a corrupt row stops the sweep with its line number)")
    p.add_argument("--serial", action="store_true", help="run in this process, without Dask")
    p.add_argument("--retry-failed", action="store_true",
                   help="run again the points recorded as failed (they are skipped otherwise)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=run_sweep_cli)


def run_sweep_cli(args: argparse.Namespace) -> int:
    from gradpimsim.sweep.runner import run_sweep
    from gradpimsim.sweep.spec import load_spec

    if args.workers is not None and args.workers < 1:
        raise ConfigError("workers", f"--workers must be >= 1, got {args.workers}")
    if args.serial and args.scheduler:
        raise ConfigError("scheduler", "--serial runs without Dask; drop one of --serial and "
                          "--scheduler")
    from gradpimsim.io_safety import output, preflight
    from gradpimsim.sweep.remote import scheduler_security
    spec = load_spec(args.spec, max_points=args.max_points)  # errors here exit 2 before any work
    out = Path(args.out) if args.out else Path(args.spec).with_suffix(".csv")
    # (the table is appended to, never replaced: the store itself refuses a foreign file)
    preflight([output("--out", out, "sweep-table")], [args.spec], force=True)
    security = scheduler_security(args)
    df = run_sweep(spec, out, workers=args.workers, scheduler=args.scheduler,
                   serial=args.serial, retry_failed=args.retry_failed,
                   progress=not args.quiet, repair=args.repair, security=security,
                   connect_timeout=args.connect_timeout)
    keys = set(spec.keys)
    mine = df[df["key"].isin(keys)] if len(df) else df
    failed = mine[mine["status"] != "ok"] if len(mine) else mine
    if not args.quiet:
        from rich.console import Console

        con = Console()
        con.print(f"{len(mine)}/{len(keys)} points in {out} "
                  f"({len(mine) - len(failed)} ok, {len(failed)} failed)")
        for _, row in failed.head(5).iterrows():
            con.print(f"  failed {row['key']}: {clip(row['error'], 300)}", highlight=False,
                      markup=False)
    return 1 if len(failed) else 0
