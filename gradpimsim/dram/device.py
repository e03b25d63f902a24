"""Device state of one DDR4 channel: which rows are open and when each command becomes legal.

The state compiles :mod:`gradpimsim.dram.timing_table` once per configuration into flat
"next legal cycle" lists per (level node, command), in the manner of Ramulator: issuing a command
raises the entries its rules touch, and :meth:`ChannelDevice.earliest` is a max over four lookups.
That keeps the cost of a command independent of how many cycles pass, which is what lets the
controller jump from one legal cycle to the next instead of ticking.
"""

from __future__ import annotations

import heapq

from librt.vecs import vec
from mypy_extensions import i64

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
#: Levels of the compiled table, in the order of ``ChannelDevice.updates``.
NLEVELS = 4


def zeros(n: int) -> vec[i64]:
    """``n`` zeros as a native 64-bit vector: compiled, reading or raising an entry is one
    machine load or store (a ``list[int]`` boxes every cycle it stores)."""
    return vec[i64]([0] * n)


class ChannelDevice:
    """Bank states and timing state for one channel (all its ranks).

    The "next legal cycle" tables (``bank_next``, ``bg_next``, ``rank_next``), the compiled rule
    table (``upd_*``) and the rolling tFAW window (``faw_*``) are native 64-bit vectors: the
    schedulers read them millions of times, and compiled each read is a load, each raise a
    store, with no integer object made or freed.
    """

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
        self.bank_next: vec[i64] = zeros(nbanks * NCMD)
        self.bg_next: vec[i64] = zeros(o.ranks * o.bankgroups * NCMD)
        self.rank_next: vec[i64] = zeros(o.ranks * NCMD)
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
        self._open_count = [0] * o.ranks
        self._active_since = [0] * o.ranks
        self._active_cycles = [0] * o.ranks
        self._auto_close: list[list[int]] = [[] for _ in range(o.ranks)]
        # updates[prev] = per level a list of (next_cmd, gap)
        upd: list[list[dict[int, int]]] = [[{}, {}, {}, {}] for _ in range(NCMD)]
        faw_window = 0
        faw_count = 4
        for r in resolve(cfg, pim):
            if r.window > 1:
                faw_window = r.gap
                faw_count = r.window
                continue
            table = upd[r.prev][_LEVEL_INDEX[r.level]]
            table[int(r.next)] = max(table.get(int(r.next), 0), r.gap)
        #: The rolling window of ``faw_count`` ACTs per rank (tFAW): a ring of the last ACT
        #: cycles per rank (``faw_times[rank * faw_count + i]``), its oldest entry at
        #: ``faw_head[rank]``, ``faw_len[rank]`` of them filled.
        self.faw_window = faw_window
        self.faw_count = faw_count
        self.faw_times: vec[i64] = zeros(o.ranks * faw_count)
        self.faw_head: vec[i64] = zeros(o.ranks)
        self.faw_len: vec[i64] = zeros(o.ranks)
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
        #: The same table flattened for the hot path: the rows of (prev ``c``, level ``l``)
        #: are ``upd_next[i]``/``upd_gap[i]`` for ``upd_lo[c * 4 + l] <= i < upd_hi[c * 4 + l]``.
        self.upd_lo: vec[i64] = zeros(NCMD * NLEVELS)
        self.upd_hi: vec[i64] = zeros(NCMD * NLEVELS)
        nexts: list[int] = []
        gaps: list[int] = []
        for c in range(NCMD):
            for lvl in range(NLEVELS):
                self.upd_lo[c * NLEVELS + lvl] = len(nexts)
                for n, gap in self.updates[c][lvl]:
                    nexts.append(n)
                    gaps.append(gap)
                self.upd_hi[c * NLEVELS + lvl] = len(nexts)
        self.upd_next: vec[i64] = vec[i64](nexts)
        self.upd_gap: vec[i64] = vec[i64](gaps)
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
        if self._auto_close[rank]:
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
    def faw_floor(self, rank: int) -> int:
        """Earliest cycle the rolling four-activate window lets ``rank`` ACT again."""
        if self.faw_len[rank] == self.faw_count:
            return self.faw_times[rank * self.faw_count + self.faw_head[rank]] + self.faw_window
        return 0

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
        if cmd == ACT and self.faw_len[r] == self.faw_count:  # rolling four-activate window
            v = self.faw_times[r * self.faw_count + self.faw_head[r]] + self.faw_window
            if v > t:
                t = v
        return t

    def earliest_rank(self, cmd: int, rank: int) -> int:
        """Earliest cycle for a rank-level command (max over every bank of the rank)."""
        first = rank * self.banks_per_rank
        return max(self.earliest(cmd, first + i) for i in range(self.banks_per_rank))

    # -- state changes ---------------------------------------------------------------------------
    def _raise(self, arr: vec[i64], base: i64, t: i64, key: i64) -> None:
        """Apply the table rows ``key`` (prev command * 4 + level) at ``arr[base:]``: each
        next command ``n`` is not legal before ``t + gap``."""
        nexts = self.upd_next
        gaps = self.upd_gap
        for i in range(self.upd_lo[key], self.upd_hi[key]):
            v = t + gaps[i]
            j = base + nexts[i]
            if v > arr[j]:
                arr[j] = v

    def issue_local(self, cmd: int, flat_bank: int, t: int) -> None:
        """:meth:`issue` for a PIM_RD, PIM_WR or PIM_OP with ``local_ok[cmd]``: the PIM
        scheduler's per-command hot path.  Such a command changes no row state and moves only
        its bank's (PIM_OP: its bank group's banks') and its bank group's entries, so most of
        :meth:`issue`'s general case can be skipped; the effect is the same."""
        if t < self.cmd_bus_next:
            raise ProtocolError(
                f"{Cmd(cmd).name} at {t}: command bus busy until {self.cmd_bus_next}"
            )
        bpg = self.banks_per_group
        g = flat_bank // bpg
        key = cmd * NLEVELS
        if cmd == PIM_OP:
            for b in range(g * bpg, (g + 1) * bpg):
                self._raise(self.bank_next, b * NCMD, t, key)
        else:
            self._raise(self.bank_next, flat_bank * NCMD, t, key)
        self._raise(self.bg_next, g * NCMD, t, key + 1)
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
        key = cmd * NLEVELS
        if cmd in (REF, SRE, SRX, PIM_SET):  # every bank
            first = r * self.banks_per_rank
            for b in range(first, first + self.banks_per_rank):
                self._raise(self.bank_next, b * NCMD, t, key)
            for gi in range(r * self.bankgroups, (r + 1) * self.bankgroups):
                self._raise(self.bg_next, gi * NCMD, t, key + 1)
        else:
            if cmd == PIM_OP:
                for b in range(g * bpg, (g + 1) * bpg):
                    self._raise(self.bank_next, b * NCMD, t, key)
            else:
                self._raise(self.bank_next, flat_bank * NCMD, t, key)
            self._raise(self.bg_next, g * NCMD, t, key + 1)
        self._raise(self.rank_next, r * NCMD, t, key + 2)
        if self.upd_hi[key + 3] > self.upd_lo[key + 3]:
            for r2 in range(self.ranks):
                if r2 != r:
                    self._raise(self.rank_next, r2 * NCMD, t, key + 3)
        if cmd in (RD, WR):
            self.bg_col_issues[g] = self.bg_col_issues[g] + 1
        else:
            self.other_issues += 1
        if cmd == ACT:
            self.row_changes += 1
            if self.open_row[flat_bank] != -1:
                raise ProtocolError(f"ACT at {t} to open bank {flat_bank}")
            self.open_row[flat_bank] = row
            n = self.faw_count
            if self.faw_len[r] < n:
                self.faw_times[r * n + (self.faw_head[r] + self.faw_len[r]) % n] = t
                self.faw_len[r] += 1
            else:
                self.faw_times[r * n + self.faw_head[r]] = t
                self.faw_head[r] = (self.faw_head[r] + 1) % n
            self._bank_opens(r, t)
        elif cmd == PRE:
            self.row_changes += 1
            if self.open_row[flat_bank] != -1:
                self._bank_closes(r, t)
            self.open_row[flat_bank] = -1
        elif cmd in (RDA, WRA):  # closed for scheduling now, precharged later
            self.row_changes += 1
            self.open_row[flat_bank] = -1
            heapq.heappush(self._auto_close[r], t + self.auto_close_delay[cmd])
        self.cmd_bus_next = t + 1
        self.last_issue = t
