"""``gradpimsim plot RESULTS``: PNG plots of a sweep table or a compare results JSON."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "plot",
        help="plot a sweep table (CSV) or a compare results JSON into PNG files",
        description="Detect the input (sweep CSV table or results JSON) and write every plot "
        "that applies: speedup per workload or per parameter count for sweeps; per-phase time, "
        "bandwidth per channel and energy by component for results. Prints the paths.",
    )
    p.add_argument("results", metavar="RESULTS", help="a sweep .csv or a results .json")
    p.add_argument("--out", "-o", metavar="DIR", help="output directory (default: beside input)")
    p.set_defaults(func=run_plot_cli)


def run_plot_cli(args: argparse.Namespace) -> int:
    from gradpimsim.stats.plots import plot_any

    for path in plot_any(args.results, args.out):
        print(path)
    return 0
