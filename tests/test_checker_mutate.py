"""Mutation helper: every single-mutation variant of a tight legal stream must be caught.

The stream below is built by hand so that every command after the first sits exactly at the
minimum gap of some rule (noted beside it, with the DDR4-2400 x8 reference numbers).  Pulling any
command earlier therefore breaks that rule, dropping any PRE leaves a bank open for the following
ACT or REF, and duplicating an ACT activates an open bank: we know each variant is illegal
without asking the checker, so the checker must flag all of them.
"""

from __future__ import annotations

import random

from gradpimsim.checker import check_commands
from gradpimsim.checker.mutate import mutations
from gradpimsim.config import preset
from gradpimsim.dram.commands import Cmd, Command

CFG = preset("ddr4-2400")


def A(t: int, bg: int, bk: int, row: int = 5) -> Command:
    return Command(t, Cmd.ACT, 0, 0, bg, bk, row, -1)


def P(t: int, bg: int, bk: int) -> Command:
    return Command(t, Cmd.PRE, 0, 0, bg, bk, -1, -1)


def C(kind: Cmd, t: int, bg: int, bk: int, row: int = 5) -> Command:
    return Command(t, kind, 0, 0, bg, bk, row, 3)


TIGHT = [
    A(0, 0, 0),
    A(4, 1, 0),  # tRRD_S 4
    C(Cmd.RD, 17, 0, 0),  # tRCD 17
    C(Cmd.RD, 21, 1, 0),  # tRCD 17 after ACT@4 (and tCCD_S 4)
    C(Cmd.RD, 25, 0, 0),  # tCCD_S 4 after RD@21 (data bus)
    P(39, 0, 0),  # tRAS 39
    P(43, 1, 0),  # tRAS 39 after ACT@4
    A(56, 0, 0),  # tRP 17 after PRE@39, tRC 56
    C(Cmd.WR, 73, 0, 0),  # tRCD
    C(Cmd.RD, 98, 0, 0),  # tWTR_L: CWL 12 + BL/2 4 + 9 = 25
    P(107, 0, 0),  # tRTP 9 after RD@98; tWR: 12 + 4 + 18 = 34 after WR@73
    Command(124, Cmd.REF, 0, 0, -1, -1, -1, -1),  # tRP 17 after PRE@107
    A(544, 2, 3),  # tRFC 420
    C(Cmd.RDA, 561, 2, 3),  # tRCD
    A(600, 2, 3),  # tRC 56 after ACT@544 (RDA closed at 570, + tRP = 587)
    C(Cmd.WRA, 617, 2, 3),  # tRCD
    A(668, 2, 3),  # WRA@617 auto-precharges at 617 + 12 + 4 + 18 = 651; + tRP 17
]


def test_tight_stream_is_legal() -> None:
    assert check_commands(TIGHT, CFG).ok


def _stream() -> list[Command]:
    return list(TIGHT)


def test_every_mutation_of_a_tight_stream_is_caught() -> None:
    stream = _stream()
    rng = random.Random(11)
    kinds = {"pull": 0, "drop": 0, "duplicate": 0}
    for desc, variant in mutations(stream, rng, max_pull=3):
        assert [c.clk for c in variant] == sorted(c.clk for c in variant), desc
        rep = check_commands(variant, CFG)
        assert not rep.ok, f"mutation not caught: {desc}"
        kinds[desc.split()[0]] += 1
    # every command but the first can be pulled by 1..3 (the REF/ACT after tRFC too)
    assert kinds["pull"] >= 3 * (len(stream) - 1) - 3
    assert kinds["drop"] == sum(c.cmd == Cmd.PRE for c in stream)
    assert kinds["duplicate"] == sum(c.cmd == Cmd.ACT for c in stream)


def test_pull_by_one_is_caught_under_the_binding_rule() -> None:
    stream = _stream()
    expected = {1: "tRRD_S", 2: "tRCD", 5: "tRAS", 8: "tRCD", 9: "tWTR_L", 11: "tRP",
                12: "tRFC", 16: "tRP"}
    for i, rule in expected.items():
        variant = [*stream[:i], stream[i]._replace(clk=stream[i].clk - 1), *stream[i + 1:]]
        assert rule in check_commands(variant, CFG).by_rule, (i, rule)


def test_sampled_mutations_are_single_changes_and_reproducible() -> None:
    stream = _stream()
    a = list(mutations(stream, random.Random(5), count=25))
    b = list(mutations(stream, random.Random(5), count=25))
    assert a == b and len(a) == 25
    for desc, variant in a:
        assert abs(len(variant) - len(stream)) <= 1
        if desc.startswith("pull"):
            changed = [x for x, y in zip(stream, variant, strict=True) if x != y]
            assert len(changed) == 1
    assert list(mutations([], random.Random(1), count=5)) == []
