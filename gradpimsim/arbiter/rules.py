"""Bounded arbitration policies, ``fair`` and ``throttled``, applied by ``shared_channel.py``.

Both give command-bus ties to the host, like ``host-first``; they differ in what else they do.

``fair`` (wait bound ``N`` cycles, ``wait_bound``): neither side waits more than ``N`` cycles for a
bank the other keeps.

- *PIM waits for the host.*  A unit has needed a bank since cycle ``s`` (its next row there is
  not open), and the host holds the bank open while it serves requests queued for it (host-first
  would make the unit wait until that queue empties).  From ``s + N`` on, the host issues
  nothing more to the bank (it is held for PIM) and PIM may close it: its PRE issues at the
  earliest legal cycle from then on, and the bank stays PIM's until PIM opens its row (for
  ``N`` cycles at most).  A bank
  PIM gave back (below) is needed again from the cycle it gave it back.
- *The host waits for PIM.*  The host has a request queued for a bank PIM holds open; it has
  waited since ``w``, the later of the request's admission and PIM's ACT of the bank.  From
  ``w + N`` on, PIM issues nothing to that bank but its PRE, at the earliest legal cycle from
  then on, and does not open it again while the host has requests queued for it, for ``N``
  cycles at most (and a claimed bank PIM has not opened within ``N`` cycles goes back to the
  host), so neither side can hold the other off for good.
- *The command bus.*  A PIM command whose DRAM timing has allowed it for ``N`` cycles wins ties.

Every cycle these rules use is scheduler or queue state (when a unit began to need a bank, a
request's admission, PIM's ACT), and the arbiter decides ``fair`` where its stepped reference
decides, command by command (``SharedChannel.run_until``): the states they read change between
events, so the fast paths would see them at other moments.

``throttled``: PIM uses only what the host leaves idle.  PIM issues on a rank only while the
host has no request pending or queued for that rank (its register work, PIM_OP and PIM_SET,
which DDR4 timing does not let delay a host command, is allowed), PIM's work does not postpone
refreshes, and PIM closes its banks on a rank in time for the rank's next refresh
(``guard`` cycles before the tREFI boundary), so REFs fall where they would without PIM.  When
the host's requests for a rank arrive while PIM is idle there, the host's schedule is exactly
the one it would have without PIM; a request that arrives while PIM holds banks of its rank
waits for PIM's PREs (their recovery, at most).
"""

from __future__ import annotations

from typing import Final

from gradpimsim.controller.controller import ChannelController
from gradpimsim.dram.codes import INF
from gradpimsim.pim.channel import PimChannel

#: Default of ``fair``'s wait bound, in DRAM cycles (about 0.8 us at DDR4-2400): longer than a
#: PIM unit's work on one row of a chunk in a quiet bank group, so a row is rarely cut short.
DEFAULT_WAIT_BOUND: Final = 1000


def _serving(ctrl: ChannelController) -> list:  # type: ignore[type-arg]
    return ctrl.write_q if ctrl.draining else ctrl.read_q


class FairShare:
    """The ``fair`` policy's state and deadlines (see the module docstring)."""

    def __init__(self, ctrl: ChannelController, pim: PimChannel, wait_bound: int) -> None:
        if wait_bound < 1:
            raise ValueError(f"wait_bound must be at least 1 cycle, got {wait_bound}")
        self.ctrl = ctrl
        self.pim = pim
        self.n = wait_bound
        #: Banks the host gave up to PIM (held for PIM from the claim until PIM opens them).
        self.claimed = [False] * ctrl.dev.nbanks
        #: When each claim was made (a claim PIM has not used within ``N`` cycles lapses).
        self.claim_at = [0] * ctrl.dev.nbanks
        self.claims = 0  # changes whenever a claim lets a unit close a bank
        #: Banks PIM gives back: the cycle it gives them back from (INF: none).
        self.yields: dict[int, int] = {}
        ctrl.stop_on_held = True

    # -- PIM waiting for the host ----------------------------------------------------------
    def may_close(self, bank: int, now: int) -> bool:
        """May PIM close a bank the host holds open (host-first, or claimed)?"""
        if self.claimed[bank]:
            return True
        return not _serving(self.ctrl)[bank]

    def _claims_due(self) -> list[tuple[int, int]]:
        """(cycle, bank): host-open banks a unit waits for, with requests queued, and when
        they are the unit's to close."""
        ctrl, pim = self.ctrl, self.pim
        serving = _serving(ctrl)
        refreshing = ctrl.refresh.refreshing
        bpr = ctrl.dev.banks_per_rank
        out = []
        for b in set(pim.waiting_banks()) | set(self.yields):
            # (the host's row need not be open yet: a bank PIM gave back is claimed even
            # while the host is still opening it, so the deadline is a wake-up in any case)
            if pim.own_row[b] == -1 and serving[b] \
                    and not self.claimed[b] and not refreshing[b // bpr]:
                out.append((pim.need_since[b] + self.n, b))
        return out

    # -- the host waiting for PIM ----------------------------------------------------------
    def _yields_due(self) -> list[tuple[int, int]]:
        """(cycle, bank): PIM-held banks the host has requests queued for, and from when PIM
        gives them back."""
        ctrl, pim = self.ctrl, self.pim
        out = []
        rq, wq = ctrl.read_q, ctrl.write_q
        for b, row in enumerate(pim.own_row):
            if row == -1:
                continue
            if rq[b] or wq[b]:
                first = min(r.admitted for r in (list(rq[b]) + list(wq[b])))
                since = first if first > pim.act_at[b] else pim.act_at[b]
                out.append((since + self.n, b))
        return out

    # -- applying them ---------------------------------------------------------------------
    def apply(self, now: int) -> int:
        """Apply what is due at ``now`` (claims, yields, lifts); returns the next cycle at
        which something becomes due (INF: none), so the caller decides nothing past it."""
        nxt = INF
        refreshing = self.ctrl.refresh.refreshing
        bpr = self.ctrl.dev.banks_per_rank
        for b in range(len(self.claimed)):
            if not self.claimed[b]:
                continue
            # a refreshing rank's claimed bank still holds the host's row: the host closes it;
            # a claim PIM has not used (opened its row) within N cycles goes back to the host,
            # so the host's wait for it is bounded too
            lapse = self.claim_at[b] + self.n
            if refreshing[b // bpr] or now >= lapse:
                self.claimed[b] = False
                self.ctrl.hold(b, False)
            elif lapse < nxt:
                nxt = lapse
        for at, b in self._claims_due():
            if at <= now:
                self.claimed[b] = True
                self.claim_at[b] = at
                self.claims += 1
                self.ctrl.hold(b, True)  # the host issues nothing more to it
                if b in self.yields:  # PIM's turn again
                    del self.yields[b]
                    self.pim.set_yield(b, INF)
            elif at < nxt:
                nxt = at
        wanted = set()
        for at, b in self._yields_due():
            wanted.add(b)
            if self.yields.get(b) != at and not self.claimed[b]:
                self.yields[b] = at
                self.pim.set_yield(b, at)  # from ``at`` on: its PRE only
            if now < at < nxt:
                nxt = at
        # a bank given back stays so while the host still has requests for it, for N cycles
        # at most: then it is PIM's to reopen (the host may not be serving those requests:
        # its other queue, or a drain that waits for PIM's banks)
        rq, wq = self.ctrl.read_q, self.ctrl.write_q
        for b in list(self.yields):
            if b in wanted:
                continue  # PIM still holds it: its PRE is due
            lapse = self.yields[b] + self.n
            if not (rq[b] or wq[b]) or now >= lapse:
                del self.yields[b]
                self.pim.set_yield(b, INF)
            elif lapse < nxt:
                nxt = lapse
        return nxt

    def watch_banks(self) -> list[int]:
        """Banks whose queue emptying lifts a yield (the host may watch them)."""
        return list(self.yields)

    def pim_opened(self, bank: int) -> None:
        self.claimed[bank] = False

    def release_all(self) -> None:
        """PIM has nothing left: every claimed bank and every yield goes back to the host."""
        for b in range(len(self.claimed)):
            if self.claimed[b]:
                self.claimed[b] = False
                self.ctrl.hold(b, False)
        for b in list(self.yields):
            del self.yields[b]
            self.pim.set_yield(b, INF)

    def tie_to_pim(self, tp: int) -> bool:
        """Does PIM's next command (at ``tp``) win a tie with the host: its DRAM timing has
        allowed it for ``N`` cycles?"""
        i = self.pim._sel
        return i >= 0 and self.pim.ready[i] + self.n <= tp


class Throttle:
    """The ``throttled`` policy's per-rank block flags (see the module docstring)."""

    def __init__(self, ctrl: ChannelController, pim: PimChannel) -> None:
        self.ctrl = ctrl
        self.pim = pim
        cfg = ctrl.cfg
        t = cfg.timing
        #: PIM's banks of a rank are closed this many cycles before its refresh boundary:
        #: its last ACT's tRAS, the PREs on the command bus (twice the banks: the host's
        #: commands take slots too) and tRP before the REF.
        self.guard = t.tRAS + t.tRP + 2 * cfg.org.banks_per_rank
        self.tREFI = t.tREFI
        self.block = list(ctrl.refresh.refreshing)
        ctrl.external_busy = None  # PIM's work does not postpone refreshes
        pim.refreshing = self.block
        pim._ref_seen = list(self.block)

    def host_busy(self, rank: int) -> bool:
        ctrl = self.ctrl
        return ctrl.rank_queued[rank] > 0 or ctrl.rank_pending[rank] > 0

    def apply(self, now: int) -> int:
        """Set every rank's flag as of ``now``; returns the next cycle a flag rises by the
        clock (a refresh coming), INF if none."""
        refresh = self.ctrl.refresh
        refreshing = refresh.refreshing
        nxt = INF
        if refresh.enabled:
            period = self.tREFI
            boundary = (now // period + 1) * period
            soon = boundary - self.guard
        else:
            boundary = soon = INF
        for r in range(len(self.block)):
            # a refresh owed (due at a boundary already passed, not yet issued) blocks too:
            # the host's REF may come a few cycles after the boundary
            owed = refresh.enabled and refresh.owed(r, now) > 0
            flag = refreshing[r] or owed or self.host_busy(r) or now >= soon
            if not flag and soon < nxt:
                nxt = soon
            elif now >= soon and boundary < nxt:
                nxt = boundary  # in the guard: look again when the refresh falls due
            self.block[r] = flag
        return nxt

    def watch_banks(self) -> list[int]:
        """Every bank of a rank the host keeps busy: its queues emptying may free the rank."""
        bpr = self.ctrl.dev.banks_per_rank
        return [r * bpr + b for r in range(len(self.block)) if self.host_busy(r)
                for b in range(bpr)]


__all__ = ["DEFAULT_WAIT_BOUND", "FairShare", "Throttle"]
