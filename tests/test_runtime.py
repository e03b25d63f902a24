"""Process-level settings (``gradpimsim.runtime``) and the constants the compiled core inlines."""

from __future__ import annotations

import gc

from gradpimsim.controller import controller as ctl
from gradpimsim.controller.refresh import INF
from gradpimsim.dram.commands import Cmd
from gradpimsim.pim import channel
from gradpimsim.runtime import SIM_GC_THRESHOLD, simulation_gc


def test_simulation_gc_raises_and_restores_the_threshold() -> None:
    before = gc.get_threshold()
    with simulation_gc():
        assert gc.get_threshold()[0] == max(SIM_GC_THRESHOLD, before[0])
        assert gc.get_threshold()[1:] == before[1:]
    assert gc.get_threshold() == before


def test_simulation_gc_restores_after_an_interrupt() -> None:
    before = gc.get_threshold()
    try:
        with simulation_gc():
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert gc.get_threshold() == before


def test_controller_command_codes_are_the_command_enum() -> None:
    for name in ("ACT", "PRE", "RD", "RDA", "WR", "WRA", "REF"):
        assert getattr(ctl, name) == int(Cmd[name]), name


def test_device_command_codes_are_the_command_enum() -> None:
    from gradpimsim.dram import device

    for name in ("ACT", "PRE", "RD", "RDA", "WR", "WRA", "REF", "SRE", "SRX", "PIM_OP", "PIM_SET"):
        assert getattr(device, name) == int(Cmd[name]), name


def test_one_never_for_controller_and_pim() -> None:
    assert channel.INF == INF
    assert INF < 1 << 62  # a native short integer under mypyc
