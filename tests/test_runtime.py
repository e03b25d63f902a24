"""Process-level settings (``gradpimsim.runtime``) and the constants the compiled core inlines."""

from __future__ import annotations

import gc

from gradpimsim.controller import controller as ctl
from gradpimsim.dram import codes
from gradpimsim.dram.codes import INF
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


def test_command_codes_are_the_command_enum() -> None:
    """One table of codes: every name in ``Cmd`` has its literal in ``dram.codes``, and the
    count the device sizes its tables with is the enum's size."""
    for cmd in Cmd:
        assert getattr(codes, cmd.name) == int(cmd), cmd.name
    assert len(Cmd) == codes.NCMD


def test_hot_modules_see_the_same_codes() -> None:
    """The hot modules import the codes (a stale local copy of one would slip past the enum)."""
    from gradpimsim.arbiter import shared_channel
    from gradpimsim.dram import device

    for module in (ctl, device, channel, shared_channel):
        for cmd in Cmd:
            if hasattr(module, cmd.name):
                assert getattr(module, cmd.name) == int(cmd), (module.__name__, cmd.name)


def test_one_never_for_controller_and_pim() -> None:
    assert channel.INF == INF
    assert INF < 1 << 62  # a native short integer under mypyc
