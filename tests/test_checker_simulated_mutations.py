"""Mutation tests over long command streams produced by the simulator.

Each mutation changes one command of a legal simulator stream.  Whether it breaks a rule is
decided by an independent oracle: for a command pulled earlier, the controller's own device state
replayed over the unchanged prefix (the other implementation of the timing rules); for a dropped
PRE, whether the bank is used again; a duplicated ACT always opens an open bank.  The checker must
agree in both directions: it reports every broken stream and passes every still-legal one, so a
wrong rule in either implementation shows up as a disagreement.
"""

from __future__ import annotations

import random

import pytest

from gradpimsim.checker import ProtocolChecker
from gradpimsim.checker.mutate import mutations
from gradpimsim.config import preset
from gradpimsim.dram.commands import Cmd, Command
from gradpimsim.dram.device import ChannelDevice
from tests.helpers import simulate
from tests.test_controller import _mixed_traffic

RANK_LEVEL = {Cmd.REF, Cmd.SRE, Cmd.SRX}


def _legal_by_device(cfg, stream: list[Command], i: int, clk: int) -> bool:  # type: ignore[no-untyped-def]
    """Would command ``i`` be legal at ``clk`` after the (unchanged) prefix, per the device?"""
    dev = ChannelDevice(cfg)
    for c in stream[:i]:
        dev.issue(int(c.cmd), dev.flat_bank(c.rank, max(c.bankgroup, 0), max(c.bank, 0)), c.clk,
                  c.row)
    c = stream[i]
    if c.cmd in RANK_LEVEL:
        earliest = dev.earliest_rank(int(c.cmd), c.rank)
    else:
        earliest = dev.earliest(int(c.cmd), dev.flat_bank(c.rank, c.bankgroup, c.bank))
    return clk >= earliest


def _breaks(cfg, stream: list[Command], desc: str, mutated: list[Command]) -> bool:  # type: ignore[no-untyped-def]
    index = int(desc.split("#")[1].split()[0])
    original = stream[index]
    if desc.startswith("pull"):
        moved = mutated[index]  # a pull keeps the command's place in the list
        assert moved[1:] == original[1:] and moved.clk < original.clk
        return not _legal_by_device(cfg, stream, index, moved.clk)
    if desc.startswith("drop"):
        for c in stream[index + 1:]:
            same_bank = (c.rank, c.bankgroup, c.bank) == original[3:6]
            same_rank = c.rank == original.rank
            if (c.cmd == Cmd.ACT and same_bank) or (c.cmd in RANK_LEVEL and same_rank):
                return True
        return False
    assert desc.startswith("duplicate")
    return True


@pytest.mark.parametrize("name", ["ddr4-2400-x8-2r", "ddr4-3200-x16"])
def test_checker_agrees_with_device_on_mutated_simulator_streams(name: str) -> None:
    cfg = preset(name)
    _, stream, _ = simulate(cfg, _mixed_traffic(5, 1500, cfg))
    assert len(stream) > 2000
    rng = random.Random(3)
    checked = broken = 0
    for desc, mutated in mutations(stream, rng, count=400, max_pull=3):
        expected = _breaks(cfg, stream, desc, mutated)
        checker = ProtocolChecker(cfg)
        checker.observe_many(mutated)
        report = checker.finish()
        assert (not report.ok) == expected, f"{desc}: checker {report.by_rule}, oracle {expected}"
        checked += 1
        broken += expected
    assert checked == 400 and broken > 100  # the sample really exercises broken streams
