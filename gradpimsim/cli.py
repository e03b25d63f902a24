"""The ``gradpimsim`` command line.

Each subcommand lives beside the part of the machine it drives (``checker/cli.py``,
``graph/cli.py``...) and registers itself through an ``add_parser(subparsers)`` function that sets
``func``; this module only wires them together and turns user errors into exit code 2 with a
one-line message (never a traceback).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from rich.console import Console

import gradpimsim

#: Modules that contribute subcommands, in the order they appear in ``--help``.
SUBCOMMAND_MODULES = (
    "gradpimsim.trace.cli",
    "gradpimsim.checker.cli",
    "gradpimsim.graph.cli",
    "gradpimsim.pim.cli",
    "gradpimsim.system.cli",
    "gradpimsim.config.cli",
    "gradpimsim.sweep.cli",
    "gradpimsim.stats.plot_cli",
)

err = Console(stderr=True)


class UserError(Exception):
    """An error caused by the user's input: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradpimsim",
        description="Event-driven DDR4 + GradPIM simulator for DNN training.",
    )
    parser.add_argument("--version", action="version",
                        version=f"gradpimsim {gradpimsim.__version__} ({gradpimsim.build()})")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name or (exc.name and name.startswith(exc.name)):
                continue  # that part of the machine is not built yet
            raise
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from gradpimsim.config import ConfigError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (UserError, ConfigError) as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        return 2
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]")
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
