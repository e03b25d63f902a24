"""Closed-form runs: many column commands of one kind decided at once, exactly as one by one.

A *run* is every column command of one type (RD or WR) that the scheduler would issue to open
rows of one rank before a limit (the lowest key of any other candidate, the next refresh
deadline, the horizon, or an admission that is not another hit for the run).  Inside that
window the commands constrain each other only through their own rules, so a small merge over the
hit streams gives exactly the per-command scheduler's cycles, and the device is updated once per
bank, with its last command.  Tests compare whole command streams issued both ways.

This module holds what every run shares (when a run is worth it, its tally, the completion of a
request inside it, its commit to the device and scheduler, the row commands issued inside it)
and the one-stream run, :meth:`Runs._run_single`, whose bulk head's bursts are an arithmetic
progression.  The multi-stream merge is ``merge_run.py``; its periodic closed forms are
``periodic.py``.

Bulk requests (``Request.ncols > 1``) cost rows, not bursts: a bulk head's bursts are issued in
closed form, and a DMA sweep is a few runs.  With a command sink every command is still emitted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from gradpimsim.config import MemoryConfig
from gradpimsim.config.pim import PimConfig
from gradpimsim.controller.candidates import PRIO_REFRESH
from gradpimsim.controller.mux import CommandMux
from gradpimsim.controller.periodic import Cycle
from gradpimsim.controller.queues import drain_flips
from gradpimsim.controller.request import Request
from gradpimsim.dram.codes import ACT, INF, NCMD, PRE, WR
from gradpimsim.dram.commands import Cmd, Command, CommandSink

#: A closed-form run is set up only when this many column slots of the rank (tCCD_S apart)
#: fit before it must stop; in a shorter window (a co-scheduled PIM command close ahead) the
#: commands are issued one by one, which gives the same commands for less work.
RUN_MIN_SLOTS: Final = 4


class RunTally:
    """What a run changes in the controller's request counts, applied once when it commits:
    the read/write queue counts and the run rank's queued requests as they stand, the requests
    it completed and the latest completion, and the requests it admitted.  (Latencies go to the
    histograms at once: a completion inside a run is final, only admissions may be undone.)"""

    def __init__(self, ctrl: CommandMux, rank: int) -> None:
        self.n_r = ctrl.reads
        self.n_w = ctrl.writes
        self.queued = ctrl.rank_queued[rank]
        self.completed = 0
        self.done = 0
        self.admitted: list[Request] = []


def one_request(req: Request | None) -> list[Request]:
    """A virtual stream's queue: the one bypass hit it serves."""
    assert req is not None  # a hit candidate always serves a request
    return [req]


def head_ready(start: int, bg_next: int, rank_next: int, admitted: int) -> int:
    """The cycle a run stream's hit head issues unless another command comes first: the latest
    of its bank's start, its bank group's next slot (last burst there + tCCD_L), the rank's next
    slot (last burst + tCCD_S) and its own admission.  One statement of the rule for both run
    loops (the general one and the lean one for single-burst hits)."""
    e = start if start > bg_next else bg_next
    if rank_next > e:
        e = rank_next
    return admitted if admitted > e else e

class Runs(CommandMux):
    """The run machinery shared by both run loops, and the one-stream run."""

    def __init__(self, cfg: MemoryConfig, channel: int, pim: PimConfig | None,
                 sink: CommandSink | None, batch_runs: bool) -> None:
        super().__init__(cfg, channel, pim, sink)
        self.batch_runs = batch_runs
        #: Closed-form shortcuts taken: a bulk head's bursts issued as one arithmetic progression
        #: (single stream), and whole periods of an interleaved multi-stream run skipped.
        self.bulk_jumps = 0
        self.periodic_jumps = 0
        #: Per column command kind, the leaders' merge cycle from each relative state seen
        #: (a few hundred states at most: the gaps are fixed).
        self._cycles: list[dict[int, Cycle]] = [{} for _ in range(NCMD)]
        #: Runs that served an FR-FCFS bypass hit (a younger hit past a missing head) as a
        #: stream: without them such a hit would end every run at its own next burst.
        self.bypass_streams = 0
        #: Single-burst hits a multi-stream run issued in its lean loop (``_hit_chain``).
        self.chained_hits = 0
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

    def _room_for_run(self, cmd: int) -> bool:
        """Could a run issue a few column commands (``RUN_MIN_SLOTS`` slots of the rank)
        before it must stop?  Not when the horizon (the next event of a co-scheduled PIM unit,
        or a requester's next submission) or the refresh deadline comes sooner: the run would
        be one to a few commands, and setting it up costs more than issuing them one by one
        (with PIM active that is most host commands).  Either way the commands are the same;
        this only picks the cheaper path."""
        lim = self.horizon if self.horizon < self.refresh_due else self.refresh_due
        return lim - self.now > RUN_MIN_SLOTS * self.run_gap_rank[cmd]

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
        return p.size() > 0 and p.first().bank == b and p.first().row == req.row

    def _run_admission(self, head: Request, t: int, by: int, limit: int, tally: RunTally) -> int:
        """The cycle at which the pending ``head`` is admitted inside a run whose last command
        was at ``t``: its arrival, or ``t`` if it is already due, provided that is no later
        than ``by`` (admissions come before the commands of their cycle, and only up to the
        run's next one), before ``limit`` and its queue has room; -1 if it waits."""
        a = head.arrival if head.arrival > t else t
        if a > by or a >= limit:
            return -1
        if tally.n_w >= self.write_cap if head.is_write else tally.n_r >= self.read_cap:
            return -1
        return a

    def _admit_in_run(self, head: Request, a: int, q: list[Request], tally: RunTally) -> None:
        """Admit the pending ``head`` at ``a`` into queue ``q`` (a hit for a run stream, of the
        run's kind and rank): counted in ``tally`` and remembered, for a run's admissions past
        its last command are undone when it commits."""
        self.pending.pop_first()
        self.rank_pending[head.rank] -= 1
        if self.stop_on_held and self.held[head.bank]:
            self._watch_hit(a)  # an arbiter bounds how long this request may wait
        head.admitted = a
        q.append(head)
        tally.queued += 1
        if head.is_write:
            tally.n_w += 1
        else:
            tally.n_r += 1
        tally.admitted.append(head)

    def _run_complete(self, tally: RunTally, req: Request, b: int, emptied: bool, t: int,
                      lat: int, limit: int) -> int:
        """``req``'s last burst issued at ``t`` inside a run (it has left its queue, which
        ``emptied`` says is now empty): count it in ``tally`` and report it.  Returns the run's
        ``limit``, lowered to the horizon if that came down (a watched bank released, or a
        callback foreseeing a new arrival)."""
        if emptied:
            self._bank_released(b, t)
        tally.completed += 1
        if req.is_write:
            tally.n_w -= 1
        else:
            tally.n_r -= 1
        tally.queued -= 1
        done = t + lat
        tally.done = done
        (self.write_latency if req.is_write else self.read_latency).add(done - req.admitted)
        self._finish(req, done)
        return self.horizon if self.horizon < limit else limit

    def _run_ends(self, tally: RunTally, is_write: bool, finished: bool, rank: int,
                  t: int) -> bool:
        """Does a run end after its command at ``t``?  A mode switch (write drain starts or
        ends) ends it, and so does a refresh that falls due once a head ``finished`` left the
        rank idle.  The scheduler re-evaluates the mode after every column command, and one
        switch can leave the next one due (an opportunistic drain ended by reads arriving while
        writes sit at the high watermark), so this is asked after every command of both run
        loops, even when no head finished."""
        if drain_flips(is_write, tally.n_r, tally.n_w, self.drain_forced, self.high, self.low):
            return True
        return (finished and tally.queued == 0 and self.refresh.should_start(rank, t, True)
                and self._ext_idle(rank))

    def _run_single(self, b: int, cmd: int, req: Request, limit: int, rank: int) -> None:
        """The one-stream case of a run (most runs; ``MergeRuns._issue_run`` has the rules):
        same rules, leaner loop.

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
        last_bound = self.fcfs or self.closed_page  # see MergeRuns._issue_run
        fcfs = self.fcfs
        pending = self.pending
        rcap, wcap = self.read_cap, self.write_cap
        lat = self.write_latency_cycles if is_write else self.read_latency_cycles
        emit = self._run_emitter(cmd, [b], [row])
        tally = RunTally(self, rank)
        issued = 0
        t = self.now
        while True:
            served = req.served
            if emit is not None:
                emit(t, 0, req.col + served)
            served += 1
            req.served = served
            issued += 1
            last = t
            finished = served == req.ncols
            if finished:
                q.pop(0)
                limit = self._run_complete(tally, req, b, not q, t, lat, limit)
            if self._run_ends(tally, is_write, finished, rank, t):
                break
            if not finished:
                # the head's next bursts, at t + gap, t + 2 gap, ...: as many as nothing can
                # interrupt, all but its last
                j = req.ncols - served - 1
                v = (limit - 1 - t) // gap
                if v < j:
                    j = v
                if pending.size():
                    p = pending.first()
                    if not (tally.n_w >= wcap if p.is_write else tally.n_r >= rcap):
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
                while pending.size():
                    head = pending.first()
                    a = self._run_admission(head, t, best, limit, tally)
                    if a < 0:
                        break
                    if fcfs or head.is_write != is_write or head.bank != b or head.row != row:
                        limit = a
                        break
                    self._admit_in_run(head, a, q, tally)
                    if len(q) == 1:
                        admitted = True  # a new head: choose again before admitting more
                        break
                if not admitted:
                    break
            if best >= limit:
                break
            t = best
            req = q[0]
        self._commit_run(cmd, rank, tally, issued, [b], {b: row}, {b: last}, last)

    def _commit_run(self, cmd: int, rank: int, tally: RunTally, issued: int, streams: list[int],
                    rows: dict[int, int], last_of: dict[int, int], last_rank: int,
                    idle: dict[int, int] | None = None) -> None:
        """Apply a finished run to the counts, the device and the scheduler (shared by both
        run loops): ``tally`` holds its queue counts, completions and admissions, ``issued``
        its column commands.

        ``idle`` holds streams that issued nothing: their candidate (the same head hit) is
        unchanged, so it simply takes part in the choice again, unless a refresh or a mode
        switch rebuilt every candidate anyway.
        """
        in_run = self.in_run
        for b in streams:
            in_run[b] = 0  # (their candidates are chosen again below, or kept: ``idle``)
        self.reads, self.writes = tally.n_r, tally.n_w
        self.rank_queued[rank] = tally.queued
        completed = tally.completed
        if cmd == WR:
            self.writes_done += completed
            self.write_bursts += issued
        else:
            self.reads_done += completed
            self.read_bursts += issued
        done = tally.done
        admitted_in_run = tally.admitted
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
            self.rank_pending[late.rank] += 1  # pending again
            if late.is_write:
                self.writes -= 1
            else:
                self.reads -= 1
            pending.push_front(late)
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
        if self._rank_idle(rank) and self._start_refresh(rank, last_rank, True):
            # (every bank of the rank rebuilt, streams included)
            self._update_mode()
            return
        if self._update_mode():
            return
        for b in streams:
            if not idle or b not in idle:
                self._refresh_candidate(b)

    def _collect_streams(self, cmd: int, rank: int, queues: list[list[Request]],
                         bypassing: bool, streams: list[int], keys: dict[int, int],
                         virtual_banks: set[int]) -> tuple[int, int, int]:
        """Add to ``streams`` the hits of kind ``cmd`` on ``rank`` (queue heads, and bypass
        hits as virtual streams when ``bypassing``) that the scheduler would choose before
        every other candidate, in that order (``keys``: their exact cycles), and mark them as
        held by the run; return that first other candidate as (its exact cycle, priority,
        bank), or (INF, 0, -1) if there is none."""
        cand_cmd = self.cand_cmd
        cand_req = self.cand_req
        cand_prio, cand_seq = self.cand_prio, self.cand_seq
        in_run = self.in_run
        fresh = self.fresh
        bpr = self.dev.banks_per_rank
        mine: list[tuple[int, int, int, int]] = []
        first = (INF, 0, 0, -1)
        for b in range(self.nbanks):
            c = cand_cmd[b]
            if c < 0 or in_run[b]:
                continue
            entry = (self._due(b), cand_prio[b], cand_seq[b], b)
            if c == cmd and b // bpr == rank and queues[b]:
                if cand_req[b] is queues[b][0]:
                    mine.append(entry)
                    continue
                if bypassing and not fresh[b]:
                    virtual_banks.add(b)
                    mine.append(entry)
                    continue
            if entry < first:
                first = entry
        mine.sort()
        for entry in mine:
            if entry > first:
                break
            b = entry[3]
            streams.append(b)
            keys[b] = entry[0]
            in_run[b] = 1
        for entry in mine:  # (virtual only when collected)
            if entry > first:
                virtual_banks.discard(entry[3])
        return first[0], first[1], first[3]

    def _retire(self, k: int, at: int, streams: list[int], s_q: list[list[Request]],
                live: list[int], index: list[int], former: dict[int, int]) -> None:
        """Take stream ``k`` out of a run at cycle ``at``: its bank wants a PRE, which joins
        the candidates (the caller has flushed the run's commands to the device)."""
        b = streams[k]
        live.remove(k)
        index[b] = -1
        former[b] = k
        s_q[k] = []
        self.now = at
        self.in_run[b] = 0
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
        """Issue the last scan's winner (``top_b``), an ACT or PRE, at cycle ``t`` inside a run.

        The run found it due at ``t``, before its own next burst; ``t`` is its exact earliest
        cycle, or the first free bus cycle.  Every other candidate is due no earlier (the scan
        found none earlier, and the run delays row commands only through the bus), so
        it is the command the scheduler issues then, unless another one ties at ``t`` and wins
        the tie (hits first, then age), or might: then nothing is issued and False returned.
        """
        top = self.top_b
        cand_cmd = self.cand_cmd
        cand_prio, cand_seq = self.cand_prio, self.cand_seq
        in_run = self.in_run
        dev = self.dev
        mine = (cand_prio[top], cand_seq[top], top)  # the scheduler's order after the cycle
        for b in range(self.nbanks):
            c = cand_cmd[b]
            if c < 0 or in_run[b] or b == top:
                continue
            e = dev.earliest(c, b)
            if self.cand_floor[b] > e:
                e = self.cand_floor[b]
            if e > t:
                continue
            # due by t: a tie at t, which a row command of another bank loses by priority
            # and age only; anything else (its timing may depend on the run) ends the run
            if c not in (ACT, PRE) or cand_prio[b] == PRIO_REFRESH or \
                    (cand_prio[b], cand_seq[b], b) < mine:
                return False
        self._flush_run(cmd, streams, s_row, s_last, since)
        b = top
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

    def _bypass_bound(self, b: int, q: list[Request], row: int) -> int:
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
