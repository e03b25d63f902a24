"""Refresh rules: REF, SRE, SRX, and each rank's refresh obligations (postponing, pulling in,
the 9 x tREFI gap), checked at every command of a channel against its clock and at ``finish``.

Simplifications: SRE must meet the same conditions as REF (all banks closed, tRP, tRC); the rank
refreshes itself in self refresh, so refresh accounting restarts at SRX (SRX also starts the
9 x tREFI gap window).  Channels that never appear in the stream are not judged (a controller's
sink or a per-channel trace file carries one channel).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gradpimsim.checker.report import RefreshGaps, describe
from gradpimsim.checker.state import INF, NEVER, CheckState
from gradpimsim.dram.commands import Cmd, Command

#: A rare command's rules: (command, clock, channel, rank id, bank group, bank, row).
Body = Callable[[Command, int, int, int, int, int, int], None]


@dataclass
class RefreshRules:
    """What the refresh factory gives the dispatch core."""

    #: Rank deadlines passed on a channel: report the missing REFs (called by every command).
    scan: Callable[[int, int, Command], None]
    ref: Body
    sre: Body
    srx: Body
    #: Close the check at a clock (reports refresh obligations still open).
    finish: Callable[[int], None]
    gaps: Callable[[], dict[tuple[int, int], RefreshGaps]]


def refresh_rules(st: CheckState) -> RefreshRules:  # noqa: C901 - one closure per rule
    L = st.limits
    NR, NG, NB = st.NR, st.NG, st.NB
    viol = st.viol
    rp, rc, rfc, xs, ckesr = L.rp, L.rc, L.rfc, L.xs, L.ckesr
    refi, max_post, max_pull, max_gap = L.refi, L.max_postponed, L.max_pulled_in, L.max_ref_gap
    refresh_on = L.refresh
    REF = Cmd.REF
    never = NEVER
    open_row, b_act = st.open_row, st.b_act
    r_act, r_open, r_close_t, r_close = st.r_act, st.r_open, st.r_close_t, st.r_close
    r_ready_t, r_ready_rule, r_ready = st.r_ready_t, st.r_ready_rule, st.r_ready
    r_sr, r_sre = st.r_sr, st.r_sre
    r_base, r_nref, r_anchor, r_reported = st.r_base, st.r_nref, st.r_anchor, st.r_reported
    r_deadline, r_last_ref_t, r_refs = st.r_deadline, st.r_last_ref_t, st.r_refs
    r_gn, r_gsum, r_gmin, r_gmax = st.r_gn, st.r_gsum, st.r_gmin, st.r_gmax
    c_last, c_deadline = st.c_last, st.c_deadline

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

    def finish(end: int) -> None:
        for r in range(st.n_ranks):
            # A channel absent from the stream is not judged: per-channel streams (one
            # controller's sink, one file per channel) are common.
            if end >= r_deadline[r] and c_last[r // NR] is not never:
                report_missing_ref(r, end)

    def refresh_gaps() -> dict[tuple[int, int], RefreshGaps]:
        out = {}
        for r in range(st.n_ranks):
            n = r_gn[r]
            out[divmod(r, NR)] = RefreshGaps(
                refreshes=r_refs[r],
                count=n,
                min=r_gmin[r] if n else 0,
                mean=r_gsum[r] / n if n else 0.0,
                max=r_gmax[r],
            )
        return out

    # Initial refresh deadlines (owed counting starts at clock 0).
    for ch in range(st.NCH):
        for r in range(ch * NR, ch * NR + NR):
            update_deadline(ch, r)

    return RefreshRules(refresh_scan, h_ref, h_sre, h_srx, finish, refresh_gaps)
