"""Tight tests of every checker rule.

Each case is a hand-built command sequence whose last command sits exactly at its minimum legal
gap: the sequence must pass with no violation, and the same sequence with that command one cycle
earlier must be caught under exactly the expected rule name(s).  Gaps are computed here from the
literal numbers of ``shared/ddr4-reference.md`` (never from the configuration objects), so a
wrong checker formula cannot hide behind a shared mistake.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from gradpimsim.checker import ProtocolChecker
from gradpimsim.config import preset
from gradpimsim.config.pim import PimConfig
from gradpimsim.dram.commands import Cmd, Command

BL2 = 4  # BL8 at double data rate
# Reference table, 8Gb x8 (shared/ddr4-reference.md, "Speed bins").
REF_2400 = dict(CL=17, CWL=12, AL=0, tRCD=17, tRP=17, tRAS=39, tRC=56, tRRD_S=4, tRRD_L=6,
                tFAW=26, tCCD_S=4, tCCD_L=6, tWTR_S=3, tWTR_L=9, tRTP=9, tWR=18, tRFC=420,
                tREFI=9360, tXS=432, tCKESR=7, tRTRS=1, tRPRE=1, tWPRE=1, tMRD=8, tMOD=24,
                NG=4)
REF_3200 = dict(CL=22, CWL=16, AL=0, tRCD=22, tRP=22, tRAS=52, tRC=74, tRRD_S=4, tRRD_L=8,
                tFAW=34, tCCD_S=4, tCCD_L=8, tWTR_S=4, tWTR_L=12, tRTP=12, tWR=24, tRFC=560,
                tREFI=12480, tXS=576, tCKESR=9, tRTRS=1, tRPRE=1, tWPRE=1, tMRD=8, tMOD=24,
                NG=4)
# x16 dies: 2 KiB page, tRRD_S 5.3 ns, tRRD_L 6.4 ns, tFAW 30 ns, rounded up to whole clocks
# (0.833 ns at 2400: 7 / 8 / 36; 0.625 ns at 3200: 9 / 11 / 48); two bank groups.
X16_2400 = dict(tRRD_S=7, tRRD_L=8, tFAW=36, NG=2)
X16_3200 = dict(tRRD_S=9, tRRD_L=11, tFAW=48, NG=2)

CONFIGS = {
    "ddr4-2400": REF_2400,
    "ddr4-3200": REF_3200,
    "ddr4-2400-x16": {**REF_2400, **X16_2400},
    "ddr4-3200-x16": {**REF_3200, **X16_3200},
}


def nums(name: str) -> SimpleNamespace:
    table = dict(REF_2400 if "2400" in name else REF_3200)
    if "x16" in name:
        table.update(X16_2400 if "2400" in name else X16_3200)
    return SimpleNamespace(**table)


# ---- command builders -------------------------------------------------------------------------
def act(t: int, bg: int = 0, bk: int = 0, row: int = 1, rk: int = 0, ch: int = 0) -> Command:
    return Command(t, Cmd.ACT, ch, rk, bg, bk, row, -1)


def pre(t: int, bg: int = 0, bk: int = 0, rk: int = 0, ch: int = 0) -> Command:
    return Command(t, Cmd.PRE, ch, rk, bg, bk, -1, -1)


def col(kind: Cmd, t: int, bg: int = 0, bk: int = 0, row: int = 1, rk: int = 0,
        ch: int = 0, c: int = 0) -> Command:
    return Command(t, kind, ch, rk, bg, bk, row, c)


def rd(t: int, *a: int, **k: int) -> Command:
    return col(Cmd.RD, t, *a, **k)


def wr(t: int, *a: int, **k: int) -> Command:
    return col(Cmd.WR, t, *a, **k)


def rank_cmd(kind: Cmd, t: int, rk: int = 0, ch: int = 0) -> Command:
    return Command(t, kind, ch, rk, -1, -1, -1, -1)


def pim(kind: Cmd, t: int, bg: int = 0, bk: int = -1, row: int = -1, rk: int = 0) -> Command:
    return Command(t, kind, 0, rk, bg, bk, row, 0 if kind in (Cmd.PIM_RD, Cmd.PIM_WR) else -1)


def run(cfg_name: str, cmds: list[Command], pim_cfg: PimConfig | None = None,
        overrides: dict | None = None, end_clk: int | None = None) -> dict[str, int]:
    cfg = preset(cfg_name)
    if overrides:
        cfg = cfg.with_overrides(**overrides)
    checker = ProtocolChecker(cfg, pim_cfg)
    checker.observe_many(cmds)
    return checker.finish(end_clk).by_rule


def earlier(cmds: list[Command], by: int = 1) -> list[Command]:
    """The sequence with its last command pulled earlier."""
    return cmds[:-1] + [cmds[-1]._replace(clk=cmds[-1].clk - by)]


# ---- the cases --------------------------------------------------------------------------------
@dataclass
class Case:
    rule: str
    build: Callable[[SimpleNamespace], list[Command]]
    expect: frozenset[str] = frozenset()
    configs: tuple[str, ...] = tuple(CONFIGS)
    pim: PimConfig | None = None
    overrides: Callable[[SimpleNamespace], dict] | None = None
    id: str = ""
    extra: dict = field(default_factory=dict)

    def expected(self) -> frozenset[str]:
        return self.expect or frozenset({self.rule})


def _faw(n: SimpleNamespace) -> list[Command]:
    # Four ACTs tRRD_L apart, alternating bank groups, then a fifth exactly tFAW after the first.
    cmds = [act(i * n.tRRD_L, bg=i % n.NG, bk=i // n.NG) for i in range(4)]
    assert 3 * n.tRRD_L + n.tRRD_L < n.tFAW  # so only tFAW binds the fifth
    return cmds + [act(n.tFAW, bg=4 % n.NG, bk=4 // n.NG)]


def _two_banks(n: SimpleNamespace) -> tuple[list[Command], int]:
    """ACTs to bank group 0 and 1; returns the commands and the first clock both rows are open."""
    return [act(0, bg=0), act(n.tRRD_S, bg=1)], n.tRRD_S + n.tRCD


def _ccd_s(kind: Cmd) -> Callable[[SimpleNamespace], list[Command]]:
    def build(n: SimpleNamespace) -> list[Command]:
        cmds, t = _two_banks(n)
        return cmds + [col(kind, t, bg=0), col(kind, t + n.tCCD_S, bg=1)]
    return build


def _wtr_s(n: SimpleNamespace) -> list[Command]:
    cmds, t = _two_banks(n)
    return cmds + [wr(t, bg=0), rd(t + n.CWL + BL2 + n.tWTR_S, bg=1)]


TWO_RANK = ("ddr4-2400-x8-2r", "ddr4-3200-x8-2r", "ddr4-2400-x16-2r")


def _ranks(first: Cmd, second: Cmd, gap: Callable[[SimpleNamespace], int]):
    def build(n: SimpleNamespace) -> list[Command]:
        t = n.tRCD + 1
        return [act(0, rk=0), act(1, rk=1), col(first, t, rk=0), col(second, t + gap(n), rk=1)]
    return build


PIM = PimConfig()

CASES = [
    # --- same bank ---
    Case("tRCD", lambda n: [act(0), rd(n.tRCD)], id="act-rd"),
    Case("tRCD", lambda n: [act(0), wr(n.tRCD)], id="act-wr"),
    Case("tRCD", lambda n: [act(0), col(Cmd.RDA, n.tRCD)], id="act-rda"),
    Case("tRCD", lambda n: [act(0), col(Cmd.WRA, n.tRCD)], id="act-wra"),
    Case("tRAS", lambda n: [act(0), pre(n.tRAS)]),
    Case("tRP", lambda n: [act(0), pre(100), act(100 + n.tRP)], id="pre-act"),
    Case("tRP", lambda n: [act(0), pre(100), rank_cmd(Cmd.REF, 100 + n.tRP)], id="pre-ref"),
    Case("tRP", lambda n: [act(0), pre(100), rank_cmd(Cmd.SRE, 100 + n.tRP)], id="pre-sre"),
    Case("tRP", lambda n: [act(0), col(Cmd.RDA, 100), act(100 + n.AL + n.tRTP + n.tRP)],
         id="rda-act"),
    Case("tRP", lambda n: [act(0), col(Cmd.WRA, 100),
                           act(100 + n.AL + n.CWL + BL2 + n.tWR + n.tRP)], id="wra-act"),
    Case("tRP", lambda n: [act(0), col(Cmd.RDA, 100),
                           rank_cmd(Cmd.REF, 100 + n.AL + n.tRTP + n.tRP)], id="rda-ref"),
    # RDA right after tRCD closes early; the next ACT is then bound by tRC, not tRP.
    Case("tRC", lambda n: [act(0), col(Cmd.RDA, n.tRCD), act(n.tRC)], id="rda-act"),
    Case("tRC", lambda n: [act(0), col(Cmd.RDA, n.tRCD), rank_cmd(Cmd.REF, n.tRC)],
         id="act-ref"),
    # ACT -> PRE -> ACT with PRE at tRAS: tRC = tRAS + tRP, both bind.
    Case("tRC", lambda n: [act(0), pre(n.tRAS), act(n.tRC)], expect=frozenset({"tRC", "tRP"}),
         id="act-pre-act"),
    Case("tRTP", lambda n: [act(0), rd(60), pre(60 + n.AL + n.tRTP)]),
    Case("tWR", lambda n: [act(0), wr(60), pre(60 + n.AL + n.CWL + BL2 + n.tWR)]),
    # --- rank ---
    Case("tRRD_L", lambda n: [act(0, bg=0, bk=0), act(n.tRRD_L, bg=0, bk=1)]),
    Case("tRRD_S", lambda n: [act(0, bg=0), act(n.tRRD_S, bg=1)]),
    Case("tFAW", _faw),
    Case("tCCD_L", lambda n: [act(0), rd(n.tRCD), rd(n.tRCD + n.tCCD_L)], id="rd-rd"),
    Case("tCCD_L", lambda n: [act(0), wr(n.tRCD), wr(n.tRCD + n.tCCD_L)], id="wr-wr"),
    Case("tCCD_L", lambda n: [act(0, bk=0), act(n.tRRD_L, bk=1), rd(n.tRRD_L + n.tRCD, bk=0),
                              rd(n.tRRD_L + n.tRCD + n.tCCD_L, bk=1)], id="rd-rd-other-bank"),
    # tCCD_S = BL/2: one cycle less also overlaps the data bursts.
    Case("tCCD_S", _ccd_s(Cmd.RD), expect=frozenset({"tCCD_S", "data_bus"}), id="rd-rd"),
    Case("tCCD_S", _ccd_s(Cmd.WR), expect=frozenset({"tCCD_S", "data_bus"}), id="wr-wr"),
    Case("tWTR_L", lambda n: [act(0), wr(n.tRCD), rd(n.tRCD + n.CWL + BL2 + n.tWTR_L)]),
    Case("tWTR_S", _wtr_s),
    Case("RD_WR", lambda n: [act(0), rd(n.tRCD), wr(n.tRCD + n.CL + BL2 - n.CWL + 2)],
         id="same-bank"),
    Case("RD_WR", lambda n: [act(0, bg=0), act(n.tRRD_S, bg=1), rd(n.tRRD_S + n.tRCD, bg=0),
                             wr(n.tRRD_S + n.tRCD + n.CL + BL2 - n.CWL + 2, bg=1)],
         id="other-group"),
    # "+ 3 with a two-cycle preamble" (reference, Rank).
    Case("RD_WR", lambda n: [act(0), rd(n.tRCD), wr(n.tRCD + n.CL + BL2 - n.CWL + 3)],
         overrides=lambda n: {"tWPRE": 2}, id="2-cycle-preamble"),
    Case("tRFC", lambda n: [rank_cmd(Cmd.REF, 0), act(n.tRFC)], id="ref-act"),
    Case("tRFC", lambda n: [rank_cmd(Cmd.REF, 0), rank_cmd(Cmd.REF, n.tRFC)], id="ref-ref"),
    Case("tXS", lambda n: [rank_cmd(Cmd.SRE, 0), rank_cmd(Cmd.SRX, n.tCKESR),
                           act(n.tCKESR + n.tXS)]),
    Case("tCKESR", lambda n: [rank_cmd(Cmd.SRE, 0), rank_cmd(Cmd.SRX, n.tCKESR)]),
    # --- channel ---
    Case("tRTRS", _ranks(Cmd.RD, Cmd.RD, lambda n: BL2 + n.tRTRS), configs=TWO_RANK, id="rd-rd"),
    Case("tRTRS", _ranks(Cmd.WR, Cmd.WR, lambda n: BL2 + n.tRTRS), configs=TWO_RANK, id="wr-wr"),
    Case("tRTRS", _ranks(Cmd.RD, Cmd.WR, lambda n: n.CL + BL2 + n.tRTRS - n.CWL + n.tWPRE),
         configs=TWO_RANK, id="rd-wr"),
    # WR -> RD across ranks is CWL + BL/2 + tRTRS - CL + tRPRE, which the presets make <= 1 (the
    # command bus binds first); raise CWL so the rule has room to bind on its own.
    Case("tRTRS", _ranks(Cmd.WR, Cmd.RD, lambda n: n.CWL + BL2 + n.tRTRS - n.CL + n.tRPRE),
         configs=TWO_RANK, overrides=lambda n: {"CWL": n.CL - 1}, id="wr-rd"),
    Case("cmd_bus", lambda n: [act(10, rk=0), act(11, rk=1)], configs=TWO_RANK, id="ranks"),
    Case("cmd_bus", lambda n: [act(10, bg=0), rank_cmd(Cmd.REF, 11, rk=1)],
         configs=TWO_RANK, id="ref-other-rank"),
    # --- GradPIM ---
    Case("tRCD", lambda n: [act(0), pim(Cmd.PIM_RD, n.tRCD, bk=0, row=1)], pim=PIM,
         id="act-pim_rd"),
    Case("tRCD", lambda n: [act(0), pim(Cmd.PIM_WR, n.tRCD, bk=0, row=1)], pim=PIM,
         id="act-pim_wr"),
    Case("pim_ccd", lambda n: [act(0, bk=0), act(n.tRRD_L, bk=1),
                               pim(Cmd.PIM_RD, n.tRRD_L + n.tRCD, bk=0, row=1),
                               pim(Cmd.PIM_RD, n.tRRD_L + n.tRCD + n.tCCD_L, bk=1, row=1)],
         pim=PIM, id="pim_rd-pim_rd"),
    Case("pim_ccd", lambda n: [act(0), rd(n.tRCD),
                               pim(Cmd.PIM_WR, n.tRCD + n.tCCD_L, bk=0, row=1)],
         pim=PIM, id="rd-pim_wr"),
    Case("pim_ccd", lambda n: [act(0), pim(Cmd.PIM_RD, n.tRCD, bk=0, row=1),
                               wr(n.tRCD + n.tCCD_L)], pim=PIM, id="pim_rd-wr"),
    Case("pim_ccd", lambda n: [act(0), pim(Cmd.PIM_RD, n.tRCD, bk=0, row=1),
                               pim(Cmd.PIM_RD, n.tRCD + 10, bk=0, row=1)],
         pim=PimConfig(col_to_col=10), id="knob"),
    Case("pim_wtr", lambda n: [act(0), pim(Cmd.PIM_WR, n.tRCD, bk=0, row=1),
                               pim(Cmd.PIM_RD, n.tRCD + BL2 + n.tWTR_L, bk=0, row=1)],
         pim=PIM, id="pim_wr-pim_rd"),
    Case("pim_wtr", lambda n: [act(0), pim(Cmd.PIM_WR, n.tRCD, bk=0, row=1),
                               rd(n.tRCD + BL2 + n.tWTR_L)], pim=PIM, id="pim_wr-rd"),
    Case("tWTR_L", lambda n: [act(0), wr(n.tRCD),
                              pim(Cmd.PIM_RD, n.tRCD + n.CWL + BL2 + n.tWTR_L, bk=0, row=1)],
         pim=PIM, id="wr-pim_rd"),
    Case("pim_rtp", lambda n: [act(0), pim(Cmd.PIM_RD, 60, bk=0, row=1),
                               pre(60 + n.AL + n.tRTP)], pim=PIM),
    Case("pim_wr", lambda n: [act(0), pim(Cmd.PIM_WR, 60, bk=0, row=1),
                              pre(60 + BL2 + n.tWR)], pim=PIM),
    Case("pim_op_latency", lambda n: [act(0), pim(Cmd.PIM_OP, n.tRCD),
                                      pim(Cmd.PIM_WR, n.tRCD + 4, bk=0, row=1)], pim=PIM),
    Case("pim_op_latency", lambda n: [act(0, bg=1), pim(Cmd.PIM_OP, n.tRCD, bg=-1),
                                      pim(Cmd.PIM_WR, n.tRCD + 4, bg=1, bk=0, row=1)],
         pim=PIM, id="op-all-units"),
    # read_to_op = 7 (a knob, default 0): the unit's PIM_OP waits 7 after its latest PIM_RD;
    # a broadcast PIM_OP (bank group -1) waits for every unit's latest PIM_RD.
    Case("pim_read_op", lambda n: [act(0), pim(Cmd.PIM_RD, n.tRCD, bk=0, row=1),
                                   pim(Cmd.PIM_OP, n.tRCD + 7)],
         pim=PimConfig(read_to_op=7)),
    Case("pim_read_op", lambda n: [act(0), act(n.tRRD_S, bg=1),
                                   pim(Cmd.PIM_RD, n.tRRD_S + n.tRCD, bg=1, bk=0, row=1),
                                   pim(Cmd.PIM_OP, n.tRRD_S + n.tRCD + 7, bg=-1)],
         pim=PimConfig(read_to_op=7), id="op-all-units"),
    Case("pim_set", lambda n: [pim(Cmd.PIM_SET, 0, bg=-1), pim(Cmd.PIM_SET, n.tMRD, bg=-1)],
         pim=PIM, id="set-set"),
    Case("pim_set", lambda n: [pim(Cmd.PIM_SET, 0, bg=-1), pim(Cmd.PIM_OP, n.tMOD, bg=-1)],
         pim=PIM, id="set-op"),
    Case("tRRD_L", lambda n: [act(0, bk=0), pim(Cmd.PIM_OP, 1), act(n.tRRD_L, bk=1)], pim=PIM,
         id="pim-stream-acts"),
]


def _params():
    for case in CASES:
        for cfg in case.configs:
            yield pytest.param(case, cfg, id=f"{case.rule}-{case.id or 'min'}-{cfg}")


@pytest.mark.parametrize(("case", "cfg"), list(_params()))
def test_rule_at_minimum_gap(case: Case, cfg: str) -> None:
    n = nums(cfg)
    overrides = case.overrides(n) if case.overrides else None
    if overrides:
        n = SimpleNamespace(**{**vars(n), **overrides})
    cmds = case.build(n)
    assert run(cfg, cmds, case.pim, overrides) == {}, "legal at the exact minimum"
    caught = run(cfg, earlier(cmds), case.pim, overrides)
    assert frozenset(caught) == case.expected(), f"one cycle earlier: {caught}"


def test_every_rule_has_a_tight_case() -> None:
    from gradpimsim.checker import RULES

    # State rules and rules that are not one gap are tested one by one below.
    covered = {c.rule for c in CASES} | {"bank_closed", "wrong_row", "self_refresh", "data_bus",
                                         "refresh_postponed", "pim_disabled", "bank_open",
                                         "ref_bank_open"}
    assert covered == set(RULES)


# ---- state rules and rules that are not a single gap ---------------------------------------
@pytest.mark.parametrize("cfg", list(CONFIGS))
def test_bank_closed_and_wrong_row(cfg: str) -> None:
    n = nums(cfg)
    assert run(cfg, [rd(50)]) == {"bank_closed": 1}
    assert run(cfg, [act(0), pre(n.tRAS), wr(n.tRAS + 30)]) == {"bank_closed": 1}
    assert run(cfg, [act(0), col(Cmd.RDA, n.tRCD), rd(n.tRCD + 20)]) == {"bank_closed": 1}
    assert run(cfg, [act(0, row=1), rd(n.tRCD, row=2)]) == {"wrong_row": 1}
    assert run(cfg, [act(0, row=1), rd(n.tRCD, row=-1)]) == {}  # row -1: the open row
    assert run(cfg, [act(0, row=1), pim(Cmd.PIM_RD, n.tRCD, bk=0, row=2)], PIM) == {
        "wrong_row": 1}
    assert run(cfg, [pim(Cmd.PIM_WR, 5, bk=0, row=2)], PIM) == {"bank_closed": 1}


@pytest.mark.parametrize("cfg", list(CONFIGS))
def test_bank_open_and_ref_bank_open(cfg: str) -> None:
    n = nums(cfg)
    assert run(cfg, [act(0), pre(n.tRAS), act(n.tRC)]) == {}
    assert run(cfg, [act(0), act(n.tRC + 5)]) == {"bank_open": 1}
    for kind in (Cmd.REF, Cmd.SRE):
        assert run(cfg, [act(0), pre(n.tRAS), rank_cmd(kind, n.tRC)]) == {}
        assert run(cfg, [act(0), rank_cmd(kind, n.tRC + 5)]) == {"ref_bank_open": 1}
        # a bank of another bank group counts too
        assert run(cfg, [act(0, bg=1), rank_cmd(kind, n.tRC + 5)]) == {"ref_bank_open": 1}


def test_precharge_of_idle_bank_is_a_nop() -> None:
    assert run("ddr4-2400", [pre(0), act(1), pre(40), pre(41), act(57)]) == {}


@pytest.mark.parametrize("cfg", ["ddr4-2400", "ddr4-3200"])
def test_self_refresh_state(cfg: str) -> None:
    n = nums(cfg)
    assert run(cfg, [rank_cmd(Cmd.SRE, 0), act(100)]) == {"self_refresh": 1}
    assert run(cfg, [rank_cmd(Cmd.SRX, 10)]) == {"self_refresh": 1}
    ok = [rank_cmd(Cmd.SRE, 0), rank_cmd(Cmd.SRX, 5000),
          act(5000 + n.tXS), rd(5000 + n.tXS + n.tRCD)]
    assert run(cfg, ok) == {}


@pytest.mark.parametrize("cfg", TWO_RANK)
def test_data_bus_overlap(cfg: str) -> None:
    n = nums(cfg)
    t = n.tRCD + 1
    # WR on rank 1 whose burst lands exactly on rank 0's read burst.
    gap = n.CL - n.CWL
    checker = ProtocolChecker(preset(cfg))
    checker.observe_many([act(0, rk=0), act(1, rk=1), rd(t, rk=0), wr(t + gap, rk=1)])
    rep = checker.finish()
    assert rep.by_rule == {"tRTRS": 1, "data_bus": 1}
    v = next(v for v in rep.violations if v.rule == "data_bus")
    assert v.actual == gap and v.required == n.CL + BL2 - n.CWL  # after the read's burst
    assert "overlaps" in str(v)


def test_pim_disabled_without_pim_config() -> None:
    assert run("ddr4-2400", [pim(Cmd.PIM_OP, 0)]) == {"pim_disabled": 1}
    assert run("ddr4-2400", [pim(Cmd.PIM_OP, 0)], PIM) == {}


@pytest.mark.parametrize("cfg", ["ddr4-2400", "ddr4-3200-x16"])
def test_pim_other_bank_groups_only_share_the_command_bus(cfg: str) -> None:
    n = nums(cfg)
    t = n.tRRD_S + n.tRCD
    L = n.tCCD_L
    cmds = [act(0, bg=0), act(n.tRRD_S, bg=1),
            pim(Cmd.PIM_RD, t, bg=0, bk=0, row=1), pim(Cmd.PIM_RD, t + 1, bg=1, bk=0, row=1),
            pim(Cmd.PIM_OP, t + 2, bg=0), pim(Cmd.PIM_WR, t + 1 + L, bg=1, bk=0, row=1),
            rd(t + L + 2, bg=0)]
    # Each column command is tCCD_L after the last one of its own bank group; across groups they
    # are one clock apart (no tCCD_S, data bus or tWTR between PIM and other groups).
    assert run(cfg, cmds, PIM) == {}
    same_clock = cmds[:3] + [pim(Cmd.PIM_RD, t, bg=1, bk=0, row=1)]
    assert run(cfg, same_clock, PIM) == {"cmd_bus": 1}


def test_additive_latency_shifts_trcd_and_latencies() -> None:
    # AL = CL - 1 = 16 (DDR4's AL = CL-1 setting): ACT -> RD >= tRCD - AL = 1.
    cmds = [act(0), rd(17 - 16)]
    assert run("ddr4-2400", cmds, overrides={"AL": 16}) == {}
    # RD -> PRE >= AL + tRTP = 25.
    cmds = [act(0), rd(1), pre(39)]
    assert run("ddr4-2400", cmds, overrides={"AL": 16}) == {}
    assert run("ddr4-2400", [act(0), rd(30), pre(30 + 16 + 9 - 1)], overrides={"AL": 16}) == {
        "tRTP": 1}


# ---- refresh ---------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg", ["ddr4-2400", "ddr4-3200"])
def test_refresh_postponed_limit(cfg: str) -> None:
    n = nums(cfg)
    due = 9 * n.tREFI  # 9 REFs owed at 9 x tREFI with none issued; 8 may be postponed
    base = [act(0), pre(100)]
    assert run(cfg, base + [act(due - 1)]) == {}
    assert run(cfg, base + [act(due)]) == {"refresh_postponed": 1}
    assert run(cfg, base, end_clk=due - 1) == {}
    assert run(cfg, base, end_clk=due) == {"refresh_postponed": 1}
    # A REF exactly at the deadline counts before the check; one cycle later it is too late
    # even with no other command in between to notice the debt.
    assert run(cfg, base + [rank_cmd(Cmd.REF, due)]) == {}
    assert run(cfg, base + [rank_cmd(Cmd.REF, due + 1)]) == {"refresh_postponed": 1}
    # Eight REFs owed is the limit, wherever the schedule stands: REFs at 1..k x tREFI keep the
    # debt at zero, then skipping eight intervals is fine and a ninth is not.
    refs = [rank_cmd(Cmd.REF, i * n.tREFI) for i in range(1, 4)]
    assert run(cfg, base + refs + [rank_cmd(Cmd.REF, 12 * n.tREFI)]) == {}
    assert run(cfg, base + refs + [rank_cmd(Cmd.REF, 12 * n.tREFI + 1)]) == {
        "refresh_postponed": 1}


@pytest.mark.parametrize("cfg", ["ddr4-2400", "ddr4-3200"])
def test_refresh_gap_limit(cfg: str) -> None:
    n = nums(cfg)
    refs = [rank_cmd(Cmd.REF, 0)]
    assert run(cfg, refs + [rank_cmd(Cmd.REF, 9 * n.tREFI)]) == {}
    assert run(cfg, refs + [rank_cmd(Cmd.REF, 9 * n.tREFI + 1)]) == {"refresh_postponed": 1}
    assert run(cfg, refs + [act(9 * n.tREFI + 1)]) == {"refresh_postponed": 1}


@pytest.mark.parametrize("cfg", ["ddr4-2400", "ddr4-3200"])
def test_refresh_pulled_in_limit(cfg: str) -> None:
    n = nums(cfg)
    refs = [rank_cmd(Cmd.REF, i * n.tRFC) for i in range(9)]
    assert run(cfg, refs[:8]) == {}
    assert run(cfg, refs) == {"refresh_postponed": 1}


def test_refresh_rules_skipped_when_refresh_is_off() -> None:
    cmds = [act(0), pre(100), act(50 * 9360)]
    assert run("ddr4-2400", cmds, overrides={"refresh": False}) == {}
    assert run("ddr4-2400", cmds) == {"refresh_postponed": 1}


def test_refresh_is_owed_by_every_rank() -> None:
    n = nums("ddr4-2400")
    cmds = [rank_cmd(Cmd.REF, i * n.tREFI, rk=0) for i in range(1, 11)]
    checker = ProtocolChecker(preset("ddr4-2400-x8-2r"))
    checker.observe_many(cmds)
    rep = checker.finish()
    assert rep.by_rule == {"refresh_postponed": 1}
    (v,) = rep.violations
    assert v.cmd.rank == 1 and v.cmd.cmd == Cmd.REF and v.cmd.clk == 9 * n.tREFI
    assert "owes" in str(v)


def test_channels_absent_from_the_stream_are_not_judged() -> None:
    n = nums("ddr4-2400")
    refs = [rank_cmd(Cmd.REF, i * n.tREFI) for i in range(1, 12)]
    assert run("ddr4-2400-x8-1r-2ch", refs) == {}  # channel 1 never appears
    late = [*refs, rank_cmd(Cmd.REF, 5, ch=1)]
    late.sort(key=lambda c: c.clk)
    assert run("ddr4-2400-x8-1r-2ch", late) == {"refresh_postponed": 1}


def test_self_refresh_restarts_refresh_accounting() -> None:
    n = nums("ddr4-2400")
    t_srx = 20 * n.tREFI
    cmds = [rank_cmd(Cmd.SRE, 0), rank_cmd(Cmd.SRX, t_srx), act(t_srx + 9 * n.tREFI - 1)]
    assert run("ddr4-2400", cmds) == {}
    assert run("ddr4-2400", earlier(cmds, -1)) == {"refresh_postponed": 1}


def test_refresh_gap_statistics() -> None:
    n = nums("ddr4-2400")
    checker = ProtocolChecker(preset("ddr4-2400-x8-2r"))
    checker.observe_many([rank_cmd(Cmd.REF, 0), rank_cmd(Cmd.REF, n.tREFI),
                          rank_cmd(Cmd.REF, 3 * n.tREFI)])
    gaps = checker.finish().refresh_gaps
    assert gaps[(0, 0)].refreshes == 3 and gaps[(0, 0)].count == 2
    assert (gaps[(0, 0)].min, gaps[(0, 0)].max) == (n.tREFI, 2 * n.tREFI)
    assert gaps[(0, 0)].mean == 1.5 * n.tREFI
    assert gaps[(0, 1)].refreshes == 0 and gaps[(0, 1)].count == 0


@pytest.mark.parametrize("case", [c for c in CASES if "ddr4-2400" in c.configs and not c.overrides],
                         ids=lambda c: f"{c.rule}-{c.id or 'min'}")
def test_channels_keep_separate_state(case: Case) -> None:
    """Every single-channel case, run on both channels of a 2-channel system at the same clocks:
    each channel is judged alone, so the result is the single-channel one, twice."""
    n = nums("ddr4-2400")
    cmds = case.build(n)
    for variant, times in ((cmds, 0), (earlier(cmds), 2)):
        both = sorted([*variant, *(c._replace(channel=1) for c in variant)],
                      key=lambda c: (c.clk, c.channel))
        caught = run("ddr4-2400-x8-1r-2ch", both, case.pim)
        assert set(caught) == (set() if not times else case.expected())
        assert all(v == 2 for v in caught.values()) or not times
