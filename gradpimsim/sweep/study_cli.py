"""``gradpimsim study``: run a named study into one table and its figures.

``study list`` names the shipped studies; ``study show NAME`` prints one as shipped (copy it,
edit it, run the copy by its path); ``study NAME --out DIR [--reduced]`` runs it on the sweep
engine (resumable: a re-run skips the points already in the table) and draws its figures.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gradpimsim.options import int_range, positive_int
from gradpimsim.sweep.spec import DEFAULT_MAX_POINTS

COMMANDS = ("list", "show")


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "study", help="run a named study (speedup vs batch, traffic and energy, "
        "sensitivities) into one CSV table and its figures",
        description="Run a study: a sweep spec shipped as data with its figures. "
        "`gradpimsim study list` names them, `gradpimsim study show NAME` prints one to copy "
        "and edit, `gradpimsim study NAME --out DIR` runs it (NAME may be a .toml path). "
        "See docs/studies.md.")
    p.add_argument("study", metavar="NAME|list|show",
                   help="a study name or .toml path; `list` or `show NAME`")
    p.add_argument("target", nargs="?", metavar="NAME", help="with show: the study to print")
    p.add_argument("--out", "-o", metavar="DIR", default="studies",
                   help="directory of the table (NAME.csv) and figures (default ./studies)")
    p.add_argument("--reduced", action="store_true",
                   help="the study's reduced grid: seconds, not hours (CI, a first look); "
                   "written as NAME-reduced.csv and NAME-reduced-*.png")
    p.add_argument("--formats", default="png,pdf", metavar="LIST",
                   help="figure formats, comma-separated: png, pdf, svg (default png,pdf)")
    p.add_argument("--workers", "-j", type=int_range(1, 1024), metavar="N",
                   help="local Dask worker processes (default: CPU count, at least 2, at most 8)")
    p.add_argument("--serial", action="store_true", help="run in this process, without Dask")
    p.add_argument("--max-points", type=positive_int, default=DEFAULT_MAX_POINTS, metavar="N",
                   help=f"refuse a study of more points than this (default "
                   f"{DEFAULT_MAX_POINTS:,})")
    p.add_argument("--retry-failed", action="store_true",
                   help="run again the points recorded as failed")
    p.add_argument("--repair", action="store_true",
                   help="move corrupt rows of the table aside and go on (see docs/sweeps.md)")
    p.add_argument("--force", action="store_true",
                   help="replace figure files that gradpimsim did not write")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=run_study_cli)


def run_study_cli(args: argparse.Namespace) -> int:
    from gradpimsim.errors import UserError

    if args.study == "list":
        if args.target:
            raise UserError("study list takes no name; use study show NAME")
        return _list()
    if args.study == "show":
        if not args.target:
            raise UserError("study show needs a NAME; `gradpimsim study list` names them")
        from gradpimsim.sweep.study import study_text

        print(study_text(args.target)[0], end="")
        return 0
    if args.target:
        raise UserError(f"unexpected {args.target!r}: run one study at a time")
    return _run(args)


def _list() -> int:
    from rich.console import Console
    from rich.table import Table

    from gradpimsim.sweep.study import load_study, study_names

    t = Table(title="Studies (gradpimsim study show NAME prints one)", header_style="bold")
    t.add_column("name", no_wrap=True)
    t.add_column("points", justify="right")
    t.add_column("reduced", justify="right")
    t.add_column("what it shows")
    for name in study_names():
        full = load_study(name)
        small = load_study(name, reduced=True)
        t.add_row(name, str(len(full.spec.points)), str(len(small.spec.points)),
                  full.description.split(".")[0].replace("\n", " ") + ".")
    Console(width=None if sys.stdout.isatty() else 200).print(t)  # piped: whole lines
    return 0


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from gradpimsim.config import ConfigError
    from gradpimsim.errors import clip
    from gradpimsim.stats.figures import check_formats
    from gradpimsim.sweep.study import load_study, run_study

    if args.serial and args.workers:
        raise ConfigError("workers", "--serial runs without Dask; drop one of --serial and "
                          "--workers")
    formats = check_formats(args.formats.split(","))
    study = load_study(args.study, reduced=args.reduced, max_points=args.max_points)
    table, paths = run_study(study, args.out, formats=formats, force=args.force,
                             workers=args.workers, serial=args.serial,
                             retry_failed=args.retry_failed, progress=not args.quiet,
                             repair=args.repair)
    failed = table[table["status"] != "ok"] if len(table) else table
    if not args.quiet:
        con = Console(soft_wrap=True)  # (piped: a long error stays one line)
        con.print(f"{study.label}: {len(table)}/{len(study.spec.points)} points "
                  f"({len(table) - len(failed)} ok, {len(failed)} failed)", highlight=False)
        for _, row in failed.head(5).iterrows():
            con.print(f"  failed {row['key']}: {clip(row['error'], 300)}", highlight=False,
                      markup=False)
    for p in [study_csv(args.out, study.label), *paths]:
        print(p)
    return 1 if len(failed) else 0


def study_csv(out: str, label: str) -> str:
    from pathlib import Path

    return str(Path(out) / f"{label}.csv")
