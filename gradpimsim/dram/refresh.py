"""All-bank refresh bookkeeping per rank.

JEDEC lets a controller postpone up to 8 REFs while busy (and no gap between REFs may exceed
9 x tREFI).  The manager counts refreshes *owed* as ``floor(t / tREFI) - issued``.  A rank that
owes refreshes is refreshed as soon as it is idle; a busy rank is refreshed anyway once it owes
``max_postponed`` (the eighth owed one forces it), so it never owes more than 8 and no REF gap
reaches 9 x tREFI.  ``max_postponed`` of 0 or 1 refreshes every tREFI, busy or not (DRAMsim3's
behaviour), for side-by-side comparisons.
"""

from __future__ import annotations

from gradpimsim.dram.codes import INF


class RefreshManager:
    def __init__(self, ranks: int, tREFI: int, max_postponed: int, enabled: bool = True) -> None:
        self.tREFI = tREFI
        self.enabled = enabled
        self.force_at = max(1, max_postponed)
        self.issued = [0] * ranks
        self.refreshing = [False] * ranks
        self.gaps_max = [0] * ranks
        self.last_ref = [-1] * ranks

    def owed(self, rank: int, now: int) -> int:
        return now // self.tREFI - self.issued[rank]

    def next_check(self, now: int) -> int:
        """The next tREFI boundary after ``now``: when a rank's debt can grow."""
        if not self.enabled:
            return INF
        return (now // self.tREFI + 1) * self.tREFI

    def should_start(self, rank: int, now: int, idle: bool) -> bool:
        if not self.enabled or self.refreshing[rank]:
            return False
        owed = self.owed(rank, now)
        return owed > 0 and (idle or owed >= self.force_at)

    def should_continue(self, rank: int, now: int, idle: bool) -> bool:
        """After a REF: keep the rank closed for another one (catching up while idle)?"""
        owed = self.owed(rank, now)
        return owed > 0 and (idle or owed >= self.force_at)

    def record(self, rank: int, t: int) -> None:
        self.issued[rank] += 1
        if self.last_ref[rank] >= 0:
            self.gaps_max[rank] = max(self.gaps_max[rank], t - self.last_ref[rank])
        self.last_ref[rank] = t
