"""Periodic-run math: the closed forms that let a run skip whole periods of its merge.

Inside a closed-form run (``runs.py``, ``merge_run.py``) the streams that can still win (the
*leaders*, the oldest hit head past its gates per bank group) decide every choice from their
readiness values alone, so their merge becomes periodic once a state recurs.  These functions
find that period (:func:`leader_cycle`), the leaders (:func:`steady_leaders`), when leaders
exist (:func:`steady_from`), and issue whole periods at once (:func:`cycle_jump`).  They read
the run's per-stream lists and change only what they are given: no controller state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from gradpimsim.controller.request import Request
from gradpimsim.dram.codes import INF


class Cycle:
    """One period of the leaders' merge, from a relative state back to it (see
    :func:`leader_cycle`); ``period`` 0 means the state is not on a short cycle."""

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


#: Steps :func:`leader_cycle` follows a state before calling it transient.
CYCLE_STEPS: Final = 64


def leader_cycle(ready: list[int], gap_bg: int, gap_rank: int) -> Cycle:
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
    for _ in range(CYCLE_STEPS):
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
            return Cycle(t, offsets, positions, n)
    return Cycle(0, [], [], n)


def gate(q: list[Request], row: int, start: int) -> int:
    """The cycle from which a run stream's head may issue, past its bank-level gates
    (``start``) and its admission; -1 if the queue is empty or its head misses ``row``."""
    if not q:
        return -1
    head = q[0]
    if head.row != row:
        return -1
    return start if start > head.admitted else head.admitted


def steady_from(live: list[int], s_q: list[list[Request]], s_row: list[int],
                 s_start: list[int], last_bound: bool) -> int:
    """The first cycle at which some hit head of the ``live`` streams is past its own
    gates and its admission, so that leaders exist (never, while a head whose last burst
    bounds the run waits: the run ends soon)."""
    at = INF
    for s in live:
        v = gate(s_q[s], s_row[s], s_start[s])
        if v < 0:
            continue
        if last_bound and s_q[s][0].ncols - s_q[s][0].served == 1:
            return INF
        if v < at:
            at = v
    return at

def steady_leaders(t: int, live: list[int], s_q: list[list[Request]], s_row: list[int],
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
    from there is periodic once such a state recurs (:func:`leader_cycle`; the period must
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

def cycle_jump(cyc: Cycle, t: int, leaders: list[int], bound: int,
                s_q: list[list[Request]], s_last: list[int], last_in_bg: list[int],
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
    return (at + offsets[npart - 1] if npart else at) - t, m * n + npart
