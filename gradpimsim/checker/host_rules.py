"""Host command rules: ACT, PRE and the column commands (RD/RDA and WR/WRA, one handler).

Simplifications, each conservative or JEDEC-neutral:

* PRE to a bank with no open row is a no-op (JEDEC treats it as NOP): no rule, no timing.
* Column commands with row ``-1`` are taken to address the open row (``wrong_row`` unchecked).
* Across ranks, RD -> WR includes tWPRE and WR -> RD includes tRPRE (the reference's
  parenthesised terms), matching the same-rank RD -> WR rule when tRTRS = 1.
* Against other bank groups, tCCD_S and tWTR_S are checked against the rank's latest column
  command / write; since tCCD_L >= tCCD_S and tWTR_L >= tWTR_S, an older command in another group
  can only bind when the same-group rule already fires.
"""

from __future__ import annotations

from collections.abc import Callable

from gradpimsim.checker.report import describe
from gradpimsim.checker.state import CheckState
from gradpimsim.dram.commands import Cmd, Command

#: The checks every command goes through first (address range, clock, bus, rank, refresh
#: deadlines); returns the rank id.
Enter = Callable[[Command, int, int, int, int], int]
Handler = Callable[[Command], None]


def host_rules(st: CheckState, enter: Enter) -> dict[Cmd, Handler]:  # noqa: C901
    """The host commands' handlers, by command."""
    L = st.limits
    NR, NG, NB, ROWS, COLS = st.NR, st.NG, st.NB, st.ROWS, st.COLS
    viol, bad, bank_index, bad_column, not_open = (st.viol, st.bad, st.bank_index,
                                                   st.bad_column, st.not_open)
    pim_on = st.pim_on
    BL2, RL, WL = L.BL2, L.RL, L.WL
    rcd, ras, rp, rc, rtp, wr = L.rcd, L.ras, L.rp, L.rc, L.rtp, L.wr
    rda_close, wra_close = L.rda_close, L.wra_close
    rrd_l, rrd_s, faw = L.rrd_l, L.rrd_s, L.faw
    ccd_l, ccd_s, wtr_l, wtr_s, rd_wr = L.ccd_l, L.ccd_s, L.wtr_l, L.wtr_s, L.rd_wr
    rtrs_rr, rtrs_ww, rtrs_rw, rtrs_wr = L.rtrs_rr, L.rtrs_ww, L.rtrs_rw, L.rtrs_wr
    p_ccd, p_wtr, p_rtp, p_wr = L.pim_ccd, L.pim_wtr, L.pim_rtp, L.pim_wr
    RD, RDA, WRA = Cmd.RD, Cmd.RDA, Cmd.WRA
    open_row, b_act, b_close_t, b_close = st.open_row, st.b_act, st.b_close_t, st.b_close
    b_rd, b_wr, b_prd, b_pwr = st.b_rd, st.b_wr, st.b_prd, st.b_pwr
    g_act, g_hcol, g_pcol, g_wr, g_pwr = st.g_act, st.g_hcol, st.g_pcol, st.g_wr, st.g_pwr
    r_act, r_faw, r_faw_i, r_hcol = st.r_act, st.r_faw, st.r_faw_i, st.r_hcol
    r_rd, r_wr, r_open, r_close_t, r_close = st.r_rd, st.r_wr, st.r_open, st.r_close_t, st.r_close
    c_bursts, c_bus_end = st.c_bursts, st.c_bus_end

    # ---- data bus -------------------------------------------------------------------------
    def bus_overlap(cmd: Command, ch: int, start: int) -> None:
        """Slow path: the new burst starts before the latest burst end; find the overlap."""
        end = start + BL2
        for pc in c_bursts[ch]:
            ps = pc[0] + (RL if pc[1] == RD or pc[1] == RDA else WL)
            pe = ps + BL2
            if ps < end and start < pe:
                need = pe - (start - cmd[0]) - pc[0]
                viol("data_bus", cmd, pc, need, cmd[0] - pc[0],
                     f"data burst [{start}, {end}) overlaps [{ps}, {pe}) of {describe(pc)}")
                return

    def rank_switch(cmd: Command, t: int, ch: int, rid: int, is_read: bool) -> None:
        for r2 in range(ch * NR, ch * NR + NR):
            if r2 == rid:
                continue
            p = r_rd[r2]
            need = rtrs_rr if is_read else rtrs_rw
            if t - p[0] < need:
                viol("tRTRS", cmd, p, need, t - p[0])
            p = r_wr[r2]
            need = rtrs_wr if is_read else rtrs_ww
            if t - p[0] < need:
                viol("tRTRS", cmd, p, need, t - p[0])

    def auto_close(cmd: Command, rid: int, bid: int, at: int) -> None:
        open_row[bid] = -1
        r_open[rid] -= 1
        b_close_t[bid] = at
        b_close[bid] = cmd
        if at > r_close_t[rid]:
            r_close_t[rid] = at
            r_close[rid] = cmd

    # ---- column commands ------------------------------------------------------------------
    def column(is_write: bool) -> Handler:
        """The handler of reads (RD, RDA) or writes (WR, WRA): one body, the few rules and
        state slots that differ chosen by ``is_write``."""
        lat = WL if is_write else RL
        close_delay = wra_close if is_write else rda_close
        auto = WRA if is_write else RDA

        def h_column(cmd: Command) -> None:
            t, c, ch, rk, bg, bk, row, _ = cmd
            rid = enter(cmd, t, c, ch, rk)
            if not (0 <= bg < NG and 0 <= bk < NB and -1 <= cmd[7] < COLS):
                bad_column(cmd)
            gid = rid * NG + bg
            bid = gid * NB + bk
            closed = (open_row[bid] != row or row < 0) and not_open(cmd, bid, row)
            p = b_act[bid]
            if t - p[0] < rcd:
                viol("tRCD", cmd, p, rcd, t - p[0])
            p = g_hcol[gid]
            if t - p[0] < ccd_l:
                viol("tCCD_L", cmd, p, ccd_l, t - p[0])
            p = r_hcol[rid]
            if t - p[0] < ccd_s and p[4] != bg:
                viol("tCCD_S", cmd, p, ccd_s, t - p[0])
            if is_write:
                p = r_rd[rid]
                if t - p[0] < rd_wr:
                    viol("RD_WR", cmd, p, rd_wr, t - p[0])
            else:
                p = g_wr[gid]
                if t - p[0] < wtr_l:
                    viol("tWTR_L", cmd, p, wtr_l, t - p[0])
                p = r_wr[rid]
                if t - p[0] < wtr_s and p[4] != bg:
                    viol("tWTR_S", cmd, p, wtr_s, t - p[0])
            if pim_on:
                p = g_pcol[gid]
                if t - p[0] < p_ccd:
                    viol("pim_ccd", cmd, p, p_ccd, t - p[0])
                if not is_write:
                    p = g_pwr[gid]
                    if t - p[0] < p_wtr:
                        viol("pim_wtr", cmd, p, p_wtr, t - p[0])
            if NR > 1:
                rank_switch(cmd, t, ch, rid, not is_write)
            start = t + lat
            e = c_bus_end[ch]
            if start < e:
                bus_overlap(cmd, ch, start)
                if start + BL2 > e:
                    c_bus_end[ch] = start + BL2
            else:
                c_bus_end[ch] = start + BL2
            c_bursts[ch].append(cmd)
            g_hcol[gid] = r_hcol[rid] = cmd
            if is_write:
                r_wr[rid] = g_wr[gid] = b_wr[bid] = cmd
            else:
                r_rd[rid] = b_rd[bid] = cmd
            if c == auto and not closed:
                auto_close(cmd, rid, bid, t + close_delay)

        return h_column

    # ---- row commands ---------------------------------------------------------------------
    def h_act(cmd: Command) -> None:
        t, c, ch, rk, bg, bk, row, _ = cmd
        rid = enter(cmd, t, c, ch, rk)
        bid = bank_index(cmd, rid, bg, bk)
        gid = bid // NB
        if not 0 <= row < ROWS:
            bad(cmd, f"row {row} outside 0..{ROWS - 1}")
        if open_row[bid] >= 0:
            viol("bank_open", cmd, b_act[bid], 0, 0,
                 f"row {open_row[bid]:#x} is still open")
        else:
            r_open[rid] += 1
        p = b_act[bid]
        if t - p[0] < rc:
            viol("tRC", cmd, p, rc, t - p[0])
        ct = b_close_t[bid]
        if t - ct < rp:
            p = b_close[bid]
            viol("tRP", cmd, p, ct - p[0] + rp, t - p[0])
        p = g_act[gid]
        if t - p[0] < rrd_l and p is not b_act[bid]:
            viol("tRRD_L", cmd, p, rrd_l, t - p[0])
        p = r_act[rid]
        if p[4] != bg and t - p[0] < rrd_s:
            viol("tRRD_S", cmd, p, rrd_s, t - p[0])
        ring = r_faw[rid]
        i = r_faw_i[rid]
        p = ring[i]
        if t - p[0] < faw:
            viol("tFAW", cmd, p, faw, t - p[0],
                 f"5th ACT within tFAW: {t - p[0]} cycles after {describe(p)}, "
                 f"needs >= {faw}")
        ring[i] = cmd
        r_faw_i[rid] = (i + 1) & 3
        open_row[bid] = row
        b_act[bid] = cmd
        g_act[gid] = cmd
        r_act[rid] = cmd

    def h_pre(cmd: Command) -> None:
        t, c, ch, rk, bg, bk, row, _ = cmd
        rid = enter(cmd, t, c, ch, rk)
        bid = bank_index(cmd, rid, bg, bk)
        if open_row[bid] < 0:
            return  # PRE to an idle bank is a NOP
        p = b_act[bid]
        if t - p[0] < ras:
            viol("tRAS", cmd, p, ras, t - p[0])
        p = b_rd[bid]
        if t - p[0] < rtp:
            viol("tRTP", cmd, p, rtp, t - p[0])
        p = b_wr[bid]
        if t - p[0] < wr:
            viol("tWR", cmd, p, wr, t - p[0])
        if pim_on:
            p = b_prd[bid]
            if t - p[0] < p_rtp:
                viol("pim_rtp", cmd, p, p_rtp, t - p[0])
            p = b_pwr[bid]
            if t - p[0] < p_wr:
                viol("pim_wr", cmd, p, p_wr, t - p[0])
        auto_close(cmd, rid, bid, t)

    h_read, h_write = column(False), column(True)
    return {Cmd.ACT: h_act, Cmd.PRE: h_pre, Cmd.RD: h_read, Cmd.RDA: h_read,
            Cmd.WR: h_write, Cmd.WRA: h_write}
