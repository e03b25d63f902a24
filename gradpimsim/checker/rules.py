"""The checker's rule list and the minimum gaps it enforces, derived here from the DDR4 reference.

Every gap is written out from ``shared/ddr4-reference.md`` (and the GradPIM knobs' documented
defaults) on purpose, without reusing the controller's timing table: the checker is the
independent judge of the controller, so a wrong formula in one must not hide in the other.
All values are in DRAM clock cycles.  ``BL2`` is BL/2 (data-bus cycles of one burst),
``RL = AL + CL`` and ``WL = AL + CWL``.
"""

from __future__ import annotations

from dataclasses import dataclass

from gradpimsim.config import MemoryConfig
from gradpimsim.config.pim import PimConfig

#: Stable rule names (used in ``Violation.rule``) and what each one checks.
RULES: dict[str, str] = {
    # bank state
    "bank_closed": "column command to a bank with no open row",
    "bank_open": "ACT to a bank that already has an open row",
    "wrong_row": "column command to a row other than the open one",
    "ref_bank_open": "REF or SRE while a bank of the rank is open",
    # same bank
    "tRCD": "ACT -> RD/WR/PIM column command >= tRCD - AL",
    "tRAS": "ACT -> PRE >= tRAS",
    "tRP": "PRE (or auto-precharge) -> ACT/REF/SRE >= tRP",
    "tRC": "ACT -> ACT same bank, ACT -> REF/SRE >= tRC",
    "tRTP": "RD -> PRE >= AL + tRTP",
    "tWR": "WR -> PRE >= WL + BL/2 + tWR",
    # rank
    "tRRD_L": "ACT -> ACT same bank group >= tRRD_L",
    "tRRD_S": "ACT -> ACT other bank group >= tRRD_S",
    "tFAW": "at most 4 ACTs in any rolling tFAW window",
    "tCCD_L": "host column -> host column same bank group >= tCCD_L",
    "tCCD_S": "host column -> host column other bank group >= tCCD_S",
    "tWTR_L": "WR -> RD (or PIM_RD) same bank group >= WL + BL/2 + tWTR_L",
    "tWTR_S": "WR -> RD other bank group >= WL + BL/2 + tWTR_S",
    "RD_WR": "RD -> WR same rank >= CL + BL/2 - CWL + 1 + tWPRE",
    "tRFC": "REF -> any command to the rank >= tRFC",
    "tXS": "SRX -> any command to the rank >= tXS",
    "tCKESR": "SRE -> SRX >= tCKESR",
    "self_refresh": "command to a rank in self refresh (or SRX outside self refresh)",
    # channel
    "tRTRS": "rank-to-rank switch on the data bus (RD/WR across ranks)",
    "data_bus": "data bursts overlap on the channel's data bus",
    "cmd_bus": "more than one command in one clock on a channel",
    # refresh
    "refresh_postponed": "more than max_postponed REFs owed, more than 8 pulled in, "
                         "or more than 9 x tREFI between REFs",
    # GradPIM
    "pim_disabled": "PIM command checked without a PIM configuration",
    "pim_ccd": "PIM column command and any column command same bank group >= pim.col_to_col",
    "pim_wtr": "PIM_WR -> RD/PIM_RD same bank group >= pim.write_to_read",
    "pim_rtp": "PIM_RD -> PRE >= pim.read_to_precharge",
    "pim_wr": "PIM_WR -> PRE >= pim.write_recovery",
    "pim_op_latency": "PIM_OP -> PIM_WR on the same unit >= pim.op_latency",
    "pim_read_op": "PIM_RD -> PIM_OP on the same unit (every unit of the rank for a "
                   "broadcast PIM_OP) >= pim.read_to_op",
    "pim_set": "PIM_SET -> PIM_SET >= pim.set_to_set, PIM_SET -> PIM_OP >= pim.set_to_op",
}

#: JEDEC: up to 8 REFs may be pulled in, and no REF-to-REF gap may exceed 9 x tREFI.
MAX_PULLED_IN = 8
MAX_REF_GAP_INTERVALS = 9


@dataclass(frozen=True)
class Limits:
    """Every minimum gap the checker enforces, resolved once from the configuration."""

    BL2: int
    RL: int
    WL: int
    rcd: int
    ras: int
    rp: int
    rc: int
    rtp: int
    wr: int
    rda_close: int
    wra_close: int
    rrd_l: int
    rrd_s: int
    faw: int
    ccd_l: int
    ccd_s: int
    wtr_l: int
    wtr_s: int
    rd_wr: int
    rfc: int
    xs: int
    ckesr: int
    rtrs_rr: int
    rtrs_ww: int
    rtrs_rw: int
    rtrs_wr: int
    refi: int
    max_postponed: int
    max_pulled_in: int
    max_ref_gap: int
    refresh: bool
    # GradPIM (meaningful only when a PimConfig is given)
    pim_ccd: int
    pim_wtr: int
    pim_rtp: int
    pim_wr: int
    pim_op: int
    pim_read_op: int
    pim_set_set: int
    pim_set_op: int

    @classmethod
    def from_config(cls, cfg: MemoryConfig, pim: PimConfig | None = None) -> Limits:
        """Resolve the gaps, following the reference text rule by rule."""
        t = cfg.timing
        bl2 = cfg.org.burst_length // 2
        rl = t.AL + t.CL
        wl = t.AL + t.CWL
        p = pim or PimConfig()
        return cls(
            BL2=bl2,
            RL=rl,
            WL=wl,
            # Same bank: ACT -> RD/WR >= tRCD - AL (the device delays the column by AL itself).
            rcd=max(t.tRCD - t.AL, 0),
            ras=t.tRAS,
            rp=t.tRP,
            rc=t.tRC,
            rtp=t.AL + t.tRTP,
            wr=wl + bl2 + t.tWR,
            # Auto-precharge starts when an explicit PRE could have: RDA at AL + tRTP, WRA at
            # WL + BL/2 + tWR; the next ACT then waits tRP (and tRC after its ACT).
            rda_close=t.AL + t.tRTP,
            wra_close=wl + bl2 + t.tWR,
            rrd_l=t.tRRD_L,
            rrd_s=t.tRRD_S,
            faw=t.tFAW,
            ccd_l=t.tCCD_L,
            ccd_s=t.tCCD_S,
            wtr_l=wl + bl2 + t.tWTR_L,
            wtr_s=wl + bl2 + t.tWTR_S,
            # RD -> WR: CL + BL/2 - CWL + 2 with a one-cycle write preamble, + 3 with two.
            rd_wr=t.CL + bl2 - t.CWL + 1 + t.tWPRE,
            rfc=t.tRFC,
            xs=t.tXS,
            ckesr=t.tCKESR,
            # Across ranks (reference, "Channel"): RD->RD and WR->WR >= BL/2 + tRTRS;
            # RD -> WR >= CL + BL/2 + tRTRS - CWL + tWPRE;
            # WR -> RD >= CWL + BL/2 + tRTRS - CL + tRPRE.
            rtrs_rr=bl2 + t.tRTRS,
            rtrs_ww=bl2 + t.tRTRS,
            rtrs_rw=t.CL + bl2 + t.tRTRS - t.CWL + t.tWPRE,
            rtrs_wr=t.CWL + bl2 + t.tRTRS - t.CL + t.tRPRE,
            refi=t.tREFI,
            max_postponed=cfg.controller.max_postponed_refreshes,
            max_pulled_in=MAX_PULLED_IN,
            max_ref_gap=MAX_REF_GAP_INTERVALS * t.tREFI,
            refresh=cfg.controller.refresh,
            # GradPIM knobs; None means the DDR4 rule each mirrors (see PimConfig's field docs).
            pim_ccd=p.col_to_col if p.col_to_col is not None else t.tCCD_L,
            pim_wtr=p.write_to_read if p.write_to_read is not None else bl2 + t.tWTR_L,
            pim_rtp=p.read_to_precharge if p.read_to_precharge is not None else t.AL + t.tRTP,
            pim_wr=p.write_recovery if p.write_recovery is not None else bl2 + t.tWR,
            pim_op=p.op_latency,
            # PIM_RD -> PIM_OP on the unit: the read's data reaches the register read_to_op
            # cycles after the PIM_RD (0 by default: no rule beyond the command bus).
            pim_read_op=p.read_to_op,
            pim_set_set=p.set_to_set if p.set_to_set is not None else t.tMRD,
            pim_set_op=p.set_to_op if p.set_to_op is not None else t.tMOD,
        )
