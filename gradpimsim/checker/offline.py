"""Checking a command-trace file: stream it through a :class:`ProtocolChecker`."""

from __future__ import annotations

import gc
from collections.abc import Iterable
from pathlib import Path

from gradpimsim.checker.core import ProtocolChecker
from gradpimsim.checker.report import CheckReport
from gradpimsim.config import MemoryConfig
from gradpimsim.config.pim import PimConfig
from gradpimsim.dram.commands import Command
from gradpimsim.trace.cmdtrace import CommandTraceError, CommandTraceReader


def check_trace(
    path: str | Path,
    cfg: MemoryConfig,
    pim: PimConfig | None = None,
    *,
    keep: int = 1000,
    end_clk: int | None = None,
    channel: int | None = None,
) -> CheckReport:
    """Check every command of a DRAMsim3-style command trace (plain or ``.gz``).

    Commands with channel -1 (DRAMsim3's refresh commands) belong to the file's channel:
    ``channel``, or the channel of its first command that has one (see
    :meth:`CommandTraceReader.file_channel`).

    Raises :class:`CommandTraceError` (file and line) when the trace cannot be judged: malformed
    lines, unknown commands, addresses outside ``cfg``, or a clock going backwards in a channel.
    Rule violations do not raise; they are in the report.

    The cyclic garbage collector is paused meanwhile: the millions of short-lived command tuples
    would trigger it constantly (a third of the run time) while creating no cycles at all.
    """
    checker = ProtocolChecker(cfg, pim, keep=keep)
    reader = CommandTraceReader(path, channel=channel)
    dispatch = checker._machine.dispatch  # one call per command (see core._Machine)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for lines, cmds in reader.chunks():
            try:
                for cmd in cmds:
                    dispatch[cmd[1]](cmd)
            except ValueError as exc:
                if isinstance(exc, CommandTraceError):
                    raise
                i = next(i for i, c in enumerate(cmds) if c is cmd)
                line = lines + i if isinstance(lines, int) else lines[i]
                raise CommandTraceError(path, line, str(exc)) from None
    finally:
        if gc_was_enabled:
            gc.enable()
    return checker.finish(end_clk)


def check_commands(
    cmds: Iterable[Command],
    cfg: MemoryConfig,
    pim: PimConfig | None = None,
    *,
    keep: int = 1000,
    end_clk: int | None = None,
) -> CheckReport:
    """Check an in-memory command stream (e.g. a simulator's lazily expanded stream)."""
    checker = ProtocolChecker(cfg, pim, keep=keep)
    checker.observe_many(cmds)
    return checker.finish(end_clk)
