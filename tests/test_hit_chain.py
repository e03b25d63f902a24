"""The run loop's lean path for single-burst row hits (``MergeRuns._hit_chain``).

A trace of one-burst requests spends most of a multi-stream run there; it must issue exactly
what the scheduler issues one command at a time.  Each case compares whole command streams
(every command, cycle and address) and every request's admission and completion cycle with
closed-form runs on and off, and checks the lean path was taken where it should be.
"""

from __future__ import annotations

import random

import pytest

from gradpimsim.config import preset
from gradpimsim.controller.controller import ChannelController
from gradpimsim.controller.request import Request
from gradpimsim.dram.address_map import AddressMap
from gradpimsim.dram.codes import INF
from gradpimsim.dram.commands import Cmd, Command
from tests.helpers import simulate

PRESETS = ["ddr4-2400", "ddr4-2400-x8-2r", "ddr4-3200-x16"]


def _sequential(n: int, *, start: int = 0, write: bool = False, every: int = 1,
                t0: int = 0) -> list[tuple[int, bool, int]]:
    return [(start + 64 * i, write, t0 + i * every) for i in range(n)]


def _two_streams(n: int, cfg) -> list[tuple[int, bool, int]]:  # type: ignore[no-untyped-def]
    far = cfg.org.channel_bytes // 2
    return [(far * (i % 2) + 64 * (i // 2), False, i) for i in range(n)]


def _with_strays(n: int, cfg, seed: int) -> list[tuple[int, bool, int]]:  # type: ignore[no-untyped-def]
    """A sequential read stream with, now and then, a random read or write cutting across it
    (a foreign admission, a miss, a new head) and idle gaps (the queues run dry)."""
    rng = random.Random(seed)
    out, t, addr = [], 0, 0
    for _ in range(n):
        t += 200 if rng.random() < 0.01 else rng.choice((0, 1, 1, 2))
        if rng.random() < 0.05:
            out.append((rng.randrange(cfg.org.channel_bytes) & ~63, rng.random() < 0.5, t))
        else:
            addr += 64
            out.append((addr, False, t))
    return out


def _both_ways(cfg, reqs):  # type: ignore[no-untyped-def]
    a, cmds_a, done_a = simulate(cfg, reqs, batch_runs=True)
    b, cmds_b, done_b = simulate(cfg, reqs, batch_runs=False)
    assert cmds_a == cmds_b
    assert [(r.admitted, r.done) for r in done_a] == [(r.admitted, r.done) for r in done_b]
    assert (a.last_done, a.read_latency.items(), a.write_latency.items()) == \
        (b.last_done, b.read_latency.items(), b.write_latency.items())
    return a


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("depth", [1, 2, 5, 32])
def test_saturating_sequential_reads(name: str, depth: int) -> None:
    cfg = preset(name).with_overrides(read_queue_depth=depth, write_queue_depth=depth,
                                      write_high_watermark=max(1, depth * 3 // 4),
                                      write_low_watermark=max(0, depth // 4 - 1))
    a = _both_ways(cfg, _sequential(3000))
    if depth > 2:
        assert a.chained_hits > 1000  # most hits of a many-row sweep take the lean path


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("owed", [1, 2])
def test_refresh_falls_due_inside_a_saturating_stream(name: str, owed: int) -> None:
    """Refreshing on time (``owed`` 1) or one late: the REF falls due while hits stream, so
    the lean path must stop exactly at the deadline (the REF then closes the rank)."""
    cfg = preset(name).with_overrides(max_postponed_refreshes=owed)
    n = 3 * cfg.timing.tREFI // 4  # a few refresh intervals of back-to-back hits
    a = _both_ways(cfg, _sequential(n))
    assert a.chained_hits > n // 2
    assert a.cmd_counts[Cmd.REF] >= 2


@pytest.mark.parametrize("name", PRESETS)
def test_sequential_writes_two_streams_and_idle_gaps(name: str) -> None:
    cfg = preset(name)
    assert _both_ways(cfg, _sequential(2000, write=True)).chained_hits > 0
    assert _both_ways(cfg, _two_streams(3000, cfg)).chained_hits > 0
    _both_ways(cfg, _sequential(2000, every=7))  # a request every 7 cycles: queues run dry


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("seed", range(4))
def test_strays_cutting_across_a_stream(name: str, seed: int) -> None:
    cfg = preset(name)
    assert _both_ways(cfg, _with_strays(3000, cfg, seed)).chained_hits > 0


def test_lean_path_off_where_it_does_not_apply() -> None:
    """FCFS, closed and adaptive pages keep to the general loop (their rules bound runs)."""
    for over in ({"scheduler": "fcfs"}, {"page_policy": "closed"}, {"page_policy": "adaptive"}):
        cfg = preset("ddr4-2400").with_overrides(**over)
        assert _both_ways(cfg, _sequential(1500)).chained_hits == 0


@pytest.mark.parametrize("step", [13, 97, 1000])
def test_stepped_requester_sees_the_same_commands(step: int) -> None:
    """A requester that offers requests only up to a horizon and runs the controller to it,
    saying nothing is to be decided from there on (``horizon``, as the full-system model
    does): the runs stop at every horizon; same commands."""
    cfg = preset("ddr4-2400-x8-2r")
    reqs = _with_strays(3000, cfg, 7)

    def run(batch: bool) -> tuple[list[Command], list[tuple[int, int]]]:
        cmds: list[Command] = []
        ctrl = ChannelController(cfg, sink=cmds.append, batch_runs=batch)
        amap = AddressMap(cfg)
        made = []
        i, horizon = 0, 0
        while i < len(reqs):
            horizon += step
            while i < len(reqs) and reqs[i][2] < horizon:
                addr, w, t = reqs[i]
                loc = amap.decode(addr)
                req = Request(addr, w, t, ctrl.dev.flat_bank(loc.rank, loc.bankgroup, loc.bank),
                              loc.row, loc.col, loc.rank)
                ctrl.submit(req)
                made.append(req)
                i += 1
            ctrl.horizon = horizon
            ctrl.run_until(horizon)
        ctrl.horizon = INF
        ctrl.drain()
        return cmds, [(r.admitted, r.done) for r in made]

    assert run(True) == run(False)
