"""The idle-gap fast path: refresh periods of an idle gap accounted in closed form are exact.

The fast path (``ChannelController._skip_idle_refreshes``) is on only without a command sink, so
these tests compare a run without a sink against the same run with a sink (which walks every
period) and against the rule "one REF per rank per tREFI while idle".  The online checker is not
attached: a checker would be a sink and turn the fast path off.
"""

from __future__ import annotations

from typing import Any

import pytest

from gradpimsim.checker.offline import check_commands
from gradpimsim.config import preset
from gradpimsim.controller.controller import ChannelController
from gradpimsim.controller.request import Request
from gradpimsim.dram.address_map import AddressMap
from gradpimsim.dram.commands import Cmd, Command

pytestmark = pytest.mark.no_checker


def _requests(cfg: Any, arrivals: list[tuple[int, int, bool]]) -> list[Request]:
    amap = AddressMap(cfg)
    out = []
    for addr, cycle, write in arrivals:
        loc = amap.decode(addr)
        bank = (loc.rank * cfg.org.banks_per_rank + loc.bankgroup * cfg.org.banks_per_group
                + loc.bank)
        out.append(Request(addr, write, cycle, bank, loc.row, loc.col, loc.rank))
    return out


def _run(cfg: Any, arrivals: list[tuple[int, int, bool]], *, skip: bool
         ) -> tuple[ChannelController, list[Command]]:
    cmds: list[Command] = []
    ctrl = ChannelController(cfg, sink=cmds.append)
    ctrl.skip_idle = skip  # a sink turns the fast path off; here we want to see its commands
    for r in _requests(cfg, arrivals):
        ctrl.submit(r)
    ctrl.drain()
    return ctrl, cmds


SCENARIOS = [
    # (preset, arrivals): busy, then idle for many tREFI, then busy again
    ("ddr4-2400", [(0, 0, False), (64, 5, True), (1 << 20, 30, False),
                   (128, 9_000_000, False), (1 << 22, 9_000_010, True)]),
    ("ddr4-3200-x16-2r", [(i * 4096, i * 3, i % 3 == 0) for i in range(40)]
     + [(1 << 25, 5_000_000, False), (64, 5_000_001, True)]),
    ("ddr4-2400-x8-4r", [(i << 17, 7 * i, False) for i in range(16)]
     + [(1 << 30, 12_345_678, True)] + [(i << 16, 12_345_700 + i, False) for i in range(8)]),
]


@pytest.mark.parametrize(("name", "arrivals"), SCENARIOS)
def test_fast_path_gives_the_walked_schedule(name: str, arrivals: list[Any]) -> None:
    cfg = preset(name)
    fast, fast_cmds = _run(cfg, arrivals, skip=True)
    slow, slow_cmds = _run(cfg, arrivals, skip=False)
    assert fast.idle_periods_skipped > 100 and slow.idle_periods_skipped == 0
    # the fast stream is the walked one less the skipped REFs, in the same order
    fast_set = set(fast_cmds)
    extra = [c for c in slow_cmds if c not in fast_set]
    assert [c for c in slow_cmds if c in fast_set] == fast_cmds
    assert all(c.cmd == Cmd.REF for c in extra)
    assert len(extra) == fast.idle_periods_skipped * cfg.org.ranks
    assert fast.cmd_counts == slow.cmd_counts
    assert fast.refresh.issued == slow.refresh.issued
    assert fast.refresh.last_ref == slow.refresh.last_ref
    assert fast.refresh.gaps_max == slow.refresh.gaps_max
    assert fast.last_done == slow.last_done
    assert fast.read_latency.mean() == slow.read_latency.mean()
    # the walked stream is legal, and idle means one REF per rank per tREFI (the rule)
    assert check_commands(slow_cmds, cfg).ok
    tREFI = cfg.timing.tREFI
    for rank in range(cfg.org.ranks):
        refs = [c.clk for c in slow_cmds if c.cmd == Cmd.REF and c.rank == rank]
        gaps = {b - a for a, b in zip(refs, refs[1:], strict=False)}
        assert tREFI in gaps and max(gaps) <= 9 * tREFI


def test_fast_path_stays_off_with_a_sink_and_when_busy() -> None:
    cfg = preset("ddr4-2400")
    arrivals = [(i * 64, i * 50, False) for i in range(4000)]  # busy: never two idle boundaries
    ctrl, _ = _run(cfg, arrivals, skip=True)
    assert ctrl.idle_periods_skipped == 0
    cmds: list[Command] = []
    assert not ChannelController(cfg, sink=cmds.append).skip_idle
    assert ChannelController(cfg).skip_idle


def test_refresh_disabled_has_no_idle_work() -> None:
    cfg = preset("ddr4-2400")
    cfg = cfg.with_overrides(refresh=False)
    ctrl, cmds = _run(cfg, [(0, 0, False), (64, 10**15, False)], skip=True)
    assert ctrl.cmd_counts[Cmd.REF] == 0 and ctrl.last_done > 10**15
