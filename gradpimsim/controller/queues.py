"""Request admission and the per-bank queues of one channel controller.

Requests are admitted in arrival order; a full read or write queue stalls the source
(back-pressure), head-of-line, like a DRAMsim3 trace frontend.  Reads are served unless the write
queue reaches the high watermark (then writes drain to the low watermark) or no read is queued
(then writes are served until a read arrives): :func:`drain_flips`, the one statement of that
policy, which the per-command path and the closed-form runs both ask.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from typing import Final

from gradpimsim.config import MemoryConfig
from gradpimsim.controller.request import Request
from gradpimsim.dram.codes import INF


def drain_flips(draining: bool, reads: int, writes: int, forced: bool, high: int,
                low: int) -> bool:
    """The write-drain policy, in one place: does the controller switch between serving reads
    and draining writes, given the queue counts?  A drain starts at the high watermark (forced)
    or when no read waits; a forced drain ends at the low watermark once reads wait, an
    opportunistic one as soon as a read arrives, and any drain ends when the writes run out."""
    if draining:
        return writes == 0 or (reads > 0 and (not forced or writes <= low))
    return writes >= high or (reads == 0 and writes > 0)


#: A FIFO drops its consumed prefix once it is at least this long and half the list.
_COMPACT_AT: Final = 4096


class RequestFifo:
    """Requests offered and not yet admitted, in arrival order: a list and a head index.

    Not a deque because the controller's loops, compiled, touch the head for every request:
    ``first()`` / ``pop_first()`` are native calls and list indexing, where a deque's
    ``popleft()``, ``[0]`` and truth test are calls by name.  The consumed prefix is dropped
    once it is as long as the live part (amortized O(1)); it holds no more than that.
    """

    def __init__(self) -> None:
        self.items: list[Request] = []
        self.head = 0

    def size(self) -> int:
        return len(self.items) - self.head

    def first(self) -> Request:
        return self.items[self.head]

    def pop_first(self) -> Request:
        items = self.items
        h = self.head
        req = items[h]
        h += 1
        if h >= _COMPACT_AT and 2 * h >= len(items):
            del items[:h]
            h = 0
        self.head = h
        return req

    def push_front(self, req: Request) -> None:
        """Put back a request taken off the front (a run's admission that is undone)."""
        if self.head:
            self.head -= 1
            self.items[self.head] = req
        else:
            self.items.insert(0, req)

    def append(self, req: Request) -> None:
        self.items.append(req)

    def __len__(self) -> int:
        return len(self.items) - self.head

    def __iter__(self) -> Iterator[Request]:
        return iter(self.items[self.head:])


class RequestQueues:
    """Pending requests (offered, not yet admitted), the per-bank read and write queues, their
    counts and the read/write mode; the scheduler above decides what to issue from them."""

    def __init__(self, cfg: MemoryConfig, nbanks: int) -> None:
        c = cfg.controller
        self.now = 0
        self.nbanks = nbanks
        #: Per-bank queues, oldest first: lists, not deques (at most a queue's depth long, so
        #: ``pop(0)`` is a short move; compiled, list operations are native where a deque's
        #: are calls by name).
        self.read_q: list[list[Request]] = [[] for _ in range(nbanks)]
        self.write_q: list[list[Request]] = [[] for _ in range(nbanks)]
        self.reads = 0
        self.writes = 0
        self.read_cap = c.read_queue_depth
        self.write_cap = c.write_queue_depth
        self.high = c.write_high_watermark
        self.low = c.write_low_watermark
        self.fcfs = c.scheduler == "fcfs"
        self.order_r: deque[Request] = deque()  # age order (FCFS only)
        self.order_w: deque[Request] = deque()
        self.draining = False
        self.drain_forced = False
        self.pending = RequestFifo()
        self.rank_queued = [0] * cfg.org.ranks
        #: Requests offered and not yet admitted, per rank (an arbiter asks whether the host
        #: has work on a rank).
        self.rank_pending = [0] * cfg.org.ranks

    def submit(self, req: Request) -> None:
        """Offer a request; it is admitted at ``max(req.arrival, now)`` once its queue has room.

        Requests must be submitted in non-decreasing arrival order (their age stamps, given at
        construction, order them for the scheduler).
        """
        self.pending.append(req)
        self.rank_pending[req.rank] += 1

    def submit_many(self, reqs: Iterable[Request]) -> None:
        """:meth:`submit` each of ``reqs``, in order (a list is taken whole)."""
        batch = reqs if isinstance(reqs, list) else list(reqs)
        self.pending.items.extend(batch)
        rank_pending = self.rank_pending
        for req in batch:
            rank_pending[req.rank] += 1

    @property
    def queued(self) -> int:
        return self.reads + self.writes

    @property
    def busy(self) -> bool:
        return self.pending.size() > 0 or self.reads + self.writes > 0

    def _next_admission(self) -> int:
        if not self.pending.size():
            return INF
        head = self.pending.first()
        if head.is_write:
            if self.writes >= self.write_cap:
                return INF
        elif self.reads >= self.read_cap:
            return INF
        return head.arrival if head.arrival > self.now else self.now

    def _enqueue(self, req: Request, now: int) -> bool:
        """Admit the pending head ``req`` at ``now`` if its queue has room; False if full."""
        if req.is_write:
            if self.writes >= self.write_cap:
                return False
            self.writes += 1
            self.write_q[req.bank].append(req)
            if self.fcfs:
                self.order_w.append(req)
        else:
            if self.reads >= self.read_cap:
                return False
            self.reads += 1
            self.read_q[req.bank].append(req)
            if self.fcfs:
                self.order_r.append(req)
        self.pending.pop_first()
        self.rank_pending[req.rank] -= 1
        req.admitted = now
        self.rank_queued[req.rank] += 1
        return True
