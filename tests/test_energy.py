"""DRAM energy: hand-computed values from the DDR4-2400 x8 datasheet currents.

Currents (mA) and voltages of the preset: VDD 1.2, VPP 2.5, IDD0 48, IPP0 3, IDD2N 34, IDD3N 43,
IDD4R 135, IDD4W 123, IDD5B 250; tCK 0.833 ns; 8 devices per rank.
"""

from __future__ import annotations

import pytest

from gradpimsim.config import preset
from gradpimsim.stats.energy import dram_energy
from tests.helpers import addr_of, simulate

TCK = 0.833
DEVICES = 8


def test_one_read_by_hand() -> None:
    cfg = preset("ddr4-2400")
    ctrl, cmds, reqs = simulate(cfg, [(addr_of(cfg, row=3), False, 0)])
    end = reqs[0].done  # 38: ACT at 0, RD at 17, data until 17 + 17 + 4
    e = dram_energy(cfg, [ctrl], end)
    act = ((48 * 56 - (43 * 39 + 34 * 17)) * 1.2 * TCK + 3.0 * 56 * 2.5 * TCK) * DEVICES
    read = (135 - 43) * 1.2 * 4 * TCK * DEVICES
    active = 43 * 1.2 * TCK * 38 * DEVICES  # the row stays open (open page) the whole time
    assert e["act_pre"] == pytest.approx(act / 1000, rel=1e-9)
    assert e["read"] == pytest.approx(read / 1000, rel=1e-9)
    assert e["background_active"] == pytest.approx(active / 1000, rel=1e-9)
    assert e["background_precharged"] == 0
    assert e["total"] == pytest.approx((act + read + active) / 1000, rel=1e-9)


def test_auto_precharge_ends_active_time_at_the_precharge() -> None:
    cfg = preset("ddr4-2400").with_overrides(page_policy="closed")
    ctrl, _, reqs = simulate(cfg, [(addr_of(cfg, row=3), False, 0)])
    end = 1000
    e = dram_energy(cfg, [ctrl], end)
    active_cycles = 17 + 9  # ACT at 0, RDA at 17, precharge starts AL + tRTP later
    assert e["background_active"] == pytest.approx(43 * 1.2 * TCK * active_cycles * DEVICES / 1000)
    assert e["background_precharged"] == pytest.approx(
        34 * 1.2 * TCK * (end - active_cycles) * DEVICES / 1000)


def test_background_energy_scales_with_time_and_refresh_is_counted() -> None:
    cfg = preset("ddr4-2400")
    ctrl, _, _ = simulate(cfg.with_overrides(refresh=False), [])
    short = dram_energy(cfg, [ctrl], 10_000)["background_precharged"]
    long = dram_energy(cfg, [ctrl], 40_000)["background_precharged"]
    assert long == pytest.approx(4 * short)
    ctrl, _, _ = simulate(cfg, [])
    ctrl.run_until(3 * cfg.timing.tREFI + 1)
    e = dram_energy(cfg, [ctrl], 3 * cfg.timing.tREFI + 1)
    assert e["refresh"] == pytest.approx(3 * (250 - 43) * 1.2 * 420 * TCK * DEVICES / 1000)


def test_missing_current_names_the_field() -> None:
    cfg = preset("ddr4-2400").replace(power={"VDD": 1.2})
    ctrl, _, _ = simulate(cfg, [])
    with pytest.raises(KeyError, match="power.IDD0"):
        dram_energy(cfg, [ctrl], 10)
