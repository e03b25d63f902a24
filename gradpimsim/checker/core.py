"""The online protocol checker: feed it commands in clock order, ask it for a report.

Each rule is written out below as plain code, one handler per command type, from
``shared/ddr4-reference.md`` and the GradPIM rules (see :mod:`gradpimsim.checker.rules` for the
list).  It shares no code with the controller's timing table on purpose: it is the independent
judge of the controller.

Speed matters (command traces run to hundreds of millions of lines), so the state lives in flat
lists indexed by rank/bank-group/bank id, captured by closures built once per checker; a
handler touches only the few list slots its rules need, and the last command of each kind is
kept as the ``Command`` tuple itself (no per-command allocation).  "Never happened" is a sentinel
command far in the past, so gap checks need no ``None`` tests.

Simplifications, each conservative or JEDEC-neutral:

* PRE to a bank with no open row is a no-op (JEDEC treats it as NOP): no rule, no timing.
* SRE must meet the same conditions as REF (all banks closed, tRP, tRC); the rank refreshes
  itself in self refresh, so refresh accounting restarts at SRX (SRX also starts the
  9 x tREFI gap window).
* Column commands with row ``-1`` are taken to address the open row (``wrong_row`` unchecked).
* Refresh obligations of a rank are checked at every command of its channel (against that
  channel's clock) and at ``finish``; channels that never appear in the stream are not judged
  (a controller's sink or a per-channel trace file carries one channel).
* Across ranks, RD -> WR includes tWPRE and WR -> RD includes tRPRE (the reference's
  parenthesised terms), matching the same-rank RD -> WR rule when tRTRS = 1.
* Against other bank groups, tCCD_S and tWTR_S are checked against the rank's latest column
  command / write; since tCCD_L >= tCCD_S and tWTR_L >= tWTR_S, an older command in another group
  can only bind when the same-group rule already fires.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from gradpimsim.checker.report import (
    CheckReport,
    ProtocolViolation,
    RefreshGaps,
    Violation,
    describe,
)
from gradpimsim.checker.rules import Limits
from gradpimsim.config import MemoryConfig
from gradpimsim.config.pim import PimConfig
from gradpimsim.dram.commands import Cmd, Command

INF = 1 << 62
#: "Never happened": a command so far in the past that every gap to it is satisfied.
NEVER = Command(-INF, Cmd.ACT, -1, -1, -1, -1, -1, -1)


class ProtocolChecker:
    """Checks a DDR4 (+ GradPIM) command stream against the protocol rules as it arrives.

    ``observe`` raises ``ValueError`` for input no rule can judge (clock going backwards within
    a channel, addresses outside the configuration); every broken rule becomes a
    :class:`Violation` (or a :class:`ProtocolViolation` at once with ``raise_on_violation``).
    """

    def __init__(
        self,
        cfg: MemoryConfig,
        pim: PimConfig | None = None,
        *,
        raise_on_violation: bool = False,
        keep: int = 1000,
    ) -> None:
        if keep < 0:
            raise ValueError(f"keep must be >= 0, got {keep}")
        self.cfg = cfg
        self.pim = pim
        self.limits = Limits.from_config(cfg, pim)
        self.raise_on_violation = raise_on_violation
        self.keep = keep
        self.violations: list[Violation] = []
        self.by_rule: dict[str, int] = {}
        self._machine = _Machine(self)
        #: The per-command entry point as a plain function (what ``observe`` calls).
        self.observe_fn: Callable[[Command], None] = self._machine.observe
        # Shadow the method with the plain function: one call less per command for sinks that
        # hold ``checker.observe`` (the method below stays as the documented interface).
        self.observe = self.observe_fn  # type: ignore[method-assign]

    def observe(self, cmd: Command) -> None:
        """Check one command (commands of one channel must come in clock order)."""
        self.observe_fn(cmd)

    def observe_many(self, cmds: Iterable[Command]) -> None:
        """Check many commands."""
        dispatch = self._machine.dispatch
        for cmd in cmds:
            dispatch[cmd[1]](cmd)

    @property
    def commands(self) -> int:
        """Commands observed so far."""
        return sum(self._machine.counts)

    def finish(self, end_clk: int | None = None) -> CheckReport:
        """Close the check at ``end_clk`` (default: the last command's clock) and report.

        Refresh obligations are checked up to ``end_clk``: a trace that ends owing more REFs
        than the controller may postpone is a violation.
        """
        m = self._machine
        m.finish(end_clk)
        counts = m.counts
        by_type = {Cmd(i).name: n for i, n in enumerate(counts) if n}
        return CheckReport(
            config=self.cfg.name,
            commands=sum(counts),
            by_type=by_type,
            by_rule=dict(self.by_rule),
            violations=list(self.violations),
            refresh_gaps=m.refresh_gaps(),
            end_clk=m.end_clk,
            pim=self.pim is not None,
        )


class _Machine:
    """The checker's state and its per-command handlers (closures over flat lists)."""

    def __init__(self, owner: ProtocolChecker) -> None:  # noqa: C901 - one closure per rule group
        cfg = owner.cfg
        L = owner.limits
        org = cfg.org
        NCH, NR, NG, NB = org.channels, org.ranks, org.bankgroups, org.banks_per_group
        ROWS, COLS = org.rows, org.columns // org.burst_length
        n_ranks = NCH * NR
        n_groups = n_ranks * NG
        n_banks = n_groups * NB
        pim_on = owner.pim is not None
        keep = owner.keep
        raise_on = owner.raise_on_violation
        kept = owner.violations
        by_rule = owner.by_rule

        BL2, RL, WL = L.BL2, L.RL, L.WL
        rcd, ras, rp, rc, rtp, wr = L.rcd, L.ras, L.rp, L.rc, L.rtp, L.wr
        rda_close, wra_close = L.rda_close, L.wra_close
        rrd_l, rrd_s, faw = L.rrd_l, L.rrd_s, L.faw
        ccd_l, ccd_s, wtr_l, wtr_s, rd_wr = L.ccd_l, L.ccd_s, L.wtr_l, L.wtr_s, L.rd_wr
        rfc, xs, ckesr = L.rfc, L.xs, L.ckesr
        rtrs_rr, rtrs_ww, rtrs_rw, rtrs_wr = L.rtrs_rr, L.rtrs_ww, L.rtrs_rw, L.rtrs_wr
        refi, max_post, max_pull, max_gap = L.refi, L.max_postponed, L.max_pulled_in, L.max_ref_gap
        refresh_on = L.refresh
        p_ccd, p_wtr, p_rtp, p_wr = L.pim_ccd, L.pim_wtr, L.pim_rtp, L.pim_wr
        p_op, p_ss, p_so = L.pim_op, L.pim_set_set, L.pim_set_op
        ACT, PRE, RD, RDA, WR, WRA = Cmd.ACT, Cmd.PRE, Cmd.RD, Cmd.RDA, Cmd.WR, Cmd.WRA
        REF, SRE, SRX = Cmd.REF, Cmd.SRE, Cmd.SRX
        # Bursts issued more than this many commands ago cannot overlap a new one.
        bus_window = abs(RL - WL) + BL2 + 8
        never = NEVER

        # ---- state ------------------------------------------------------------------------
        counts = [0] * len(Cmd)
        self.counts = counts
        # per bank
        open_row = [-1] * n_banks
        b_act = [never] * n_banks
        b_close_t = [-INF] * n_banks  # clock at which the bank's precharge started
        b_close = [never] * n_banks  # the PRE / RDA / WRA that closed it
        b_rd = [never] * n_banks
        b_wr = [never] * n_banks
        b_prd = [never] * n_banks
        b_pwr = [never] * n_banks
        # per bank group
        g_act = [never] * n_groups
        g_hcol = [never] * n_groups  # latest host RD/WR
        g_pcol = [never] * n_groups  # latest PIM_RD/PIM_WR
        g_wr = [never] * n_groups  # latest host WR
        g_pwr = [never] * n_groups  # latest PIM_WR
        g_op = [never] * n_groups  # latest PIM_OP addressing the unit
        # per rank
        r_act = [never] * n_ranks
        r_faw = [[never] * 4 for _ in range(n_ranks)]
        r_faw_i = [0] * n_ranks
        r_hcol = [never] * n_ranks
        r_rd = [never] * n_ranks
        r_wr = [never] * n_ranks
        r_open = [0] * n_ranks
        r_close_t = [-INF] * n_ranks
        r_close = [never] * n_ranks
        r_ready_t = [-INF] * n_ranks
        r_ready_rule = [""] * n_ranks
        r_ready = [never] * n_ranks
        r_sr = [False] * n_ranks
        r_sre = [never] * n_ranks
        r_set = [never] * n_ranks
        # refresh accounting per rank
        r_base = [0] * n_ranks  # owed(t) = (t - base) // tREFI - nref
        r_nref = [0] * n_ranks
        r_anchor = [never] * n_ranks  # last REF (or SRX): start of the 9 x tREFI window
        r_reported = [False] * n_ranks
        r_deadline = [INF] * n_ranks
        r_last_ref_t = [-1] * n_ranks
        r_refs = [0] * n_ranks
        r_gn = [0] * n_ranks
        r_gsum = [0] * n_ranks
        r_gmin = [INF] * n_ranks
        r_gmax = [0] * n_ranks
        # per channel
        c_last = [never] * NCH
        c_bursts = [deque(maxlen=bus_window) for _ in range(NCH)]
        c_bus_end = [-INF] * NCH
        c_deadline = [INF] * NCH
        self.end_clk = 0

        # ---- reporting ----------------------------------------------------------------------
        def viol(rule: str, cmd: Command, prev: Command | None, required: int, actual: int,
                 note: str = "") -> None:
            v = Violation(rule, cmd, None if prev is never else prev, required, actual, note)
            by_rule[rule] = by_rule.get(rule, 0) + 1
            if len(kept) < keep:
                kept.append(v)
            if raise_on:
                raise ProtocolViolation(v)

        def bad(cmd: Command, what: str) -> None:
            raise ValueError(f"{what} in {cmd.trace_line()!r} (configuration {cfg.name})")

        def bank_index(cmd: Command, rid: int, bg: int, bk: int) -> int:
            if not (0 <= bg < NG and 0 <= bk < NB):
                bad(cmd, f"bank group {bg} / bank {bk} outside 0..{NG - 1} / 0..{NB - 1}")
            return (rid * NG + bg) * NB + bk

        def bad_column(cmd: Command) -> None:
            if not (0 <= cmd[4] < NG and 0 <= cmd[5] < NB):
                bad(cmd, f"bank group {cmd[4]} / bank {cmd[5]} outside 0..{NG - 1} / 0..{NB - 1}")
            bad(cmd, f"column {cmd[7]} outside 0..{COLS - 1}")

        def closed_note(bid: int) -> str:
            pc = b_close[bid]
            return "bank has no open row" + (
                f" (closed by {describe(pc)})" if pc is not never else " (never activated)")

        # ---- refresh accounting -------------------------------------------------------------
        def deadline_of(r: int) -> int:
            """First clock at which rank r, without another REF, breaks a refresh rule."""
            if not refresh_on or r_sr[r] or r_reported[r]:
                return INF
            d = r_base[r] + (r_nref[r] + max_post + 1) * refi
            a = r_anchor[r]
            if a is not never and a[0] + max_gap + 1 < d:
                d = a[0] + max_gap + 1
            return d

        def update_deadline(ch: int, r: int) -> None:
            r_deadline[r] = deadline_of(r)
            first = ch * NR
            c_deadline[ch] = min(r_deadline[first:first + NR])

        def report_missing_ref(r: int, t: int) -> None:
            ch, rk = divmod(r, NR)
            a = r_anchor[r]
            owed_due = r_base[r] + (r_nref[r] + max_post + 1) * refi
            if a is not never and a[0] + max_gap < owed_due:
                due = a[0] + max_gap
                ph = Command(due, REF, ch, rk, -1, -1, -1, -1)
                viol("refresh_postponed", ph, a, max_gap, t - a[0],
                     f"no REF to ch{ch} ra{rk} in {t - a[0]} cycles since {describe(a)}, "
                     f"the limit is 9 x tREFI = {max_gap} (REF was due by clk {due})")
            else:
                owed = (t - r_base[r]) // refi - r_nref[r]
                ph = Command(owed_due, REF, ch, rk, -1, -1, -1, -1)
                viol("refresh_postponed", ph, None if a is never else a, max_post, owed,
                     f"ch{ch} ra{rk} owes {owed} REFs at clk {t}, more than the "
                     f"{max_post} that may be postponed (a REF was due by clk {owed_due})")
            r_reported[r] = True
            update_deadline(ch, r)

        def refresh_scan(ch: int, t: int, cmd: Command) -> None:
            skip = ch * NR + cmd[3] if cmd[1] == REF else -1
            for r in range(ch * NR, ch * NR + NR):
                if r != skip and t >= r_deadline[r]:
                    report_missing_ref(r, t)

        def count_ref(cmd: Command, t: int, ch: int, r: int) -> None:
            r_nref[r] += 1
            r_refs[r] += 1
            last = r_last_ref_t[r]
            if last >= 0:
                gap = t - last
                r_gn[r] += 1
                r_gsum[r] += gap
                if gap < r_gmin[r]:
                    r_gmin[r] = gap
                if gap > r_gmax[r]:
                    r_gmax[r] = gap
            r_last_ref_t[r] = t
            if refresh_on:
                if not r_reported[r]:
                    a = r_anchor[r]
                    # The debt peaks just before this REF: owed(t - 1), with the REFs before it.
                    owed = (t - 1 - r_base[r]) // refi - (r_nref[r] - 1)
                    if a is not never and t - a[0] > max_gap:
                        viol("refresh_postponed", cmd, a, max_gap, t - a[0],
                             f"{t - a[0]} cycles since {describe(a)}, more than "
                             f"9 x tREFI = {max_gap}")
                    elif owed > max_post:
                        viol("refresh_postponed", cmd, None if a is never else a, max_post, owed,
                             f"{owed} REFs were owed before this one (at clk {t - 1}), more "
                             f"than the {max_post} that may be postponed")
                owed = (t - r_base[r]) // refi - r_nref[r]
                if owed < -max_pull:
                    viol("refresh_postponed", cmd, r_anchor[r], -max_pull, owed,
                         f"{-owed} REFs pulled in ahead of the tREFI schedule, more than "
                         f"{max_pull}")
            r_anchor[r] = cmd
            r_reported[r] = False
            update_deadline(ch, r)

        # ---- data bus -----------------------------------------------------------------------
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

        # ---- checks every command goes through -------------------------------------------
        def bad_rank(cmd: Command) -> None:
            bad(cmd, f"channel {cmd[2]} / rank {cmd[3]} outside 0..{NCH - 1} / 0..{NR - 1}")

        def same_clock(cmd: Command, prev: Command) -> None:
            """Slow path: the clock did not advance on this channel."""
            if cmd[0] < prev[0]:
                raise ValueError(
                    f"clock went backwards on channel {cmd[2]}: {cmd.trace_line()!r} after "
                    f"{prev.trace_line()!r}"
                )
            viol("cmd_bus", cmd, prev, 1, 0)

        def rank_busy(cmd: Command, t: int, c: int, rid: int) -> None:
            """Slow path: the rank is in self refresh, or inside tRFC / tXS."""
            if r_sr[rid]:
                if c != SRX:
                    viol("self_refresh", cmd, r_sre[rid], 0, 0, "rank is in self refresh")
                return
            p = r_ready[rid]
            viol(r_ready_rule[rid], cmd, p, r_ready_t[rid] - p[0], t - p[0])

        def enter(cmd: Command, t: int, c: int, ch: int, rk: int) -> int:
            """Address range, clock order, command bus, rank availability, refresh deadline;
            returns the rank id.  (The hot observers carry an inlined copy.)"""
            if not (0 <= ch < NCH and 0 <= rk < NR):
                bad_rank(cmd)
            prev = c_last[ch]
            if t <= prev[0]:
                same_clock(cmd, prev)
            c_last[ch] = cmd
            counts[c] += 1
            rid = ch * NR + rk
            if t < r_ready_t[rid]:
                rank_busy(cmd, t, c, rid)
            if t >= c_deadline[ch]:
                refresh_scan(ch, t, cmd)
            return rid

        # ---- handlers -----------------------------------------------------------------------
        def not_open(cmd: Command, bid: int, row: int) -> bool:
            """Slow path of the bank-state check of a column command: report, True if closed."""
            orow = open_row[bid]
            if orow < 0:
                viol("bank_closed", cmd, b_close[bid], 0, 0, closed_note(bid))
                return True
            if row >= 0 and row != orow:
                viol("wrong_row", cmd, b_act[bid], 0, 0, f"row {orow:#x} is open")
            return False

        def auto_close(cmd: Command, rid: int, bid: int, at: int) -> None:
            open_row[bid] = -1
            r_open[rid] -= 1
            b_close_t[bid] = at
            b_close[bid] = cmd
            if at > r_close_t[rid]:
                r_close_t[rid] = at
                r_close[rid] = cmd

        def h_read(cmd: Command) -> None:
            t, c, ch, rk, bg, bk, row, _ = cmd
            # -- inlined copy of enter() (saves a call per command on the hot path) --
            if not (0 <= ch < NCH and 0 <= rk < NR):
                bad_rank(cmd)
            prev = c_last[ch]
            if t <= prev[0]:
                same_clock(cmd, prev)
            c_last[ch] = cmd
            counts[c] += 1
            rid = ch * NR + rk
            if t < r_ready_t[rid]:
                rank_busy(cmd, t, c, rid)
            if t >= c_deadline[ch]:
                refresh_scan(ch, t, cmd)
            # --
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
                p = g_pwr[gid]
                if t - p[0] < p_wtr:
                    viol("pim_wtr", cmd, p, p_wtr, t - p[0])
            if NR > 1:
                rank_switch(cmd, t, ch, rid, True)
            start = t + RL
            e = c_bus_end[ch]
            if start < e:
                bus_overlap(cmd, ch, start)
                if start + BL2 > e:
                    c_bus_end[ch] = start + BL2
            else:
                c_bus_end[ch] = start + BL2
            c_bursts[ch].append(cmd)
            g_hcol[gid] = r_hcol[rid] = r_rd[rid] = b_rd[bid] = cmd
            if cmd[1] == RDA and not closed:
                auto_close(cmd, rid, bid, t + rda_close)

        def h_write(cmd: Command) -> None:
            t, c, ch, rk, bg, bk, row, _ = cmd
            # -- inlined copy of enter() (saves a call per command on the hot path) --
            if not (0 <= ch < NCH and 0 <= rk < NR):
                bad_rank(cmd)
            prev = c_last[ch]
            if t <= prev[0]:
                same_clock(cmd, prev)
            c_last[ch] = cmd
            counts[c] += 1
            rid = ch * NR + rk
            if t < r_ready_t[rid]:
                rank_busy(cmd, t, c, rid)
            if t >= c_deadline[ch]:
                refresh_scan(ch, t, cmd)
            # --
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
            p = r_rd[rid]
            if t - p[0] < rd_wr:
                viol("RD_WR", cmd, p, rd_wr, t - p[0])
            if pim_on:
                p = g_pcol[gid]
                if t - p[0] < p_ccd:
                    viol("pim_ccd", cmd, p, p_ccd, t - p[0])
            if NR > 1:
                rank_switch(cmd, t, ch, rid, False)
            start = t + WL
            e = c_bus_end[ch]
            if start < e:
                bus_overlap(cmd, ch, start)
                if start + BL2 > e:
                    c_bus_end[ch] = start + BL2
            else:
                c_bus_end[ch] = start + BL2
            c_bursts[ch].append(cmd)
            g_hcol[gid] = r_hcol[rid] = r_wr[rid] = g_wr[gid] = b_wr[bid] = cmd
            if cmd[1] == WRA and not closed:
                auto_close(cmd, rid, bid, t + wra_close)

        def h_act(cmd: Command) -> None:
            t, c, ch, rk, bg, bk, row, _ = cmd
            # -- inlined copy of enter() (saves a call per command on the hot path) --
            if not (0 <= ch < NCH and 0 <= rk < NR):
                bad_rank(cmd)
            prev = c_last[ch]
            if t <= prev[0]:
                same_clock(cmd, prev)
            c_last[ch] = cmd
            counts[c] += 1
            rid = ch * NR + rk
            if t < r_ready_t[rid]:
                rank_busy(cmd, t, c, rid)
            if t >= c_deadline[ch]:
                refresh_scan(ch, t, cmd)
            # --
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
            # -- inlined copy of enter() (saves a call per command on the hot path) --
            if not (0 <= ch < NCH and 0 <= rk < NR):
                bad_rank(cmd)
            prev = c_last[ch]
            if t <= prev[0]:
                same_clock(cmd, prev)
            c_last[ch] = cmd
            counts[c] += 1
            rid = ch * NR + rk
            if t < r_ready_t[rid]:
                rank_busy(cmd, t, c, rid)
            if t >= c_deadline[ch]:
                refresh_scan(ch, t, cmd)
            # --
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

        def refresh_like(cmd: Command, t: int, rid: int) -> None:
            """REF and SRE: every bank precharged, tRP after the last precharge, tRC after ACT."""
            if r_open[rid] > 0:
                first = rid * NG * NB
                for b in range(first, first + NG * NB):
                    if open_row[b] >= 0:
                        viol("ref_bank_open", cmd, b_act[b], 0, 0,
                             f"{r_open[rid]} bank(s) open, e.g. by {describe(b_act[b])}")
                        break
            ct = r_close_t[rid]
            if t - ct < rp:
                p = r_close[rid]
                viol("tRP", cmd, p, ct - p[0] + rp, t - p[0])
            p = r_act[rid]
            if t - p[0] < rc:
                viol("tRC", cmd, p, rc, t - p[0])

        def h_ref(cmd: Command, t: int, ch: int, rid: int, bg: int, bk: int, row: int) -> None:
            refresh_like(cmd, t, rid)
            if t + rfc >= r_ready_t[rid]:
                r_ready_t[rid] = t + rfc
                r_ready_rule[rid] = "tRFC"
                r_ready[rid] = cmd
            count_ref(cmd, t, ch, rid)

        def h_sre(cmd: Command, t: int, ch: int, rid: int, bg: int, bk: int, row: int) -> None:
            refresh_like(cmd, t, rid)
            r_sr[rid] = True
            r_sre[rid] = cmd
            r_ready_t[rid] = INF  # every command but SRX goes to rank_busy
            update_deadline(ch, rid)

        def h_srx(cmd: Command, t: int, ch: int, rid: int, bg: int, bk: int, row: int) -> None:
            if not r_sr[rid]:
                viol("self_refresh", cmd, None, 0, 0, "self-refresh exit without a prior entry")
                return
            p = r_sre[rid]
            if t - p[0] < ckesr:
                viol("tCKESR", cmd, p, ckesr, t - p[0])
            r_sr[rid] = False
            r_ready_t[rid] = t + xs
            r_ready_rule[rid] = "tXS"
            r_ready[rid] = cmd
            # The rank refreshed itself: accounting restarts here.
            r_base[rid] = t
            r_nref[rid] = 0
            r_anchor[rid] = cmd
            r_reported[rid] = False
            r_last_ref_t[rid] = -1
            update_deadline(ch, rid)

        def h_pim_disabled(cmd: Command, t: int, ch: int, rid: int, bg: int, bk: int,
                           row: int) -> None:
            viol("pim_disabled", cmd, None, 0, 0,
                 "PIM command in the stream but no PIM configuration given (use --pim)")

        def latest_col(gid: int) -> Command:
            a, b = g_hcol[gid], g_pcol[gid]
            return a if a[0] >= b[0] else b

        def h_pim_rd(cmd: Command, t: int, ch: int, rid: int, bg: int, bk: int,
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
            p = g_pwr[gid]
            if t - p[0] < p_wtr:
                viol("pim_wtr", cmd, p, p_wtr, t - p[0])
            p = g_wr[gid]
            if t - p[0] < wtr_l:
                viol("tWTR_L", cmd, p, wtr_l, t - p[0])
            g_pcol[gid] = cmd
            b_prd[bid] = cmd

        def h_pim_wr(cmd: Command, t: int, ch: int, rid: int, bg: int, bk: int,
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
            p = g_op[gid]
            if t - p[0] < p_op:
                viol("pim_op_latency", cmd, p, p_op, t - p[0])
            g_pcol[gid] = cmd
            g_pwr[gid] = cmd
            b_pwr[bid] = cmd

        def h_pim_op(cmd: Command, t: int, ch: int, rid: int, bg: int, bk: int,
                     row: int) -> None:
            p = r_set[rid]
            if t - p[0] < p_so:
                viol("pim_set", cmd, p, p_so, t - p[0])
            if bg == -1:
                for g in range(rid * NG, rid * NG + NG):
                    g_op[g] = cmd
            elif 0 <= bg < NG:
                g_op[rid * NG + bg] = cmd
            else:
                bad(cmd, f"bank group {bg} outside 0..{NG - 1} (or -1 for every unit)")

        def h_pim_set(cmd: Command, t: int, ch: int, rid: int, bg: int, bk: int,
                      row: int) -> None:
            p = r_set[rid]
            if t - p[0] < p_ss:
                viol("pim_set", cmd, p, p_ss, t - p[0])
            r_set[rid] = cmd

        def cold(body: Callable[..., None]) -> Callable[[Command], None]:
            """An observer for a rare command type: the shared checks, then its rules."""
            def observer(cmd: Command) -> None:
                t, c, ch, rk, bg, bk, row, _ = cmd
                body(cmd, t, ch, enter(cmd, t, c, ch, rk), bg, bk, row)
            return observer

        dispatch: list[Callable[[Command], None]] = [cold(h_pim_disabled)] * len(Cmd)
        dispatch[ACT] = h_act
        dispatch[PRE] = h_pre
        dispatch[RD] = dispatch[RDA] = h_read
        dispatch[WR] = dispatch[WRA] = h_write
        dispatch[REF] = cold(h_ref)
        dispatch[SRE] = cold(h_sre)
        dispatch[SRX] = cold(h_srx)
        if pim_on:
            dispatch[Cmd.PIM_RD] = cold(h_pim_rd)
            dispatch[Cmd.PIM_WR] = cold(h_pim_wr)
            dispatch[Cmd.PIM_OP] = cold(h_pim_op)
            dispatch[Cmd.PIM_SET] = cold(h_pim_set)
        #: One observer per command type: ``dispatch[cmd.cmd](cmd)`` checks ``cmd``.
        self.dispatch = dispatch

        def observe(cmd: Command) -> None:
            dispatch[cmd[1]](cmd)

        self.observe = observe

        def finish(end_clk: int | None) -> None:
            end = max([c[0] for c in c_last] + [0]) if end_clk is None else end_clk
            self.end_clk = end
            for r in range(n_ranks):
                # A channel absent from the stream is not judged: per-channel streams (one
                # controller's sink, one file per channel) are common.
                if end >= r_deadline[r] and c_last[r // NR] is not never:
                    report_missing_ref(r, end)

        self.finish = finish

        def refresh_gaps() -> dict[tuple[int, int], RefreshGaps]:
            out = {}
            for r in range(n_ranks):
                n = r_gn[r]
                out[divmod(r, NR)] = RefreshGaps(
                    refreshes=r_refs[r],
                    count=n,
                    min=r_gmin[r] if n else 0,
                    mean=r_gsum[r] / n if n else 0.0,
                    max=r_gmax[r],
                )
            return out

        self.refresh_gaps = refresh_gaps

        # Initial refresh deadlines (owed counting starts at clock 0).
        for ch in range(NCH):
            for r in range(ch * NR, ch * NR + NR):
                update_deadline(ch, r)
