"""Device state of one DDR4 channel: which rows are open and when each command becomes legal.

The state compiles :mod:`gradpimsim.dram.timing_table` once per configuration into flat
"next legal cycle" lists per (level node, command), in the manner of Ramulator: issuing a command
raises the entries its rules touch, and :meth:`ChannelDevice.earliest` is a max over four lookups.
That keeps the cost of a command independent of how many cycles pass, which is what lets the
controller jump from one legal cycle to the next instead of ticking.
"""

from __future__ import annotations

import heapq
from collections import deque

from gradpimsim.config import MemoryConfig
from gradpimsim.config.pim import PimConfig
from gradpimsim.dram.address_map import flat_bank_index
from gradpimsim.dram.codes import (
    ACT,
    NCMD,
    PIM_OP,
    PIM_RD,
    PIM_SET,
    PIM_WR,
    PRE,
    RD,
    RDA,
    REF,
    SRE,
    SRX,
    WR,
    WRA,
)
from gradpimsim.dram.commands import Cmd
from gradpimsim.dram.errors import ProtocolError
from gradpimsim.dram.timing_table import resolve

_LEVEL_INDEX = {"bank": 0, "bankgroup": 1, "rank": 2, "other_rank": 3}




def _raise_to(arr: list[int], base: int, t: int, gaps: tuple[tuple[int, int], ...]) -> None:
    """Apply one table row: each next command ``n`` is not legal before ``t + gap``."""
    for n, gap in gaps:
        v = t + gap
        if v > arr[base + n]:
            arr[base + n] = v


class ChannelDevice:
    """Bank states and timing state for one channel (all its ranks)."""

    def __init__(self, cfg: MemoryConfig, pim: PimConfig | None = None) -> None:
        o = cfg.org
        self.cfg = cfg
        self.ranks = o.ranks
        self.bankgroups = o.bankgroups
        self.banks_per_group = o.banks_per_group
        self.banks_per_rank = o.banks_per_rank
        nbanks = o.ranks * o.banks_per_rank
        self.nbanks = nbanks
        #: Open row per flat bank (-1 when precharged).
        self.open_row: list[int] = [-1] * nbanks
        self.bank_next: list[int] = [0] * (nbanks * NCMD)
        self.bg_next: list[int] = [0] * (o.ranks * o.bankgroups * NCMD)
        self.rank_next: list[int] = [0] * (o.ranks * NCMD)
        self.cmd_bus_next = 0
        self.last_issue = -1
        #: Counts row-state changes (ACT, PRE, RDA, WRA): a co-scheduler compares it with the
        #: count it saw instead of comparing every bank's open row.
        self.row_changes = 0
        #: What a co-scheduler needs to know of commands issued here since it last looked
        #: (counters it compares with the values it saw): RD/WR per bank group (global index)
        #: and every other command through :meth:`issue`.  A RD/WR moves only its bank's and
        #: group's timing for other groups' commands (and the bus), so a PIM scheduler plans
        #: only that group's unit again; anything else may move more, so it plans everything.
        self.bg_col_issues: list[int] = [0] * (o.ranks * o.bankgroups)
        self.other_issues = 0
        self.faw: list[deque[int]] = [deque(maxlen=4) for _ in range(o.ranks)]
        self.faw_window = 0
        self.faw_count = 4
        self._open_count = [0] * o.ranks
        self._active_since = [0] * o.ranks
        self._active_cycles = [0] * o.ranks
        self._auto_close: list[list[int]] = [[] for _ in range(o.ranks)]
        # updates[prev] = per level a list of (next_cmd, gap)
        upd: list[list[dict[int, int]]] = [[{}, {}, {}, {}] for _ in range(NCMD)]
        for r in resolve(cfg, pim):
            if r.window > 1:
                self.faw_window = r.gap
                self.faw_count = r.window
                self.faw = [deque(maxlen=r.window) for _ in range(o.ranks)]
                continue
            table = upd[r.prev][_LEVEL_INDEX[r.level]]
            table[int(r.next)] = max(table.get(int(r.next), 0), r.gap)
        #: When an auto-precharge starts after its RDA/WRA (the bank counts as active until
        #: then): the table's RDA/WRA -> ACT gap less the precharge time.
        self.auto_close_delay = {c: upd[c][0].get(ACT, 0) - cfg.timing.tRP
                                 for c in (RDA, WRA)}
        #: Where :meth:`earliest` reads a command's "next legal" entries.  As a *next* command,
        #: RDA obeys exactly RD's rules and WRA WR's (DDR4 adds rules *after* an auto-precharge,
        #: not before it); their entries would mirror RD's and WR's, so when the table agrees
        #: they are not kept, and a column command (host or PIM) or an ACT raises two to four
        #: fewer entries.
        #: (Only :meth:`earliest` may be asked for RDA/WRA: the schedulers' inlined lookups
        #: never are, their candidates being RD/WR.)
        self.slot: list[int] = list(range(NCMD))
        for c, base in ((RDA, RD), (WRA, WR)):
            if all(level.get(c) == level.get(base) for per_prev in upd for level in per_prev):
                self.slot[c] = base
                for per_prev in upd:
                    for level in per_prev:
                        level.pop(c, None)
        self.updates: list[tuple[tuple[tuple[int, int], ...], ...]] = [
            tuple(tuple(sorted(level.items())) for level in per_prev) for per_prev in upd
        ]
        #: Per command, whether :meth:`issue_local` may issue it: a PIM column command or
        #: PIM_OP whose rules reach no further than its bank group (true of the GradPIM table).
        self.local_ok = [False] * NCMD
        for c in (PIM_RD, PIM_WR, PIM_OP):
            _, _, rank_u, other_u = self.updates[c]
            self.local_ok[c] = not rank_u and not other_u

    # -- background-power bookkeeping ----------------------------------------------------------
    # A rank draws active-standby current while any bank is open and precharged-standby current
    # otherwise; the energy model needs the active time, so the device keeps the union of open
    # intervals per rank (auto-precharged banks count as open until their precharge starts).
    def _drain_auto_close(self, rank: int, t: int) -> None:
        pending = self._auto_close[rank]
        while pending and pending[0] <= t:
            self._bank_closes(rank, heapq.heappop(pending))

    def _bank_opens(self, rank: int, t: int) -> None:
        self._drain_auto_close(rank, t)
        if self._open_count[rank] == 0:
            self._active_since[rank] = t
        self._open_count[rank] += 1

    def _bank_closes(self, rank: int, t: int) -> None:
        if self._auto_close[rank] and self._auto_close[rank][0] <= t:
            self._drain_auto_close(rank, t)
        self._open_count[rank] -= 1
        if self._open_count[rank] == 0:
            self._active_cycles[rank] += t - self._active_since[rank]

    def active_cycles(self, rank: int, until: int) -> int:
        """Cycles in [0, until) during which at least one bank of ``rank`` was open."""
        self._drain_auto_close(rank, until)
        extra = until - self._active_since[rank] if self._open_count[rank] else 0
        return self._active_cycles[rank] + max(extra, 0)

    # -- indices -------------------------------------------------------------------------------
    def flat_bank(self, rank: int, bankgroup: int, bank: int) -> int:
        return int(flat_bank_index(rank, bankgroup, bank, self.bankgroups, self.banks_per_group))

    def split_bank(self, flat: int) -> tuple[int, int, int]:
        """(rank, bankgroup, bank) of a flat bank index."""
        rank, rem = divmod(flat, self.banks_per_rank)
        bg, bank = divmod(rem, self.banks_per_group)
        return rank, bg, bank

    # -- queries -------------------------------------------------------------------------------
    def earliest(self, cmd: int, flat_bank: int) -> int:
        """Earliest cycle at which ``cmd`` to ``flat_bank`` satisfies every timing rule.

        Rank-level commands (REF, SRE, SRX, PIM_SET) pass any bank of the rank; a PIM_OP passes a
        bank of its bank group.  Bank *state* (open/closed row) is the caller's business.
        """
        g = flat_bank // self.banks_per_group
        r = flat_bank // self.banks_per_rank
        s = self.slot[cmd]
        t = self.bank_next[flat_bank * NCMD + s]
        v = self.bg_next[g * NCMD + s]
        if v > t:
            t = v
        v = self.rank_next[r * NCMD + s]
        if v > t:
            t = v
        if self.cmd_bus_next > t:
            t = self.cmd_bus_next
        if cmd == ACT:  # rolling four-activate window
            acts = self.faw[r]
            if len(acts) == self.faw_count:
                v = acts[0] + self.faw_window
                if v > t:
                    t = v
        return t

    def earliest_rank(self, cmd: int, rank: int) -> int:
        """Earliest cycle for a rank-level command (max over every bank of the rank)."""
        first = rank * self.banks_per_rank
        return max(self.earliest(cmd, first + i) for i in range(self.banks_per_rank))

    # -- state changes ---------------------------------------------------------------------------
    def _raise_banks(self, cmd: int, flat_bank: int, g: int, t: int,
                     bank_u: tuple[tuple[int, int], ...]) -> None:
        """Bank-level rows of ``cmd``: its bank, or (PIM_OP) every bank of its group ``g``."""
        if cmd == PIM_OP:
            bpg = self.banks_per_group
            for b in range(g * bpg, (g + 1) * bpg):
                _raise_to(self.bank_next, b * NCMD, t, bank_u)
        else:  # the common case, one bank: no loop over ranges
            _raise_to(self.bank_next, flat_bank * NCMD, t, bank_u)

    def issue_local(self, cmd: int, flat_bank: int, t: int) -> None:
        """:meth:`issue` for a PIM_RD, PIM_WR or PIM_OP with ``local_ok[cmd]``: the PIM
        scheduler's per-command hot path.  Such a command changes no row state and moves only
        its bank's (PIM_OP: its bank group's banks') and its bank group's entries, so most of
        :meth:`issue`'s general case can be skipped; the effect is the same."""
        if t < self.cmd_bus_next:
            raise ProtocolError(
                f"{Cmd(cmd).name} at {t}: command bus busy until {self.cmd_bus_next}"
            )
        bank_u, bg_u, _, _ = self.updates[cmd]
        bpg = self.banks_per_group
        g = flat_bank // bpg
        if bank_u:
            self._raise_banks(cmd, flat_bank, g, t, bank_u)
        _raise_to(self.bg_next, g * NCMD, t, bg_u)
        self.cmd_bus_next = t + 1
        self.last_issue = t

    def issue(self, cmd: int, flat_bank: int, t: int, row: int = -1) -> None:
        """Record ``cmd`` issued at cycle ``t`` to ``flat_bank`` (rank-level: any of its banks)."""
        if t < self.cmd_bus_next:
            raise ProtocolError(
                f"{Cmd(cmd).name} at {t}: command bus busy until {self.cmd_bus_next}"
            )
        bpg = self.banks_per_group
        g = flat_bank // bpg
        r = flat_bank // self.banks_per_rank
        bank_u, bg_u, rank_u, other_u = self.updates[cmd]
        if cmd in (REF, SRE, SRX, PIM_SET):  # every bank
            first = r * self.banks_per_rank
            for b in range(first, first + self.banks_per_rank):
                _raise_to(self.bank_next, b * NCMD, t, bank_u)
            for gi in range(r * self.bankgroups, (r + 1) * self.bankgroups):
                _raise_to(self.bg_next, gi * NCMD, t, bg_u)
        else:
            self._raise_banks(cmd, flat_bank, g, t, bank_u)
            _raise_to(self.bg_next, g * NCMD, t, bg_u)
        _raise_to(self.rank_next, r * NCMD, t, rank_u)
        if other_u:
            for r2 in range(self.ranks):
                if r2 != r:
                    _raise_to(self.rank_next, r2 * NCMD, t, other_u)
        if cmd in (RD, WR):
            self.bg_col_issues[g] = self.bg_col_issues[g] + 1
        else:
            self.other_issues += 1
        if cmd in (ACT, PRE, RDA, WRA):
            self.row_changes += 1
        if cmd == ACT:
            if self.open_row[flat_bank] != -1:
                raise ProtocolError(f"ACT at {t} to open bank {flat_bank}")
            self.open_row[flat_bank] = row
            self.faw[r].append(t)
            self._bank_opens(r, t)
        elif cmd == PRE:
            if self.open_row[flat_bank] != -1:
                self._bank_closes(r, t)
            self.open_row[flat_bank] = -1
        elif cmd in (RDA, WRA):  # closed for scheduling now, precharged later
            self.open_row[flat_bank] = -1
            heapq.heappush(self._auto_close[r], t + self.auto_close_delay[cmd])
        self.cmd_bus_next = t + 1
        self.last_issue = t
