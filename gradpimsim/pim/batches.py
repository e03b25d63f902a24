"""The PIM scheduler's state and the programs it is given (batches, buffers, prologues).

:class:`PimBatches` holds everything the scheduler knows: the device, the agents, and for each
unit the batches it still has to issue, read ahead into a buffer (``lookahead``).  Proposals
are ``proposals.py``; issuing is ``channel.py``, whose docstring states the whole policy.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import islice

from gradpimsim.config import MemoryConfig
from gradpimsim.config.pim import PimConfig
from gradpimsim.dram.codes import INF, NCMD, PIM_RD, PIM_WR
from gradpimsim.dram.commands import CommandSink
from gradpimsim.dram.device import ChannelDevice
from gradpimsim.dram.refresh import RefreshManager
from gradpimsim.pim.agents import (
    PROLOGUE,
    REFRESH,
    UNIT,
    Agent,
    Batch,
    DoneCallback,
)
from gradpimsim.pim.functional import PimArray
from gradpimsim.pim.program import UnitCounts
from gradpimsim.pim.unit import PimInstr


class PimBatches:
    """The PIM scheduler's state and its programs: agents, batches, instruction buffers
    (``PimChannel`` is the whole scheduler; see ``channel.py``'s docstring).

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
        #: Shared mode: per bank, the cycle from which this scheduler must give it back to the
        #: other source (an arbiter's bound on that source's wait: nothing but its PRE from
        #: then on, and no reopening until lifted; INF: none, :meth:`PimProposals.set_yield`).
        self.yield_from = [INF] * self.dev.nbanks
        #: Shared mode: per bank, since when a unit has needed it prepared (its open row is not
        #: the next one it needs): when a unit started waiting for a bank, for an arbiter's
        #: bound; ``_clock`` is the cycle of the latest event of this scheduler (a command, a
        #: batch's arrival), which is when a bank starts being needed.
        self.need_since = [0] * self.dev.nbanks
        #: Shared mode: the cycle of this scheduler's latest ACT to each bank (since when it
        #: has held the bank).
        self.act_at = [0] * self.dev.nbanks
        self._clock = 0
        self.agents: list[Agent] = []
        self.ready: list[int] = []
        self.stamp: list[int] = []
        self.by_rank: list[list[int]] = [[] for _ in range(o.ranks)]
        self.unit_of: dict[int, int] = {}  # flat bank group -> unit agent index
        self.prologue_of = [-1] * o.ranks
        self.refresh_of = [-1] * o.ranks
        #: Per rank, the prologues of the batches in order: [batch, PIM_SETs] (may be empty).
        self.prologue_q: list[deque[tuple[Batch, Sequence[PimInstr]]]] = [
            deque() for _ in range(o.ranks)]
        #: Per rank, the seq of the latest batch whose prologue has issued.
        self.sets_gen = [-1] * o.ranks
        self.results: dict[tuple[int, int], UnitCounts] = {}
        self.counts = [0] * NCMD
        self.end = 0
        #: Width of the windows each unit counts its column operations in (0: none).
        self.util_bin = 0
        self.rr = 0
        self.floor = 0
        self.last_cmd = -1
        self.last_bank = -1
        self._sel = -1
        self._at = INF
        self._seq = 0
        self._done: list[Batch] = []
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

    # ------------------------------------------------------------------ proposals (above)
    def _plan(self, i: int) -> None:
        """Set agent ``i``'s proposal (``PimProposals``)."""
        raise NotImplementedError

    def _replan_rank(self, rank: int) -> None:
        """Plan every agent of ``rank`` again (``PimProposals``)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ programs in
    def add_program(self, units: Mapping[tuple[int, int], Iterable[PimInstr]],
                    prologue: Mapping[int, Sequence[PimInstr]] | None = None,
                    on_done: DoneCallback | None = None) -> None:
        """Append a batch: ``units[(rank, bg)]`` instruction streams (dependence order) and
        ``prologue[rank]`` PIM_SETs; ``on_done(cycle)`` when all of it has issued."""
        prologue = prologue or {}
        if self.floor > self._clock:
            self._clock = self.floor  # the batch arrives now
        batch = Batch(self._seq, on_done)
        self._seq += 1
        new_units: list[Agent] = []
        for (rank, bg), prog in units.items():
            key = self.dev.flat_bank(rank, bg, 0) // self.bpg
            i = self.unit_of.get(key)
            if i is None:
                a = Agent(UNIT, rank, bg, self.dev.flat_bank(rank, bg, 0))
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
                self.prologue_of[rank] = self._add_agent(Agent(PROLOGUE, rank, -1,
                                                                rank * self.bpr))
        ranks = {a.rank for a in new_units} | {r for r, sets in prologue.items() if sets}
        for rank in sorted(ranks):
            sets = prologue.get(rank, ())
            batch.parts += bool(sets)
            self.prologue_q[rank].append((batch, sets))
            if self.refresher is not None and self.refresh_of[rank] < 0:
                self.refresh_of[rank] = self._add_agent(Agent(REFRESH, rank, -1,
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

    def _add_agent(self, a: Agent) -> int:
        a.res.bin_width = self.util_bin
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
                    if a.kind == UNIT)
                or any(self.prologue_q)
                or (self.shared and any(r != -1 for r in self.own_row)))

    def rank_busy(self, rank: int) -> bool:
        """Work left on ``rank`` (for the refresh rule: a busy rank postpones its REFs)."""
        if self.prologue_q[rank]:
            return True
        agents = self.agents
        return any(agents[j].kind == UNIT
                   and (len(agents[j].buf) > agents[j].head or not agents[j].exhausted)
                   for j in self.by_rank[rank])

    def stalled(self) -> list[str]:
        """Units that still hold work although nothing can be proposed (for error messages)."""
        return [f"unit ch{self.channel} ra{a.rank} bg{a.bg} stalled with "
                f"{len(a.buf) - a.head} instructions left" for a in self.agents
                if a.kind == UNIT and (len(a.buf) > a.head or not a.exhausted)]

    def needs(self, fb: int) -> bool:
        """Shared mode: does a unit still have to prepare flat bank ``fb`` (open another row
        there, or close it)?"""
        i = self.unit_of.get(fb // self.bpg, -1)
        if i < 0:
            return False
        a = self.agents[i]
        return (fb - a.fb0) in a.prep

    def waiting_banks(self) -> list[int]:
        """Shared mode, after :meth:`peek` found nothing to propose: the banks whose release
        by the other source (its queue for the bank empties, or it closes the bank) could let
        a unit go, i.e. the banks units wait on ``may_close`` for (every bank they still have
        to prepare, to be safe).  Everything else that can unblock a unit is a refresh flag or
        a read/write switch of the other source, which the arbiter watches anyway."""
        agents = self.agents
        return [agents[i].fb0 + b for i in self.blocked for b in agents[i].prep]

    # ------------------------------------------------------------------ batches
    def _part_done(self, batch: Batch, end: int) -> None:
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

    def _ops_ok(self, a: Agent) -> None:
        a.ops_ok = not a.batches or a.batches[0].seq <= self.sets_gen[a.rank]

    def _marks_reached(self, a: Agent, e: int) -> None:
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
                if self.agents[j].kind == UNIT:
                    self._ops_ok(self.agents[j])

    def _prologue_may_start(self, rank: int, seq: int) -> bool:
        for j in self.by_rank[rank]:
            a = self.agents[j]
            if a.kind == UNIT and a.batches and a.batches[0].seq < seq:
                return False
        return True

    # ------------------------------------------------------------------ row preparation
    def _check(self, a: Agent, b: int) -> None:
        """Does bank ``b`` of unit ``a`` need an ACT or PRE for its next row (or, shared, a
        release PRE because nothing buffered needs its row)?"""
        runs = a.runs[b]
        fb = a.fb0 + b
        prep = a.prep
        was = b in prep
        if self.yield_from[fb] < INF:
            prep.add(b)  # to be closed, and not reopened (a yielded bank): plan it fully
        elif runs:
            if self.own_row[fb] != runs[0][0]:
                prep.add(b)
            else:
                prep.discard(b)
        elif self.shared and self.own_row[fb] != -1:
            prep.add(b)
        else:
            prep.discard(b)
        if not was and b in prep:
            self.need_since[fb] = self._clock

    def _refill(self, a: Agent) -> None:
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

