"""The ``gradpimsim`` command line.

Each subcommand lives beside the part of the machine it drives (``checker/cli.py``,
``graph/cli.py``...) and registers itself through an ``add_parser(subparsers)`` function that sets
``func``; this module only wires them together and is the one error boundary of every subcommand
(:mod:`gradpimsim.errors`): an error in the user's input is one line and exit code 2, a bug is
one line saying so and exit code 3, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

import gradpimsim
from gradpimsim.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_USER,
    REPORT_HINT,
    UserError,
    os_error_message,
    print_error,
    unicode_message,
)

#: Modules that contribute subcommands, in the order they appear in ``--help``.
SUBCOMMAND_MODULES = (
    "gradpimsim.trace.cli",
    "gradpimsim.checker.cli",
    "gradpimsim.graph.cli",
    "gradpimsim.pim.cli",
    "gradpimsim.system.cli",
    "gradpimsim.config.cli",
    "gradpimsim.sweep.cli",
    "gradpimsim.recast.cli",
    "gradpimsim.hic.cli",
    "gradpimsim.sweep.study_cli",
    "gradpimsim.stats.plot_cli",
)

__all__ = ["UserError", "build_parser", "main"]


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


def user_error_types() -> tuple[type[BaseException], ...]:
    """Exception classes that mean "the input is wrong" (imported lazily: they live in the
    modules that parse that input, and ``--help`` should not import the simulator)."""
    from gradpimsim.config.model import ConfigError
    from gradpimsim.graph.schema import GraphError
    from gradpimsim.host.allocator import OutOfMemory
    from gradpimsim.pim.errors import LayoutError
    from gradpimsim.trace.cmdtrace import CommandTraceError
    from gradpimsim.trace.requests import TraceError

    return (UserError, ConfigError, GraphError, TraceError, CommandTraceError, LayoutError,
            OutOfMemory)


def describe(exc: BaseException) -> tuple[int, str]:
    """Exit code and one-line message for an exception that reached the boundary."""
    from gradpimsim.host.allocator import OutOfMemory

    if isinstance(exc, OutOfMemory):
        return EXIT_USER, (f"the workload does not fit in memory: {exc}; use more channels or "
                           "ranks, or a smaller batch")
    if isinstance(exc, user_error_types()):
        return EXIT_USER, str(exc)
    if isinstance(exc, UnicodeDecodeError):
        return EXIT_USER, unicode_message(exc)
    if isinstance(exc, OSError):  # a path the user gave (inputs are opened where they are read)
        return EXIT_USER, os_error_message(exc)
    if isinstance(exc, MemoryError):
        return EXIT_USER, ("out of memory: the input asks for more than this machine has; use a "
                           "smaller size (batch, parameters, channels, sweep points)")
    if isinstance(exc, RecursionError):
        return EXIT_USER, "the input is nested too deeply to read; flatten it"
    return EXIT_INTERNAL, f"internal error: {type(exc).__name__}: {exc}; {REPORT_HINT}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a rejected option (argparse said why)
        return exc.code if isinstance(exc.code, int) else EXIT_USER
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USER
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0
    except Exception as exc:  # the boundary: every other exception becomes one line
        code, message = describe(exc)
        if code != EXIT_USER and os.environ.get("GRADPIMSIM_DEBUG"):
            raise
        print_error(message, internal=code != EXIT_USER)
        return code


if __name__ == "__main__":
    sys.exit(main())
