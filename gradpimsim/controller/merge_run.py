"""The multi-stream run: several banks' row hits of one kind merged in closed form.

:meth:`MergeRuns._issue_run` states the rules.  The run's state lives in a :class:`Merge` (the
streams and what the loop learns about them); the loop itself, the part that runs per burst,
stays in one method, and what happens rarely (a head finishing, a rescan of the candidates, an
admission that is no hit for a stream, a periodic jump) is a method of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from gradpimsim.controller.candidates import PRIO_REFRESH
from gradpimsim.controller.periodic import (
    cycle_jump,
    gate,
    leader_cycle,
    steady_from,
    steady_leaders,
)
from gradpimsim.controller.queues import drain_flips
from gradpimsim.controller.request import Request
from gradpimsim.controller.runs import Runs, RunTally, head_ready, one_request
from gradpimsim.dram.codes import ACT, INF, PRE, WR

#: "Never issued" for a cycle variable (a constant, where ``-INF`` would be computed).
NO_CMD: Final = -INF
#: The leaders of a steady epoch (stream indices, oldest first), their age stamps, and the
#: first gate of the other hit heads (see ``periodic.steady_leaders``).
Steady = tuple[list[int], list[int], int]


class Merge:
    """One multi-stream run: its streams (index ``k``: bank ``streams[k]``, queue ``s_q[k]``,
    open row, bank-level start, bank group and last issue), what bounds it and how it stands."""

    def __init__(self, cmd: int, rank: int, streams: list[int], keys: dict[int, int],
                 s_q: list[list[Request]], virtual: list[bool], s_row: list[int],
                 s_start: list[int], s_bg: list[int], bankgroups: int, nbanks: int,
                 tally: RunTally,
                 emit: Callable[[int, int, int], None] | None) -> None:
        self.cmd = cmd
        self.rank = rank
        self.is_write = cmd == WR
        self.streams = streams
        #: the other streams' due cycles when the run began (lower bounds of their issue)
        self.keys = keys
        self.s_q = s_q
        self.virtual = virtual
        self.s_row = s_row
        self.s_start = s_start
        self.s_bg = s_bg
        self.s_last = [-INF] * len(streams)
        #: each bank's stream index, -1 if none (a list: one native read per admission)
        self.index = [-1] * nbanks
        for k, b in enumerate(streams):
            self.index[b] = k
        self.last_in_bg = [-INF] * bankgroups
        self.live = list(range(len(streams)))  # streams that may still issue (not retired)
        self.former: dict[int, int] = {}  # retired streams' banks -> their index (a revival)
        self.tally = tally
        self.emit = emit
        #: look for the next candidate to bound the run, and new streams
        self.rescan = False
        #: the device holds every run command up to this cycle
        self.flushed_at = -INF
        #: the last row command issued inside the run
        self.last_inline = -INF
        #: Periodic fast-forward: while the heads and queues stay as they are (an *epoch*) and
        #: it is steady, the leaders; whole periods of their merge are skipped.
        self.steady: Steady | None = None
        #: the epoch cannot be steady before this cycle (-1: not known yet)
        self.steady_at = -1

    def new_epoch(self) -> None:
        self.steady = None
        self.steady_at = -1


class MergeRuns(Runs):
    """Runs of several streams (and the dispatch to the one-stream run)."""

    def _issue_run(self, b0: int, cmd: int, req0: Request) -> None:  # noqa: C901
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
        After either, the candidates are scanned again: the next candidate bounds the run, and new
        hits of the run's kind (a row just opened) join it as streams.  A run so spans many
        rows of a DMA sweep instead of ending at every row command.

        Bulk heads make the loop's cost independent of their length: with one stream, a head's
        remaining bursts are an arithmetic progression (see :meth:`_run_single`); with several,
        the merge soon becomes periodic and whole periods are skipped (:meth:`_periodic_step`).
        """
        rank = b0 // self.dev.banks_per_rank
        # -- the streams: the winner plus other head hits of the same kind among the candidates
        limit = self.refresh_due if self.refresh_due < self.horizon else self.horizon
        streams = [b0]
        keys: dict[int, int] = {}
        queues = self.write_q if cmd == WR else self.read_q
        # FR-FCFS bypass hits (a younger hit served while the bank's head misses) are streams
        # too, on a one-request queue of their own: *virtual* streams (open pages only; not
        # while a fresh row may still pick from the other queue)
        bypassing = not (self.fcfs or self.closed_page)
        virtual_banks: set[int] = set()
        if queues[b0][0] is not req0:
            virtual_banks.add(b0)
        self.in_run[b0] = 1  # (the run holds its streams' candidates until it commits)
        top_t, top_prio, top_b = self._collect_streams(cmd, rank, queues, bypassing, streams,
                                                       keys, virtual_banks)
        self.top_b = top_b
        # the first other candidate bounds the run (``limit``), unless it is a row command the
        # run may issue itself when it is due (``f_at``; open pages only, see _inline_row)
        inline = bypassing and self.run_row_inline[cmd]
        f_at = INF
        if top_b >= 0:
            if inline and top_prio != PRIO_REFRESH and self.cand_cmd[top_b] in (ACT, PRE):
                f_at = top_t
            elif top_t < limit:
                limit = top_t
        if len(streams) == 1 and not virtual_banks:
            self._run_single(b0, cmd, req0, limit if limit < f_at else f_at, rank)
            return
        m = self._open_merge(cmd, rank, req0, streams, keys, virtual_banks)
        # the loop's view of the run (lists are shared with ``m``, never rebound)
        dev = self.dev
        is_write = m.is_write
        s_q, s_row, s_start, s_bg = m.s_q, m.s_row, m.s_start, m.s_bg
        s_last, last_in_bg, live, index = m.s_last, m.last_in_bg, m.live, m.index
        tally = m.tally
        emit = m.emit
        other_q = self.read_q if is_write else self.write_q
        streams = m.streams
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
        lat = self.write_latency_cycles if is_write else self.read_latency_cycles
        issued = 0
        t = self.now
        k = 0
        req = req0
        # the lean loop of single-burst hits (see _hit_chain) serves open pages under FR-FCFS
        chain = not (last_bound or adaptive or self.stop_on_held)
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
            finished = served == req.ncols
            if finished:
                limit = self._stream_head_done(m, k, req, t, lat, limit)
            if self._run_ends(tally, is_write, finished, rank, t):
                break
            if finished:
                limit = self._next_head(m, k, t, limit, bypassing, inline)
                m.new_epoch()
                if chain and not m.rescan:
                    # a chain of single-burst hits follows, most likely: its own lean loop
                    t, limit, issued, last_rank, ended = self._hit_chain(m, t, limit, f_at,
                                                                         issued, last_rank)
                    if ended:
                        break
            elif last_bound and req.ncols - served == 1:
                # its last burst now bounds the run: the winners change, a new epoch begins
                m.new_epoch()
            else:
                # -- a bulk head continues: once the epoch is steady, skip whole periods
                dt, dn = self._periodic_step(m, t, limit if limit < f_at else f_at,
                                             last_bound)
                if dn:
                    t += dt
                    issued += dn
                    last_rank = t
            # -- the next command: earliest ready stream head, oldest on ties
            floor_rank = t + gap_rank
            while True:
                if m.rescan:
                    # a row command was issued inside the run or a stream retired: the next
                    # candidate bounds the run, and new hits of the run's kind join it
                    limit, f_at = self._rescan(m, t, limit, bypassing)
                best_t = INF
                best_seq = INF
                best_k = -1
                steady = m.steady
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
                        m.steady_at = steady[2]
                        m.steady = steady = None
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
                        e = head_ready(s_start[s], last_in_bg[s_bg[s]] + gap_bg, floor_rank,
                                       head.admitted)
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
                    e = t if t > m.last_inline else m.last_inline
                    e = e + 1 if e + 1 > f_at else f_at
                    if e < adm_by:
                        adm_by = e
                while pending.size():
                    head = pending.first()
                    a = self._run_admission(head, t, adm_by, limit, tally)
                    if a < 0:
                        break
                    hk = index[head.bank]
                    if fcfs or head.is_write != is_write or hk < 0 or head.row != s_row[hk]:
                        # not another hit for a stream: with open pages it is admitted in the
                        # run all the same, as the scheduler would, unless it switches the
                        # mode (reads/writes) or meets a fresh row (which picks from both
                        # queues: unless it joins a live stream's queue, where it can be no
                        # hit for that row), or the row command bounding the run is due first
                        if not inline or not self._admit_foreign(m, head, a, hk, t):
                            limit = a
                            break
                        admitted = True
                        m.new_epoch()
                        if m.rescan:
                            break  # a candidate changed: it may be due before the next one
                        continue
                    qh = queues[head.bank]  # a virtual stream's bank queue, too
                    # (behind a head it changes no choice until that head completes, which
                    # begins a new epoch; same-kind requests cannot switch reads and writes)
                    self._admit_in_run(head, a, qh, tally)
                    if len(qh) == 1:
                        # a new head: choose again before admitting more (the next command,
                        # hence how far admissions go, may now be this head's, and counts
                        # that include later arrivals would decide the read/write mode early)
                        admitted = True
                        m.new_epoch()
                        break
                if admitted:
                    continue
                # -- the row command bounding the run, if it is due before the next burst
                # (not once every request is served: a caller may stop at idle, e.g. drain())
                if (f_at < limit and (best_k < 0 or f_at < best_t)
                        and (tally.n_r + tally.n_w or pending.size())):
                    e = t if t > m.last_inline else m.last_inline
                    e = e + 1 if e + 1 > f_at else f_at  # the run only delays it by the bus
                    if e < limit and (best_k < 0 or e < best_t):
                        if not self._inline_row(cmd, e, streams, s_row, s_last, m.flushed_at):
                            limit = e  # another candidate may come first: end the run here
                            break
                        if self.horizon < limit:  # a watched bank closed (co-scheduling)
                            limit = self.horizon
                        m.flushed_at = m.last_inline = e
                        self.row_commands_in_runs += 1
                        m.rescan = True
                        continue
                break
            if best_k < 0 or best_t >= limit:
                break
            t = best_t
            k = best_k
            req = s_q[k][0]
        self._close_merge(m, issued, last_rank)

    def _hit_chain(self, m: Merge, t: int, limit: int, f_at: int, issued: int,
                   last_rank: int) -> tuple[int, int, int, int, bool]:
        """The run loop of :meth:`_issue_run` while it only serves single-burst row hits.

        Entered where the run loop has just finished a head's last burst at ``t`` (and chosen
        that stream's next head), it repeats the loop's steps for as long as each is the plain
        case: every stream with queued requests has a hit at its head, the next command is one
        such head's last burst, no row command of the run is due before it, and every request
        admitted before it is a hit joining a queue behind its head.  That is most of a run of
        one-burst requests (a trace): the general loop's rarer cases (a head missing its row, a
        bulk head, a bypass, a new head, a foreign admission, a row command) cost a check here
        and are left to it.  Each step is the general loop's, in the same order, so the commands
        and cycles are the same (the tests compare whole command streams both ways).

        Only streams with queued requests are scanned (a run keeps every stream it has met;
        most are empty by then).  Returns (cycle of the last command, limit, commands issued,
        last command on the rank, whether the run ends), and comes back to the general loop
        at the point it left it, or at the start of a step it did not take (requests it
        admitted in that step are ones the general loop would admit first anyway).
        """
        s_q, s_row, s_start, s_bg = m.s_q, m.s_row, m.s_start, m.s_bg
        s_last, last_in_bg, index, streams = m.s_last, m.last_in_bg, m.index, m.streams
        for s in m.live:
            if m.virtual[s]:
                return t, limit, issued, last_rank, False
        act = [s for s in m.live if s_q[s]]
        tally = m.tally
        is_write = m.is_write
        queues = self.write_q if is_write else self.read_q
        pending = self.pending
        cmd = m.cmd
        gap_bg = self.run_gap_bg[cmd]
        gap_rank = self.run_gap_rank[cmd]
        lat = self.write_latency_cycles if is_write else self.read_latency_cycles
        rank = m.rank
        emit = m.emit
        while True:
            # -- the next command: the earliest ready head, oldest on ties (all hits)
            floor_rank = t + gap_rank
            best_t = INF
            best_seq = INF
            best_k = -1
            for s in act:
                head = s_q[s][0]
                if head.row != s_row[s]:
                    return t, limit, issued, last_rank, False  # its bank wants a PRE
                e = head_ready(s_start[s], last_in_bg[s_bg[s]] + gap_bg, floor_rank,
                               head.admitted)
                if e < best_t or (e == best_t and head.seq < best_seq):
                    best_t, best_seq, best_k = e, head.seq, s
            if best_k < 0 or f_at < best_t:
                return t, limit, issued, last_rank, False  # nothing queued, or a row command
            req = s_q[best_k][0]
            if req.ncols - req.served != 1:
                return t, limit, issued, last_rank, False  # a bulk head's bursts
            # -- admissions up to that cycle come first: hits behind a head only
            while pending.size():
                head = pending.first()
                a = self._run_admission(head, t, best_t, limit, tally)
                if a < 0:
                    break
                hk = index[head.bank]
                if head.is_write != is_write or hk < 0 or head.row != s_row[hk]:
                    return t, limit, issued, last_rank, False  # not a hit for a stream
                qh = queues[head.bank]
                if not qh:
                    return t, limit, issued, last_rank, False  # a new head
                self._admit_in_run(head, a, qh, tally)
            if best_t >= limit:
                return t, limit, issued, last_rank, True
            # -- issue it: the head's last burst, so it completes and leaves its queue
            t = best_t
            k = best_k
            if emit is not None:
                emit(t, k, req.col + req.served)
            req.served += 1
            issued += 1
            self.chained_hits += 1
            s_last[k] = t
            last_in_bg[s_bg[k]] = t
            last_rank = t
            qk = s_q[k]
            qk.pop(0)
            if not qk:
                act.remove(k)
            limit = self._run_complete(tally, req, streams[k], not qk, t, lat, limit)
            if self._run_ends(tally, is_write, True, rank, t):
                return t, limit, issued, last_rank, True
            if qk and qk[0].row != s_row[k]:
                # its bank's next candidate is the general loop's to choose (bypass or PRE)
                limit = self._next_head(m, k, t, limit, True, self.run_row_inline[cmd])
                m.new_epoch()
                return t, limit, issued, last_rank, False

    # ------------------------------------------------------------------ setting up, closing
    def _open_merge(self, cmd: int, rank: int, req0: Request, streams: list[int],
                    keys: dict[int, int], virtual_banks: set[int]) -> Merge:
        """The run's state for the streams collected (the winner's first)."""
        dev = self.dev
        queues = self.write_q if cmd == WR else self.read_q
        cand_req = self.cand_req
        now = self.now
        s_q: list[list[Request]] = [one_request(cand_req[b]) if b in virtual_banks
                                     else queues[b] for b in streams]
        if streams[0] in virtual_banks:
            s_q[0] = one_request(req0)
        virtual = [b in virtual_banks for b in streams]
        self.bypass_streams += len(virtual_banks)
        s_row = [dev.open_row[b] for b in streams]
        s_start = [max(dev.earliest(cmd, b), now) for b in streams]
        s_start[0] = now
        bpg = dev.banks_per_group
        s_bg = [(b // bpg) % dev.bankgroups for b in streams]
        emit = self._run_emitter(cmd, streams, s_row)
        return Merge(cmd, rank, streams, keys, s_q, virtual, s_row, s_start, s_bg,
                     dev.bankgroups, self.nbanks, RunTally(self, rank), emit)

    def _close_merge(self, m: Merge, issued: int, last_rank: int) -> None:
        """Commit the run: each bank's last command not yet on the device, and the streams
        that issued nothing pushed back with their old keys."""
        streams, s_last = m.streams, m.s_last
        rows = dict(zip(streams, m.s_row, strict=True))
        # streams flushed to the device inside the run are done with (their fresh rows too)
        last_of = {b: s_last[k] for k, b in enumerate(streams) if s_last[k] > m.flushed_at}
        idle = {streams[k]: m.keys[streams[k]] for k in m.live if k and s_last[k] == -INF}
        self._commit_run(m.cmd, m.rank, m.tally, issued, streams, rows, last_of,
                         last_rank if last_rank > m.last_inline else m.last_inline, idle)

    # ------------------------------------------------------------------ rare events
    def _stream_head_done(self, m: Merge, k: int, req: Request, t: int, lat: int,
                          limit: int) -> int:
        """Stream ``k``'s head ``req`` issued its last burst at ``t``: it leaves its queue (a
        bypass hit, its bank's queue: the bank counts the bypass) and completes.  Returns the
        run's limit (see :meth:`_run_complete`)."""
        streams = m.streams
        bk = streams[k]
        queues = self.write_q if m.is_write else self.read_q
        if m.virtual[k]:
            queues[bk].remove(req)
            self.bypass[bk] += 1
            m.s_q[k] = queues[bk]
            m.virtual[k] = False
        else:
            m.s_q[k].pop(0)
        return self._run_complete(m.tally, req, bk, not queues[bk], t, lat, limit)

    def _next_head(self, m: Merge, k: int, t: int, limit: int, bypassing: bool,
                   inline: bool) -> int:
        """Stream ``k``'s head finished at ``t``; when its next head misses the open row, the
        bank's next candidate follows the scheduler's rules: a younger hit within the cap (a
        virtual stream), else a PRE, which retires the stream (open pages, issued inside the
        run) or bounds the run.  Returns the run's limit."""
        qk = m.s_q[k]
        if not qk or qk[0].row == m.s_row[k]:
            return limit
        if bypassing:
            # the bank's next candidate: its first younger hit while the cap allows (a virtual
            # stream from here), else a PRE (bounded below)
            if self.bypass[m.streams[k]] < self.cap:
                row_k = m.s_row[k]
                for other in qk:
                    if other.row == row_k:
                        m.s_q[k] = [other]
                        m.virtual[k] = True
                        self.bypass_streams += 1
                        break
            if inline and not m.virtual[k]:
                # retire it: its bank's PRE becomes a candidate like any other, to
                # be issued inside the run when it is due
                self._flush_run(m.cmd, m.streams, m.s_row, m.s_last, m.flushed_at)
                m.flushed_at = t
                self._retire(k, t, m.streams, m.s_q, m.live, m.index, m.former)
                m.rescan = True
        else:
            v = self._bypass_bound(m.streams[k], qk, m.s_row[k])
            if v < INF:  # no earlier than the next burst to its bank group
                cmd = m.cmd
                e = m.last_in_bg[m.s_bg[k]] + self.run_gap_bg[cmd]
                v = max(v, e, m.s_start[k], t + self.run_gap_rank[cmd])
                if v < limit:
                    limit = v
        return limit

    def _periodic_step(self, m: Merge, t: int, bound: int, last_bound: bool) -> tuple[int, int]:
        """A bulk head continues after the command at ``t``: once the epoch is steady, issue
        whole periods of the leaders' merge before ``bound`` (the run's limit or the row
        command bounding it) at once.  Returns (cycles to the last one issued, commands)."""
        if m.steady is None:
            if m.steady_at < 0:
                m.steady_at = steady_from(m.live, m.s_q, m.s_row, m.s_start, last_bound)
            if t >= m.steady_at:
                m.steady = steady_leaders(t, m.live, m.s_q, m.s_row, m.s_start, m.s_bg)
        steady = m.steady
        if steady is None:
            return 0, 0
        cmd = m.cmd
        gap_bg = self.run_gap_bg[cmd]
        gap_rank = self.run_gap_rank[cmd]
        last_in_bg, s_bg = m.last_in_bg, m.s_bg
        # the leaders' readiness after this command, oldest first, as one int (a leading 1,
        # then one digit of ``base`` each, above gap_rank): it decides every choice until the
        # epoch ends (see periodic.leader_cycle)
        base = (gap_bg if gap_bg > gap_rank else gap_rank) + 1
        leaders = steady[0]
        key = 1
        for s in leaders:
            v = last_in_bg[s_bg[s]] + gap_bg - t
            key = key * base + (v - gap_rank if v > gap_rank else 0)
        cycles = self._cycles[cmd]
        cyc = cycles.get(key)
        if cyc is None:
            ready: list[int] = []
            for s in leaders:
                v = last_in_bg[s_bg[s]] + gap_bg - t
                ready.append(v if v > gap_rank else gap_rank)
            cyc = leader_cycle(ready, gap_bg, gap_rank)
            cycles[key] = cyc
        if not cyc.period:
            return 0, 0
        if steady[2] < bound:  # a head past its gates then joins the leaders
            bound = steady[2]
        pending = self.pending
        if pending.size():
            p = pending.first()
            tally = m.tally
            full = tally.n_w >= self.write_cap if p.is_write else tally.n_r >= self.read_cap
            if not full and p.arrival < bound:
                bound = p.arrival
        dt, dn = cycle_jump(cyc, t, leaders, bound, m.s_q, m.s_last, last_in_bg, s_bg, m.emit,
                            2 if last_bound else 1)
        if dn:
            self.periodic_jumps += 1
        return dt, dn

    def _rescan(self, m: Merge, t: int, limit: int, bypassing: bool) -> tuple[int, int]:
        """A row command was issued inside the run or a stream retired: the next candidate
        bounds the run (or, a row command, may be issued inside it: its cycle is returned as
        ``f_at``), and new hits of the run's kind (a row just opened) join it as streams.
        Returns (limit, f_at)."""
        m.rescan = False
        cmd = m.cmd
        queues = self.write_q if m.is_write else self.read_q
        found: list[int] = []
        vb: set[int] = set()
        top_t, top_prio, top_b = self._collect_streams(cmd, m.rank, queues, bypassing, found,
                                                       m.keys, vb)
        self.top_b = top_b
        f_at = INF
        if top_b >= 0:
            if top_prio != PRIO_REFRESH and self.cand_cmd[top_b] in (ACT, PRE):
                f_at = top_t
            elif top_t < limit:
                limit = top_t
        dev = self.dev
        bpg = dev.banks_per_group
        now_run = self.now
        streams, s_q, s_row, s_start = m.streams, m.s_q, m.s_row, m.s_start
        for b in found:
            virt = b in vb
            self.bypass_streams += virt
            ks = m.former.pop(b, -1)
            if ks < 0:
                ks = len(streams)
                streams.append(b)
                s_q.append([])
                s_row.append(-1)
                s_start.append(0)
                m.s_bg.append((b // bpg) % dev.bankgroups)
                m.s_last.append(-INF)
                m.virtual.append(False)
            s_q[ks] = one_request(self.cand_req[b]) if virt else queues[b]
            s_row[ks] = dev.open_row[b]
            v = dev.earliest(cmd, b)
            s_start[ks] = v if v > now_run else now_run
            m.virtual[ks] = virt
            m.index[b] = ks
            m.live.append(ks)
        # A row command alone changes no column command (it only takes a free bus cycle before
        # the next one), and every other cause of a rescan began a new epoch already.  New
        # streams (a row just opened) begin one, unless they cannot issue yet: the leaders
        # stand until their gate.
        if found:
            first = INF
            for b in found:
                ks = m.index[b]
                v = gate(s_q[ks], s_row[ks], s_start[ks])
                if v < first:
                    first = v
            steady = m.steady
            if steady is not None and first > t:
                if first < steady[2]:
                    m.steady = (steady[0], steady[1], first)
            else:
                m.new_epoch()
        return limit, f_at

    def _admit_foreign(self, m: Merge, head: Request, a: int, hk: int, t: int) -> bool:
        """Admit the pending ``head`` at ``a`` inside the run (open pages; its last burst was
        at ``t``), though it is no
        hit for a stream, as the scheduler would; False (the caller ends the run at ``a``) if
        it switches the mode (reads/writes) or meets a fresh row (which picks from both
        queues: unless it joins a live stream's queue, where it can be no hit for that row)."""
        is_write = m.is_write
        tally = m.tally
        bk = head.bank
        if (self.fresh[bk] and (hk < 0 or head.is_write != is_write)) or drain_flips(
                is_write, tally.n_r + (not head.is_write), tally.n_w + head.is_write,
                self.drain_forced, self.high, self.low):
            return False
        self.pending.pop_first()
        self.rank_pending[head.rank] -= 1
        if self.stop_on_held and self.held[bk]:
            self._watch_hit(a)
        head.admitted = a
        qh = (self.write_q if head.is_write else self.read_q)[bk]
        qh.append(head)
        if head.is_write:
            tally.n_w += 1
        else:
            tally.n_r += 1
        if head.rank == m.rank:
            tally.queued += 1
        else:
            self.rank_queued[head.rank] += 1
        tally.admitted.append(head)
        self.admissions_in_runs += 1
        if hk >= 0:
            # a live stream's bank: its head stays, unless the queue it serves was empty (a
            # new head, to another row: the bank needs a PRE)
            if head.is_write == is_write and len(qh) == 1:
                self._flush_run(m.cmd, m.streams, m.s_row, m.s_last, m.flushed_at)
                m.flushed_at = t
                self._retire(hk, a, m.streams, m.s_q, m.live, m.index, m.former)
                m.rescan = True
        else:
            c = self.cand_cmd[bk]
            if c < 0 or c == PRE:  # what _admit_ready refreshes
                self.now = a
                self._refresh_candidate(bk)
                m.rescan = True
        return True
