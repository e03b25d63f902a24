"""``gradpimsim sweep SPEC.toml``: run a design-space sweep into one durable result table."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gradpimsim.config import ConfigError


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
    p.add_argument("--workers", "-j", type=int, metavar="N",
                   help="local Dask worker processes (default: CPU count, at least 2, at most 8)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="connect to a running Dask scheduler (tcp://host:8786) instead")
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
    spec = load_spec(args.spec)  # errors here exit 2 before any work
    out = Path(args.out) if args.out else Path(args.spec).with_suffix(".csv")
    try:
        df = run_sweep(spec, out, workers=args.workers, scheduler=args.scheduler,
                       serial=args.serial, retry_failed=args.retry_failed,
                       progress=not args.quiet)
    except ValueError as exc:  # e.g. --out is not a sweep table
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError("out", str(exc)) from None
    keys = set(spec.keys)
    mine = df[df["key"].isin(keys)] if len(df) else df
    failed = mine[mine["status"] != "ok"] if len(mine) else mine
    if not args.quiet:
        from rich.console import Console

        con = Console()
        con.print(f"{len(mine)}/{len(keys)} points in {out} "
                  f"({len(mine) - len(failed)} ok, {len(failed)} failed)")
        for _, row in failed.head(5).iterrows():
            con.print(f"  failed {row['key']}: {row['error']}", highlight=False)
    return 1 if len(failed) else 0
