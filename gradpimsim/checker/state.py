"""The checker's state: flat lists indexed by rank / bank-group / bank id, and its reporting.

Speed matters (command traces run to hundreds of millions of lines), so the rule factories
(``refresh_rules``, ``host_rules``, ``pim_rules``) bind the lists they need as locals once and
build closures over them; a handler touches only the few list slots its rules need.  The last
command of each kind is kept as the ``Command`` tuple itself (no per-command allocation), and
"never happened" is a sentinel command far in the past, so gap checks need no ``None`` tests.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from gradpimsim.checker.report import ProtocolViolation, Violation, describe
from gradpimsim.dram.commands import Cmd, Command

if TYPE_CHECKING:
    from gradpimsim.checker.core import ProtocolChecker

INF = 1 << 62
#: "Never happened": a command so far in the past that every gap to it is satisfied.
NEVER = Command(-INF, Cmd.ACT, -1, -1, -1, -1, -1, -1)


class CheckState:
    """Every list a rule reads or writes, the limits, and the reporting helpers."""

    def __init__(self, owner: ProtocolChecker) -> None:
        cfg = owner.cfg
        self.cfg = cfg
        self.limits = owner.limits
        self.pim_on = owner.pim is not None
        org = cfg.org
        self.NCH, self.NR, self.NG, self.NB = (org.channels, org.ranks, org.bankgroups,
                                               org.banks_per_group)
        self.ROWS, self.COLS = org.rows, org.columns // org.burst_length
        n_ranks = self.n_ranks = self.NCH * self.NR
        n_groups = n_ranks * self.NG
        n_banks = n_groups * self.NB
        L = self.limits
        # Bursts issued more than this many commands ago cannot overlap a new one.
        bus_window = abs(L.RL - L.WL) + L.BL2 + 8
        never = NEVER
        self.counts = [0] * len(Cmd)
        # per bank
        self.open_row = [-1] * n_banks
        self.b_act = [never] * n_banks
        self.b_close_t = [-INF] * n_banks  # clock at which the bank's precharge started
        self.b_close = [never] * n_banks  # the PRE / RDA / WRA that closed it
        self.b_rd = [never] * n_banks
        self.b_wr = [never] * n_banks
        self.b_prd = [never] * n_banks
        self.b_pwr = [never] * n_banks
        # per bank group
        self.g_act = [never] * n_groups
        self.g_hcol = [never] * n_groups  # latest host RD/WR
        self.g_pcol = [never] * n_groups  # latest PIM_RD/PIM_WR
        self.g_wr = [never] * n_groups  # latest host WR
        self.g_pwr = [never] * n_groups  # latest PIM_WR
        self.g_prd = [never] * n_groups  # latest PIM_RD
        self.g_op = [never] * n_groups  # latest PIM_OP addressing the unit
        # per rank
        self.r_act = [never] * n_ranks
        self.r_faw = [[never] * 4 for _ in range(n_ranks)]
        self.r_faw_i = [0] * n_ranks
        self.r_hcol = [never] * n_ranks
        self.r_rd = [never] * n_ranks
        self.r_wr = [never] * n_ranks
        self.r_open = [0] * n_ranks
        self.r_close_t = [-INF] * n_ranks
        self.r_close = [never] * n_ranks
        self.r_ready_t = [-INF] * n_ranks
        self.r_ready_rule = [""] * n_ranks
        self.r_ready = [never] * n_ranks
        self.r_sr = [False] * n_ranks
        self.r_sre = [never] * n_ranks
        self.r_set = [never] * n_ranks
        # refresh accounting per rank
        self.r_base = [0] * n_ranks  # owed(t) = (t - base) // tREFI - nref
        self.r_nref = [0] * n_ranks
        self.r_anchor = [never] * n_ranks  # last REF (or SRX): start of the 9 x tREFI window
        self.r_reported = [False] * n_ranks
        self.r_deadline = [INF] * n_ranks
        self.r_last_ref_t = [-1] * n_ranks
        self.r_refs = [0] * n_ranks
        self.r_gn = [0] * n_ranks
        self.r_gsum = [0] * n_ranks
        self.r_gmin = [INF] * n_ranks
        self.r_gmax = [0] * n_ranks
        # per channel
        self.c_last = [never] * self.NCH
        self.c_bursts = [deque(maxlen=bus_window) for _ in range(self.NCH)]
        self.c_bus_end = [-INF] * self.NCH
        self.c_deadline = [INF] * self.NCH
        self.end_clk = 0

        keep = owner.keep
        raise_on = owner.raise_on_violation
        kept = owner.violations
        by_rule = owner.by_rule

        def viol(rule: str, cmd: Command, prev: Command | None, required: int, actual: int,
                 note: str = "") -> None:
            v = Violation(rule, cmd, None if prev is never else prev, required, actual, note)
            by_rule[rule] = by_rule.get(rule, 0) + 1
            if len(kept) < keep:
                kept.append(v)
            if raise_on:
                raise ProtocolViolation(v)

        #: Record a broken rule (a closure: called from every handler).
        self.viol = viol

    # ---- input no rule can judge -----------------------------------------------------------
    def bad(self, cmd: Command, what: str) -> None:
        raise ValueError(f"{what} in {cmd.trace_line()!r} (configuration {self.cfg.name})")

    def bank_index(self, cmd: Command, rid: int, bg: int, bk: int) -> int:
        NG, NB = self.NG, self.NB
        if not (0 <= bg < NG and 0 <= bk < NB):
            self.bad(cmd, f"bank group {bg} / bank {bk} outside 0..{NG - 1} / 0..{NB - 1}")
        return (rid * NG + bg) * NB + bk

    def bad_column(self, cmd: Command) -> None:
        NG, NB = self.NG, self.NB
        if not (0 <= cmd[4] < NG and 0 <= cmd[5] < NB):
            self.bad(cmd, f"bank group {cmd[4]} / bank {cmd[5]} outside 0..{NG - 1} / "
                          f"0..{NB - 1}")
        self.bad(cmd, f"column {cmd[7]} outside 0..{self.COLS - 1}")

    def bad_rank(self, cmd: Command) -> None:
        self.bad(cmd, f"channel {cmd[2]} / rank {cmd[3]} outside 0..{self.NCH - 1} / "
                      f"0..{self.NR - 1}")

    # ---- bank state shared by host and PIM column commands ---------------------------------
    def closed_note(self, bid: int) -> str:
        pc = self.b_close[bid]
        return "bank has no open row" + (
            f" (closed by {describe(pc)})" if pc is not NEVER else " (never activated)")

    def not_open(self, cmd: Command, bid: int, row: int) -> bool:
        """Slow path of the bank-state check of a column command: report, True if closed."""
        orow = self.open_row[bid]
        if orow < 0:
            self.viol("bank_closed", cmd, self.b_close[bid], 0, 0, self.closed_note(bid))
            return True
        if row >= 0 and row != orow:
            self.viol("wrong_row", cmd, self.b_act[bid], 0, 0, f"row {orow:#x} is open")
        return False
