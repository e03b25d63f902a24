"""Timed GradPIM: schedule a :class:`~gradpimsim.pim.program.PimProgram` on DDR4 channels.

The kernels say *what* each bank-group unit does, in dependence order; this module decides
*when*, command by command, on one :class:`~gradpimsim.dram.device.ChannelDevice` per channel,
so every cycle count comes from the same declarative timing table the host controller uses.

Scheduling policy (results depend on it, so it is stated exactly)
-----------------------------------------------------------------
- **Agents.**  Per channel: one agent per unit ``(rank, bank group)`` with instructions, one
  *prologue* agent per rank (its PIM_SETs, in order) and one *refresh* agent per rank.
- **In order per unit.**  A unit's PIM_RD/PIM_WR/PIM_OP issue strictly in program order.  A
  column command needs its row open in its bank; PIM_OPs of a rank wait until the rank's whole
  prologue has issued (the device then adds tMOD).  Column commands and ACTs may overlap the
  prologue: they do not read scalar registers.
- **PIM_OP latency.**  The device's table spaces PIM_OP -> PIM_WR by ``op_latency``; after a
  ``sqrt``/``div``/``divs`` (the Adam extension) the engine itself holds the unit's next PIM_WR
  until ``sqrt_div_latency`` has passed (the table and the checker see no op names).  The
  table also holds a unit's PIM_OP ``read_to_op`` after its latest PIM_RD (default 0).
- **Row preparation runs ahead.**  Each unit buffers up to ``lookahead`` instructions and knows,
  per bank, the sequence of rows they touch.  A bank whose open row is not the next row it will
  need is precharged, and a closed bank is activated with that next row, as soon as the timing
  rules allow, while the unit's column stream proceeds in its other banks.  Banks belong to one
  unit, so this never closes a row another unit needs; a row is never closed while an
  instruction before its bank's next row change still needs it.
- **Earliest first.**  Each agent proposes its command with the earliest legal cycle (a unit:
  its next instruction or a row preparation, the earlier; ties go to the instruction).  The
  channel issues the proposal with the earliest legal cycle (``ChannelDevice.earliest``, which
  includes the one-command-per-clock bus); **ties go round-robin** over agents, starting after
  the agent that issued last, so no unit starves, except that within a tie a column command or
  ACT/PRE goes before a PIM_OP (a delayed column command delays its bank group's tCCD_L chain;
  a PIM_OP only has to precede its unit's next write).  Time jumps to that cycle: nothing
  ticks.  (Other tie-breaks we measured, oldest-ready-first, progress-based, fixed priority,
  op-burst FIFO, were no better; see docs/gradpim.md section 8.)
- **Refresh** follows the host controller's rule (``RefreshManager``): a rank owes one REF per
  tREFI; a busy rank is refreshed when it owes ``max_postponed_refreshes``.  While the rank
  refreshes its units issue only PIM_OPs (register work) and the PREs that close their banks;
  the REF follows when all banks are closed, then rows are reopened as needed.
- Channels are independent (own command bus, own device) and are simulated one after another;
  the sink sees each channel's commands in clock order, channel by channel.

The per-channel scheduler is :class:`~gradpimsim.pim.channel.PimChannel` (steppable: ``peek`` /
``issue``, programs appended as batches, a shared mode for co-scheduling with host traffic);
:class:`PimEngine` drives one per channel to completion in standalone mode.

Proposals are cached: a proposal's earliest cycle changes only when a command touches the same
bank group (only the unit itself issues there), a rank-level rule fires (ACT: tRRD_S/tFAW for
other ACT proposals; PIM_SET; REF) or the command bus moves.  The bus is common to all, so it is
applied at selection time; the other cases re-plan exactly the affected agents.  A command
therefore costs one or two ``earliest`` calls, not one per agent.

Statistics (:class:`EngineResult`): ``cycles`` is the end of the last command (a PIM column
command ends BL/2 cycles after issue, when its internal burst is done; any other command one
cycle after).  The external data bus carries nothing (``bus_bytes == 0``): GradPIM moves data
only between banks and the unit beside the bank-group I/O.  A unit's **utilization** is
``column ops x PIM column spacing (tCCD_L) / cycles``: the fraction of the run during which its
bank group's column path was busy, 1.0 meaning the unit was column-bound all the time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from gradpimsim.config import MemoryConfig
from gradpimsim.config.pim import PimConfig
from gradpimsim.dram.codes import NCMD
from gradpimsim.dram.commands import Cmd, CommandSink
from gradpimsim.dram.device import ChannelDevice
from gradpimsim.pim.channel import PimChannel
from gradpimsim.pim.functional import PimArray
from gradpimsim.pim.program import PimProgram, UnitCounts, UnitKey

__all__ = ["EngineResult", "PimEngine", "UnitCounts", "run_timed"]


@dataclass
class EngineResult:
    """Totals of one timed run (see the module docstring for the definitions)."""

    cycles: int = 0
    tCK_ns: float = 0.0
    channel_cycles: dict[int, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    units: dict[UnitKey, UnitCounts] = field(default_factory=dict)
    bus_bytes: int = 0
    col_spacing: int = 0
    wall_s: float = 0.0

    @property
    def commands(self) -> int:
        return sum(self.counts.values())

    def count(self, cmd: Cmd) -> int:
        return self.counts.get(cmd.name, 0)

    @property
    def column_ops(self) -> int:
        return self.count(Cmd.PIM_RD) + self.count(Cmd.PIM_WR)

    @property
    def activations(self) -> int:
        return self.count(Cmd.ACT)

    @property
    def pim_ops(self) -> int:
        return self.count(Cmd.PIM_OP)

    @property
    def time_us(self) -> float:
        return self.cycles * self.tCK_ns / 1000.0

    @property
    def mean_utilization(self) -> float:
        if not self.units:
            return 0.0
        return sum(u.utilization for u in self.units.values()) / len(self.units)

    @property
    def commands_per_s(self) -> float:
        return self.commands / self.wall_s if self.wall_s > 0 else 0.0

    def to_dict(self) -> dict:
        return {
            "cycles": self.cycles, "time_us": self.time_us, "commands": self.commands,
            "counts": dict(self.counts), "column_ops": self.column_ops,
            "activations": self.activations, "pim_ops": self.pim_ops,
            "bus_bytes": self.bus_bytes, "mean_utilization": self.mean_utilization,
            "channel_cycles": {str(k): v for k, v in self.channel_cycles.items()},
            "wall_s": self.wall_s, "commands_per_s": self.commands_per_s,
        }


class PimEngine:
    """Event-driven timed execution of GradPIM programs (policy: see the module docstring).

    ``sink`` receives every issued :class:`Command` (checker, trace writer).  ``array``: a
    :class:`PimArray` to execute each instruction on at its issue cycle (functional mode);
    ``None`` for timing only.  ``refresh``: override ``cfg.controller.refresh``.
    """

    def __init__(self, cfg: MemoryConfig, pim: PimConfig | None = None, *,
                 sink: CommandSink | None = None, array: PimArray | None = None,
                 refresh: bool | None = None, lookahead: int = 1024) -> None:
        if lookahead < 2:
            raise ValueError("lookahead must be >= 2 instructions")
        self.cfg = cfg
        self.pim = pim or PimConfig()
        self.sink = sink
        self.array = array
        self.refresh = cfg.controller.refresh if refresh is None else refresh
        self.lookahead = lookahead
        self.col_spacing = self.pim.resolved(cfg.timing, cfg.burst_cycles).col_to_col
        self.devices: dict[int, ChannelDevice] = {}

    def run(self, program: PimProgram) -> EngineResult:
        """Issue the whole program; returns the statistics (devices stay in ``self.devices``)."""
        res = EngineResult(tCK_ns=self.cfg.timing.tCK_ns, col_spacing=self.col_spacing)
        counts = [0] * NCMD
        start = time.perf_counter()
        channels = sorted({k[0] for k in program.units} | {k[0] for k in program.prologue})
        with np.errstate(all="ignore"):  # overflow to inf / NaN is data, as in the reference
            for ch in channels:
                res.channel_cycles[ch] = self._run_channel(ch, program, res, counts)
        res.wall_s = time.perf_counter() - start
        res.cycles = max(res.channel_cycles.values(), default=0)
        res.counts = {Cmd(i).name: n for i, n in enumerate(counts) if n}
        for u in res.units.values():
            u.utilization = (u.column_ops * self.col_spacing / res.cycles) if res.cycles else 0.0
        return res

    def _run_channel(self, ch: int, program: PimProgram, res: EngineResult,
                     counts: list[int]) -> int:
        """Drive one channel's :class:`PimChannel` to completion; returns its end cycle."""
        chan = PimChannel(self.cfg, self.pim, ch, sink=self.sink, array=self.array,
                          refresh=self.refresh, lookahead=self.lookahead)
        self.devices[ch] = chan.dev
        units = {(rank, bg): prog for (c, rank, bg), prog in program.units.items() if c == ch}
        prologue = {rank: sets for (c, rank), sets in program.prologue.items()
                    if c == ch and sets}
        chan.add_program(units, prologue)
        end = chan.run()
        stalled = chan.stalled()
        if stalled:
            raise RuntimeError(f"{stalled[0]} (scheduler bug)")
        for (rank, bg), ur in chan.results.items():
            res.units[(ch, rank, bg)] = ur
        for i, n in enumerate(chan.counts):
            counts[i] += n
        return end


def run_timed(program: PimProgram, cfg: MemoryConfig, pim: PimConfig | None = None, *,
              sink: CommandSink | None = None, array: PimArray | None = None,
              refresh: bool | None = None) -> EngineResult:
    """Convenience wrapper: ``PimEngine(cfg, pim, ...).run(program)``."""
    return PimEngine(cfg, pim, sink=sink, array=array, refresh=refresh).run(program)
