"""One channel's GradPIM command scheduler, steppable: ``peek()`` the next command, ``issue()`` it.

The scheduling policy (agents, in-order units, row preparation running ahead, earliest first
with round-robin ties, refresh) is stated in :mod:`gradpimsim.pim.engine`, which drives one
:class:`PimChannel` per channel to completion.  Stepping matters because a PIM stream must also
share a channel with host traffic (:mod:`gradpimsim.arbiter.shared_channel`): there the host
controller and this scheduler take turns on one :class:`~gradpimsim.dram.device.ChannelDevice`.

Two modes:

- **standalone** (``refreshing=None``): this scheduler owns the device, so every open bank is
  its own and it keeps its own refresh agents (one per rank, ``RefreshManager`` rules).
- **shared** (``refreshing`` is the host controller's ``RefreshManager.refreshing``): another
  source issues on the same device.  It has no refresh agents and obeys the external flags (a
  refreshing rank's units only close their banks and do register work).  It counts as its own
  only the banks it activated, releases a bank (PRE) as soon as no buffered instruction needs
  its open row, and closes a bank the other source left open only if ``may_close(bank)`` says
  so.  Cached proposals are then lower bounds: whenever the device saw a foreign command,
  :meth:`peek` re-plans (lazily, only the agents that could win) before answering, so its answer
  is exact.  Foreign row changes and refresh flags are picked up by comparing snapshots, and
  agents waiting on ``may_close`` are re-planned at every peek (those with nothing to propose
  only once the other source's ``may_close_changes`` count moved, see :meth:`_replan_blocked`).

Speed: :meth:`PimChannel.run` (standalone) and :meth:`PimChannel.run_span` (shared, up to a
bound the arbiter guarantees is free of host commands) issue unit instructions in one inlined
loop, :meth:`PimChannel._drive`, making exactly the decisions of ``peek()``/``issue()``.

Programs are *batches*: :meth:`add_program` appends one at any time; each unit consumes its
batches in order.  A batch's PIM_OPs on a rank wait for that batch's prologue (PIM_SETs) on the
rank, and a prologue waits until every unit of the rank has finished the earlier batches (it
overwrites scalar registers they may still read).  ``on_done(cycle)`` fires once every
instruction of the batch has issued; ``cycle`` is the end of its last command.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Final

from gradpimsim.config import MemoryConfig
from gradpimsim.config.pim import PimConfig
from gradpimsim.dram.codes import ACT, INF, NCMD, PIM_OP, PIM_RD, PIM_SET, PIM_WR, PRE, REF
from gradpimsim.dram.commands import Cmd, Command, CommandSink
from gradpimsim.dram.device import ChannelDevice
from gradpimsim.dram.refresh import RefreshManager
from gradpimsim.pim.functional import PimArray
from gradpimsim.pim.program import UnitCounts
from gradpimsim.pim.unit import SQRT_DIV_OPS, PimInstr, PimUnit

# Final: mypyc keeps these in C statics (a plain module global costs a dictionary lookup)
_CMDS: Final = list(Cmd)
_UNIT: Final = 0
_PROLOGUE: Final = 1
_REFRESH: Final = 2
_HEAD: Final = -1  # ``_Agent.sel`` of a unit's instruction (else the bank being prepared)

DoneCallback = Callable[[int], None]


class _Batch:
    """One :meth:`PimChannel.add_program` call: counts its unfinished parts (unit streams and
    non-empty prologues) and the end of its latest command."""

    __slots__ = ("seq", "parts", "end", "on_done")

    def __init__(self, seq: int, on_done: DoneCallback | None) -> None:
        self.seq = seq
        self.parts = 0
        self.end = -1
        self.on_done = on_done


def _pick(agents: list[_Agent], ready: list[int], m: int, rr: int) -> int:
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


class _Agent:
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
        self.sources: deque[tuple[_Batch, Iterator[PimInstr]]] = deque()
        #: Batches with instructions of this unit still to issue (front: the head's batch).
        self.batches: deque[_Batch] = deque()
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
        self.sel = _HEAD
        self.res = UnitCounts()
        self.pu: PimUnit | None = None  # the functional unit, when functional
        self.pos = 0  # prologue: PIM_SETs of the front entry already issued
        #: No PIM_WR before this cycle: the latest sqrt/div result (the device's table knows
        #: one PIM_OP latency only; the extension's longer one is the scheduler's to keep).
        self.wr_floor = 0


class PimChannel:
    """Steppable GradPIM scheduler of one channel (see the module docstring).

    ``dev``: the device to issue on (a fresh one when ``None``); ``sink`` receives every issued
    :class:`Command`; ``array`` executes each instruction at its issue cycle (functional mode).
    ``refresh`` overrides ``cfg.controller.refresh`` (standalone mode only).  ``refreshing`` and
    ``may_close`` select shared mode (see the module docstring).
    """

    def __init__(self, cfg: MemoryConfig, pim: PimConfig | None = None, channel: int = 0, *,
                 dev: ChannelDevice | None = None, sink: CommandSink | None = None,
                 array: PimArray | None = None, refresh: bool | None = None,
                 refreshing: list[bool] | None = None,
                 may_close: Callable[[int], bool] | None = None,
                 lookahead: int = 1024) -> None:
        if lookahead < 2:
            raise ValueError("lookahead must be >= 2 instructions")
        o = cfg.org
        self.cfg = cfg
        self.pim = pim or PimConfig()
        self.channel = channel
        self.dev = dev if dev is not None else ChannelDevice(cfg, self.pim)
        self.sink = sink
        self.array = array
        self.store = array.store if array is not None else None
        self.lookahead = lookahead
        self.low_water = lookahead // 2
        self.long_latency = self.pim.sqrt_div_latency
        self.bpg, self.bpr, self.ranks = o.banks_per_group, o.banks_per_rank, o.ranks
        self.burst = cfg.burst_cycles
        self.shared = refreshing is not None
        self.may_close = may_close
        if refreshing is None:
            on = cfg.controller.refresh if refresh is None else refresh
            self.refresher: RefreshManager | None = RefreshManager(
                o.ranks, cfg.timing.tREFI, cfg.controller.max_postponed_refreshes, on,
                banks_per_rank=o.banks_per_rank)
            self.refreshing = self.refresher.refreshing
            self.next_check = self.refresher.next_check(0)
            #: Rows this scheduler opened.  Standalone, every open row is its own: an alias.
            self.own_row = self.dev.open_row
        else:
            self.refresher = None
            self.refreshing = refreshing
            self.next_check = INF
            self.own_row = [-1] * self.dev.nbanks
        self.agents: list[_Agent] = []
        self.ready: list[int] = []
        self.stamp: list[int] = []
        self.by_rank: list[list[int]] = [[] for _ in range(o.ranks)]
        self.unit_of: dict[int, int] = {}  # flat bank group -> unit agent index
        self.prologue_of = [-1] * o.ranks
        self.refresh_of = [-1] * o.ranks
        #: Per rank, the prologues of the batches in order: [batch, PIM_SETs] (may be empty).
        self.prologue_q: list[deque[tuple[_Batch, Sequence[PimInstr]]]] = [
            deque() for _ in range(o.ranks)]
        #: Per rank, the seq of the latest batch whose prologue has issued.
        self.sets_gen = [-1] * o.ranks
        self.results: dict[tuple[int, int], UnitCounts] = {}
        self.counts = [0] * NCMD
        self.end = 0
        self.rr = 0
        self.floor = 0
        self.last_cmd = -1
        self.last_bank = -1
        self._sel = -1
        self._at = INF
        self._seq = 0
        self._done: list[_Batch] = []
        #: Batches whose ``on_done`` has run (a span stops after one: it may lower its bound).
        self.fired = 0
        #: Shared mode: told of each ACT/PRE/PIM_SET this scheduler issues inside a span with
        #: ``rows`` (the arbiter's bank-ownership bookkeeping), as ``(cmd, flat bank)``.
        self.on_row: Callable[[int, int], None] | None = None
        #: Shared mode, with ``may_close``: a number that changes whenever an answer of
        #: ``may_close`` may have turned True (see :meth:`_replan_blocked`); None: assume it
        #: changes at every look.
        self.may_close_changes: Callable[[], int] | None = None
        self._may_close_seen = -1
        # shared mode: what the device looked like after our last look
        self.epoch = 0
        self.blocked: set[int] = set()
        self._own_last = self.dev.last_issue
        self._other_seen = self.dev.other_issues
        self._cols_seen = list(self.dev.bg_col_issues)
        self._rows_seen = list(self.dev.open_row)
        self._row_changes = self.dev.row_changes
        self._ref_seen = list(self.refreshing)

    # ------------------------------------------------------------------ programs in
    def add_program(self, units: Mapping[tuple[int, int], Iterable[PimInstr]],
                    prologue: Mapping[int, Sequence[PimInstr]] | None = None,
                    on_done: DoneCallback | None = None) -> None:
        """Append a batch: ``units[(rank, bg)]`` instruction streams (dependence order) and
        ``prologue[rank]`` PIM_SETs; ``on_done(cycle)`` when all of it has issued."""
        prologue = prologue or {}
        batch = _Batch(self._seq, on_done)
        self._seq += 1
        new_units: list[_Agent] = []
        for (rank, bg), prog in units.items():
            key = self.dev.flat_bank(rank, bg, 0) // self.bpg
            i = self.unit_of.get(key)
            if i is None:
                a = _Agent(_UNIT, rank, bg, self.dev.flat_bank(rank, bg, 0))
                a.runs = [deque() for _ in range(self.bpg)]
                a.res = self.results.setdefault((rank, bg), UnitCounts())
                if self.array is not None:
                    a.pu = self.array.unit(self.channel, rank, bg)
                self.unit_of[key] = i = self._add_agent(a)
            a = self.agents[i]
            a.sources.append((batch, iter(prog)))
            a.batches.append(batch)
            a.exhausted = False
            batch.parts += 1
            new_units.append(a)
        for rank, sets in prologue.items():
            if sets and self.prologue_of[rank] < 0:
                self.prologue_of[rank] = self._add_agent(_Agent(_PROLOGUE, rank, -1,
                                                                rank * self.bpr))
        ranks = {a.rank for a in new_units} | {r for r, sets in prologue.items() if sets}
        for rank in sorted(ranks):
            sets = prologue.get(rank, ())
            batch.parts += bool(sets)
            self.prologue_q[rank].append((batch, sets))
            if self.refresher is not None and self.refresh_of[rank] < 0:
                self.refresh_of[rank] = self._add_agent(_Agent(_REFRESH, rank, -1,
                                                               rank * self.bpr))
        for a in new_units:
            self._ops_ok(a)
            self._refill(a)
            if len(a.buf) - a.head == a.mark_len:  # parts with nothing for it end at once
                self._marks_reached(a, -1)
        for rank in sorted(ranks):
            self._advance_prologue(rank)
            self._replan_rank(rank)
        if batch.parts == 0:
            batch.parts = 1
            self._part_done(batch, -1)
        self._fire()

    def _add_agent(self, a: _Agent) -> int:
        i = len(self.agents)
        self.agents.append(a)
        self.ready.append(INF)
        self.stamp.append(self.epoch)
        self.by_rank[a.rank].append(i)
        return i

    @property
    def busy(self) -> bool:
        """Instructions or PIM_SETs left to issue, or (shared) banks still to hand back."""
        return (any(len(a.buf) > a.head or not a.exhausted for a in self.agents
                    if a.kind == _UNIT)
                or any(self.prologue_q)
                or (self.shared and any(r != -1 for r in self.own_row)))

    def rank_busy(self, rank: int) -> bool:
        """Work left on ``rank`` (for the refresh rule: a busy rank postpones its REFs)."""
        if self.prologue_q[rank]:
            return True
        agents = self.agents
        return any(agents[j].kind == _UNIT
                   and (len(agents[j].buf) > agents[j].head or not agents[j].exhausted)
                   for j in self.by_rank[rank])

    def stalled(self) -> list[str]:
        """Units that still hold work although nothing can be proposed (for error messages)."""
        return [f"unit ch{self.channel} ra{a.rank} bg{a.bg} stalled with "
                f"{len(a.buf) - a.head} instructions left" for a in self.agents
                if a.kind == _UNIT and (len(a.buf) > a.head or not a.exhausted)]

    def waiting_banks(self) -> list[int]:
        """Shared mode, after :meth:`peek` found nothing to propose: the banks whose release
        by the other source (its queue for the bank empties, or it closes the bank) could let
        a unit go, i.e. the banks units wait on ``may_close`` for (every bank they still have
        to prepare, to be safe).  Everything else that can unblock a unit is a refresh flag or
        a read/write switch of the other source, which the arbiter watches anyway."""
        agents = self.agents
        return [agents[i].fb0 + b for i in self.blocked for b in agents[i].prep]

    # ------------------------------------------------------------------ batches
    def _part_done(self, batch: _Batch, end: int) -> None:
        if end > batch.end:
            batch.end = end
        batch.parts -= 1
        if batch.parts == 0:
            self._done.append(batch)

    def _fire(self) -> None:
        """Run ``on_done`` callbacks, after the state is consistent (they may add programs)."""
        while self._done:
            batch = self._done.pop(0)
            self.fired += 1
            if batch.on_done is not None:
                now = max(self.floor, self.dev.last_issue + 1)
                batch.on_done(batch.end if batch.end >= 0 else now)

    def _ops_ok(self, a: _Agent) -> None:
        a.ops_ok = not a.batches or a.batches[0].seq <= self.sets_gen[a.rank]

    def _marks_reached(self, a: _Agent, e: int) -> None:
        """The unit issued the last instruction of its head batch (ending at ``e``; -1 if the
        batch gave this unit nothing); batches with nothing more for it end too."""
        end = a.part_end if a.part_end > e else e
        issued = a.pulled - (len(a.buf) - a.head)
        while a.marks and a.marks[0] == issued:
            a.marks.popleft()
            self._part_done(a.batches.popleft(), end)
            end = -1
            a.part_end = -1
        a.mark_len = a.pulled - a.marks[0] if a.marks else -1
        before = a.ops_ok
        self._ops_ok(a)
        p = self.prologue_of[a.rank]
        if p >= 0:
            self._plan(p)  # a waiting prologue may start now
        if a.ops_ok != before:
            self._plan(self.unit_of[a.fb0 // self.bpg])

    def _advance_prologue(self, rank: int) -> None:
        """Empty prologues at the front complete at once (no scalar changes)."""
        q = self.prologue_q[rank]
        moved = False
        while q and not q[0][1]:
            self.sets_gen[rank] = q.popleft()[0].seq
            moved = True
        if moved:
            for j in self.by_rank[rank]:
                if self.agents[j].kind == _UNIT:
                    self._ops_ok(self.agents[j])

    def _prologue_may_start(self, rank: int, seq: int) -> bool:
        for j in self.by_rank[rank]:
            a = self.agents[j]
            if a.kind == _UNIT and a.batches and a.batches[0].seq < seq:
                return False
        return True

    # ------------------------------------------------------------------ row preparation
    def _check(self, a: _Agent, b: int) -> None:
        """Does bank ``b`` of unit ``a`` need an ACT or PRE for its next row (or, shared, a
        release PRE because nothing buffered needs its row)?"""
        runs = a.runs[b]
        if runs:
            if self.own_row[a.fb0 + b] != runs[0][0]:
                a.prep.add(b)
            else:
                a.prep.discard(b)
        elif self.shared and self.own_row[a.fb0 + b] != -1:
            a.prep.add(b)
        else:
            a.prep.discard(b)

    def _refill(self, a: _Agent) -> None:
        buf = a.buf
        if a.head:  # drop the issued ones (a C-level move of at most ``lookahead`` slots)
            del buf[:a.head]
            a.head = 0
        want = self.lookahead - len(buf)
        all_runs = a.runs
        while want > 0 and a.sources:
            _, it = a.sources[0]
            chunk = list(islice(it, want))
            got = len(chunk)
            buf.extend(chunk)
            for ins in chunk:
                c: int = ins.cmd  # (an int here: compiled, a Cmd is compared as an object)
                if c in (PIM_RD, PIM_WR):
                    b: int = ins.bank
                    row: int = ins.row
                    runs = all_runs[b]
                    if runs:
                        last = runs[-1]
                        if last[0] == row:
                            last[1] = last[1] + 1
                            continue
                    runs.append([row, 1])
                    if len(runs) == 1:
                        self._check(a, b)
            a.pulled += got
            if got < want:  # this source is exhausted
                a.sources.popleft()
                a.marks.append(a.pulled)
            want -= got
        a.exhausted = not a.sources
        if a.marks:
            a.mark_len = a.pulled - a.marks[0]

    # ------------------------------------------------------------------ proposals
    def _plan(self, i: int) -> None:  # noqa: C901
        """Set agent ``i``'s proposal and its earliest legal cycle (bus excluded)."""
        a = self.agents[i]
        kind = a.kind
        rank = a.rank
        best = INF
        dev = self.dev
        own_row = self.own_row
        if kind == _UNIT:
            buf = a.buf
            busy_ref = self.refreshing[rank]
            if len(buf) > a.head:
                ins = buf[a.head]
                c: int = ins.cmd
                if c == PIM_OP:
                    if a.ops_ok:
                        best = dev.earliest(PIM_OP, a.fb0)
                        a.cmd = PIM_OP
                        a.fb = a.fb0
                        a.sel = _HEAD
                elif not busy_ref:
                    fb = a.fb0 + ins.bank
                    if own_row[fb] == ins.row:
                        best = dev.earliest(c, fb)
                        if c == PIM_WR and best < a.wr_floor:
                            best = a.wr_floor
                        a.cmd = c
                        a.fb = fb
                        a.sel = _HEAD
            if busy_ref:
                for b in range(self.bpg):
                    fb = a.fb0 + b
                    if own_row[fb] != -1:
                        e = dev.earliest(PRE, fb)
                        if e < best:
                            best, a.cmd, a.fb, a.sel = e, PRE, fb, b
            elif a.prep:
                open_row = dev.open_row
                for b in a.prep:
                    fb = a.fb0 + b
                    if own_row[fb] != -1:
                        e = dev.earliest(PRE, fb)
                        if e < best:
                            best, a.cmd, a.fb, a.sel = e, PRE, fb, b
                    elif open_row[fb] != -1:  # shared: the other source's open row
                        if self.may_close is None or self.may_close(fb):
                            e = dev.earliest(PRE, fb)
                            if e < best:
                                best, a.cmd, a.fb, a.sel = e, PRE, fb, b
                        else:
                            self.blocked.add(i)
                    else:
                        e = dev.earliest(ACT, fb)
                        if e < best:
                            best, a.cmd, a.fb, a.sel = e, ACT, fb, b
                            a.row = a.runs[b][0][0]
        elif kind == _PROLOGUE:
            q = self.prologue_q[rank]
            if q and q[0][1] and (a.pos or self._prologue_may_start(rank, q[0][0].seq)):
                best = dev.earliest(PIM_SET, a.fb0)
                a.cmd = PIM_SET
        elif self.refreshing[rank]:
            refresher = self.refresher  # (refresh agents exist only standalone)
            assert refresher is not None
            if refresher.propose(rank, a.fb0, dev.open_row) == REF:
                best = dev.earliest(REF, a.fb0)
                a.cmd = REF
        self.ready[i] = best
        self.stamp[i] = self.epoch

    def _replan_rank(self, rank: int) -> None:
        for j in self.by_rank[rank]:
            self._plan(j)

    # ------------------------------------------------------------------ shared mode
    def notify(self, cmd: int, bank: int) -> None:
        """Another source issued ``cmd`` on flat ``bank`` of this channel's device.

        Every cached proposal becomes a lower bound (re-validated lazily by :meth:`peek`); a
        row change re-checks the unit owning that bank group.
        """
        self.epoch += 1
        if cmd in (ACT, PRE, REF):
            rows = self.dev.open_row
            self._rows_seen[bank] = rows[bank]
            i = self.unit_of.get(bank // self.bpg)
            if i is not None:
                a = self.agents[i]
                self._check(a, bank - a.fb0)
                self._plan(i)

    def _sync(self) -> None:
        """Shared mode: take in what the other source did since our last look."""
        dev = self.dev
        if dev.last_issue != self._own_last:
            self._own_last = dev.last_issue
            cols, seen = dev.bg_col_issues, self._cols_seen
            if dev.other_issues != self._other_seen:
                # anything but RD/WR may have moved any proposal: plan everything again
                self._other_seen = dev.other_issues
                self.epoch += 1
                seen[:] = cols
            else:
                self._host_columns_seen(cols, seen)
        if dev.row_changes != self._row_changes:
            self._row_changes = dev.row_changes
            rows = dev.open_row
            seen = self._rows_seen
            for b in range(len(rows)):
                if rows[b] != seen[b]:
                    self.notify(ACT if rows[b] != -1 else PRE, b)
        if self.refreshing != self._ref_seen:
            for rank, flag in enumerate(self.refreshing):
                if flag != self._ref_seen[rank]:
                    self._replan_rank(rank)
            self._ref_seen = list(self.refreshing)
        if self.blocked:
            self._replan_blocked()

    def _replan_blocked(self) -> None:
        """Plan again the units that wait on ``may_close`` (``blocked``): its answers and,
        for a unit that proposes something else meanwhile, the timing may have moved.

        A unit that proposes nothing (``ready`` INF: every bank it must prepare is open for the
        other source, which may not let it go) is kept as it is while no ``may_close`` answer
        can have changed (``may_close_changes`` stands): with nothing proposable, timing cannot
        matter, and every other input of its plan (its instructions, its rows, the other
        source's rows, the refresh flags, ``ops_ok``) plans it again where it changes.  A test
        compares the command streams with the reference, which plans them all at every look.
        """
        waiting = list(self.blocked)
        blocked = self.blocked
        blocked.clear()
        changes = self.may_close_changes
        keep = False
        if changes is not None:
            v = changes()
            keep = v == self._may_close_seen
            self._may_close_seen = v
        ready = self.ready
        for i in waiting:
            if keep and ready[i] >= INF:
                blocked.add(i)
            else:
                self._plan(i)

    def _host_columns_seen(self, cols: list[int], seen: list[int]) -> None:
        """The other source issued only RD/WR since our last look: plan again exactly the
        proposals a fresh plan could change (the others stay as they are, which the reference
        of planning everything again would give too; a test checks it):

        - the units of the bank groups those commands went to (their group's timing moved);
        - a unit with a choice between banks to prepare (or to close for a refresh) whose
          proposal lies before the command bus: the bus moved, and options due before it now
          tie at it, which the order of the options decides (``peek`` puts every proposal
          at the bus, so this matters only inside a unit);
        - a unit proposing to close a bank the other source opened: that source's queue may
          no longer allow it (``may_close``).
        """
        unit_of = self.unit_of
        stamp = self.stamp
        for g in range(len(cols)):
            if cols[g] != seen[g]:
                seen[g] = cols[g]
                i = unit_of.get(g, -1)
                if i >= 0:
                    stamp[i] = -1  # (never an epoch)
        agents = self.agents
        ready = self.ready
        own_row = self.own_row
        refreshing = self.refreshing
        bus = self.dev.cmd_bus_next
        closing = self.may_close is not None
        for i in range(len(agents)):
            a = agents[i]
            if a.kind != _UNIT:
                continue
            if ((ready[i] < bus and (a.prep or refreshing[a.rank]))
                    or (closing and a.cmd == PRE and own_row[a.fb] == -1)):
                stamp[i] = -1

    def advance(self, t: int) -> None:
        """Nothing of this scheduler issues before cycle ``t`` (time has moved on)."""
        if t > self.floor:
            self.floor = t

    # ------------------------------------------------------------------ stepping
    def peek(self) -> int:
        """The exact cycle of the next command (INF if none can be proposed now)."""
        if self.shared:
            self._sync()
        ready = self.ready
        agents = self.agents
        while True:
            m = INF
            for v in ready:  # (a loop of native compares; builtin min() compares objects)
                if v < m:
                    m = v
            if m >= INF:
                self._sel = -1
                return INF
            bus = self.dev.cmd_bus_next
            if bus < self.floor:
                bus = self.floor
            if m < bus:
                m = bus
            if m >= self.next_check:
                self._refresh_tick()
                continue
            if self.shared:
                epoch = self.epoch
                stamp = self.stamp
                stale = [j for j in range(len(ready)) if ready[j] <= m and stamp[j] != epoch]
                if stale:
                    for j in stale:
                        self._plan(j)
                    continue
            i = _pick(agents, ready, m, self.rr)
            self._sel = i
            self._at = m
            return m

    def _refresh_tick(self) -> None:
        """Standalone refresh: a tREFI boundary passed; start refreshes that are due."""
        refresher = self.refresher
        assert refresher is not None
        now = self.next_check
        self.next_check = refresher.next_check(now)
        agents = self.agents
        for rank in range(self.ranks):
            if self.refresh_of[rank] < 0:
                continue
            idle = all(agents[j].kind != _UNIT or len(agents[j].buf) == agents[j].head
                       for j in self.by_rank[rank])
            if refresher.start_due(rank, now, idle):
                self._replan_rank(rank)

    def run(self) -> int:
        """Issue until nothing can be proposed; returns the end cycle.

        Makes exactly the decisions of ``while peek() < INF: issue()`` (a test compares the
        command streams); standalone it goes through :meth:`_drive`, which inlines the common
        case.  Shared mode steps ``peek``/``issue``: the other source may act between commands.
        """
        if self.shared or not self.ready:
            while self.peek() < INF:
                self.issue()
            return self.end
        self._drive(INF, False)
        return self.end

    def run_span(self, bound: int, rows: bool = False) -> int:
        """Shared mode: issue the command the last :meth:`peek` chose and the commands after
        it, exactly as repeated ``peek()``/``issue()`` would, while each is a unit instruction
        (PIM_RD, PIM_WR, PIM_OP) at a cycle before ``bound``; returns how many issued.

        With ``rows`` the span also issues row preparation and PIM_SETs (each reported to
        ``on_row``): for an arbiter whose other source has no work, so that nothing PIM's row
        commands change there can move that source's next event before ``bound``.

        The caller (the arbiter) guarantees that no other source issues before ``bound`` and
        that its state (queues, refresh flags, hence ``may_close``) stays as it is while this
        runs.  Then the only things :meth:`peek` would do between two of these commands are
        re-validating stale proposals (done once here: nothing foreign happens, so re-planning
        now or later gives the same proposal) and re-planning agents waiting on ``may_close``
        (done per command, as peek does).  A completed batch (its callback may lower the
        caller's bound) ends the span; so do row preparation and PIM_SETs without ``rows``, so
        that the caller sees every ACT/PRE, and then it returns 0 without issuing if the chosen
        command is not a unit instruction.
        """
        i = self._sel
        if i < 0:
            return 0
        a = self.agents[i]
        if not rows and (a.kind != _UNIT or a.sel != _HEAD):
            return 0
        epoch = self.epoch
        stamp = self.stamp
        for j in range(len(stamp)):
            if stamp[j] != epoch:  # a lower bound above the chosen cycle: make it exact
                self._plan(j)
        return self._drive(bound, True, rows)

    def _drive(self, bound: int, span: bool, rows: bool = False) -> int:  # noqa: C901
        """The hot loop behind :meth:`run` (``span`` False: to the end) and :meth:`run_span`
        (``span`` True: starts with the peeked command, stops at anything but a unit
        instruction unless ``rows``, at ``bound`` or after a batch completes).  Returns the
        commands issued.

        It makes the decisions of ``peek()``/``issue()`` but inlines the common case, a unit's
        next instruction, with containers in locals: this is the per-command hot path.  Methods
        are called on their objects, not through bound methods kept in locals: compiled, such a
        call is a direct C call, while a bound method in a local is a generic Python call.
        Anything else (row preparation, PIM_SET, REF) goes through :meth:`issue` (``span``
        False).
        """
        ready = self.ready
        agents = self.agents
        dev = self.dev
        local_ok = dev.local_ok
        bank_next, bg_next, rank_next = dev.bank_next, dev.bg_next, dev.rank_next
        bpg, bpr = self.bpg, self.bpr
        own_row = self.own_row
        refreshing = self.refreshing
        counts = self.counts
        sink = self.sink
        store = self.store
        burst = self.burst
        low_water = self.low_water
        long_latency = self.long_latency
        ch = self.channel
        blocked = self.blocked
        end = self.end
        rr = self.rr
        next_check = self.next_check
        floor = self.floor
        done = self._done
        n = len(agents)
        issued = 0
        c = t = fb = -1
        if span:
            i = self._sel
            m = self._at
        while True:
            if not span or issued:
                if blocked:  # shared: agents waiting on may_close (as peek's _sync)
                    self._replan_blocked()
                m = INF
                for v in ready:  # (native compares; builtin min() compares objects)
                    if v < m:
                        m = v
                if m >= INF:
                    break
                bus = dev.cmd_bus_next
                if bus < floor:
                    bus = floor
                if m < bus:
                    m = bus
                if m >= bound:
                    break
                if m >= next_check:
                    self._refresh_tick()
                    next_check = self.next_check
                    continue
                i = _pick(agents, ready, m, rr)
            a = agents[i]
            if a.kind != _UNIT or a.sel != _HEAD:
                if span and not rows:
                    break
                self.end = end
                self._sel = i
                self._at = m
                fired = self.fired
                self.issue()
                end = self.end
                rr = self.rr
                n = len(agents)  # a callback may have added a program
                if span:
                    issued += 1
                    t, c, fb = m, self.last_cmd, self.last_bank  # (the span's last command)
                    if self.on_row is not None:
                        self.on_row(c, fb)
                    if self.fired != fired:  # a callback may have lowered the bound
                        break
                continue
            rr = i + 1 if i + 1 < n else 0
            issued += 1
            # -- inlined issue() of a unit's head instruction
            t = m
            c = a.cmd
            rank = a.rank
            counts[c] = counts[c] + 1  # (an augmented list item is a generic add)
            fb = a.fb
            ur = a.res
            buf = a.buf
            head = a.head
            ins = buf[head]
            head += 1
            a.head = head
            if c == PIM_OP:
                if local_ok[c]:
                    dev.issue_local(c, fb, t)
                else:
                    dev.issue(c, fb, t)
                ur.ops += 1
                if ins.op in SQRT_DIV_OPS and t + long_latency > a.wr_floor:
                    a.wr_floor = t + long_latency
                if sink is not None:
                    sink(Command(t, Cmd.PIM_OP, ch, rank, a.bg, -1, -1, -1))
                e = t + 1
            else:
                b = ins.bank
                row = ins.row
                if local_ok[c]:
                    dev.issue_local(c, fb, t)
                else:
                    dev.issue(c, fb, t, row)
                if c == PIM_RD:
                    ur.reads += 1
                else:
                    ur.writes += 1
                if sink is not None:
                    sink(Command(t, _CMDS[c], ch, rank, a.bg, b, row, ins.col))
                runs = a.runs[b]
                run = runs[0]
                left = run[1] - 1
                run[1] = left
                if not left:
                    runs.popleft()
                    self._check(a, b)
                e = t + burst
                a.part_end = e
            if a.pu is not None:
                a.pu.execute(ins, store, ch, rank, a.bg)
            if e > end:
                end = e
            ur.last_cycle = t
            if len(buf) - head < low_water and not a.exhausted:
                self._refill(a)
                head = 0
            if len(buf) - head == a.mark_len:
                self._marks_reached(a, e)
            stop = False
            if done:
                self.end = end
                self.rr = rr
                self._fire()
                stop = span  # a callback may have lowered the caller's bound
                n = len(agents)  # or added a program (and refilled this unit's buffer)
                floor = self.floor
                head = a.head
            # fast path of _plan(i): the next instruction is ready to propose and no bank
            # needs preparing (the common case; anything else takes _plan()).  The proposal's
            # cycle is dev.earliest(), inlined (not an ACT: no four-activate window)
            if len(buf) > head and not a.prep and not refreshing[rank]:
                ins = buf[head]
                c2: int = ins.cmd
                fb2 = -1
                if c2 == PIM_OP:
                    if a.ops_ok:
                        fb2 = a.fb0
                elif own_row[a.fb0 + ins.bank] == ins.row:
                    fb2 = a.fb0 + ins.bank
                if fb2 < 0:
                    self._plan(i)
                else:
                    e = bank_next[fb2 * NCMD + c2]
                    v = bg_next[(fb2 // bpg) * NCMD + c2]
                    if v > e:
                        e = v
                    v = rank_next[(fb2 // bpr) * NCMD + c2]
                    if v > e:
                        e = v
                    v = dev.cmd_bus_next
                    if v > e:
                        e = v
                    if c2 == PIM_WR and e < a.wr_floor:
                        e = a.wr_floor
                    a.cmd = c2
                    a.fb = fb2
                    ready[i] = e
            else:
                self._plan(i)
            if stop:
                break
        self.end = end
        self.rr = rr
        if issued and span:
            self._sel = -1
            self.last_cmd = c
            self.last_bank = fb
            self._own_last = t
        self._other_seen = dev.other_issues  # (our own commands: seen)
        return issued

    def issue(self) -> None:
        """Issue the command the last :meth:`peek` returned, at that cycle."""
        self._issue()
        self._other_seen = self.dev.other_issues  # (our own command: seen)

    def _issue(self) -> None:  # noqa: C901
        i = self._sel
        if i < 0:
            raise RuntimeError("issue() without a command: call peek() first")
        self._sel = -1
        t = self._at
        agents = self.agents
        a = agents[i]
        self.rr = i + 1 if i + 1 < len(agents) else 0
        c = a.cmd
        kind = a.kind
        rank = a.rank
        dev = self.dev
        sink = self.sink
        ch = self.channel
        self.counts[c] += 1
        self.last_cmd = c
        self.last_bank = a.fb
        self._own_last = t
        if kind == _UNIT:
            fb = a.fb
            ur = a.res
            if a.sel == _HEAD:
                ins = a.buf[a.head]
                a.head += 1
                if c == PIM_OP:
                    dev.issue(c, fb, t)
                    ur.ops += 1
                    if ins.op in SQRT_DIV_OPS and t + self.long_latency > a.wr_floor:
                        a.wr_floor = t + self.long_latency
                    if sink is not None:
                        sink(Command(t, Cmd.PIM_OP, ch, rank, a.bg, -1, -1, -1))
                    e = t + 1
                else:
                    b = ins.bank
                    row = ins.row
                    dev.issue(c, fb, t, row)
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
                        self._check(a, b)
                    e = t + self.burst
                    a.part_end = e
                if a.pu is not None:
                    a.pu.execute(ins, self.store, ch, rank, a.bg)
                if e > self.end:
                    self.end = e
                ur.last_cycle = t
                if len(a.buf) - a.head < self.low_water and not a.exhausted:
                    self._refill(a)
                if len(a.buf) - a.head == a.mark_len:
                    self._marks_reached(a, e)
                if self._done:
                    self._fire()
                # fast path of _plan(i): the next instruction is ready to propose and no
                # bank needs preparing (the common case; anything else takes _plan())
                buf = a.buf
                if len(buf) > a.head and not a.prep and not self.refreshing[rank]:
                    ins = buf[a.head]
                    c = ins.cmd
                    if c == PIM_OP:
                        if a.ops_ok:
                            a.cmd = PIM_OP
                            a.fb = a.fb0
                            self.ready[i] = dev.earliest(PIM_OP, a.fb0)
                            self.stamp[i] = self.epoch
                            return
                    else:
                        fb = a.fb0 + ins.bank
                        if self.own_row[fb] == ins.row:
                            e = dev.earliest(c, fb)
                            if c == PIM_WR and e < a.wr_floor:
                                e = a.wr_floor
                            a.cmd = c
                            a.fb = fb
                            self.ready[i] = e
                            self.stamp[i] = self.epoch
                            return
                self._plan(i)
            else:
                self._issue_prep(i, a, c, t)
        elif kind == _PROLOGUE:
            batch, sets = self.prologue_q[rank][0]
            ins = sets[a.pos]
            a.pos += 1
            dev.issue(PIM_SET, a.fb0, t)
            if sink is not None:
                sink(Command(t, Cmd.PIM_SET, ch, rank, -1, -1, -1, -1))
            if self.array is not None:
                self.array.issue(ch, rank, -1, ins)
            if t + 1 > self.end:
                self.end = t + 1
            if a.pos == len(sets):
                a.pos = 0
                self.prologue_q[rank].popleft()
                self.sets_gen[rank] = batch.seq
                self._part_done(batch, t + 1)
                self._advance_prologue(rank)
                for j in self.by_rank[rank]:
                    if agents[j].kind == _UNIT:
                        self._ops_ok(agents[j])
                self._replan_rank(rank)
                self._fire()
            else:
                self._plan(i)
        else:  # REF (standalone only)
            refresher = self.refresher
            assert refresher is not None
            dev.issue(REF, a.fb0, t)
            if sink is not None:
                sink(Command(t, Cmd.REF, ch, rank, 0, 0, -1, -1))
            if t + 1 > self.end:
                self.end = t + 1
            refresher.refreshed(rank, t, False)
            for j in self.by_rank[rank]:
                a2 = agents[j]
                if a2.kind == _UNIT:
                    for b in range(self.bpg):
                        self._check(a2, b)
            self._replan_rank(rank)

    def _issue_prep(self, i: int, a: _Agent, c: int, t: int) -> None:
        """Issue a unit's row preparation (ACT or PRE) at ``t``."""
        dev = self.dev
        fb = a.fb
        b = a.sel
        rank = a.rank
        if c == ACT:
            row = a.row
            dev.issue(ACT, fb, t, row)
            a.res.activations += 1
        else:
            row = dev.open_row[fb]
            dev.issue(PRE, fb, t)
            a.res.precharges += 1
        self.own_row[fb] = row if c == ACT else -1
        if self.shared:
            self._rows_seen[fb] = row if c == ACT else -1
        if self.sink is not None:
            self.sink(Command(t, _CMDS[c], self.channel, rank, a.bg, b, row, -1))
        self._check(a, b)
        if t + 1 > self.end:
            self.end = t + 1
        if c == ACT:  # tRRD_S / tFAW move every ACT proposal of the rank
            agents = self.agents
            for j in self.by_rank[rank]:
                if j == i or agents[j].cmd == ACT:
                    self._plan(j)
        else:
            self._plan(i)
            j = self.refresh_of[rank]
            if self.refreshing[rank] and j >= 0:
                self._plan(j)
