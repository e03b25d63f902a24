"""Tight tests of every timing rule the device enforces.

For each rule: issue the setup and the ``prev`` command, then ask the device for the earliest
legal cycle of ``next``; it must be *exactly* the reference gap (legal at the minimum gap, never
one cycle earlier).  Expected gaps are literal numbers from ../shared/ddr4-reference.md, not
values computed from the rule table, so a wrong table entry cannot hide.
"""

from __future__ import annotations

import pytest

from gradpimsim.config import preset
from gradpimsim.dram.commands import Cmd
from gradpimsim.dram.device import ChannelDevice, ProtocolError
from gradpimsim.dram.timing_table import RULES

# Literal reference numbers per speed bin (x8 unless noted).
REF = {
    "ddr4-2400": dict(CL=17, CWL=12, tRCD=17, tRP=17, tRAS=39, tRC=56, tRRD_S=4, tRRD_L=6, tFAW=26,
                      tCCD_S=4, tCCD_L=6, tWTR_S=3, tWTR_L=9, tRTP=9, tWR=18, tRFC=420, tXS=432,
                      tCKESR=7),
    "ddr4-3200": dict(CL=22, CWL=16, tRCD=22, tRP=22, tRAS=52, tRC=74, tRRD_S=4, tRRD_L=8, tFAW=34,
                      tCCD_S=4, tCCD_L=8, tWTR_S=4, tWTR_L=12, tRTP=12, tWR=24, tRFC=560, tXS=576,
                      tCKESR=9),
}
T0 = 1000  # the prev command's cycle: far from the setup so only the rule under test binds

A, P, R, RA, W, WA, REFC, SRE, SRX = (Cmd.ACT, Cmd.PRE, Cmd.RD, Cmd.RDA, Cmd.WR, Cmd.WRA, Cmd.REF,
                                      Cmd.SRE, Cmd.SRX)


def _cases(speed: str) -> list[tuple[str, list, tuple, tuple, int]]:
    """(rule, setup [(cmd, rank, bg, bank)], prev (cmd, rank, bg, bank), next (...), gap)."""
    x = REF[speed]
    burst = 4
    rd_wr = x["CL"] + burst - x["CWL"] + 2  # one-cycle write preamble
    return [
        ("tRCD", [], (A, 0, 0, 0), (R, 0, 0, 0), x["tRCD"]),
        ("tRCD write", [], (A, 0, 0, 0), (W, 0, 0, 0), x["tRCD"]),
        ("tRAS", [], (A, 0, 0, 0), (P, 0, 0, 0), x["tRAS"]),
        ("tRP", [(A, 0, 0, 0)], (P, 0, 0, 0), (A, 0, 0, 0), x["tRP"]),
        ("tRTP", [(A, 0, 0, 0)], (R, 0, 0, 0), (P, 0, 0, 0), x["tRTP"]),
        ("tWR", [(A, 0, 0, 0)], (W, 0, 0, 0), (P, 0, 0, 0), x["CWL"] + burst + x["tWR"]),
        ("RDA->ACT", [(A, 0, 0, 0)], (RA, 0, 0, 0), (A, 0, 0, 0), x["tRTP"] + x["tRP"]),
        ("WRA->ACT", [(A, 0, 0, 0)], (WA, 0, 0, 0), (A, 0, 0, 0),
         x["CWL"] + burst + x["tWR"] + x["tRP"]),
        ("tRRD_L", [], (A, 0, 0, 0), (A, 0, 0, 1), x["tRRD_L"]),
        ("tRRD_S", [], (A, 0, 0, 0), (A, 0, 1, 0), x["tRRD_S"]),
        ("tCCD_L rd", [(A, 0, 0, 0), (A, 0, 0, 1)], (R, 0, 0, 0), (R, 0, 0, 1), x["tCCD_L"]),
        ("tCCD_L same bank", [(A, 0, 0, 0)], (R, 0, 0, 0), (R, 0, 0, 0), x["tCCD_L"]),
        ("tCCD_S rd", [(A, 0, 0, 0), (A, 0, 1, 0)], (R, 0, 0, 0), (R, 0, 1, 0), x["tCCD_S"]),
        ("tCCD_L wr", [(A, 0, 0, 0), (A, 0, 0, 1)], (W, 0, 0, 0), (W, 0, 0, 1), x["tCCD_L"]),
        ("tCCD_S wr", [(A, 0, 0, 0), (A, 0, 1, 0)], (W, 0, 0, 0), (W, 0, 1, 0), x["tCCD_S"]),
        ("tWTR_L", [(A, 0, 0, 0), (A, 0, 0, 1)], (W, 0, 0, 0), (R, 0, 0, 1),
         x["CWL"] + burst + x["tWTR_L"]),
        ("tWTR_S", [(A, 0, 0, 0), (A, 0, 1, 0)], (W, 0, 0, 0), (R, 0, 1, 0),
         x["CWL"] + burst + x["tWTR_S"]),
        ("RD->WR", [(A, 0, 0, 0), (A, 0, 1, 0)], (R, 0, 0, 0), (W, 0, 1, 0), rd_wr),
        ("tRTRS rd-rd", [(A, 0, 0, 0), (A, 1, 0, 0)], (R, 0, 0, 0), (R, 1, 0, 0), burst + 1),
        ("tRTRS wr-wr", [(A, 0, 0, 0), (A, 1, 0, 0)], (W, 0, 0, 0), (W, 1, 0, 0), burst + 1),
        ("tRTRS rd-wr", [(A, 0, 0, 0), (A, 1, 0, 0)], (R, 0, 0, 0), (W, 1, 0, 0),
         x["CL"] + burst + 1 - x["CWL"] + 1),
        ("tRFC", [], (REFC, 0, 0, 0), (A, 0, 1, 2), x["tRFC"]),
        ("tRFC ref-ref", [], (REFC, 0, 0, 0), (REFC, 0, 0, 0), x["tRFC"]),
        ("ACT->REF tRC", [], (A, 0, 1, 1), (REFC, 0, 0, 0), x["tRC"]),
        ("PRE->REF tRP", [(A, 0, 1, 1)], (P, 0, 1, 1), (REFC, 0, 0, 0), x["tRP"]),
        ("tCKESR", [], (SRE, 0, 0, 0), (SRX, 0, 0, 0), x["tCKESR"]),
        ("tXS", [(SRE, 0, 0, 0)], (SRX, 0, 0, 0), (A, 0, 0, 0), x["tXS"]),
        ("cmd bus", [(A, 0, 0, 0)], (A, 0, 1, 0), (P, 0, 0, 0) , None),
    ]


CONFIGS = [("ddr4-2400", "ddr4-2400-x8-2r"), ("ddr4-3200", "ddr4-3200-x8-2r")]


def _issue(dev: ChannelDevice, c: tuple, t: int) -> None:
    cmd, rank, bg, bank = c
    dev.issue(int(cmd), dev.flat_bank(rank, bg, bank), t, row=7 if cmd == A else -1)


@pytest.mark.parametrize("speed,name", CONFIGS)
@pytest.mark.parametrize("index", range(len(_cases("ddr4-2400"))))
def test_rule_is_tight(speed: str, name: str, index: int) -> None:
    rule, setup, prev, nxt, gap = _cases(speed)[index]
    dev = ChannelDevice(preset(name))
    for i, c in enumerate(setup):
        _issue(dev, c, 100 * i)  # spaced so no setup rule reaches T0
    if rule == "cmd bus":
        _issue(dev, prev, T0 + 500)
        assert dev.earliest(int(nxt[0]), dev.flat_bank(*nxt[1:])) == T0 + 501
        return
    _issue(dev, prev, T0)
    target = dev.flat_bank(*nxt[1:])
    earliest = dev.earliest(int(nxt[0]), target)
    assert earliest == T0 + gap, f"{rule}: legal at +{earliest - T0}, reference +{gap}"


@pytest.mark.parametrize("speed,name", CONFIGS)
def test_auto_precharge_columns_obey_their_column_rules(speed: str, name: str) -> None:
    """As a *next* command RDA obeys RD's rules and WRA WR's: the device keeps one entry for
    both (``ChannelDevice.slot``), so every RD/WR rule above is checked again, tight, with its
    auto-precharge form as the next command (and a previous RDA/WRA as the setup's last)."""
    checked = 0
    for rule, setup, prev, nxt, gap in _cases(speed):
        if nxt[0] not in (R, W) or rule == "cmd bus":
            continue
        auto = RA if nxt[0] == R else WA
        dev = ChannelDevice(preset(name))
        for i, c in enumerate(setup):
            _issue(dev, c, 100 * i)
        _issue(dev, prev, T0)
        target = dev.flat_bank(*nxt[1:])
        assert dev.slot[int(auto)] == int(nxt[0])
        assert dev.earliest(int(auto), target) == T0 + gap, rule
        assert dev.earliest(int(auto), target) == dev.earliest(int(nxt[0]), target)
        checked += 1
    assert checked >= 10


@pytest.mark.parametrize("speed,name", CONFIGS)
def test_faw_fifth_activate(speed: str, name: str) -> None:
    """Four ACTs at tRRD_S spacing; the fifth waits exactly for the tFAW window."""
    x = REF[speed]
    dev = ChannelDevice(preset(name))
    times = [T0 + i * x["tRRD_S"] for i in range(4)]
    for bg, t in enumerate(times):
        dev.issue(int(A), dev.flat_bank(0, bg, 0), t, row=1)
    assert dev.earliest(int(A), dev.flat_bank(0, 0, 1)) == T0 + x["tFAW"]
    # another rank has its own window
    assert dev.earliest(int(A), dev.flat_bank(1, 0, 0)) == times[-1] + 1


def test_x16_has_two_bank_groups_and_page_size_timing() -> None:
    cfg = preset("ddr4-2400-x16")
    dev = ChannelDevice(cfg)
    assert cfg.org.bankgroups == 2 and dev.nbanks == 8
    dev.issue(int(A), dev.flat_bank(0, 0, 0), T0, row=1)
    assert dev.earliest(int(A), dev.flat_bank(0, 1, 0)) == T0 + 7  # tRRD_S, 2 KiB page
    assert dev.earliest(int(A), dev.flat_bank(0, 0, 1)) == T0 + 8  # tRRD_L


def test_device_refuses_act_to_open_bank_and_busy_command_bus() -> None:
    dev = ChannelDevice(preset("ddr4-2400"))
    dev.issue(int(A), 0, 10, row=3)
    with pytest.raises(ProtocolError):
        dev.issue(int(A), 0, 200, row=4)
    with pytest.raises(ProtocolError):
        dev.issue(int(P), 1, 10)


def test_table_rules_are_named_and_levels_known() -> None:
    for rule in RULES:
        assert rule.name and rule.level in ("bank", "bankgroup", "rank", "other_rank")
