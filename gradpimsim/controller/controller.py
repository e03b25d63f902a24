"""The per-channel memory controller: queues, scheduler, page policy, write drain and refresh.

Event-driven, never cycle-ticked.  Each bank with queued work has one *candidate* command (its
oldest row hit, else PRE or ACT for its oldest request).  Candidates sit in a heap keyed by a
lower bound of their earliest legal cycle; the winner is the first entry whose exact earliest
cycle (asked of the device) equals its key, which is exactly what a per-cycle FR-FCFS controller
would issue: the earliest-ready command, ties broken by hits first, then age.  Time jumps straight
to that cycle.  The same loop admits arrivals (before deciding at their cycle) and wakes for
refresh deadlines.

Semantics, documented because results depend on them:
- Requests are admitted in arrival order; a full read or write queue stalls the source
  (back-pressure), head-of-line, like a DRAMsim3 trace frontend.
- Reads are served unless the write queue reaches the high watermark (then writes drain to the
  low watermark) or no read is queued (then writes are served until a read arrives).
- FR-FCFS: row hits first, oldest first; a bank serves at most ``starvation_cap`` younger hits
  while an older request to another row waits.  FCFS: strictly the oldest request.
- Page policies: ``open`` keeps rows open; ``closed`` issues RDA/WRA when no other queued request
  hits the row; ``adaptive`` keeps rows open but precharges a bank idle for
  ``adaptive_idle_cycles``.
- Latency is measured from admission to the last data beat (a read's data ends RL + BL/2 after
  the command, a write's WL + BL/2).

Bulk requests (``Request.ncols > 1``: consecutive columns of one row, one burst each):
- A bulk request takes one queue slot and keeps its place in the queue until its last burst;
  each scheduling decision issues its next column (``col + served``).  Queue depths, the write
  watermarks and ``reads_done``/``writes_done`` count requests; ``read_bursts``/``write_bursts``
  and ``cmd_counts`` count bursts.  So a queue of bulk requests holds far more data than one of
  single bursts, and the scheduler's window (and results) differ from the same bytes offered as
  single bursts, except where no queue, watermark or starvation cap binds (tests show equality).
- Latency runs from admission to the end of the last burst's data; ``done`` and the callback
  fire once, then.  FR-FCFS's starvation cap counts requests served past an older one.
- Closed page: RDA/WRA only on a request's last burst (under the usual rule).  A drain switch or
  a refresh may interrupt a request mid-row; it resumes at its next column after a new ACT.
- Cost: a bulk head's bursts are issued in closed form (an arithmetic progression with one hit
  stream, whole periods of the interleaved merge with several), so events grow with row
  commands and requests, not with bursts.  With open pages a run also serves bypass hits, issues
  the ACTs and PREs of other banks that fall due and admits requests (see :meth:`_issue_run`),
  so a DMA sweep is a few runs, not a few per row.  With a command sink every command is still
  emitted.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable
from typing import Final

from gradpimsim.config import MemoryConfig
from gradpimsim.controller.refresh import INF, RefreshManager
from gradpimsim.controller.request import Request
from gradpimsim.dram.commands import Cmd, Command
from gradpimsim.dram.device import NCMD, ChannelDevice
from gradpimsim.pim.config import PimConfig
from gradpimsim.stats.latency import LatencyHistogram

# Command codes (``Cmd``'s values) and candidate priorities, as Final constants: mypyc inlines
# them (a plain module global would cost a dictionary lookup at every use).
ACT: Final = 0
PRE: Final = 1
RD: Final = 2
RDA: Final = 3
WR: Final = 4
WRA: Final = 5
REF: Final = 6
#: "Never issued" for a cycle variable (a constant, where ``-INF`` would be computed).
NO_CMD: Final = -INF
_PRIO_REFRESH: Final = -1
_PRIO_HIT: Final = 0
_PRIO_MISS: Final = 1
_PRIO_IDLE: Final = 2
#: A closed-form run is set up only when this many column slots of the rank (tCCD_S apart)
#: fit before it must stop; in a shorter window (a co-scheduled PIM command close ahead) the
#: commands are issued one by one, which gives the same commands for less work.
_RUN_MIN_SLOTS: Final = 4
#: Heap size above which :meth:`ChannelController._peek` re-keys every entry at once.
_REKEY_ALL: Final = 6

CommandSink = Callable[[Command], None]

#: Observers attached to every controller built, e.g. the test suite's online protocol checker:
#: each is called with (config, channel, pim) and returns a sink for that controller's commands.
#: A hook rather than a patch point, so it also works when this module is compiled with mypyc.
OBSERVER_FACTORIES: list[Callable[[MemoryConfig, int, PimConfig | None], CommandSink]] = []


def drain_flips(draining: bool, reads: int, writes: int, forced: bool, high: int,
                low: int) -> bool:
    """The write-drain policy, in one place: does the controller switch between serving reads
    and draining writes, given the queue counts?  A drain starts at the high watermark (forced)
    or when no read waits; a forced drain ends at the low watermark once reads wait, an
    opportunistic one as soon as a read arrives, and any drain ends when the writes run out."""
    if draining:
        return writes == 0 or (reads > 0 and (not forced or writes <= low))
    return writes >= high or (reads == 0 and writes > 0)


class _Cycle:
    """One period of the leaders' merge, from a relative state back to it (see
    :func:`_leader_cycle`); ``period`` 0 means the state is not on a short cycle."""

    def __init__(self, period: int, offsets: list[int], positions: list[int], nlead: int,
                 ) -> None:
        self.period = period
        #: each command's cycle after the state's, and its leader's place in age order
        self.offsets = offsets
        self.positions = positions
        #: per leader (age order): its commands in one period, and its last one's offset
        self.counts = [0] * nlead
        self.last = [-1] * nlead
        for off, j in zip(offsets, positions, strict=True):
            self.counts[j] += 1
            self.last[j] = off


#: Steps :func:`_leader_cycle` follows a state before calling it transient.
_CYCLE_STEPS: Final = 64


def _leader_cycle(ready: list[int], gap_bg: int, gap_rank: int) -> _Cycle:
    """The period of the leaders' merge that starts from ``ready``, if that state recurs.

    ``ready`` holds, oldest leader first, how many cycles after the last command each
    leader's next burst may issue: ``max(last in its bank group + gap_bg - now, gap_rank)``.
    A steady run issues the earliest of them (the oldest on ties); then the issuer's value is
    ``max(gap_bg, gap_rank)`` and the others drop by the step, never below ``gap_rank``.  So
    the values alone decide every later choice, and a state that recurs marks a period that
    repeats until something else changes.  The same rule as the run's steady choice, written
    on the relative values only, so it can be worked out once per state and cached.
    """
    top = gap_bg if gap_bg > gap_rank else gap_rank
    r = list(ready)
    n = len(r)
    offsets: list[int] = []
    positions: list[int] = []
    t = 0
    for _ in range(_CYCLE_STEPS):
        j = 0
        e = r[0]
        for i in range(1, n):
            if r[i] < e:
                e = r[i]
                j = i
        t += e
        for i in range(n):
            v = r[i] - e
            r[i] = v if v > gap_rank else gap_rank
        r[j] = top
        offsets.append(t)
        positions.append(j)
        if r == ready:
            return _Cycle(t, offsets, positions, n)
    return _Cycle(0, [], [], n)


def _gate(q: deque[Request], row: int, start: int) -> int:
    """The cycle from which a run stream's head may issue, past its bank-level gates
    (``start``) and its admission; -1 if the queue is empty or its head misses ``row``."""
    if not q:
        return -1
    head = q[0]
    if head.row != row:
        return -1
    return start if start > head.admitted else head.admitted


def _alone(req: Request | None) -> deque[Request]:
    """A virtual stream's queue: the one bypass hit it serves."""
    assert req is not None  # a hit candidate always serves a request
    return deque((req,))


def _chain(observers: list[CommandSink], sink: CommandSink | None) -> CommandSink:
    """One sink feeding the observers, then the caller's sink."""
    targets = observers + ([sink] if sink is not None else [])

    def fan_out(cmd: Command) -> None:
        for target in targets:
            target(cmd)

    return fan_out


class ChannelController:
    """One channel's controller and its device state (no SimPy inside: see ``process``)."""

    def __init__(
        self,
        cfg: MemoryConfig,
        channel: int = 0,
        *,
        pim: PimConfig | None = None,
        sink: CommandSink | None = None,
        batch_runs: bool = True,
    ) -> None:
        c = cfg.controller
        t = cfg.timing
        if OBSERVER_FACTORIES:
            sink = _chain([f(cfg, channel, pim) for f in OBSERVER_FACTORIES], sink)
        self.cfg = cfg
        self.channel = channel
        self.dev = ChannelDevice(cfg, pim)
        self.sink = sink
        self.batch_runs = batch_runs
        self.now = 0
        nb = self.dev.nbanks
        self.nbanks = nb
        self.read_q: list[deque[Request]] = [deque() for _ in range(nb)]
        self.write_q: list[deque[Request]] = [deque() for _ in range(nb)]
        self.reads = 0
        self.writes = 0
        self.read_cap = c.read_queue_depth
        self.write_cap = c.write_queue_depth
        self.high = c.write_high_watermark
        self.low = c.write_low_watermark
        self.fcfs = c.scheduler == "fcfs"
        self.order_r: deque[Request] = deque()  # age order (FCFS only)
        self.order_w: deque[Request] = deque()
        self.closed_page = c.page_policy == "closed"
        self.adaptive = c.page_policy == "adaptive"
        self.idle_close = c.adaptive_idle_cycles
        self.cap = c.starvation_cap
        self.draining = False
        self.drain_forced = False
        self.pending: deque[Request] = deque()
        # candidates
        self.heap: list[tuple[int, int, int, int, int]] = []
        self.version = [0] * nb
        self.cand_cmd = [-1] * nb
        self.cand_req: list[Request | None] = [None] * nb
        self.cand_floor = [0] * nb
        self.bypass = [0] * nb
        #: True between an ACT and the first column command to its row.
        self.fresh = [False] * nb
        self.last_col = [0] * nb
        #: Co-scheduling with PIM streams (``controller.pim_arbiter``): banks a PIM unit holds
        #: are off limits to this scheduler.  ``horizon``: nothing is decided at or after this
        #: cycle, closed-form runs included: the PIM side's next proposal, or a cycle at which
        #: a requester may submit new work (a request callback may lower it mid-run, e.g. when
        #: the completion it reports will make the full-system model issue more transfers).
        self.held = [False] * nb
        self.horizon = INF
        #: Co-scheduling: does another source still have work on a rank?  Such a rank is busy
        #: for refresh (its REFs are postponed like a busy host rank's).
        self.external_busy: Callable[[int], bool] | None = None
        #: Co-scheduling: a PIM scheduler that can propose nothing waits for this controller
        #: to empty a queue of (or close) one of the ``watched`` banks, to switch between
        #: reads and writes, or to change a refresh flag.  While ``watching``, the first such
        #: event at cycle t lowers ``horizon`` to t + 1: the host runs in closed form up to
        #: exactly the cycle after which the PIM side must look again, where it would
        #: otherwise be stepped one event at a time (``pim_arbiter``).
        self.watching = False
        self.watched = [False] * nb
        #: Bumped whenever a bank closes, a bank's queue empties or the queue being served
        #: switches: what lets a PIM scheduler know its ``may_close`` answers may have changed.
        self.releases = 0
        self._watch_list: list[int] = []
        self.rank_queued = [0] * cfg.org.ranks
        self.refresh = RefreshManager(cfg.org.ranks, t.tREFI, c.max_postponed_refreshes, c.refresh)
        self.refresh_due = self.refresh.next_check(0)
        self.read_latency_cycles = t.AL + t.CL + cfg.org.burst_length // 2
        self.write_latency_cycles = t.AL + t.CWL + cfg.org.burst_length // 2
        # statistics
        self.cmd_counts = [0] * NCMD
        self.read_latency = LatencyHistogram()
        self.write_latency = LatencyHistogram()
        #: Requests completed (a bulk request counts once) and bursts (column commands) served.
        self.reads_done = 0
        self.writes_done = 0
        self.read_bursts = 0
        self.write_bursts = 0
        #: Closed-form shortcuts taken: a bulk head's bursts issued as one arithmetic progression
        #: (single stream), and whole periods of an interleaved multi-stream run skipped.
        self.bulk_jumps = 0
        self.periodic_jumps = 0
        #: Per column command kind, the leaders' merge cycle from each relative state seen
        #: (a few hundred states at most: the gaps are fixed).
        self._cycles: list[dict[int, _Cycle]] = [{} for _ in range(NCMD)]
        #: Runs that served an FR-FCFS bypass hit (a younger hit past a missing head) as a
        #: stream: without them such a hit would end every run at its own next burst.
        self.bypass_streams = 0
        #: Scheduler decisions taken (admission batches, refresh checks, commands or runs):
        #: the simulation's cost, which bulk requests keep proportional to rows, not bursts.
        self.events = 0
        #: What :meth:`next_event` would answer right after :meth:`run_until` stopped at its
        #: limit (valid until anything changes: an arbiter reads it instead of asking again).
        self.next_at = 0
        self.last_done = 0
        #: Column commands that were the first to their row after its ACT (row-buffer misses).
        self.row_misses = 0
        #: Spacing of back-to-back same-type column commands to one bank: their own rule.
        upd = self.dev.updates
        self.run_gap_bg = [max([1] + [g for lvl in upd[c][:2] for n, g in lvl if n == c])
                           for c in range(NCMD)]
        self.run_gap_rank = [max([1] + [g for n, g in upd[c][2] if n == c]) for c in range(NCMD)]
        self.run_gap_pre = [max([1] + [g for n, g in upd[c][0] if n == PRE]) for c in range(NCMD)]
        #: Row commands (ACT/PRE) to banks outside a run are issued inside it when a column
        #: command of the run's type delays them only through the command bus (the timing
        #: table says so for DDR4: RD/WR gate a PRE of their own bank only).
        self.run_row_inline = [all(n not in (ACT, PRE) for lvl in upd[c][1:] for n, _ in lvl)
                               for c in range(NCMD)]
        self.row_commands_in_runs = 0
        #: Requests admitted inside a run that were not another hit for one of its streams.
        self.admissions_in_runs = 0
        #: Idle-gap fast path (:meth:`_skip_idle_refreshes`): only with no command stream to
        #: write, since the skipped REFs are counted, not emitted one by one.
        self.skip_idle = sink is None
        self._idle_mark = -1
        self._idle_others = -1
        #: Whole tREFI periods of an idle gap accounted in closed form.
        self.idle_periods_skipped = 0

    # ------------------------------------------------------------------ requests in
    def submit(self, req: Request) -> None:
        """Offer a request; it is admitted at ``max(req.arrival, now)`` once its queue has room.

        Requests must be submitted in non-decreasing arrival order (their age stamps, given at
        construction, order them for the scheduler).
        """
        self.pending.append(req)

    def submit_many(self, reqs: Iterable[Request]) -> None:
        self.pending.extend(reqs)

    @property
    def queued(self) -> int:
        return self.reads + self.writes

    @property
    def busy(self) -> bool:
        return bool(self.pending) or self.reads + self.writes > 0

    def _next_admission(self) -> int:
        if not self.pending:
            return INF
        head = self.pending[0]
        if head.is_write:
            if self.writes >= self.write_cap:
                return INF
        elif self.reads >= self.read_cap:
            return INF
        return head.arrival if head.arrival > self.now else self.now

    def _admit_ready(self) -> None:
        pending = self.pending
        now = self.now
        cand_cmd = self.cand_cmd
        fresh = self.fresh
        touched: list[int] = []
        admitted = False
        while pending:
            req = pending[0]
            if req.arrival > now:
                break
            if req.is_write:
                if self.writes >= self.write_cap:
                    break
                self.writes += 1
                self.write_q[req.bank].append(req)
                if self.fcfs:
                    self.order_w.append(req)
            else:
                if self.reads >= self.read_cap:
                    break
                self.reads += 1
                self.read_q[req.bank].append(req)
                if self.fcfs:
                    self.order_r.append(req)
            pending.popleft()
            req.admitted = now
            self.rank_queued[req.rank] += 1
            admitted = True
            # The youngest request can change its bank's choice only if the bank had none,
            # was about to precharge (the newcomer may hit the open row), or has a fresh row.
            b = req.bank
            c = cand_cmd[b]
            if c < 0 or c == PRE or fresh[b]:
                touched.append(b)
        if admitted and not self._update_mode():
            if self.fcfs:
                self._rebuild()
            else:
                for b in set(touched):
                    self._refresh_candidate(b)

    # ------------------------------------------------------------------ candidates
    def _update_mode(self) -> bool:
        """Switch between serving reads and draining writes; True if it switched (and rebuilt)."""
        if not drain_flips(self.draining, self.reads, self.writes, self.drain_forced, self.high,
                           self.low):
            return False
        self.draining = not self.draining
        self.drain_forced = self.draining and self.writes >= self.high
        self.releases += 1  # the queue being served changed for every bank
        self._rebuild()
        if self.watching:
            self._watch_hit(self.now)
        return True

    def _rebuild(self) -> None:
        for b in range(self.nbanks):
            self._refresh_candidate(b)

    def _refresh_candidate(self, b: int) -> None:
        """Recompute bank ``b``'s candidate command and push it (stale entries die by version)."""
        self.version[b] += 1
        cmd, req, prio, floor = self._choose(b)
        self.cand_cmd[b] = cmd
        self.cand_req[b] = req
        self.cand_floor[b] = floor
        if cmd < 0:
            return
        key = self._due(b)
        seq = req.seq if req is not None else -1
        heapq.heappush(self.heap, (key, prio, seq, b, self.version[b]))

    def _choose(self, b: int) -> tuple[int, Request | None, int, int]:
        if self.held[b]:
            return -1, None, 0, 0
        dev = self.dev
        rank = b // dev.banks_per_rank
        row = dev.open_row[b]
        if self.refresh.refreshing[rank]:
            if row >= 0:
                return PRE, None, _PRIO_REFRESH, 0
            if b == rank * dev.banks_per_rank and self._rank_closed(rank):
                return REF, None, _PRIO_REFRESH, 0
            return -1, None, 0, 0
        q = self.write_q[b] if self.draining else self.read_q[b]
        if self.fcfs:
            order = self.order_w if self.draining else self.order_r
            if not order or order[0].bank != b:
                return -1, None, 0, 0
            head = order[0]
            if row == head.row:
                return (WR if head.is_write else RD), head, _PRIO_HIT, 0
            return (PRE if row >= 0 else ACT), head, _PRIO_MISS, 0
        if not q:
            if self.fresh[b] and row >= 0:
                other = self.read_q[b] if self.draining else self.write_q[b]
                for req in other:
                    if req.row == row:
                        return (WR if req.is_write else RD), req, _PRIO_HIT, 0
            if self.adaptive and row >= 0 and not self.read_q[b] and not self.write_q[b]:
                return PRE, None, _PRIO_IDLE, self.last_col[b] + self.idle_close
            return -1, None, 0, 0
        if row >= 0:
            if self.fresh[b]:
                # a row activated for a request serves it before anything closes it
                for other in (self.read_q[b], self.write_q[b]):
                    for req in other:
                        if req.row == row:
                            return (WR if req.is_write else RD), req, _PRIO_HIT, 0
            head = q[0]
            if head.row == row:
                return (WR if head.is_write else RD), head, _PRIO_HIT, 0
            if self.bypass[b] < self.cap:
                for req in q:
                    if req.row == row:
                        return (WR if req.is_write else RD), req, _PRIO_HIT, 0
            return PRE, head, _PRIO_MISS, 0
        return ACT, q[0], _PRIO_MISS, 0

    def _rank_closed(self, rank: int) -> bool:
        first = rank * self.dev.banks_per_rank
        rows = self.dev.open_row
        return all(rows[i] < 0 for i in range(first, first + self.dev.banks_per_rank))

    def _peek(self) -> int:
        """Exact issue cycle of the winning candidate (left at the heap top), or INF."""
        heap = self.heap
        dev = self.dev
        version = self.version
        now = self.now
        cand_cmd = self.cand_cmd
        bank_next, bg_next, rank_next = dev.bank_next, dev.bg_next, dev.rank_next
        bpg, bpr = dev.banks_per_group, dev.banks_per_rank
        rekeyed = 0
        while heap:
            key, prio, seq, b, ver = heap[0]
            if ver != version[b]:
                heapq.heappop(heap)
                continue
            # dev.earliest(), inlined: this is the scheduler's innermost loop
            cmd = cand_cmd[b]
            e = bank_next[b * NCMD + cmd]
            v = bg_next[(b // bpg) * NCMD + cmd]
            if v > e:
                e = v
            v = rank_next[(b // bpr) * NCMD + cmd]
            if v > e:
                e = v
            if dev.cmd_bus_next > e:
                e = dev.cmd_bus_next
            if cmd == ACT:
                acts = dev.faw[b // bpr]
                if len(acts) == dev.faw_count:
                    v = acts[0] + dev.faw_window
                    if v > e:
                        e = v
            floor = self.cand_floor[b]
            if floor > e:
                e = floor
            if e < now:
                e = now
            if e > key:
                rekeyed += 1
                if rekeyed == 2 and len(heap) > _REKEY_ALL:
                    self._rekey_all()  # (a command moved most keys: cheaper all at once)
                else:
                    heapq.heapreplace(heap, (e, prio, seq, b, ver))
                continue
            return e
        return INF

    def _due(self, b: int) -> int:
        """Exact issue cycle of bank ``b``'s candidate: its earliest legal cycle, its floor and
        the clock (what :meth:`_peek` computes inline for the heap's top)."""
        e = self.dev.earliest(self.cand_cmd[b], b)
        floor = self.cand_floor[b]
        if floor > e:
            e = floor
        if e < self.now:
            e = self.now
        return e

    def _rekey_all(self) -> None:
        """Key every live candidate by its exact earliest cycle and drop stale entries, in one
        pass and one heapify.  A column command moves the rank's column timing, the bus and the
        clock for every candidate, and :meth:`_peek` would re-key them one ``heapreplace`` at a
        time before the top is exact; here each costs one tuple and the heapify's few compares.
        Keys only grow to their exact values, so they stay lower bounds for every reader."""
        version = self.version
        keyed: list[tuple[int, int, int, int, int]] = []
        for entry in self.heap:
            key, prio, seq, b, ver = entry
            if ver != version[b]:
                continue
            e = self._due(b)
            keyed.append((e, prio, seq, b, ver) if e > key else entry)
        heap = self.heap
        heap[:] = keyed  # (in place: callers hold the list)
        heapq.heapify(heap)

    # ------------------------------------------------------------------ main loop
    def next_event(self) -> int:
        """Cycle of the next thing this controller will do (INF when idle)."""
        t = self._peek()
        a = self._next_admission()
        if a < t:
            t = a
        if self.refresh_due < t:
            t = self.refresh_due
        return t

    def run_until(self, limit: int, *, until_idle: bool = False) -> None:
        """Process every event at a cycle < ``limit`` (admissions, refresh checks, commands).

        With ``until_idle`` it also returns as soon as no request is pending or queued.
        """
        while True:
            if until_idle and not self.pending and self.reads + self.writes == 0:
                return
            t_cmd = self._peek()
            t_arr = self._next_admission()
            t_ref = self.refresh_due
            t = t_cmd if t_cmd < t_arr else t_arr  # (builtin min() of three is a generic call
            if t_ref < t:                            # under mypyc)
                t = t_ref
            lim = limit if limit < self.horizon else self.horizon
            if t >= lim:
                if lim > self.now and lim < INF:
                    self.now = lim
                self.next_at = t
                return
            self.now = t
            self.events += 1
            if t_arr <= t:
                self._admit_ready()
                continue
            if t_ref <= t:
                if self.skip_idle and self.reads + self.writes == 0 and \
                        self._skip_idle_refreshes(t, t_arr if t_arr < lim else lim):
                    continue
                self.refresh_due = self.refresh.next_check(t)
                self._refresh_check()
                continue
            self._issue_top()

    def drain(self) -> int:
        """Run until every submitted request completed; return the last completion cycle."""
        self.run_until(INF, until_idle=True)
        return self.last_done

    # ------------------------------------------------------------------ co-scheduling
    def hold(self, b: int, held: bool) -> None:
        """Give bank ``b`` to (or take it back from) another command source, e.g. a PIM unit."""
        if self.held[b] != held:
            self.held[b] = held
            self._refresh_candidate(b)

    def external_issued(self, cmd: int, b: int) -> None:
        """Another source issued ``cmd`` to bank ``b`` on this channel's device.

        Timing needs nothing: heap keys are lower bounds and every winner's exact earliest
        cycle is asked of the shared device.  Row state does: a candidate chosen for the old
        open row is recomputed, and during a refresh the rank's REF may have become possible.
        """
        if cmd in (ACT, PRE):
            self.fresh[b] = False  # a row the host opened is gone (or was never the host's)
            self.bypass[b] = 0
            rank = b // self.dev.banks_per_rank
            if self.refresh.refreshing[rank]:
                self._rebuild_rank(rank)
            else:
                self._refresh_candidate(b)

    # ------------------------------------------------------------------ interleaving
    def stream_window(self, limit: int, streams: list[int]) -> int:
        """For an arbiter that interleaves another command source with this controller's bulk
        streams burst by burst (``SharedChannel._interleave``): fill ``streams`` with the banks
        whose candidate a plain burst serves without changing any choice, and return the first
        cycle at which anything else could happen here (at most ``limit``; -INF, no streams,
        under FCFS or while a read/write switch is due).

        Such a candidate is a column hit of the mode being served for the head of its queue
        (on a fresh row too: the head being a hit, it is also what the fresh row serves first)
        with at least two bursts left (a request's last burst completes it: callbacks, queue
        changes).  Issuing one of its bursts changes no queue count, mode or candidate, which
        is what the scheduler would re-evaluate after it.  The window ends at the exact earliest
        cycle of every other candidate (timing only rises, so it stays a lower bound), the next
        admission, the next refresh check and ``limit``; before it, the scheduler issues only
        these streams' bursts, each at its exact earliest cycle, oldest first on ties
        (:meth:`next_stream_burst`).
        """
        if self.fcfs or drain_flips(self.draining, self.reads, self.writes, self.drain_forced,
                                    self.high, self.low):
            return -INF
        end = limit
        v = self._next_admission()
        if v < end:
            end = v
        if self.refresh_due < end:
            end = self.refresh_due
        dev = self.dev
        version = self.version
        cand_cmd = self.cand_cmd
        cand_req = self.cand_req
        hit = WR if self.draining else RD
        queues = self.write_q if self.draining else self.read_q
        refreshing = self.refresh.refreshing
        bpr = dev.banks_per_rank
        for key, _prio, _seq, b, ver in self.heap:
            if ver != version[b] or key >= end:
                continue  # stale, or due no earlier than the window's end anyway
            c = cand_cmd[b]
            if c == hit and not refreshing[b // bpr]:
                req = cand_req[b]
                q = queues[b]
                if req is not None and q and q[0] is req and req.ncols - req.served > 1:
                    streams.append(b)
                    continue
            e = self._due(b)
            if e < end:
                end = e
        return end

    def next_stream_burst(self, streams: list[int]) -> tuple[int, int]:
        """(cycle, bank) of the streams' next burst as the scheduler picks it: the earliest
        legal one, oldest request first on ties; (INF, -1) once one of them is down to its last
        burst (which the scheduler's own path issues)."""
        dev = self.dev
        cand_cmd = self.cand_cmd
        cand_req = self.cand_req
        now = self.now
        best_t = INF
        best_seq = INF
        best_b = -1
        for b in streams:
            req = cand_req[b]
            assert req is not None
            if req.ncols - req.served < 2:
                return INF, -1
            e = dev.earliest(cand_cmd[b], b)
            if e < now:
                e = now
            if e < best_t or (e == best_t and req.seq < best_seq):
                best_t, best_seq, best_b = e, req.seq, b
        return best_t, best_b

    def issue_stream_burst(self, b: int, t: int) -> None:
        """Issue bank ``b``'s stream burst at ``t`` (from :meth:`next_stream_burst`): what
        :meth:`run_until` and :meth:`_issue_column` do for it.  Its heap entry stays: the
        candidate is the same, and its old key is still a lower bound."""
        req = self.cand_req[b]
        assert req is not None
        self.now = t
        self.events += 1
        self._burst(b, self.cand_cmd[b], req, t)
        self.last_col[b] = t

    def watch(self, banks: list[int]) -> None:
        """Start watching ``banks`` (see ``watching``); :meth:`unwatch` ends it."""
        watched = self.watched
        for b in banks:
            watched[b] = True
        self._watch_list = banks
        self.watching = True

    def unwatch(self) -> None:
        watched = self.watched
        for b in self._watch_list:
            watched[b] = False
        self._watch_list = []
        self.watching = False

    def _watch_hit(self, t: int) -> None:
        """A watched event happened at cycle ``t``: decide nothing after that cycle."""
        if t + 1 < self.horizon:
            self.horizon = t + 1

    def _bank_released(self, b: int, t: int) -> None:
        """Bank ``b`` closed, or its queue emptied, at cycle ``t``: a watched event if ``b``
        is watched (and counted in ``releases``)."""
        self.releases += 1
        if self.watching and self.watched[b]:
            self._watch_hit(t)

    # ------------------------------------------------------------------ refresh
    def _rank_idle(self, rank: int) -> bool:
        """Nothing queued for the rank, here or (co-scheduling) at another source."""
        return self.rank_queued[rank] == 0 and self._ext_idle(rank)

    def _ext_idle(self, rank: int) -> bool:
        return self.external_busy is None or not self.external_busy(rank)

    def _refresh_check(self) -> None:
        for rank in range(len(self.rank_queued)):
            idle = self._rank_idle(rank)
            if self.refresh.should_start(rank, self.now, idle):
                self._start_refresh(rank, self.now)

    def _skip_idle_refreshes(self, t: int, until: int) -> bool:
        """Idle-gap fast path: account whole tREFI periods of an idle gap in closed form.

        At a refresh check at ``t`` (a tREFI boundary), when nothing is queued, every bank is
        closed, no rank is refreshing, each rank owes exactly one REF and the device allows a
        REF at ``t`` (no timing from the past reaches beyond ``t``), the next period is the
        previous one translated by tREFI: each rank refreshes once at the same offset.  Once
        that state held at two consecutive boundaries with only REFs between them, every
        period up to ``until`` (the next admission or the run's limit) is the same, so ``k`` of
        them are counted (REFs issued, last REF, largest gap = tREFI) and the clock jumps to the
        boundary after them, which is simulated as usual.  The device's timing state needs no
        update: the REFs of that boundary raise it to exactly what the skipped ones would have
        left (timing state only rises).  Without the fast path an idle gap costs a few events per
        tREFI (a request at cycle 10^18 would never finish); with it, two periods.
        """
        ref = self.refresh
        period = ref.tREFI
        dev = self.dev
        bpr = dev.banks_per_rank
        others = sum(self.cmd_counts) - self.cmd_counts[REF]
        steady = (ref.enabled and self.horizon >= INF and self.external_busy is None
                  and not self.watching and not any(ref.refreshing)
                  and all(row < 0 for row in dev.open_row))
        if steady:
            for rank in range(dev.ranks):
                if t // period - ref.issued[rank] != 1 or dev.earliest(REF, rank * bpr) > t:
                    steady = False
                    break
        if not steady:
            self._idle_mark = -1
            return False
        k = (until - t) // period
        if self._idle_mark != t - period or self._idle_others != others or k < 1:
            self._idle_mark = t
            self._idle_others = others
            return False
        for rank in range(dev.ranks):
            ref.issued[rank] += k
            ref.last_ref[rank] += k * period
            if period > ref.gaps_max[rank]:
                ref.gaps_max[rank] = period
        self.cmd_counts[REF] += k * dev.ranks
        self.refresh_due = t + k * period
        self._idle_mark = self.refresh_due - period
        self.idle_periods_skipped += k
        self.events += 1
        return True

    def _start_refresh(self, rank: int, t: int) -> None:
        """Rank ``rank`` begins a refresh at cycle ``t``: every bank's candidate changes (PREs,
        then the REF), and a PIM scheduler watching for refresh flags must look again."""
        self.refresh.refreshing[rank] = True
        self._rebuild_rank(rank)
        if self.watching:
            self._watch_hit(t)

    def _rebuild_rank(self, rank: int) -> None:
        bpr = self.dev.banks_per_rank
        for b in range(rank * bpr, (rank + 1) * bpr):
            self._refresh_candidate(b)

    # ------------------------------------------------------------------ issuing
    def _issue_top(self) -> None:
        _, _, _, b, _ = heapq.heappop(self.heap)
        cmd = self.cand_cmd[b]
        req = self.cand_req[b]
        if cmd in (RD, WR):
            assert req is not None  # a column candidate always serves a request
            if self.batch_runs and self._room_for_run(cmd) and self._runs_on(b, req):
                self._issue_run(b, cmd, req)
            else:
                self._issue_column(b, cmd, req)
            return
        t = self.now
        dev = self.dev
        rank = b // dev.banks_per_rank
        if cmd == ACT:
            assert req is not None  # an ACT always opens a row for a request
            row = req.row
            dev.issue(ACT, b, t, row)
            self.bypass[b] = 0
            self.fresh[b] = True
            self._emit(ACT, b, row, -1, t)
            self._refresh_candidate(b)
        elif cmd == PRE:
            row = dev.open_row[b]
            dev.issue(PRE, b, t)
            self.bypass[b] = 0
            self._emit(PRE, b, row, -1, t)
            self._refresh_candidate(b)
            self._bank_released(b, t)
            first = rank * dev.banks_per_rank
            if self.refresh.refreshing[rank] and b != first:
                # closing the rank's last open bank makes its REF (the first bank's
                # candidate) possible; no other bank's candidate depends on this one
                self._refresh_candidate(first)
        else:  # REF
            dev.issue(REF, b, t)
            self.refresh.record(rank, t)
            self._emit(REF, b, -1, -1, t)
            idle = self._rank_idle(rank)
            if not self.refresh.should_continue(rank, t, idle):
                self.refresh.refreshing[rank] = False
            self._rebuild_rank(rank)
            if self.watching:
                self._watch_hit(t)

    def _room_for_run(self, cmd: int) -> bool:
        """Could a run issue a few column commands (``_RUN_MIN_SLOTS`` slots of the rank)
        before it must stop?  Not when the horizon (the next event of a co-scheduled PIM unit,
        or a requester's next submission) or the refresh deadline comes sooner: the run would
        be one to a few commands, and setting it up costs more than issuing them one by one
        (with PIM active that is most host commands).  Either way the commands are the same;
        this only picks the cheaper path."""
        lim = self.horizon if self.horizon < self.refresh_due else self.refresh_due
        return lim - self.now > _RUN_MIN_SLOTS * self.run_gap_rank[cmd]

    def _runs_on(self, b: int, req: Request) -> bool:
        """Worth a closed-form run: ``req`` heads its queue and another hit follows it (one of
        its own remaining bursts, or another request).

        Under FCFS or the closed-page policy a run covers only bulk heads' bursts before their
        last one (the last may be an RDA/WRA, and FCFS's next request may live in another bank),
        so it is taken only when ``req`` has at least two of those left.
        """
        q = self.write_q[b] if self.draining else self.read_q[b]
        if not q:
            return False
        if q[0] is not req:  # a younger hit bypassing a missing head (FR-FCFS, open pages)
            return (not (self.fcfs or self.closed_page) and not self.fresh[b]
                    and req.ncols - req.served > 1)
        if self.fcfs or self.closed_page:
            return req.ncols - req.served > 2
        if req.ncols - req.served > 1:
            return True
        if len(q) > 1:
            return q[1].row == req.row
        p = self.pending
        return bool(p) and p[0].bank == b and p[0].row == req.row

    def _column_cmd(self, b: int, cmd: int, req: Request) -> int:
        """RD/WR, or RDA/WRA when the closed-page policy finds no other request for the row
        (only ever on a request's last burst: a bulk request keeps its row open until then)."""
        if not self.closed_page or req.served + 1 < req.ncols:
            return cmd
        row = req.row
        for q in (self.read_q[b], self.write_q[b]):
            for other in q:
                if other is not req and other.row == row:
                    return cmd
        return cmd + 1

    def _issue_column(self, b: int, cmd: int, req: Request) -> None:
        t = self.now
        cmd = self._column_cmd(b, cmd, req)
        self._burst(b, cmd, req, t)
        if cmd in (RDA, WRA):
            self._bank_released(b, t)
        if req.served == req.ncols:
            self._complete(b, req, t)
        else:  # a bulk request keeps its queue slot (and place) until its last burst
            self.last_col[b] = t
        if not self._update_mode():
            self._refresh_candidate(b)
            if self.fcfs:  # the next oldest request may live in another bank
                order = self.order_w if self.draining else self.order_r
                if order and order[0].bank != b:
                    self._refresh_candidate(order[0].bank)

    def _burst(self, b: int, cmd: int, req: Request, t: int) -> None:
        """One column command of ``req`` at ``t`` (its queue and candidate are the caller's):
        the device, the row-miss count of a fresh row, the sink, the request's progress."""
        dev = self.dev
        row = dev.open_row[b]  # (before the device closes it for an RDA/WRA)
        dev.issue(cmd, b, t, row)
        if self.fresh[b]:
            self.row_misses += 1
            self.fresh[b] = False
        self._emit(cmd, b, row, req.col + req.served, t)
        req.served += 1
        if req.is_write:
            self.write_bursts += 1
        else:
            self.read_bursts += 1

    def _issue_run(self, b0: int, cmd: int, req0: Request) -> None:
        """Issue ``req0`` and, in closed form, the row hits that follow it (a *run*).

        A run is every column command of one type (RD or WR) that the scheduler would issue to
        open rows of one rank before ``limit``: the lowest key of any other candidate, the next
        refresh deadline, or the admission of a request that is not another hit for a row in the
        run.  Inside that window the commands constrain each other only through their own rules
        (tCCD_L in a bank group, tCCD_S across groups, one command per clock); every other rule
        was met when the run began.  So a small merge loop over the hit streams, earliest first
        and oldest on ties, gives exactly the per-command scheduler's cycles.  Timing updates
        are maxima, so the device is then updated once per bank, with its last command.  Tests
        compare whole command streams issued both ways.

        A stream is a bank's queue head, or (open pages, FR-FCFS) a *virtual* stream: the
        younger hit the scheduler serves while the bank's head misses the open row (a bypass),
        on a one-request queue of its own; when it completes, the bank counts the bypass and
        its next candidate (another bypass hit within the cap, else a PRE) follows the same
        rules as :meth:`_choose`.  Without them such a hit bounded every run at its own next
        burst, and DMA traffic, full of them, ran a few bursts per run.

        Row commands inside runs (open pages): the first other candidate bounds the run unless
        it is an ACT or PRE, which the run's column commands delay only through the command
        bus (checked on the timing table, ``run_row_inline``).  Such a command is issued inside
        the run when it falls due before the run's next burst (:meth:`_inline_row`), and a
        stream whose bank needs a PRE *retires*: its PRE joins the candidates like any other.
        After either, the heap is scanned again: the next candidate bounds the run, and new
        hits of the run's kind (a row just opened) join it as streams.  A run so spans many
        rows of a DMA sweep instead of ending at every row command.

        Bulk heads make the loop's cost independent of their length: with one stream, a head's
        remaining bursts are an arithmetic progression (see :meth:`_run_single`); with several,
        the merge soon becomes periodic and whole periods are skipped (:meth:`_cycle_jump`).
        """
        version = self.version
        dev = self.dev
        bpr = dev.banks_per_rank
        bpg = dev.banks_per_group
        rank = b0 // bpr
        is_write = cmd == WR
        queues = self.write_q if is_write else self.read_q
        cand_cmd = self.cand_cmd
        cand_req = self.cand_req
        # -- the streams: the winner plus other head hits of the same kind waiting in the heap
        limit = self.refresh_due if self.refresh_due < self.horizon else self.horizon
        streams = [b0]
        keys: dict[int, int] = {}  # the other streams' heap keys (lower bounds of their issue)
        now = self.now
        # FR-FCFS bypass hits (a younger hit served while the bank's head misses) are streams
        # too, on a one-request queue of their own: *virtual* streams (open pages only; not
        # while a fresh row may still pick from the other queue)
        bypassing = not (self.fcfs or self.closed_page)
        fresh = self.fresh
        virtual_banks: set[int] = set()
        if queues[b0][0] is not req0:
            virtual_banks.add(b0)
        top = self._collect_streams(cmd, rank, queues, bypassing, streams, keys, virtual_banks)
        # the first other candidate bounds the run (``limit``), unless it is a row command the
        # run may issue itself when it is due (``f_at``; open pages only, see _inline_row)
        inline = bypassing and self.run_row_inline[cmd]
        f_at = INF
        if top is not None:
            if inline and top[1] != _PRIO_REFRESH and cand_cmd[top[3]] in (ACT, PRE):
                f_at = top[0]
            elif top[0] < limit:
                limit = top[0]
        for b in streams:
            version[b] += 1  # their heap entries are consumed; re-pushed after the run
        if len(streams) == 1 and not virtual_banks:
            self._run_single(b0, cmd, req0, limit if limit < f_at else f_at, rank)
            return
        n = len(streams)
        s_q: list[deque[Request]] = [_alone(cand_req[b]) if b in virtual_banks else queues[b]
                                     for b in streams]
        if b0 in virtual_banks:
            s_q[0] = _alone(req0)
        virtual = [b in virtual_banks for b in streams]
        self.bypass_streams += len(virtual_banks)
        cap = self.cap
        bypass = self.bypass
        s_row = [dev.open_row[b] for b in streams]
        s_start = [max(dev.earliest(cmd, b), now) for b in streams]
        s_start[0] = now
        s_bg = [(b // bpg) % dev.bankgroups for b in streams]
        other_q = self.read_q if is_write else self.write_q
        s_last = [-INF] * n
        index = {b: k for k, b in enumerate(streams)}
        last_in_bg = [-INF] * dev.bankgroups
        gap_bg = self.run_gap_bg[cmd]
        gap_rank = self.run_gap_rank[cmd]
        gap_pre = self.run_gap_pre[cmd]
        adaptive = self.adaptive
        idle_close = self.idle_close
        # FCFS / closed page: a head's last burst is left to the scheduler (it bounds the run),
        # and under FCFS every admission does (it must join the age order too)
        last_bound = self.fcfs or self.closed_page
        fcfs = self.fcfs
        last_rank = -INF
        pending = self.pending
        rcap, wcap = self.read_cap, self.write_cap
        emit = self._run_emitter(cmd, streams, s_row)
        live = list(range(n))  # streams that may still issue (not retired to a PRE)
        former: dict[int, int] = {}  # retired streams' banks -> their index (for a revival)
        rescan = False  # look for the next candidate to bound the run, and new streams
        flushed_at = -INF  # the device holds every run command up to this cycle
        last_inline = -INF  # the last row command issued inside the run
        lat = self.write_latency_cycles if is_write else self.read_latency_cycles
        latencies: list[int] = []
        n_r, n_w = self.reads, self.writes
        queued = self.rank_queued[rank]
        low, high, forced = self.low, self.high, self.drain_forced
        refresh = self.refresh
        done = 0
        issued = 0
        completed = 0
        admitted_in_run: list[Request] = []
        # Periodic fast-forward: while the heads and queues stay as they are (an *epoch*) and
        # it is steady, the streams that can still win (the leaders, oldest first), their age
        # stamps and the gate bounding them; whole periods of their merge are skipped.
        cycles = self._cycles[cmd]
        base = (gap_bg if gap_bg > gap_rank else gap_rank) + 1  # readiness digits
        steady: tuple[list[int], list[int], int] | None = None
        steady_at = -1  # the epoch cannot be steady before this cycle (-1: not known yet)
        t = now
        k = 0
        req = req0
        while True:
            # -- issue the next burst of req (head of stream k) at t
            served = req.served
            if emit is not None:
                emit(t, k, req.col + served)
            served += 1
            req.served = served
            issued += 1
            s_last[k] = t
            last_in_bg[s_bg[k]] = t
            last_rank = t
            if served == req.ncols:
                if virtual[k]:  # a bypass hit leaves its bank's queue; the bank counts it
                    bk = streams[k]
                    queues[bk].remove(req)
                    bypass[bk] += 1
                    s_q[k] = queues[bk]
                    virtual[k] = False
                else:
                    s_q[k].popleft()
                if not queues[streams[k]]:
                    self._bank_released(streams[k], t)
                    if self.horizon < limit:
                        limit = self.horizon
                completed += 1
                if is_write:
                    n_w -= 1
                else:
                    n_r -= 1
                queued -= 1
                done = t + lat
                latencies.append(done - req.admitted)
                req.done = done
                if req.callback is not None:
                    req.callback(req)
                    if self.horizon < limit:  # the callback foresees a new arrival
                        limit = self.horizon
            # -- a mode switch (write drain starts or ends) or a refresh ends the run here.
            # The scheduler re-evaluates the mode after every column command, and one switch
            # can leave the next one due (an opportunistic drain ended by reads arriving while
            # writes sit at the high watermark), so this is checked even when no head finished.
            if drain_flips(is_write, n_r, n_w, forced, high, low):
                break
            if served == req.ncols:
                if (queued == 0 and refresh.should_start(rank, t, True)
                        and self._ext_idle(rank)):
                    break
                qk = s_q[k]
                if qk and qk[0].row != s_row[k]:
                    if bypassing:
                        # the bank's next candidate: its first younger hit while the cap
                        # allows (a virtual stream from here), else a PRE (bounded below)
                        if bypass[streams[k]] < cap:
                            row_k = s_row[k]
                            for other in qk:
                                if other.row == row_k:
                                    s_q[k] = deque((other,))
                                    virtual[k] = True
                                    self.bypass_streams += 1
                                    break
                        if inline and not virtual[k]:
                            # retire it: its bank's PRE joins the heap as a candidate like
                            # any other, to be issued inside the run when it is due
                            self._flush_run(cmd, streams, s_row, s_last, flushed_at)
                            flushed_at = t
                            self._retire(k, t, streams, s_q, live, index, former)
                            rescan = True
                    else:
                        v = self._bypass_bound(streams[k], qk, s_row[k])
                        if v < INF:  # no earlier than the next burst to its bank group
                            e = last_in_bg[s_bg[k]] + gap_bg
                            v = max(v, e, s_start[k], t + gap_rank)
                            if v < limit:
                                limit = v
                steady, steady_at = None, -1
            elif last_bound and req.ncols - served == 1:
                # its last burst now bounds the run: the winners change, a new epoch begins
                steady, steady_at = None, -1
            else:
                # -- a bulk head continues: once the epoch is steady, skip whole periods
                if steady is None:
                    if steady_at < 0:
                        steady_at = self._steady_from(live, s_q, s_row, s_start, last_bound)
                    if t >= steady_at:
                        steady = self._steady_leaders(t, live, s_q, s_row, s_start, s_bg)
                if steady is not None:
                    # the leaders' readiness after this command, oldest first, as one int (a
                    # leading 1, then one digit of ``base`` each, above gap_rank): it decides
                    # every choice until the epoch ends (see _leader_cycle)
                    leaders = steady[0]
                    key = 1
                    for s in leaders:
                        v = last_in_bg[s_bg[s]] + gap_bg - t
                        key = key * base + (v - gap_rank if v > gap_rank else 0)
                    cyc = cycles.get(key)
                    if cyc is None:
                        ready: list[int] = []
                        for s in leaders:
                            v = last_in_bg[s_bg[s]] + gap_bg - t
                            ready.append(v if v > gap_rank else gap_rank)
                        cyc = _leader_cycle(ready, gap_bg, gap_rank)
                        cycles[key] = cyc
                    if cyc.period:
                        bound = limit if limit < f_at else f_at
                        if steady[2] < bound:  # a head past its gates then joins the leaders
                            bound = steady[2]
                        if pending:
                            p = pending[0]
                            full = n_w >= wcap if p.is_write else n_r >= rcap
                            if not full and p.arrival < bound:
                                bound = p.arrival
                        dt, dn = self._cycle_jump(cyc, t, leaders, bound, s_q, s_last,
                                                  last_in_bg, s_bg, emit,
                                                  2 if last_bound else 1)
                        if dn:
                            t += dt
                            issued += dn
                            last_rank = t
            # -- the next command: earliest ready stream head, oldest on ties
            floor_rank = t + gap_rank
            while True:
                if rescan:
                    # a row command was issued inside the run or a stream retired: the next
                    # candidate bounds the run, and new hits of the run's kind join it
                    rescan = False
                    found: list[int] = []
                    vb: set[int] = set()
                    top = self._collect_streams(cmd, rank, queues, bypassing, found, keys, vb)
                    f_at = INF
                    if top is not None:
                        if top[1] != _PRIO_REFRESH and cand_cmd[top[3]] in (ACT, PRE):
                            f_at = top[0]
                        elif top[0] < limit:
                            limit = top[0]
                    now_run = self.now
                    for b in found:
                        version[b] += 1
                        virt = b in vb
                        self.bypass_streams += virt
                        ks = former.pop(b, -1)
                        if ks < 0:
                            ks = len(streams)
                            streams.append(b)
                            s_q.append(deque())
                            s_row.append(-1)
                            s_start.append(0)
                            s_bg.append((b // bpg) % dev.bankgroups)
                            s_last.append(-INF)
                            virtual.append(False)
                        s_q[ks] = _alone(cand_req[b]) if virt else queues[b]
                        s_row[ks] = dev.open_row[b]
                        v = dev.earliest(cmd, b)
                        s_start[ks] = v if v > now_run else now_run
                        virtual[ks] = virt
                        index[b] = ks
                        live.append(ks)
                    # A row command alone changes no column command (it only takes a free
                    # bus cycle before the next one), and every other cause of a rescan began
                    # a new epoch already.  New streams (a row just opened) begin one, unless
                    # they cannot issue yet: the leaders stand until their gate.
                    if found:
                        gate = INF
                        for b in found:
                            ks = index[b]
                            v = _gate(s_q[ks], s_row[ks], s_start[ks])
                            if v < gate:
                                gate = v
                        if steady is not None and gate > t:
                            if gate < steady[2]:
                                steady = (steady[0], steady[1], gate)
                        else:
                            steady, steady_at = None, -1
                best_t = INF
                best_seq = INF
                best_k = -1
                if steady is not None:
                    # steady: a head is ready when its bank group is, and only the oldest
                    # head of each group can win (PRE bounds of the others are applied)
                    leaders, ages = steady[0], steady[1]
                    for j in range(len(leaders)):
                        s = leaders[j]
                        seq = ages[j]
                        e = last_in_bg[s_bg[s]] + gap_bg
                        if floor_rank > e:
                            e = floor_rank
                        if e < best_t or (e == best_t and seq < best_seq):
                            best_t, best_seq, best_k = e, seq, s
                    if best_t >= steady[2]:
                        # a head behind its gates may compete from its gate on: scan them
                        # all, and choose leaders again from then
                        steady_at = steady[2]
                        steady = None
                        best_t = INF
                        best_seq = INF
                        best_k = -1
                if steady is None:
                    for s in live:
                        qs = s_q[s]
                        if not qs or qs[0].row != s_row[s]:
                            # the bank's next candidate is a PRE: its exact earliest bounds the run
                            last_s = s_last[s]
                            if last_s > NO_CMD and (qs or (adaptive
                                                           and not other_q[streams[s]])):
                                v = last_s + gap_pre
                                if not qs and last_s + idle_close > v:
                                    v = last_s + idle_close
                                # (the device is updated only after the run: as at its start)
                                pre = dev.earliest(PRE, streams[s])
                                if pre > v:
                                    v = pre
                                if v < limit:
                                    limit = v
                            continue
                        head = qs[0]
                        e = s_start[s]
                        v = last_in_bg[s_bg[s]] + gap_bg
                        if v > e:
                            e = v
                        if floor_rank > e:
                            e = floor_rank
                        if head.admitted > e:
                            e = head.admitted
                        if last_bound and head.ncols - head.served == 1:
                            if e < limit:
                                limit = e
                            continue
                        if e < best_t or (e == best_t and head.seq < best_seq):
                            best_t, best_seq, best_k = e, head.seq, s
                # admissions up to that cycle come first; a foreign one bounds the run (one
                # that waits for room in a full queue cannot be admitted during the run)
                admitted = False
                # admissions come before commands of their cycle, and only up to the next one:
                # the run's next burst, or the row command bounding it if that is due first
                adm_by = best_t
                if f_at < adm_by:
                    e = t if t > last_inline else last_inline
                    e = e + 1 if e + 1 > f_at else f_at
                    if e < adm_by:
                        adm_by = e
                while pending:
                    head = pending[0]
                    a = head.arrival if head.arrival > t else t
                    if a > adm_by or a >= limit:
                        break
                    if n_w >= wcap if head.is_write else n_r >= rcap:
                        break
                    hk = index.get(head.bank, -1)
                    if fcfs or head.is_write != is_write or hk < 0 or head.row != s_row[hk]:
                        # not another hit for a stream: with open pages it is admitted in the
                        # run all the same, as the scheduler would, unless it switches the
                        # mode (reads/writes) or meets a fresh row (which picks from both
                        # queues: unless it joins a live stream's queue, where it can be no
                        # hit for that row), or the row command bounding the run is due first
                        if not inline:
                            limit = a
                            break
                        bk = head.bank
                        if (fresh[bk] and (hk < 0 or head.is_write != is_write)) or drain_flips(
                                is_write, n_r + (not head.is_write), n_w + head.is_write,
                                forced, high, low):
                            limit = a
                            break
                        pending.popleft()
                        head.admitted = a
                        qh = (self.write_q if head.is_write else self.read_q)[bk]
                        qh.append(head)
                        if head.is_write:
                            n_w += 1
                        else:
                            n_r += 1
                        if head.rank == rank:
                            queued += 1
                        else:
                            self.rank_queued[head.rank] += 1
                        admitted_in_run.append(head)
                        self.admissions_in_runs += 1
                        if hk >= 0:
                            # a live stream's bank: its head stays, unless the queue it serves
                            # was empty (a new head, to another row: the bank needs a PRE)
                            if head.is_write == is_write and len(qh) == 1:
                                self._flush_run(cmd, streams, s_row, s_last, flushed_at)
                                flushed_at = t
                                self._retire(hk, a, streams, s_q, live, index, former)
                                rescan = True
                        else:
                            c = cand_cmd[bk]
                            if c < 0 or c == PRE:  # what _admit_ready refreshes
                                self.now = a
                                self._refresh_candidate(bk)
                                rescan = True
                        admitted = True
                        steady, steady_at = None, -1
                        if rescan:
                            break  # a candidate changed: it may be due before the next one
                        continue
                    pending.popleft()
                    head.admitted = a
                    qh = queues[head.bank]  # a virtual stream's bank queue, too
                    if not qh:
                        admitted = True  # a new head: the choice may change
                        steady, steady_at = None, -1
                    # (behind a head it changes no choice until that head completes, which
                    # begins a new epoch; same-kind requests cannot switch reads and writes)
                    qh.append(head)
                    queued += 1
                    if is_write:
                        n_w += 1
                    else:
                        n_r += 1
                    admitted_in_run.append(head)
                if admitted:
                    continue
                # -- the row command bounding the run, if it is due before the next burst
                # (not once every request is served: a caller may stop at idle, e.g. drain())
                if f_at < limit and (best_k < 0 or f_at < best_t) and (n_r + n_w or pending):
                    e = t if t > last_inline else last_inline
                    e = e + 1 if e + 1 > f_at else f_at  # the run only delays it by the bus
                    if e < limit and (best_k < 0 or e < best_t):
                        if not self._inline_row(cmd, e, streams, s_row, s_last, flushed_at):
                            limit = e  # another candidate may come first: end the run here
                            break
                        if self.horizon < limit:  # a watched bank closed (co-scheduling)
                            limit = self.horizon
                        flushed_at = last_inline = e
                        self.row_commands_in_runs += 1
                        rescan = True
                        continue
                break
            if best_k < 0 or best_t >= limit:
                break
            t = best_t
            k = best_k
            req = s_q[k][0]
        self.reads, self.writes = n_r, n_w
        self.rank_queued[rank] = queued
        (self.write_latency if is_write else self.read_latency).add_many(latencies)
        if is_write:
            self.writes_done += completed
            self.write_bursts += issued
        else:
            self.reads_done += completed
            self.read_bursts += issued
        rows = dict(zip(streams, s_row, strict=True))
        # streams flushed to the device inside the run are done with (their fresh rows too)
        last_of = {b: s_last[k] for k, b in enumerate(streams) if s_last[k] > flushed_at}
        idle = {streams[k]: keys[streams[k]] for k in live if k and s_last[k] == -INF}
        self._commit_run(cmd, rank, streams, rows, last_of,
                         last_rank if last_rank > last_inline else last_inline, done, issued,
                         admitted_in_run, idle)

    def _collect_streams(self, cmd: int, rank: int, queues: list[deque[Request]],
                         bypassing: bool, streams: list[int], keys: dict[int, int],
                         virtual_banks: set[int]) -> tuple[int, int, int, int, int] | None:
        """Pop the heap's hits of kind ``cmd`` on ``rank`` (queue heads, and bypass hits as
        virtual streams when ``bypassing``) into ``streams`` until the first other candidate;
        return that one's entry, left on top with its exact earliest cycle as key (or None)."""
        heap = self.heap
        version = self.version
        cand_cmd = self.cand_cmd
        cand_req = self.cand_req
        fresh = self.fresh
        dev = self.dev
        bpr = dev.banks_per_rank
        while heap:
            key, prio, seq, b, ver = heap[0]
            if ver != version[b]:
                heapq.heappop(heap)
                continue
            if cand_cmd[b] == cmd and b // bpr == rank and queues[b]:
                if cand_req[b] is queues[b][0]:
                    heapq.heappop(heap)
                    streams.append(b)
                    keys[b] = key
                    continue
                if bypassing and not fresh[b]:
                    heapq.heappop(heap)
                    streams.append(b)
                    keys[b] = key
                    virtual_banks.add(b)
                    continue
            # another command bounds the run: by its exact earliest cycle, not a stale key
            # (timing only grows, so the run cannot make it earlier)
            e = dev.earliest(cand_cmd[b], b)
            if self.cand_floor[b] > e:
                e = self.cand_floor[b]
            if e > key:
                heapq.heapreplace(heap, (e, prio, seq, b, ver))
                continue
            return heap[0]
        return None

    def _retire(self, k: int, at: int, streams: list[int], s_q: list[deque[Request]],
                live: list[int], index: dict[int, int], former: dict[int, int]) -> None:
        """Take stream ``k`` out of a run at cycle ``at``: its bank wants a PRE, which joins
        the candidates (the caller has flushed the run's commands to the device)."""
        b = streams[k]
        live.remove(k)
        del index[b]
        former[b] = k
        s_q[k] = deque()
        self.now = at
        self._refresh_candidate(b)

    def _flush_run(self, cmd: int, streams: list[int], s_row: list[int], s_last: list[int],
                   since: int) -> None:
        """Bring the device up to date with a run's column commands after cycle ``since`` (each
        bank's last one, in time order; earlier ones are already there)."""
        dev = self.dev
        fresh = self.fresh
        for tb, k in sorted((tb, k) for k, tb in enumerate(s_last) if tb > since):
            b = streams[k]
            dev.issue(cmd, b, tb, s_row[k])
            self.last_col[b] = tb
            if fresh[b]:
                self.row_misses += 1
                fresh[b] = False

    def _inline_row(self, cmd: int, t: int, streams: list[int], s_row: list[int],
                    s_last: list[int], since: int) -> bool:
        """Issue the heap's top candidate, an ACT or PRE, at cycle ``t`` inside a run.

        The run found it due at ``t``, before its own next burst; ``t`` is its exact earliest
        cycle, or the first free bus cycle.  Every other candidate is due no earlier (the heap
        is ordered by lower bounds, and the run delays row commands only through the bus), so
        it is the command the scheduler issues then, unless another one ties at ``t`` and wins
        the tie (hits first, then age), or might: then nothing is issued and False returned.
        """
        heap = self.heap
        entry = heapq.heappop(heap)
        version = self.version
        cand_cmd = self.cand_cmd
        dev = self.dev
        mine = (entry[1], entry[2], entry[3])  # the heap's order after the cycle
        ties: list[tuple[int, int, int, int, int]] = []
        ok = True
        while heap:
            key, prio, seq, b, ver = heap[0]
            if ver != version[b]:
                heapq.heappop(heap)
                continue
            if key > t:
                break
            c = cand_cmd[b]
            e = dev.earliest(c, b)
            if self.cand_floor[b] > e:
                e = self.cand_floor[b]
            if e > key:
                heapq.heapreplace(heap, (e, prio, seq, b, ver))
                continue
            # due by t: a tie at t, which a row command of another bank loses by priority
            # and age only; anything else (its timing may depend on the run) ends the run
            if c not in (ACT, PRE) or prio == _PRIO_REFRESH or (prio, seq, b) < mine:
                ok = False
                break
            ties.append(heapq.heappop(heap))
        for tie in ties:
            heapq.heappush(heap, tie)
        if not ok:
            heapq.heappush(heap, entry)
            return False
        self._flush_run(cmd, streams, s_row, s_last, since)
        b = entry[3]
        row_cmd = self.cand_cmd[b]
        dev = self.dev
        self.now = t
        if row_cmd == ACT:
            req = self.cand_req[b]
            assert req is not None  # an ACT always opens a row for a request
            row = req.row
            dev.issue(ACT, b, t, row)
            self.fresh[b] = True
        else:
            row = dev.open_row[b]
            dev.issue(PRE, b, t)
            self._bank_released(b, t)
        self.bypass[b] = 0
        self._emit(row_cmd, b, row, -1, t)
        self._refresh_candidate(b)
        return True

    def _bypass_bound(self, b: int, q: deque[Request], row: int) -> int:
        """When a run stream's new head misses its open row, FR-FCFS may still serve a younger
        hit from that queue before any PRE: the admission of that hit (a lower bound of its
        issue cycle, with the stream's own gates), or INF if there is none."""
        if self.bypass[b] >= self.cap:
            return INF
        for req in q:
            if req.row == row:
                return req.admitted
        return INF

    def _run_emitter(self, cmd: int, streams: list[int],
                     rows: list[int]) -> Callable[[int, int, int], None] | None:
        """``emit(t, stream, col)`` feeding the sink one run command, or None without a sink."""
        sink = self.sink
        if sink is None:
            return None
        kind = Cmd(cmd)
        channel = self.channel
        split = self.dev.split_bank

        def emit(t: int, s: int, col: int) -> None:
            rank, bg, bank = split(streams[s])  # streams may join the run after it began
            sink(Command(t, kind, channel, rank, bg, bank, rows[s], col))

        return emit

    @staticmethod
    def _steady_from(live: list[int], s_q: list[deque[Request]], s_row: list[int],
                     s_start: list[int], last_bound: bool) -> int:
        """The first cycle at which some hit head of the ``live`` streams is past its own
        gates and its admission, so that leaders exist (never, while a head whose last burst
        bounds the run waits: the run ends soon)."""
        at = INF
        for s in live:
            v = _gate(s_q[s], s_row[s], s_start[s])
            if v < 0:
                continue
            if last_bound and s_q[s][0].ncols - s_q[s][0].served == 1:
                return INF
            if v < at:
                at = v
        return at

    @staticmethod
    def _steady_leaders(t: int, live: list[int], s_q: list[deque[Request]], s_row: list[int],
                        s_start: list[int], s_bg: list[int],
                        ) -> tuple[list[int], list[int], int]:
        """(the *leaders*, the oldest hit head past its gates at ``t`` per bank group, oldest
        first; their age stamps; and the first gate of the other hit heads: the *gate*, INF if
        none).

        Once a hit head is past its own start (``s_start``, the bank-level gates when the run
        began) and its admission, its next issue cycle is ``t`` plus its bank group's readiness
        ``max(gap_rank, last_in_bg + gap_bg - t)``, so within a group only the oldest such head
        can win, and the heads are fixed until the epoch ends.  A head still behind its gates
        cannot issue before the gate, so until then the leaders decide every choice, and their
        readiness values, oldest first, determine every choice relative to ``t``: the merge
        from there is periodic once such a state recurs (:func:`_leader_cycle`; the period must
        end before the gate).  A head that passes its gate without becoming a leader changes
        no choice.
        """
        gate = INF
        leaders: list[int] = []  # (lists, not dicts: a run has a handful of bank groups)
        groups: list[int] = []
        ages: list[int] = []
        for s in live:  # (retired streams have empty queues)
            q = s_q[s]
            if not q:
                continue
            head = q[0]
            if head.row != s_row[s]:
                continue
            v = s_start[s]  # the head's gate (_gate, inlined)
            if head.admitted > v:
                v = head.admitted
            if v > t:
                if v < gate:
                    gate = v
                continue
            g = s_bg[s]
            seq = head.seq
            for j in range(len(groups)):
                if groups[j] == g:
                    if seq < ages[j]:
                        ages[j] = seq
                        leaders[j] = s
                    break
            else:
                groups.append(g)
                leaders.append(s)
                ages.append(seq)
        # oldest first (insertion sort: a handful of leaders)
        for i in range(1, len(ages)):
            a, s = ages[i], leaders[i]
            j = i
            while j > 0 and ages[j - 1] > a:
                ages[j] = ages[j - 1]
                leaders[j] = leaders[j - 1]
                j -= 1
            ages[j] = a
            leaders[j] = s
        return leaders, ages, gate

    def _cycle_jump(self, cyc: _Cycle, t: int, leaders: list[int], bound: int,
                    s_q: list[deque[Request]], s_last: list[int], last_in_bg: list[int],
                    s_bg: list[int], emit: Callable[[int, int, int], None] | None,
                    keep: int = 1) -> tuple[int, int]:
        """Issue the leaders' merge after the command at ``t``, whose relative state starts
        ``cyc``, in closed form; return (cycles to its last command, commands issued).

        The period repeats exactly while nothing else changes: up to ``bound`` (the run's
        limit, the gate and the next admission that could happen; every command issued lies
        before it) and while no head finishes (each keeps at least ``keep`` bursts for the
        normal loop: 2 when its last one bounds the run, so that the loop sees it coming).
        Whole periods first, then the next period's commands up to the first one either rule
        stops.  The commands are replayed to the sink, in order.
        """
        period = cyc.period
        offsets, positions, counts = cyc.offsets, cyc.positions, cyc.counts
        nl = len(leaders)
        m = (bound - 1 - t) // period
        room: list[int] = []  # per leader, the bursts it may still issue here
        for j in range(nl):
            head = s_q[leaders[j]][0]
            v = head.ncols - head.served - keep
            room.append(v)
            c = counts[j]
            if c and v // c < m:
                m = v // c
        if m < 0:
            m = 0
        at = t + m * period
        npart = 0  # commands of the next, partial period
        n = len(offsets)
        while npart < n:
            j = positions[npart]
            if at + offsets[npart] >= bound or room[j] - m * counts[j] <= 0:
                break
            room[j] -= 1
            npart += 1
        if m == 0 and npart == 0:
            return 0, 0
        if emit is not None:
            cols = [s_q[s][0].col + s_q[s][0].served for s in leaders]
            for rep in range(m + 1):
                base = t + rep * period
                for i in range(n if rep < m else npart):
                    j = positions[i]
                    emit(base + offsets[i], leaders[j], cols[j])
                    cols[j] += 1
        last = cyc.last
        for j in range(nl):
            c = counts[j]
            if not c:
                continue
            s = leaders[j]
            extra = 0
            v = -INF
            for i in range(npart):
                if positions[i] == j:
                    extra += 1
                    v = at + offsets[i]
            if not extra:
                if not m:
                    continue
                v = at - period + last[j]
            s_q[s][0].served += m * c + extra
            s_last[s] = v
            last_in_bg[s_bg[s]] = v
        self.periodic_jumps += 1
        return (at + offsets[npart - 1] if npart else at) - t, m * n + npart

    def _run_single(self, b: int, cmd: int, req: Request, limit: int, rank: int) -> None:
        """The one-stream case of :meth:`_issue_run` (most runs): same rules, leaner loop.

        A bulk head's bursts after the current one are due every ``gap`` cycles; those before
        ``limit`` and before the next admission that could happen are issued at once (all but
        its last burst, which completes the request in the loop).
        """
        dev = self.dev
        is_write = cmd == WR
        q = (self.write_q if is_write else self.read_q)[b]
        row = dev.open_row[b]
        gap = self.run_gap_bg[cmd]
        if self.run_gap_rank[cmd] > gap:
            gap = self.run_gap_rank[cmd]
        pre_start = dev.earliest(PRE, b)
        gap_pre = self.run_gap_pre[cmd]
        idle_close = self.idle_close if self.adaptive else -INF
        other_q = (self.read_q if is_write else self.write_q)[b]
        last_bound = self.fcfs or self.closed_page  # see _issue_run
        fcfs = self.fcfs
        pending = self.pending
        rcap, wcap = self.read_cap, self.write_cap
        lat = self.write_latency_cycles if is_write else self.read_latency_cycles
        latencies: list[int] = []
        emit = self._run_emitter(cmd, [b], [row])
        n_r, n_w = self.reads, self.writes
        queued = self.rank_queued[rank]
        low, high, forced = self.low, self.high, self.drain_forced
        refresh = self.refresh
        admitted_in_run: list[Request] = []
        issued = 0
        completed = 0
        done = 0
        t = self.now
        while True:
            served = req.served
            if emit is not None:
                emit(t, 0, req.col + served)
            served += 1
            req.served = served
            issued += 1
            last = t
            if served == req.ncols:
                q.popleft()
                if not q:
                    self._bank_released(b, t)
                    if self.horizon < limit:
                        limit = self.horizon
                completed += 1
                if is_write:
                    n_w -= 1
                else:
                    n_r -= 1
                queued -= 1
                done = t + lat
                latencies.append(done - req.admitted)
                req.done = done
                if req.callback is not None:
                    req.callback(req)
                    if self.horizon < limit:  # the callback foresees a new arrival
                        limit = self.horizon
            # -- as in the multi-stream loop: checked after every command (see there)
            if drain_flips(is_write, n_r, n_w, forced, high, low):
                break
            if served == req.ncols:
                if (queued == 0 and refresh.should_start(rank, t, True)
                        and self._ext_idle(rank)):
                    break
            else:
                # the head's next bursts, at t + gap, t + 2 gap, ...: as many as nothing can
                # interrupt, all but its last
                j = req.ncols - served - 1
                v = (limit - 1 - t) // gap
                if v < j:
                    j = v
                if pending:
                    p = pending[0]
                    if not (n_w >= wcap if p.is_write else n_r >= rcap):
                        v = (p.arrival - 1 - t) // gap
                        if v < j:
                            j = v
                if j > 0:
                    if emit is not None:
                        col = req.col + served
                        for i in range(1, j + 1):
                            emit(t + i * gap, 0, col + i - 1)
                    req.served = served + j
                    issued += j
                    t += j * gap
                    last = t
                    self.bulk_jumps += 1
                if last_bound and req.ncols - req.served == 1:
                    break  # the last burst is the scheduler's (RDA/WRA, FCFS order)
            nxt = t + gap
            while True:
                if q and q[0].row == row:
                    head = q[0]
                    best = nxt if nxt > head.admitted else head.admitted
                else:
                    best = INF
                    if q or (idle_close > -INF and not other_q):
                        v = t + gap_pre if q else max(t + gap_pre, t + idle_close)
                        if pre_start > v:
                            v = pre_start
                        if v < limit:
                            limit = v
                admitted = False
                while pending:
                    head = pending[0]
                    a = head.arrival if head.arrival > t else t
                    if a > best or a >= limit:
                        break
                    if n_w >= wcap if head.is_write else n_r >= rcap:
                        break
                    if fcfs or head.is_write != is_write or head.bank != b or head.row != row:
                        limit = a
                        break
                    pending.popleft()
                    head.admitted = a
                    if not q:
                        admitted = True  # a new head: the choice may change
                    q.append(head)
                    queued += 1
                    if is_write:
                        n_w += 1
                    else:
                        n_r += 1
                    admitted_in_run.append(head)
                if not admitted:
                    break
            if best >= limit:
                break
            t = best
            req = q[0]
        self.reads, self.writes = n_r, n_w
        self.rank_queued[rank] = queued
        (self.write_latency if is_write else self.read_latency).add_many(latencies)
        if is_write:
            self.writes_done += completed
            self.write_bursts += issued
        else:
            self.reads_done += completed
            self.read_bursts += issued
        self._commit_run(cmd, rank, [b], {b: row}, {b: last}, last, done, issued,
                         admitted_in_run)

    def _commit_run(self, cmd: int, rank: int, streams: list[int], rows: dict[int, int],
                    last_of: dict[int, int], last_rank: int, done: int, issued: int,
                    admitted_in_run: list[Request], idle: dict[int, int] | None = None,
                    ) -> None:
        """Apply a finished run to the device and the scheduler (shared by both run loops).

        ``idle`` maps streams that issued nothing to their old heap keys: their candidate (the
        same head hit) is unchanged and the old key is still a lower bound, so they are simply
        pushed back, unless a refresh or a mode switch rebuilt every candidate anyway.
        """
        dev = self.dev
        pending = self.pending
        # -- admissions beyond the run's last command have not happened yet: undo them
        self.now = last_rank  # (candidates refreshed below are keyed from the run's end)
        undone: set[int] = set()
        while admitted_in_run and admitted_in_run[-1].admitted > last_rank:
            late = admitted_in_run.pop()
            (self.write_q if late.is_write else self.read_q)[late.bank].pop()
            late.admitted = -1
            self.rank_queued[late.rank] -= 1
            if late.is_write:
                self.writes -= 1
            else:
                self.reads -= 1
            pending.appendleft(late)
            undone.add(late.bank)
        if undone:  # a candidate may have counted an undone request: choose again
            mine = set(streams)
            for b in undone:
                if b in mine:
                    if idle:
                        idle.pop(b, None)  # refreshed below with the other streams
                else:
                    self._refresh_candidate(b)
        # -- commit: device state from each bank's last command, in time order (a row command
        # issued inside the run may be later than all of them: the bus keeps its state)
        bus, last_issue = dev.cmd_bus_next, dev.last_issue
        for b, tb in sorted(last_of.items(), key=lambda item: item[1]):
            dev.issue(cmd, b, tb, rows[b])
            self.last_col[b] = tb
            if self.fresh[b]:
                self.row_misses += 1
                self.fresh[b] = False
        if bus > dev.cmd_bus_next:
            dev.cmd_bus_next, dev.last_issue = bus, last_issue
        self.cmd_counts[cmd] += issued
        self.now = last_rank
        if done > self.last_done:
            self.last_done = done
        if self._rank_idle(rank) and self.refresh.should_start(rank, last_rank, True):
            self._start_refresh(rank, last_rank)  # every bank of the rank, streams included
            self._update_mode()
            return
        if self._update_mode():
            return
        heap = self.heap
        version = self.version
        for b in streams:
            key = idle.get(b) if idle else None
            if key is None:
                self._refresh_candidate(b)
            else:
                version[b] += 1
                req = self.cand_req[b]
                assert req is not None
                heapq.heappush(heap, (key, _PRIO_HIT, req.seq, b, version[b]))

    def _complete(self, b: int, req: Request, t: int) -> None:
        if req.is_write:
            q = self.write_q[b]
            self.writes -= 1
            done = t + self.write_latency_cycles
            self.writes_done += 1
            self.write_latency.add(done - req.admitted)
            if self.fcfs:
                self.order_w.popleft()
        else:
            q = self.read_q[b]
            self.reads -= 1
            done = t + self.read_latency_cycles
            self.reads_done += 1
            self.read_latency.add(done - req.admitted)
            if self.fcfs:
                self.order_r.popleft()
        if q[0] is req:
            q.popleft()
        else:
            q.remove(req)
            self.bypass[b] += 1
        if not q:
            self._bank_released(b, t)
        self.last_col[b] = t
        self.rank_queued[req.rank] -= 1
        req.done = done
        if done > self.last_done:
            self.last_done = done
        if req.callback is not None:
            req.callback(req)
        if self._rank_idle(req.rank) and self.refresh.should_start(req.rank, t, True):
            self._start_refresh(req.rank, t)

    def _emit(self, cmd: int, b: int, row: int, col: int, t: int) -> None:
        self.cmd_counts[cmd] += 1
        if self.sink is not None:
            r, g, k = self.dev.split_bank(b)
            self.sink(Command(t, Cmd(cmd), self.channel, r, g, k, row, col))
