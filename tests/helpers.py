"""Small helpers shared by the simulation tests."""

from __future__ import annotations

from collections.abc import Iterable

from gradpimsim.config import MemoryConfig
from gradpimsim.controller.controller import ChannelController
from gradpimsim.controller.request import Request
from gradpimsim.dram.address_map import AddressMap
from gradpimsim.dram.commands import Command


def simulate(
    cfg: MemoryConfig, reqs: Iterable[tuple[int, bool, int]], *, batch_runs: bool = True
) -> tuple[ChannelController, list[Command], list[Request]]:
    """Run (addr, is_write, arrival) requests on channel 0; return controller, commands, reqs."""
    cmds: list[Command] = []
    ctrl = ChannelController(cfg, sink=cmds.append, batch_runs=batch_runs)
    amap = AddressMap(cfg)
    submitted = []
    for addr, is_write, t in reqs:
        loc = amap.decode(addr)
        assert loc.channel == 0
        req = Request(
            addr,
            is_write,
            t,
            ctrl.dev.flat_bank(loc.rank, loc.bankgroup, loc.bank),
            loc.row,
            loc.col,
            loc.rank,
        )
        ctrl.submit(req)
        submitted.append(req)
    ctrl.drain()
    return ctrl, cmds, submitted


def addr_of(
    cfg: MemoryConfig, *, rank: int = 0, bg: int = 0, bank: int = 0, row: int = 0, col: int = 0
) -> int:
    return AddressMap(cfg).encode(0, rank, bg, bank, row, col)
