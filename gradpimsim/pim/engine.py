"""Timed GradPIM: schedule a :class:`~gradpimsim.pim.kernels.PimProgram` on DDR4 channels.

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
  until ``sqrt_div_latency`` has passed (the table and the checker see no op names).
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
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice

import numpy as np

from gradpimsim.config import MemoryConfig
from gradpimsim.controller.refresh import RefreshManager
from gradpimsim.dram.commands import Cmd, Command
from gradpimsim.dram.device import NCMD, ChannelDevice
from gradpimsim.pim.config import PimConfig
from gradpimsim.pim.functional import PimArray
from gradpimsim.pim.kernels import PimProgram, UnitKey
from gradpimsim.pim.unit import SQRT_DIV_OPS, PimInstr

INF = 1 << 62
ACT, PRE, REF = int(Cmd.ACT), int(Cmd.PRE), int(Cmd.REF)
PIM_RD, PIM_WR, PIM_OP, PIM_SET = (int(Cmd.PIM_RD), int(Cmd.PIM_WR), int(Cmd.PIM_OP),
                                   int(Cmd.PIM_SET))
_CMDS = list(Cmd)
_UNIT, _PROLOGUE, _REFRESH = 0, 1, 2
_HEAD = -1  # ``_Agent.sel`` of a unit's instruction (else the bank being prepared)

CommandSink = Callable[[Command], None]


@dataclass
class UnitResult:
    """What one bank-group unit did."""

    reads: int = 0
    writes: int = 0
    ops: int = 0
    activations: int = 0
    precharges: int = 0
    last_cycle: int = 0
    utilization: float = 0.0

    @property
    def column_ops(self) -> int:
        return self.reads + self.writes


@dataclass
class EngineResult:
    """Totals of one timed run (see the module docstring for the definitions)."""

    cycles: int = 0
    tCK_ns: float = 0.0
    channel_cycles: dict[int, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    units: dict[UnitKey, UnitResult] = field(default_factory=dict)
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


class _Agent:
    """One proposer of commands: a unit, a rank's prologue, or a rank's refresh."""

    __slots__ = ("kind", "rank", "bg", "fb0", "it", "buf", "runs", "prep", "exhausted",
                 "cmd", "fb", "row", "sel", "res", "pu", "sets", "pos", "wr_floor")

    def __init__(self, kind: int, rank: int, bg: int, fb0: int) -> None:
        self.kind = kind
        self.rank = rank
        self.bg = bg
        self.fb0 = fb0
        self.it: Iterator[PimInstr] = iter(())
        self.buf: deque[PimInstr] = deque()
        #: Per bank of the group: the rows the buffered instructions touch, as [row, count] runs.
        self.runs: list[deque[list[int]]] = []
        #: Banks whose open row is not the next row they need (ACT or PRE wanted).
        self.prep: set[int] = set()
        self.exhausted = True
        self.cmd = -1
        self.fb = fb0
        self.row = -1
        self.sel = _HEAD
        self.res = UnitResult()
        self.pu = None  # the functional PimUnit, when functional
        self.sets: list[PimInstr] = []
        self.pos = 0
        #: No PIM_WR before this cycle: the latest sqrt/div result (the device's table knows
        #: one PIM_OP latency only; the extension's longer one is the engine's to keep).
        self.wr_floor = 0


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
        t = cfg.timing
        self.col_spacing = self.pim.col_to_col or t.tCCD_L
        self.devices: dict[int, ChannelDevice] = {}

    def run(self, program: PimProgram) -> EngineResult:
        """Issue the whole program; returns the statistics (devices stay in ``self.devices``)."""
        res = EngineResult(tCK_ns=self.cfg.timing.tCK_ns, col_spacing=self.col_spacing)
        counts = [0] * NCMD
        start = time.perf_counter()
        channels = sorted({k[0] for k in program.units} | {k[0] for k in program.prologue})
        with np.errstate(all="ignore"):  # overflow to inf / NaN is data, as in the reference
            for ch in channels:
                cyc = self._run_channel(ch, program, res, counts)
                res.channel_cycles[ch] = cyc
        res.wall_s = time.perf_counter() - start
        res.cycles = max(res.channel_cycles.values(), default=0)
        res.counts = {Cmd(i).name: n for i, n in enumerate(counts) if n}
        for u in res.units.values():
            u.utilization = (u.column_ops * self.col_spacing / res.cycles) if res.cycles else 0.0
        return res

    # ------------------------------------------------------------------ one channel
    def _run_channel(self, ch: int, program: PimProgram, res: EngineResult,  # noqa: C901
                     counts: list[int]) -> int:
        """Simulate one channel to completion; returns its end cycle.

        One function with closures over locals, because this is the per-command hot path.
        """
        cfg = self.cfg
        o = cfg.org
        dev = ChannelDevice(cfg, self.pim)
        self.devices[ch] = dev
        earliest = dev.earliest
        dev_issue = dev.issue
        open_row = dev.open_row
        bpg, bpr = o.banks_per_group, o.banks_per_rank
        burst = cfg.burst_cycles
        sink = self.sink
        array = self.array
        store = array.store if array is not None else None
        lookahead = self.lookahead
        low_water = lookahead // 2
        long_latency = self.pim.sqrt_div_latency
        refresher = RefreshManager(o.ranks, cfg.timing.tREFI,
                                   cfg.controller.max_postponed_refreshes, self.refresh)
        refreshing = refresher.refreshing

        agents: list[_Agent] = []
        by_rank: list[list[int]] = [[] for _ in range(o.ranks)]
        for (c, rank, bg), prog in program.units.items():
            if c != ch:
                continue
            a = _Agent(_UNIT, rank, bg, dev.flat_bank(rank, bg, 0))
            a.it = iter(prog)
            a.exhausted = False
            a.runs = [deque() for _ in range(bpg)]
            a.res = res.units.setdefault((ch, rank, bg), UnitResult())
            if array is not None:
                a.pu = array.unit(ch, rank, bg)
            by_rank[rank].append(len(agents))
            agents.append(a)
        set_done = [True] * o.ranks
        for (c, rank), sets in program.prologue.items():
            if c != ch or not sets:
                continue
            a = _Agent(_PROLOGUE, rank, -1, rank * bpr)
            a.sets = list(sets)
            set_done[rank] = False
            by_rank[rank].append(len(agents))
            agents.append(a)
        refresh_agent = [-1] * o.ranks
        for rank in range(o.ranks):
            if by_rank[rank]:
                refresh_agent[rank] = len(agents)
                by_rank[rank].append(len(agents))
                agents.append(_Agent(_REFRESH, rank, -1, rank * bpr))
        n = len(agents)
        ready = [INF] * n
        end = 0

        def check(a: _Agent, b: int) -> None:
            """Does bank ``b`` of unit ``a`` need an ACT or PRE for its next row?"""
            runs = a.runs[b]
            if runs and open_row[a.fb0 + b] != runs[0][0]:
                a.prep.add(b)
            else:
                a.prep.discard(b)

        def refill(a: _Agent) -> None:
            buf = a.buf
            want = lookahead - len(buf)
            got = 0
            for ins in islice(a.it, want):
                got += 1
                buf.append(ins)
                c = ins.cmd
                if c in (PIM_RD, PIM_WR):
                    runs = a.runs[ins.bank]
                    if runs and runs[-1][0] == ins.row:
                        runs[-1][1] += 1
                    else:
                        runs.append([ins.row, 1])
                        if len(runs) == 1:
                            check(a, ins.bank)
            if got < want:
                a.exhausted = True

        def plan(i: int) -> None:
            """Set agent ``i``'s proposal and its earliest legal cycle (bus included)."""
            a = agents[i]
            kind = a.kind
            rank = a.rank
            best = INF
            if kind == _UNIT:
                buf = a.buf
                busy_ref = refreshing[rank]
                if buf:
                    ins = buf[0]
                    c = ins.cmd
                    if c == PIM_OP:
                        if set_done[rank]:
                            best = earliest(PIM_OP, a.fb0)
                            a.cmd = PIM_OP
                            a.fb = a.fb0
                            a.sel = _HEAD
                    elif not busy_ref:
                        fb = a.fb0 + ins.bank
                        if open_row[fb] == ins.row:
                            best = earliest(c, fb)
                            if c == PIM_WR and best < a.wr_floor:
                                best = a.wr_floor
                            a.cmd = c
                            a.fb = fb
                            a.sel = _HEAD
                if busy_ref:
                    for b in range(bpg):
                        fb = a.fb0 + b
                        if open_row[fb] != -1:
                            e = earliest(PRE, fb)
                            if e < best:
                                best, a.cmd, a.fb, a.sel = e, PRE, fb, b
                elif a.prep:
                    for b in a.prep:
                        fb = a.fb0 + b
                        if open_row[fb] != -1:
                            e = earliest(PRE, fb)
                            if e < best:
                                best, a.cmd, a.fb, a.sel = e, PRE, fb, b
                        else:
                            e = earliest(ACT, fb)
                            if e < best:
                                best, a.cmd, a.fb, a.sel = e, ACT, fb, b
                                a.row = a.runs[b][0][0]
            elif kind == _PROLOGUE:
                if a.pos < len(a.sets):
                    best = earliest(PIM_SET, a.fb0)
                    a.cmd = PIM_SET
            elif refreshing[rank]:
                first = a.fb0
                for fb in range(first, first + bpr):
                    if open_row[fb] != -1:
                        break
                else:
                    best = earliest(REF, first)
                    a.cmd = REF
            ready[i] = best

        def replan_rank(rank: int) -> None:
            for j in by_rank[rank]:
                plan(j)

        for a in agents:
            if a.kind == _UNIT:
                refill(a)
        for i in range(n):
            plan(i)

        next_check = refresher.next_check(0)
        rr = 0
        while True:
            m = min(ready)
            if m >= INF:
                break
            bus = dev.cmd_bus_next
            if m < bus:
                m = bus
            if m >= next_check:
                now = next_check
                next_check = refresher.next_check(now)
                for rank in range(o.ranks):
                    if refresh_agent[rank] < 0:
                        continue
                    idle = all(agents[j].kind != _UNIT or (not agents[j].buf)
                               for j in by_rank[rank])
                    if refresher.should_start(rank, now, idle):
                        refreshing[rank] = True
                        replan_rank(rank)
                continue
            i = rr
            while ready[i] > m:
                i += 1
                if i == n:
                    i = 0
            if agents[i].cmd == PIM_OP:  # a column command or ACT/PRE at m goes first
                j = i
                for _ in range(n - 1):
                    j += 1
                    if j == n:
                        j = 0
                    if ready[j] <= m and agents[j].cmd != PIM_OP:
                        i = j
                        break
            rr = i + 1 if i + 1 < n else 0
            a = agents[i]
            t = m
            c = a.cmd
            kind = a.kind
            rank = a.rank
            counts[c] += 1
            if kind == _UNIT:
                fb = a.fb
                ur = a.res
                if a.sel == _HEAD:
                    ins = a.buf.popleft()
                    if c == PIM_OP:
                        dev_issue(c, fb, t)
                        ur.ops += 1
                        if ins.op in SQRT_DIV_OPS and t + long_latency > a.wr_floor:
                            a.wr_floor = t + long_latency
                        if sink is not None:
                            sink(Command(t, Cmd.PIM_OP, ch, rank, a.bg, -1, -1, -1))
                        e = t + 1
                    else:
                        b = ins.bank
                        row = ins.row
                        dev_issue(c, fb, t, row)
                        if c == PIM_RD:
                            ur.reads += 1
                        else:
                            ur.writes += 1
                        if sink is not None:
                            sink(Command(t, _CMDS[c], ch, rank, a.bg, b, row, ins.col))
                        runs = a.runs[b]
                        run = runs[0]
                        run[1] -= 1
                        if not run[1]:
                            runs.popleft()
                            check(a, b)
                        e = t + burst
                    if a.pu is not None:
                        a.pu.execute(ins, store, ch, rank, a.bg)
                    if len(a.buf) < low_water and not a.exhausted:
                        refill(a)
                    if e > end:
                        end = e
                    ur.last_cycle = t
                    # fast path of plan(i): the next instruction is ready to propose and no
                    # bank needs preparing (the common case; anything else takes plan())
                    buf = a.buf
                    if buf and not a.prep and not refreshing[rank]:
                        ins = buf[0]
                        c = ins.cmd
                        if c == PIM_OP:
                            if set_done[rank]:
                                a.cmd = PIM_OP
                                a.fb = a.fb0
                                ready[i] = earliest(PIM_OP, a.fb0)
                                continue
                        else:
                            fb = a.fb0 + ins.bank
                            if open_row[fb] == ins.row:
                                e = earliest(c, fb)
                                if c == PIM_WR and e < a.wr_floor:
                                    e = a.wr_floor
                                a.cmd = c
                                a.fb = fb
                                ready[i] = e
                                continue
                    plan(i)
                else:
                    b = a.sel
                    if c == ACT:
                        row = a.row
                        dev_issue(ACT, fb, t, row)
                        ur.activations += 1
                    else:
                        row = open_row[fb]
                        dev_issue(PRE, fb, t)
                        ur.precharges += 1
                    if sink is not None:
                        sink(Command(t, _CMDS[c], ch, rank, a.bg, b, row, -1))
                    check(a, b)
                    if t + 1 > end:
                        end = t + 1
                    if c == ACT:  # tRRD_S / tFAW move every ACT proposal of the rank
                        for j in by_rank[rank]:
                            if j == i or agents[j].cmd == ACT:
                                plan(j)
                    else:
                        plan(i)
                        if refreshing[rank]:
                            plan(refresh_agent[rank])
            elif kind == _PROLOGUE:
                ins = a.sets[a.pos]
                a.pos += 1
                dev_issue(PIM_SET, a.fb0, t)
                if sink is not None:
                    sink(Command(t, Cmd.PIM_SET, ch, rank, -1, -1, -1, -1))
                if array is not None:
                    array.issue(ch, rank, -1, ins)
                if t + 1 > end:
                    end = t + 1
                if a.pos == len(a.sets):
                    set_done[rank] = True
                    replan_rank(rank)
                else:
                    plan(i)
            else:  # REF
                dev_issue(REF, a.fb0, t)
                refresher.record(rank, t)
                if sink is not None:
                    sink(Command(t, Cmd.REF, ch, rank, 0, 0, -1, -1))
                if t + 1 > end:
                    end = t + 1
                if not refresher.should_continue(rank, t, False):
                    refreshing[rank] = False
                for j in by_rank[rank]:
                    a2 = agents[j]
                    if a2.kind == _UNIT:
                        for b in range(bpg):
                            check(a2, b)
                replan_rank(rank)
        for a in agents:
            if a.kind == _UNIT and (a.buf or not a.exhausted):
                raise RuntimeError(f"unit ch{ch} ra{a.rank} bg{a.bg} stalled with "
                                   f"{len(a.buf)} instructions left (scheduler bug)")
        return end


def run_timed(program: PimProgram, cfg: MemoryConfig, pim: PimConfig | None = None, *,
              sink: CommandSink | None = None, array: PimArray | None = None,
              refresh: bool | None = None) -> EngineResult:
    """Convenience wrapper: ``PimEngine(cfg, pim, ...).run(program)``."""
    return PimEngine(cfg, pim, sink=sink, array=array, refresh=refresh).run(program)
