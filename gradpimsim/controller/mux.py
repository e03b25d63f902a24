"""The command mux: the winning candidate, and issuing one command at a time.

The winner is the candidate with the smallest exact earliest cycle (read from the device's
tables), ties broken by priority (refresh, hits, misses, idle closes), then age, then bank:
exactly what a per-cycle FR-FCFS controller would issue.  A command moves the bus, the clock and
its rank's and group's timing for most other candidates, so each decision scans the banks' flat
candidate vectors (a few dozen native compares) rather than keeping a heap in order.  Commands
issued one by one go through here (row commands, REF, and column commands outside closed-form
runs), as do a request's completion, the statistics of every command and the refresh start glue.
"""

from __future__ import annotations

from librt.vecs import vec
from mypy_extensions import i64

from gradpimsim.config import MemoryConfig
from gradpimsim.config.pim import PimConfig
from gradpimsim.controller.candidates import BankCandidates
from gradpimsim.controller.latency import LatencyHistogram
from gradpimsim.controller.request import Request
from gradpimsim.dram.codes import ACT, INF, NCMD, PRE, RDA, REF, WRA
from gradpimsim.dram.commands import Cmd, Command, CommandSink
from gradpimsim.dram.device import zeros


class CommandMux(BankCandidates):
    """Picks the winning candidate and issues single commands; keeps the command statistics."""

    def __init__(self, cfg: MemoryConfig, channel: int, pim: PimConfig | None,
                 sink: CommandSink | None) -> None:
        super().__init__(cfg, pim)
        t = cfg.timing
        self.cfg = cfg
        self.channel = channel
        self.sink = sink
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
        #: Scheduler decisions taken (admission batches, refresh checks, commands or runs):
        #: the simulation's cost, which bulk requests keep proportional to rows, not bursts.
        self.events = 0
        #: What :meth:`next_event` would answer right after :meth:`run_until` stopped at its
        #: limit (valid until anything changes: an arbiter reads it instead of asking again).
        self.next_at = 0
        self.last_done = 0
        #: Column commands that were the first to their row after its ACT (row-buffer misses).
        self.row_misses = 0
        #: The winner after :meth:`_peek`: its cycle, priority, age stamp and bank (-1: none).
        self.top_t: i64 = INF
        self.top_p: i64 = 0
        self.top_s: i64 = 0
        self.top_b: i64 = -1
        #: Per rank, the cycle the tFAW window allows its next ACT (filled by :meth:`_peek`).
        self._faw_at: vec[i64] = zeros(cfg.org.ranks)

    # ------------------------------------------------------------------ the winner
    def _peek(self) -> int:
        """Exact issue cycle of the winning candidate (its bank left in ``top_b``), or INF."""
        dev = self.dev
        bank_next, bg_next, rank_next = dev.bank_next, dev.bg_next, dev.rank_next
        cand_cmd, cand_prio, cand_seq = self.cand_cmd, self.cand_prio, self.cand_seq
        cand_floor, in_run = self.cand_floor, self.in_run
        bg_base, rank_base, bank_rank = self.bg_base, self.rank_base, self.bank_rank
        clock: i64 = self.now
        bus: i64 = dev.cmd_bus_next
        if bus > clock:
            clock = bus
        # the rolling four-activate window's floor per rank, for the ACT candidates
        faw_at = self._faw_at
        nfaw: i64 = dev.faw_count
        faw_times, faw_head, faw_len = dev.faw_times, dev.faw_head, dev.faw_len
        window: i64 = dev.faw_window
        for r in range(len(faw_at)):
            faw_at[r] = (faw_times[r * nfaw + faw_head[r]] + window
                         if faw_len[r] == nfaw else 0)
        best: i64 = INF
        best_p: i64 = 0
        best_s: i64 = 0
        best_b: i64 = -1
        n: i64 = self.nbanks
        for b in range(n):
            c = cand_cmd[b]
            if c < 0 or in_run[b]:
                continue
            # dev.earliest(), inlined: this is the scheduler's innermost loop
            e = bank_next[b * NCMD + c]
            v = bg_next[bg_base[b] + c]
            if v > e:
                e = v
            v = rank_next[rank_base[b] + c]
            if v > e:
                e = v
            if c == ACT:
                v = faw_at[bank_rank[b]]
                if v > e:
                    e = v
            v = cand_floor[b]
            if v > e:
                e = v
            if e < clock:
                e = clock
            if e > best:
                continue
            p = cand_prio[b]
            if e == best:
                if p > best_p:
                    continue
                if p == best_p and cand_seq[b] >= best_s:
                    continue
            best = e
            best_p = p
            best_s = cand_seq[b]
            best_b = b
        self.top_t, self.top_p, self.top_s, self.top_b = best, best_p, best_s, best_b
        return best

    def _peek_more(self, banks: list[int]) -> bool:
        """The last :meth:`_peek` again after only ``banks`` changed their candidates, with no
        command issued and the clock moved no later than its winner: every other candidate's
        exact cycle is what that peek found, so the winner is its winner or one of ``banks``
        (the same order as :meth:`_peek`).  False (nothing updated) if the winner's own
        candidate changed: a full peek is needed."""
        best_b: i64 = self.top_b
        for bank in banks:
            if bank == best_b:
                return False
        dev = self.dev
        cand_cmd, cand_prio, cand_seq = self.cand_cmd, self.cand_prio, self.cand_seq
        clock: i64 = self.now
        bus: i64 = dev.cmd_bus_next
        if bus > clock:
            clock = bus
        best: i64 = self.top_t
        best_p: i64 = self.top_p
        best_s: i64 = self.top_s
        in_run = self.in_run
        for bank in banks:
            b: i64 = bank
            c = cand_cmd[b]
            if c < 0 or in_run[b]:
                continue
            e: i64 = dev.earliest(c, b)
            v = self.cand_floor[b]
            if v > e:
                e = v
            if e < clock:
                e = clock
            if e > best:
                continue
            p = cand_prio[b]
            if e == best:
                if p > best_p:
                    continue
                if p == best_p and (cand_seq[b] > best_s
                                    or (cand_seq[b] == best_s and b > best_b)):
                    continue
            best = e
            best_p = p
            best_s = cand_seq[b]
            best_b = b
        self.top_t, self.top_p, self.top_s, self.top_b = best, best_p, best_s, best_b
        return True

    # ------------------------------------------------------------------ one command
    def _issue_row(self, cmd: int, b: int, req: Request | None) -> None:
        """Issue the row command (ACT, PRE) or REF that won at ``now``."""
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
            self._emit(REF, b, -1, -1, t)
            self.refresh.refreshed(rank, t, self._rank_idle(rank))
            self._rebuild_rank(rank)
            if self.watching:
                self._watch_hit(t)

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

    def _complete(self, b: int, req: Request, t: int) -> None:
        """``req``'s last burst issued at ``t`` (one by one): it leaves its queue."""
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
            q.pop(0)
        else:
            q.remove(req)
            self.bypass[b] += 1
        if not q:
            self._bank_released(b, t)
        self.last_col[b] = t
        self.rank_queued[req.rank] -= 1
        if done > self.last_done:
            self.last_done = done
        self._finish(req, done)
        if self._rank_idle(req.rank):
            self._start_refresh(req.rank, t, True)

    def _finish(self, req: Request, done: int) -> None:
        """``req``'s last data beat ends at ``done``: stamp it and tell its requester (every
        completion, one by one or inside a run, ends here)."""
        req.done = done
        if req.callback is not None:
            req.callback(req)

    def _emit(self, cmd: int, b: int, row: int, col: int, t: int) -> None:
        self.cmd_counts[cmd] += 1
        if self.sink is not None:
            r, g, k = self.dev.split_bank(b)
            self.sink(Command(t, Cmd(cmd), self.channel, r, g, k, row, col))

    # ------------------------------------------------------------------ refresh
    def _rank_idle(self, rank: int) -> bool:
        """Nothing queued for the rank, here or (co-scheduling) at another source."""
        return self.rank_queued[rank] == 0 and self._ext_idle(rank)

    def _ext_idle(self, rank: int) -> bool:
        return self.external_busy is None or not self.external_busy(rank)

    def _refresh_check(self) -> None:
        for rank in range(len(self.rank_queued)):
            self._start_refresh(rank, self.now, self._rank_idle(rank))

    def _start_refresh(self, rank: int, t: int, idle: bool) -> bool:
        """Start rank ``rank``'s refresh at cycle ``t`` if the refresh authority says it is due:
        every bank's candidate changes (PREs, then the REF), and a PIM scheduler watching for
        refresh flags must look again.  True if it started."""
        if not self.refresh.start_due(rank, t, idle):
            return False
        self._rebuild_rank(rank)
        if self.watching:
            self._watch_hit(t)
        return True
