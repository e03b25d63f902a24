"""Per-bank candidates: the one command each bank with work would issue next, and why.

Each bank with queued work has one *candidate* (its oldest row hit, else PRE or ACT for its
oldest request), kept in flat per-bank vectors (command, priority, age, floor); the command mux
(``mux.py``) picks the winner by scanning them.  What a bank proposes is stated here in small
named pieces:

- refresh: a refreshing rank's banks propose what the refresh authority asks for
  (:meth:`~gradpimsim.dram.refresh.RefreshManager.propose`: PREs, then the REF);
- scheduler: FR-FCFS (:meth:`BankCandidates._frfcfs_choice`: row hits first, oldest first; a
  bank serves at most ``starvation_cap`` younger hits while an older request to another row
  waits) or FCFS (:meth:`BankCandidates._fcfs_choice`: strictly the oldest request);
- page policy: ``open`` keeps rows open; ``closed`` issues RDA/WRA when no other queued request
  hits the row (:meth:`BankCandidates._column_cmd`); ``adaptive`` keeps rows open but
  precharges a bank idle for ``adaptive_idle_cycles`` (:meth:`BankCandidates._idle_choice`).

A row activated for a request (a *fresh* row) serves a hit before anything closes it.  Banks a
co-scheduled PIM unit holds propose nothing (``held``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from librt.vecs import vec
from mypy_extensions import i64

from gradpimsim.config import MemoryConfig
from gradpimsim.config.pim import PimConfig
from gradpimsim.controller.queues import RequestQueues, drain_flips
from gradpimsim.controller.request import Request
from gradpimsim.dram.codes import ACT, INF, NCMD, PRE, RD, WR
from gradpimsim.dram.device import ChannelDevice, zeros
from gradpimsim.dram.refresh import RefreshManager

# Candidate priorities (ties at one cycle: refresh, then hits, then misses, then idle closes),
# as Final constants: mypyc inlines them.
PRIO_REFRESH: Final = -1
PRIO_HIT: Final = 0
PRIO_MISS: Final = 1
PRIO_IDLE: Final = 2


class BankCandidates(RequestQueues):
    """The device and each bank's candidate.

    A bank's candidate is ``cand_cmd[b]`` (-1: none), the request it serves ``cand_req[b]``,
    its priority ``cand_prio[b]``, the request's age stamp ``cand_seq[b]`` (-1 without one) and
    a floor cycle ``cand_floor[b]``.  While a closed-form run holds a bank as one of its streams
    (``in_run[b]``), its candidate takes no part in the choice.
    """

    def __init__(self, cfg: MemoryConfig, pim: PimConfig | None) -> None:
        c = cfg.controller
        t = cfg.timing
        self.dev = ChannelDevice(cfg, pim)
        nb = self.dev.nbanks
        super().__init__(cfg, nb)
        self.closed_page = c.page_policy == "closed"
        self.adaptive = c.page_policy == "adaptive"
        self.idle_close = c.adaptive_idle_cycles
        self.cap = c.starvation_cap
        self.cand_cmd: vec[i64] = vec[i64]([-1] * nb)
        self.cand_req: list[Request | None] = [None] * nb
        self.cand_prio: vec[i64] = zeros(nb)
        self.cand_seq: vec[i64] = zeros(nb)
        self.cand_floor: vec[i64] = zeros(nb)
        self.in_run: vec[i64] = zeros(nb)
        #: Each bank's rank, and where its bank group's and rank's entries start in the
        #: device's tables, for the mux's scan.
        bpg, bpr = self.dev.banks_per_group, self.dev.banks_per_rank
        self.bank_rank: vec[i64] = vec[i64]([b // bpr for b in range(nb)])
        self.bg_base: vec[i64] = vec[i64]([b // bpg * NCMD for b in range(nb)])
        self.rank_base: vec[i64] = vec[i64]([b // bpr * NCMD for b in range(nb)])
        self.bypass = [0] * nb
        #: True between an ACT and the first column command to its row.
        self.fresh = [False] * nb
        self.last_col = [0] * nb
        #: Co-scheduling with PIM streams (``arbiter.shared_channel``): banks a PIM unit holds
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
        #: otherwise be stepped one event at a time (``arbiter.shared_channel``).
        self.watching = False
        #: Co-scheduling: stop a run right after admitting a request to a bank another source
        #: holds (``held``), at that cycle: an arbiter bounds how long such a request waits.
        self.stop_on_held = False
        self.watched = [False] * nb
        #: Bumped whenever a bank closes, a bank's queue empties or the queue being served
        #: switches: what lets a PIM scheduler know its ``may_close`` answers may have changed.
        self.releases = 0
        self._watch_list: list[int] = []
        self.refresh = RefreshManager(cfg.org.ranks, t.tREFI, c.max_postponed_refreshes,
                                      c.refresh, banks_per_rank=self.dev.banks_per_rank)
        self.refresh_due = self.refresh.next_check(0)

    # ------------------------------------------------------------------ the mode served
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

    # ------------------------------------------------------------------ candidates
    def _rebuild(self) -> None:
        for b in range(self.nbanks):
            self._refresh_candidate(b)

    def _rebuild_rank(self, rank: int) -> None:
        bpr = self.dev.banks_per_rank
        for b in range(rank * bpr, (rank + 1) * bpr):
            self._refresh_candidate(b)

    def _refresh_candidate(self, b: int) -> None:
        """Recompute bank ``b``'s candidate command."""
        self._choose(b)

    def _set(self, b: int, cmd: int, req: Request | None, prio: int, floor: int) -> None:
        """Bank ``b``'s candidate is ``cmd`` (-1: none) for ``req`` at ``prio``, not before
        ``floor``, nor before ``req`` was admitted: a closed-form run admits requests ahead of
        its clock, and a row command for one must still wait for its admission."""
        if req is not None and req.admitted > floor:
            floor = req.admitted
        self.cand_cmd[b] = cmd
        self.cand_req[b] = req
        self.cand_prio[b] = prio
        self.cand_seq[b] = req.seq if req is not None else -1
        self.cand_floor[b] = floor

    def _due(self, b: int) -> int:
        """Exact issue cycle of bank ``b``'s candidate: its earliest legal cycle, its floor and
        the clock (what the mux's ``_peek`` computes inline for every candidate)."""
        e = self.dev.earliest(self.cand_cmd[b], b)
        floor = self.cand_floor[b]
        if floor > e:
            e = floor
        if e < self.now:
            e = self.now
        return e

    def _choose(self, b: int) -> None:
        """Bank ``b``'s candidate: refresh first, then the scheduler with the page policy."""
        if self.held[b]:
            self._set(b, -1, None, 0, 0)
            return
        rank = b // self.dev.banks_per_rank
        if self.refresh.refreshing[rank]:
            c = self.refresh.propose(rank, b, self.dev.open_row)
            self._set(b, c, None, PRIO_REFRESH if c >= 0 else 0, 0)
            return
        if self.fcfs:
            self._fcfs_choice(b)
        else:
            self._frfcfs_choice(b)

    def _fcfs_choice(self, b: int) -> None:
        """FCFS: the oldest request of the mode served, when it lives in bank ``b``."""
        order = self.order_w if self.draining else self.order_r
        if not order or order[0].bank != b:
            self._set(b, -1, None, 0, 0)
            return
        head = order[0]
        row = self.dev.open_row[b]
        if row == head.row:
            self._set(b, WR if head.is_write else RD, head, PRIO_HIT, 0)
        else:
            self._set(b, PRE if row >= 0 else ACT, head, PRIO_MISS, 0)

    def _frfcfs_choice(self, b: int) -> None:
        """FR-FCFS: a fresh row's hit, the head's hit, a younger hit within the starvation cap,
        else PRE (or ACT) for the head."""
        q = self.write_q[b] if self.draining else self.read_q[b]
        row = self.dev.open_row[b]
        if not q:
            self._idle_choice(b, row)
            return
        if row >= 0:
            if self.fresh[b]:
                # a row activated for a request serves it before anything closes it
                for other in (self.read_q[b], self.write_q[b]):
                    for req in other:
                        if req.row == row:
                            self._set(b, WR if req.is_write else RD, req, PRIO_HIT, 0)
                            return
            head = q[0]
            if head.row == row:
                self._set(b, WR if head.is_write else RD, head, PRIO_HIT, 0)
                return
            if self.bypass[b] < self.cap:
                for req in q:
                    if req.row == row:
                        self._set(b, WR if req.is_write else RD, req, PRIO_HIT, 0)
                        return
            self._set(b, PRE, head, PRIO_MISS, 0)
            return
        self._set(b, ACT, q[0], PRIO_MISS, 0)

    def _idle_choice(self, b: int, row: int) -> None:
        """A bank with nothing queued in the mode served: a fresh row still serves its hit from
        the other queue; the adaptive page policy closes a row idle for ``idle_close``."""
        if self.fresh[b] and row >= 0:
            other = self.read_q[b] if self.draining else self.write_q[b]
            for req in other:
                if req.row == row:
                    self._set(b, WR if req.is_write else RD, req, PRIO_HIT, 0)
                    return
        if self.adaptive and row >= 0 and not self.read_q[b] and not self.write_q[b]:
            self._set(b, PRE, None, PRIO_IDLE, self.last_col[b] + self.idle_close)
            return
        self._set(b, -1, None, 0, 0)

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

    # ------------------------------------------------------------------ what PIM watches
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

