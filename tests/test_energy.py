"""DRAM energy: hand-computed values from the DDR4-2400 x8 datasheet currents.

Currents (mA) and voltages of the preset: VDD 1.2, VPP 2.5, IDD0 48, IPP0 3, IDD2N 34, IDD3N 43,
IDD4R 135, IDD4W 123, IDD5B 250; tCK 0.833 ns; 8 devices per rank.
"""

from __future__ import annotations

import pytest

from gradpimsim.config import ConfigError, preset
from gradpimsim.config.pim import PimConfig
from gradpimsim.dram.commands import Cmd
from gradpimsim.stats.energy import IoEnergy, dram_energy, energy_breakdown
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
    io = 64 * 8 * 4.0  # one 64 B burst on the bus at the default 4.0 pJ/bit (read)
    assert e["io"] == pytest.approx(io / 1000, rel=1e-9)
    assert e["total"] == pytest.approx((act + read + active + io) / 1000, rel=1e-9)


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


def test_breakdown_of_a_short_sequence_by_hand() -> None:
    """ACT, RD, RD, WR, PRE, REF with 100 active and 400 precharged rank-cycles (DDR4-2400 x8)."""
    cfg = preset("ddr4-2400")
    counts = {"ACT": 1, "RD": 1, "RDA": 1, "WR": 1, "PRE": 1, "REF": 1}
    e = energy_breakdown(cfg, counts, 100, 400)
    act = ((48 * 56 - (43 * 39 + 34 * 17)) * 1.2 * TCK + 3.0 * 56 * 2.5 * TCK) * DEVICES
    read = 2 * (135 - 43) * 1.2 * 4 * TCK * DEVICES
    write = (123 - 43) * 1.2 * 4 * TCK * DEVICES
    refresh = (250 - 43) * 1.2 * 420 * TCK * DEVICES
    background = (43 * 100 + 34 * 400) * 1.2 * TCK * DEVICES
    io = 2 * 512 * 4.0 + 512 * 2.6  # two read bursts and one write burst of 64 B
    expect = {"act": act, "read": read, "write": write, "refresh": refresh,
              "background": background, "io": io, "pim_column": 0.0, "pim_op": 0.0}
    for key, pj in expect.items():
        assert e[key] == pytest.approx(pj / 1000, rel=1e-12), key
    assert e["total"] == pytest.approx(sum(expect.values()) / 1000, rel=1e-12)


def test_breakdown_background_is_linear_in_time() -> None:
    cfg = preset("ddr4-3200")
    one = energy_breakdown(cfg, {}, 1000, 3000)
    three = energy_breakdown(cfg, {}, 3000, 9000)
    assert three["background"] == pytest.approx(3 * one["background"])
    assert three["total"] == pytest.approx(3 * one["total"])
    assert energy_breakdown(cfg, {}, 0, 0)["total"] == 0


def test_pim_energy_zero_without_pim_commands_positive_with_them() -> None:
    cfg = preset("ddr4-2400")
    e = energy_breakdown(cfg, {"ACT": 4, "RD": 10}, 50, 50)
    assert e["pim_column"] == 0 and e["pim_op"] == 0
    e = energy_breakdown(cfg, {"ACT": 4, "PIM_RD": 8, "PIM_WR": 4, "PIM_OP": 6, "PIM_SET": 3},
                         50, 50)
    assert e["pim_column"] > 0 and e["pim_op"] > 0 and e["io"] == 0
    default = PimConfig().energy_pj
    assert e["pim_column"] == pytest.approx(12 * default["column_access"] / 1000)
    assert e["pim_op"] == pytest.approx((6 * default["op"] + 3 * default["set"]) / 1000)
    pim = PimConfig(energy_pj={"column_access": 1000.0, "op": 10.0, "set": 0.0})
    e = energy_breakdown(cfg, {"PIM_RD": 2, "PIM_OP": 5}, 0, 0, pim=pim)
    assert e["pim_column"] == pytest.approx(2.0) and e["pim_op"] == pytest.approx(0.05)


def test_energy_knobs_are_validated_by_name() -> None:
    with pytest.raises(ConfigError, match="power.io_read_pj_per_bit"):
        IoEnergy(io_read_pj_per_bit=-1.0)
    cfg = preset("ddr4-2400")
    with pytest.raises(ConfigError, match="power.io_write_pj_per_bit"):
        energy_breakdown(cfg.replace(power={**cfg.power, "io_write_pj_per_bit": -2}), {}, 1, 1)
    custom = cfg.replace(power={**cfg.power, "io_read_pj_per_bit": 1.0})
    assert energy_breakdown(custom, {"RD": 1}, 0, 0)["io"] == pytest.approx(0.512)
    with pytest.raises(ConfigError, match="pim.energy_pj.op"):
        PimConfig(energy_pj={"op": -5.0})
    with pytest.raises(ConfigError, match="pim.energy_pj.flops"):
        PimConfig(energy_pj={"flops": 1.0})
    with pytest.raises(KeyError, match="counts.NOP"):
        energy_breakdown(cfg, {"NOP": 1}, 0, 0)
    assert energy_breakdown(cfg, {Cmd.RD: 2}, 0, 0) == energy_breakdown(cfg, {"RD": 2}, 0, 0)
