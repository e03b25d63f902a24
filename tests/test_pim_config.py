"""PimConfig.resolved: the one place the simulator applies the PIM timing defaults."""

from __future__ import annotations

from gradpimsim.config import preset
from gradpimsim.config.pim import PimConfig, PimTiming


def test_defaults_follow_the_ddr4_rules_they_mirror() -> None:
    # DDR4-2400 (preset): BL/2 = 4, tCCD_L = 6, tWTR_L = 9, AL = 0, tRTP = 9, tWR = 18,
    # tMRD = 8, tMOD = 24; by hand from the field docs of PimConfig.
    cfg = preset("ddr4-2400")
    assert PimConfig().resolved(cfg.timing, cfg.burst_cycles) == PimTiming(
        col_to_col=6, write_to_read=4 + 9, read_to_precharge=0 + 9, write_recovery=4 + 18,
        set_to_set=8, set_to_op=24, op_latency=4, sqrt_div_latency=16, read_to_op=0)


def test_set_knobs_win_over_the_defaults() -> None:
    cfg = preset("ddr4-2400")
    p = PimConfig(col_to_col=3, write_to_read=5, read_to_precharge=7, write_recovery=11,
                  set_to_set=2, set_to_op=9, op_latency=6, sqrt_div_latency=20, read_to_op=5)
    assert p.resolved(cfg.timing, cfg.burst_cycles) == PimTiming(3, 5, 7, 11, 2, 9, 6, 20, 5)
