"""The PIM scheduler's proposers: one agent per unit, per rank's prologue, per rank's refresh.

Each agent proposes one command at a time (:meth:`PimChannel.peek`); :func:`pick` is the one
rule that chooses among the agents ready at a cycle.  A :class:`Batch` is one
``add_program`` call, counted down as its parts finish.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import Final

from gradpimsim.dram.codes import PIM_OP
from gradpimsim.dram.commands import Cmd
from gradpimsim.pim.program import UnitCounts
from gradpimsim.pim.unit import PimInstr, PimUnit

# Final: mypyc keeps these in C statics (a plain module global costs a dictionary lookup)
CMDS: Final = list(Cmd)
UNIT: Final = 0
PROLOGUE: Final = 1
REFRESH: Final = 2
HEAD: Final = -1  # ``Agent.sel`` of a unit's instruction (else the bank being prepared)

DoneCallback = Callable[[int], None]


class Batch:
    """One :meth:`PimChannel.add_program` call: counts its unfinished parts (unit streams and
    non-empty prologues) and the end of its latest command."""

    __slots__ = ("seq", "parts", "end", "on_done")

    def __init__(self, seq: int, on_done: DoneCallback | None) -> None:
        self.seq = seq
        self.parts = 0
        self.end = -1
        self.on_done = on_done


def pick(agents: list[Agent], ready: list[int], m: int, rr: int) -> int:
    """The agent that issues at cycle ``m``: round-robin from ``rr`` among those ready by
    ``m``, except that a column command or ACT/PRE goes before a PIM_OP (one rule for
    :meth:`PimChannel.peek` and the issue loop)."""
    n = len(agents)
    i = rr if rr < n else 0
    while ready[i] > m:
        i += 1
        if i == n:
            i = 0
    if agents[i].cmd == PIM_OP:
        j = i
        for _ in range(n - 1):
            j += 1
            if j == n:
                j = 0
            if ready[j] <= m and agents[j].cmd != PIM_OP:
                return j
    return i


class Agent:
    """One proposer of commands: a unit, a rank's prologue, or a rank's refresh."""

    __slots__ = ("kind", "rank", "bg", "fb0", "sources", "batches", "marks", "pulled",
                 "mark_len", "part_end", "ops_ok", "buf", "head", "runs", "prep", "exhausted",
                 "cmd", "fb", "row", "sel", "res", "pu", "pos", "wr_floor")

    def __init__(self, kind: int, rank: int, bg: int, fb0: int) -> None:
        self.kind = kind
        self.rank = rank
        self.bg = bg
        self.fb0 = fb0
        #: Instruction sources not yet fully read into ``buf``: (batch, iterator), in order.
        self.sources: deque[tuple[Batch, Iterator[PimInstr]]] = deque()
        #: Batches with instructions of this unit still to issue (front: the head's batch).
        self.batches: deque[Batch] = deque()
        #: Instruction counts (``pulled`` at exhaustion) at which those batches end.  Issued
        #: instructions are ``pulled - left``, so the head batch ends when ``left``
        #: falls to ``mark_len`` (-1: no end known yet); no per-command counter needed.
        self.marks: deque[int] = deque()
        self.pulled = 0
        self.mark_len = -1
        #: End of the head batch's latest column command (PIM_OPs end earlier than a column
        #: command before them, so only the last one can matter: see ``_marks_reached``).
        self.part_end = -1
        #: May the head instruction be a PIM_OP (its batch's prologue has issued)?
        self.ops_ok = True
        #: Buffered instructions: ``buf[head:]`` (a list and an index, not a deque: compiled,
        #: indexing a list is native, a deque's popleft() a method call by name).  ``left``
        #: below means ``len(buf) - head``.
        self.buf: list[PimInstr] = []
        self.head = 0
        #: Per bank of the group: the rows the buffered instructions touch, as [row, count] runs.
        self.runs: list[deque[list[int]]] = []
        #: Banks whose open row is not the next row they need (ACT or PRE wanted).
        self.prep: set[int] = set()
        self.exhausted = True
        self.cmd = -1
        self.fb = fb0
        self.row = -1
        self.sel = HEAD
        self.res = UnitCounts()
        self.pu: PimUnit | None = None  # the functional unit, when functional
        self.pos = 0  # prologue: PIM_SETs of the front entry already issued
        #: No PIM_WR before this cycle: the latest sqrt/div result (the device's table knows
        #: one PIM_OP latency only; the extension's longer one is the scheduler's to keep).
        self.wr_floor = 0

