"""The per-channel memory controller's public face: submit requests, run, co-schedule.

The controller is built in layers, one concern a module, each a class the next one extends:
``queues.py`` (admission, queues, the read/write mode), ``candidates.py`` (each bank's candidate:
refresh, scheduler and page policy as named pieces), ``mux.py`` (the winner among the candidates,
single commands, completion, statistics), ``runs.py`` (closed-form runs, the one-stream run),
``merge_run.py`` (the multi-stream run) with ``periodic.py`` (its periodic closed forms), and
this module: the main loop and the API a requester or an arbiter uses.

Event-driven, never cycle-ticked.  Each bank with queued work has one *candidate* command (its
oldest row hit, else PRE or ACT for its oldest request), kept in flat per-bank vectors; the
winner is the candidate with the smallest exact earliest cycle (read from the device's tables),
which is exactly what a per-cycle FR-FCFS controller would issue: the earliest-ready command,
ties broken by hits first, then age.  Time jumps straight
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
  the ACTs and PREs of other banks that fall due and admits requests (see ``merge_run.py``),
  so a DMA sweep is a few runs, not a few per row.  With a command sink every command is still
  emitted.
"""

from __future__ import annotations

from collections.abc import Callable

from gradpimsim.config import MemoryConfig
from gradpimsim.config.pim import PimConfig
from gradpimsim.controller.merge_run import MergeRuns
from gradpimsim.controller.queues import drain_flips
from gradpimsim.dram.codes import ACT, INF, PRE, RD, REF, WR
from gradpimsim.dram.commands import Command, CommandSink

#: Observers attached to every controller built, e.g. the test suite's online protocol checker:
#: each is called with (config, channel, pim) and returns a sink for that controller's commands.
#: A hook rather than a patch point, so it also works when this module is compiled with mypyc.
OBSERVER_FACTORIES: list[Callable[[MemoryConfig, int, PimConfig | None], CommandSink]] = []


def _chain(observers: list[CommandSink], sink: CommandSink | None) -> CommandSink:
    """One sink feeding the observers, then the caller's sink."""
    targets = observers + ([sink] if sink is not None else [])

    def fan_out(cmd: Command) -> None:
        for target in targets:
            target(cmd)

    return fan_out


class ChannelController(MergeRuns):
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
        if OBSERVER_FACTORIES:
            sink = _chain([f(cfg, channel, pim) for f in OBSERVER_FACTORIES], sink)
        super().__init__(cfg, channel, pim, sink, batch_runs)
        #: Idle-gap fast path (:meth:`_skip_idle_refreshes`): only with no command stream to
        #: write, since the skipped REFs are counted, not emitted one by one.
        self.skip_idle = sink is None
        self._idle_mark = -1
        self._idle_others = -1
        #: Whole tREFI periods of an idle gap accounted in closed form.
        self.idle_periods_skipped = 0
        #: Banks whose candidate the last admissions re-chose.
        self._touched: list[int] = []

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
        known = False  # the last peek still names the winner (see _admit_ready)
        while True:
            if until_idle and not self.pending.size() and self.reads + self.writes == 0:
                return
            t_cmd = self.top_t if known else self._peek()
            known = False
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
                known = self._admit_ready() and self._peek_more(self._touched)
                continue
            if t_ref <= t:
                if self.skip_idle and self.reads + self.writes == 0 and \
                        self._skip_idle_refreshes(t, t_arr if t_arr < lim else lim):
                    continue
                self.refresh_due = self.refresh.next_check(t)
                self._refresh_check()
                continue
            self._issue_top()

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
        steady = (ref.enabled and self.external_busy is None
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

    def drain(self) -> int:
        """Run until every submitted request completed; return the last completion cycle."""
        self.run_until(INF, until_idle=True)
        return self.last_done

    # ------------------------------------------------------------------ requests in
    def _admit_ready(self) -> bool:
        """Admit every pending request due by ``now`` that has room, and re-choose the banks
        whose candidate a newcomer can change (left in ``_touched``).  True if no other
        candidate changed (no read/write switch, not FCFS), so that the last peek's winner
        stands against every bank not touched (:meth:`_peek_more`)."""
        pending = self.pending
        now = self.now
        cand_cmd = self.cand_cmd
        fresh = self.fresh
        touched = self._touched
        touched.clear()
        admitted = False
        while pending.size():
            req = pending.first()
            if req.arrival > now:
                break
            if not self._enqueue(req, now):
                break
            if self.stop_on_held and self.held[req.bank]:
                self._watch_hit(now)  # an arbiter bounds how long this request may wait
            admitted = True
            # The youngest request can change its bank's choice only if the bank had none,
            # was about to precharge (the newcomer may hit the open row), or has a fresh row.
            b = req.bank
            c = cand_cmd[b]
            if (c < 0 or c == PRE or fresh[b]) and b not in touched:
                touched.append(b)
        if not admitted:
            return True
        if self._update_mode():
            return False
        if self.fcfs:
            self._rebuild()
            return False
        for b in touched:
            self._refresh_candidate(b)
        return True

    # ------------------------------------------------------------------ issuing
    def _issue_top(self) -> None:
        """Issue the winner :meth:`_peek` just found (at ``now``)."""
        b = self.top_b
        cmd = self.cand_cmd[b]
        req = self.cand_req[b]
        if cmd in (RD, WR):
            assert req is not None  # a column candidate always serves a request
            if self.batch_runs and self._room_for_run(cmd) and self._runs_on(b, req):
                self._issue_run(b, cmd, req)
            else:
                self._issue_column(b, cmd, req)
            return
        self._issue_row(cmd, b, req)

    # ------------------------------------------------------------------ co-scheduling
    def hold(self, b: int, held: bool) -> None:
        """Give bank ``b`` to (or take it back from) another command source, e.g. a PIM unit."""
        if self.held[b] != held:
            self.held[b] = held
            self._refresh_candidate(b)

    def external_issued(self, cmd: int, b: int) -> None:
        """Another source issued ``cmd`` to bank ``b`` on this channel's device.

        Timing needs nothing: every candidate's earliest cycle is read from the shared
        device when the mux scans them.  Row state does: a candidate chosen for the old
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
        cand_cmd = self.cand_cmd
        cand_req = self.cand_req
        in_run = self.in_run
        hit = WR if self.draining else RD
        queues = self.write_q if self.draining else self.read_q
        refreshing = self.refresh.refreshing
        bpr = self.dev.banks_per_rank
        for b in range(self.nbanks):
            c = cand_cmd[b]
            if c < 0 or in_run[b]:
                continue
            e = self._due(b)
            if e >= end:
                continue  # due no earlier than the window's end anyway
            if c == hit and not refreshing[b // bpr]:
                req = cand_req[b]
                q = queues[b]
                if req is not None and q and q[0] is req and req.ncols - req.served > 1:
                    streams.append(b)
                    continue
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
        :meth:`run_until` and :meth:`_issue_column` do for it.  Its candidate stays: it is the
        same, and the next scan reads its new earliest cycle from the device."""
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
