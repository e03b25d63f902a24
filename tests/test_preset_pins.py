"""Page-size dependent timings of every preset and device width, x4 included, pinned from the
nanosecond figures of the DDR4 speed-bin tables (``shared/ddr4-reference.md``; the presets'
comments cite the same figures) and the JEDEC rounding rule, worked out here:
nCK = max(minimum nCK, ceil(t / tCK) with a 2.5 % guardband), i.e.
``trunc(t_ps / tCK_ps + 0.974)``.  Nothing is read back from the preset files to compute them.
"""

from __future__ import annotations

import math

import pytest

from gradpimsim.config import preset
from gradpimsim.config.pim import PimConfig
from gradpimsim.stats.energy import IoEnergy

#: speed bin -> tCK in ps (the speed-bin tables' rounded figure) and the exact clock in MHz.
TCK_PS = {"ddr4-2400": 833, "ddr4-3200": 625}
CLOCK_MHZ = {"ddr4-2400": 1200, "ddr4-3200": 1600}

#: (speed bin, width) -> (tRRD_S, tRRD_L, tFAW) as (ns, min nCK) pairs, from the speed-bin tables.
FIGURES: dict[tuple[str, str], tuple[tuple[float, int], ...]] = {
    ("ddr4-2400", "x4"): ((3.3, 4), (4.9, 4), (13.0, 16)),
    ("ddr4-2400", "x8"): ((3.3, 4), (4.9, 4), (21.0, 20)),
    ("ddr4-2400", "x16"): ((5.3, 4), (6.4, 4), (30.0, 28)),
    ("ddr4-3200", "x4"): ((2.5, 4), (4.9, 4), (10.0, 16)),
    ("ddr4-3200", "x8"): ((2.5, 4), (4.9, 4), (21.0, 20)),
    ("ddr4-3200", "x16"): ((5.3, 4), (6.4, 4), (30.0, 28)),
}

#: The same values rounded by hand (written out, so a wrong rounding above cannot hide either).
BY_HAND = {
    ("ddr4-2400", "x4"): (4, 6, 16), ("ddr4-2400", "x8"): (4, 6, 26),
    ("ddr4-2400", "x16"): (7, 8, 36), ("ddr4-3200", "x4"): (4, 8, 16),
    ("ddr4-3200", "x8"): (4, 8, 34), ("ddr4-3200", "x16"): (9, 11, 48),
}


def n_ck(ns: float, min_nck: int, tck_ps: int) -> int:
    """JEDEC rounding of ``ns`` to clock cycles, at least ``min_nck``."""
    return max(min_nck, math.trunc(ns * 1000 / tck_ps + 0.974))


@pytest.mark.parametrize("speed,width", sorted(FIGURES))
def test_page_size_timings_match_the_speed_bin_tables(speed: str, width: str) -> None:
    expected = tuple(n_ck(ns, m, TCK_PS[speed]) for ns, m in FIGURES[speed, width])
    assert expected == BY_HAND[speed, width]
    t = preset(f"{speed}-{width}").timing
    assert (t.tRRD_S, t.tRRD_L, t.tFAW) == expected


#: Every width-independent timing value of each speed bin, written out from the speed-bin table
#: of ``shared/ddr4-reference.md`` (tXS = tRFC + 10 ns; tMOD = max(24 nCK, 15 ns) and tMRD =
#: 8 nCK from JESD79-4's mode-register rules).  tCK in ns.
COMMON: dict[str, dict[str, float]] = {
    "ddr4-2400": dict(tCK_ns=0.833, CL=17, CWL=12, AL=0, tRCD=17, tRP=17, tRAS=39, tRC=56,
                      tCCD_S=4, tCCD_L=6, tWTR_S=3, tWTR_L=9, tRTP=9, tWR=18, tRFC=420,
                      tREFI=9360, tXS=432, tCKESR=7, tXP=8, tCKE=6, tRTRS=1, tRPRE=1, tWPRE=1,
                      tMRD=8, tMOD=24),
    "ddr4-3200": dict(tCK_ns=0.625, CL=22, CWL=16, AL=0, tRCD=22, tRP=22, tRAS=52, tRC=74,
                      tCCD_S=4, tCCD_L=8, tWTR_S=4, tWTR_L=12, tRTP=12, tWR=24, tRFC=560,
                      tREFI=12480, tXS=576, tCKESR=9, tXP=10, tCKE=8, tRTRS=1, tRPRE=1,
                      tWPRE=1, tMRD=8, tMOD=24),
}

#: 8Gb die organizations (reference: x4 and x8 have 4 bank groups of 4 banks, x16 2 of 4; an
#: x8 die has 64 Ki rows of 1 Ki columns; an x4 die, half the page, twice the rows).
ORGS = {"x4": (4, 4, 4, 131072, 1024), "x8": (8, 4, 4, 65536, 1024),
        "x16": (16, 2, 4, 65536, 1024)}


@pytest.mark.parametrize("speed,width", sorted(FIGURES))
def test_every_timing_value_and_organization_of_every_preset(speed: str, width: str) -> None:
    cfg = preset(f"{speed}-{width}")
    t = cfg.timing
    got = {name: getattr(t, name) for name in COMMON[speed]}
    assert got == COMMON[speed]
    # the derived ones agree with their definitions, in cycles of the exact clock (1200 and
    # 1600 MHz): tRFC 350 ns, tREFI 7.8 us, tXS tRFC + 10 ns, tRC tRAS + tRP
    mhz = CLOCK_MHZ[speed]
    assert (t.tRFC, t.tREFI, t.tXS) == (350 * mhz // 1000, 7800 * mhz // 1000,
                                        t.tRFC + 10 * mhz // 1000)
    assert t.tRC == t.tRAS + t.tRP
    o = cfg.org
    assert (o.device_width, o.bankgroups, o.banks_per_group, o.rows, o.columns) == ORGS[width]
    assert (o.bus_width, o.burst_length, o.ranks, o.channels) == (64, 8, 1, 1)


def test_energy_defaults_are_the_documented_literals() -> None:
    """docs/energy.md: I/O 4.0 and 2.6 pJ/bit; GradPIM 2750 pJ per column access (the mean of
    the DDR4-2400 x8 burst energies 2943 and 2559 pJ, worked out there from the currents), 400
    pJ per PIM_OP and 50 pJ per PIM_SET."""
    io = IoEnergy()
    assert (io.io_read_pj_per_bit, io.io_write_pj_per_bit) == (4.0, 2.6)
    assert PimConfig().energy_pj == {"column_access": 2750.0, "op": 400.0, "set": 50.0}
    p = preset("ddr4-2400-x8").power
    burst = 4 * 0.833 * 8  # BL/2 cycles x tCK x devices of an x8 rank
    assert round((p["IDD4R"] - p["IDD3N"]) * p["VDD"] * burst) == 2943
    assert round((p["IDD4W"] - p["IDD3N"]) * p["VDD"] * burst) == 2559
