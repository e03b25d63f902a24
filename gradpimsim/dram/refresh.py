"""All-bank refresh: the one authority that says when a rank refreshes and what it needs next.

Both schedulers that issue on a device (the host controller and, standalone, the PIM scheduler)
ask a :class:`RefreshManager` instead of deciding on their own: :meth:`~RefreshManager.start_due`
raises a rank's refresh flag, :meth:`~RefreshManager.propose` names the command a bank of a
refreshing rank needs (PRE while its row is open, then one REF on the rank's first bank once
every bank is closed), and :meth:`~RefreshManager.refreshed` books an issued REF and lowers the
flag when the rank owes no more.  On a shared channel the PIM scheduler has no manager of its
own: it obeys the host controller's flags (``arbiter/shared_channel.py``).

JEDEC lets a controller postpone up to 8 REFs while busy (and no gap between REFs may exceed
9 x tREFI).  The manager counts refreshes *owed* as ``floor(t / tREFI) - issued``.  A rank that
owes refreshes is refreshed as soon as it is idle; a busy rank is refreshed anyway once it owes
``max_postponed`` (the eighth owed one forces it), so it never owes more than 8 and no REF gap
reaches 9 x tREFI.  ``max_postponed`` of 0 or 1 refreshes every tREFI, busy or not (DRAMsim3's
behaviour), for side-by-side comparisons.
"""

from __future__ import annotations

from gradpimsim.dram.codes import INF, PRE, REF


class RefreshManager:
    def __init__(self, ranks: int, tREFI: int, max_postponed: int, enabled: bool = True, *,
                 banks_per_rank: int = 1) -> None:
        self.tREFI = tREFI
        self.banks_per_rank = banks_per_rank
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

    def start_due(self, rank: int, now: int, idle: bool) -> bool:
        """Raise ``rank``'s refresh flag if a refresh is due (:meth:`should_start`); True if so."""
        if self.should_start(rank, now, idle):
            self.refreshing[rank] = True
            return True
        return False

    def ref_ready(self, rank: int, open_row: list[int]) -> bool:
        """May the rank's REF issue (every bank of the rank closed)?"""
        first = rank * self.banks_per_rank
        return all(open_row[b] < 0 for b in range(first, first + self.banks_per_rank))

    def propose(self, rank: int, b: int, open_row: list[int]) -> int:
        """The command bank ``b`` of refreshing ``rank`` needs: PRE while its row is open, REF
        (on the rank's first bank) once every bank of the rank is closed, else none (-1)."""
        if open_row[b] >= 0:
            return PRE
        if b == rank * self.banks_per_rank and self.ref_ready(rank, open_row):
            return REF
        return -1

    def refreshed(self, rank: int, t: int, idle: bool) -> bool:
        """Book a REF issued at ``t``; the flag stays up while the rank owes more (catching up
        while idle, or forced): True if it is still refreshing."""
        self.record(rank, t)
        if self.should_continue(rank, t, idle):
            return True
        self.refreshing[rank] = False
        return False
