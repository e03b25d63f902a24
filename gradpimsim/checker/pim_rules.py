"""GradPIM command rules: PIM_RD, PIM_WR, PIM_OP and PIM_SET (``docs/gradpim.md``).

A PIM column command moves a column between a bank and its bank group's unit without the data
bus: it needs the bank's open row, the PIM column spacing against any column command of its
bank group, and the turnarounds of the unit's writes and operations.
"""

from __future__ import annotations

from collections.abc import Callable

from gradpimsim.checker.state import CheckState
from gradpimsim.dram.commands import Cmd, Command

#: A rare command's rules: (command, clock, channel, rank id, bank group, bank, row).
Body = Callable[[Command, int, int, int, int, int, int], None]


def pim_rules(st: CheckState) -> dict[Cmd, Body]:
    """The PIM commands' rule bodies, by command."""
    L = st.limits
    NG, NB = st.NG, st.NB
    viol, bad, bank_index, not_open = st.viol, st.bad, st.bank_index, st.not_open
    rcd, wtr_l = L.rcd, L.wtr_l
    p_ccd, p_wtr, p_op, p_ss, p_so = L.pim_ccd, L.pim_wtr, L.pim_op, L.pim_set_set, L.pim_set_op
    p_rop = L.pim_read_op
    open_row, b_act, b_prd, b_pwr = st.open_row, st.b_act, st.b_prd, st.b_pwr
    g_hcol, g_pcol, g_wr, g_pwr, g_op = st.g_hcol, st.g_pcol, st.g_wr, st.g_pwr, st.g_op
    g_prd = st.g_prd
    r_set = st.r_set

    def latest_col(gid: int) -> Command:
        a, b = g_hcol[gid], g_pcol[gid]
        return a if a[0] >= b[0] else b

    def column(is_write: bool) -> Body:
        """PIM_RD or PIM_WR: one body, the rules that differ chosen by ``is_write``."""

        def h_pim_column(cmd: Command, t: int, ch: int, rid: int, bg: int, bk: int,
                         row: int) -> None:
            bid = bank_index(cmd, rid, bg, bk)
            gid = bid // NB
            if open_row[bid] != row or row < 0:
                not_open(cmd, bid, row)
            p = b_act[bid]
            if t - p[0] < rcd:
                viol("tRCD", cmd, p, rcd, t - p[0])
            p = latest_col(gid)
            if t - p[0] < p_ccd:
                viol("pim_ccd", cmd, p, p_ccd, t - p[0])
            if is_write:
                p = g_op[gid]
                if t - p[0] < p_op:
                    viol("pim_op_latency", cmd, p, p_op, t - p[0])
                g_pwr[gid] = cmd
                b_pwr[bid] = cmd
            else:
                p = g_pwr[gid]
                if t - p[0] < p_wtr:
                    viol("pim_wtr", cmd, p, p_wtr, t - p[0])
                p = g_wr[gid]
                if t - p[0] < wtr_l:
                    viol("tWTR_L", cmd, p, wtr_l, t - p[0])
                b_prd[bid] = cmd
                g_prd[gid] = cmd
            g_pcol[gid] = cmd

        return h_pim_column

    def h_pim_op(cmd: Command, t: int, ch: int, rid: int, bg: int, bk: int, row: int) -> None:
        p = r_set[rid]
        if t - p[0] < p_so:
            viol("pim_set", cmd, p, p_so, t - p[0])
        if bg == -1:  # every unit of the rank: each one's latest PIM_RD must have arrived
            for g in range(rid * NG, rid * NG + NG):
                p = g_prd[g]
                if t - p[0] < p_rop:
                    viol("pim_read_op", cmd, p, p_rop, t - p[0])
                g_op[g] = cmd
        elif 0 <= bg < NG:
            g = rid * NG + bg
            p = g_prd[g]
            if t - p[0] < p_rop:
                viol("pim_read_op", cmd, p, p_rop, t - p[0])
            g_op[g] = cmd
        else:
            bad(cmd, f"bank group {bg} outside 0..{NG - 1} (or -1 for every unit)")

    def h_pim_set(cmd: Command, t: int, ch: int, rid: int, bg: int, bk: int, row: int) -> None:
        p = r_set[rid]
        if t - p[0] < p_ss:
            viol("pim_set", cmd, p, p_ss, t - p[0])
        r_set[rid] = cmd

    return {Cmd.PIM_RD: column(False), Cmd.PIM_WR: column(True), Cmd.PIM_OP: h_pim_op,
            Cmd.PIM_SET: h_pim_set}


def pim_disabled(st: CheckState) -> Body:
    """The body of every PIM command when the check has no PIM configuration."""
    viol = st.viol

    def h_pim_disabled(cmd: Command, t: int, ch: int, rid: int, bg: int, bk: int,
                       row: int) -> None:
        viol("pim_disabled", cmd, None, 0, 0,
             "PIM command in the stream but no PIM configuration given (use --pim)")

    return h_pim_disabled
