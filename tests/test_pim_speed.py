"""The PIM scheduler's fast paths make exactly the reference decisions.

Each shortcut (``PimChannel.run_span`` behind ``SharedChannel.fast``; the standalone
``PimChannel.run``) is compared with the reference stepping (every command through
``peek``/``issue``) on the full command stream (cycle, command, rank, bank group, bank, row,
column), over configurations that exercise its exits: host traffic on the same banks, refresh,
both policies, one and two ranks, x4/x8/x16 devices, batches added later (SimPy), and a whole
with-PIM training iteration.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
import simpy

from gradpimsim.config import preset
from gradpimsim.config.training import OptimizerConfig, precision
from gradpimsim.controller.pim_arbiter import SharedChannel, SharedChannelProcess
from gradpimsim.controller.request import Request
from gradpimsim.dram.commands import Cmd, Command
from gradpimsim.host.allocator import Allocator
from gradpimsim.pim.bench import _fill, _verify
from gradpimsim.pim.channel import INF, PimChannel
from gradpimsim.pim.config import PimConfig
from gradpimsim.pim.functional import PimArray
from gradpimsim.pim.kernels import PimProgram, UpdateTarget, build_program
from gradpimsim.pim.layout import ColocatedPolicy, update_tensors
from gradpimsim.pim.store import DramStore

PIM = PimConfig()
OPT = OptimizerConfig("momentum", momentum=0.9)
PREC = precision("mixed")
POLICIES = ("host-first", "pim-first")


def _program(cfg: Any, n: int, *, opt: OptimizerConfig = OPT,
             functional: bool = False) -> tuple[PimProgram, Any]:
    alloc = Allocator(cfg, ColocatedPolicy(chunk_columns=64))
    pl = alloc.place_group("p", update_tensors(n, opt, PREC))
    targets = [UpdateTarget("p", n, pl)]
    program = build_program(targets, opt, PREC, cfg, PIM, step=2, amap=alloc.amap, lazy=True)
    extra = None
    if functional:
        store = DramStore(cfg, alloc.amap)
        refs = _fill(store, targets, opt, PREC, np.random.default_rng(0))
        extra = (PimArray(cfg, store, PIM), targets, refs)
    return program, extra


def _batch(program: PimProgram) -> tuple[dict, dict]:
    units = {(r, bg): p for (c, r, bg), p in program.units.items() if c == 0}
    sets = {r: s for (c, r), s in program.prologue.items() if c == 0}
    return units, sets


def _traffic(shared: SharedChannel, n: int, gap: int, rows: list[int], seed: int) -> None:
    """``n`` random 64 B requests every ``gap`` cycles over every bank of every rank, half of
    them to rows the PIM program uses."""
    rng = random.Random(seed)
    dev = shared.ctrl.dev
    for k in range(n):
        row = rng.choice(rows) if rng.random() < 0.5 else rng.randrange(200)
        rank = rng.randrange(dev.ranks)
        shared.submit(Request(k * 64, rng.random() < 0.3, k * gap,
                              dev.flat_bank(rank, rng.randrange(dev.bankgroups),
                                            rng.randrange(dev.banks_per_group)),
                              row, rng.randrange(128), rank))


def _shared_stream(cfg: Any, n: int, policy: str, fast: bool, host: int, gap: int = 5,
                   functional: bool = False) -> tuple[list[Command], list[int], int, Any]:
    program, extra = _program(cfg, n, functional=functional)
    stream: list[Command] = []
    shared = SharedChannel.build(cfg, PIM, policy=policy, sink=stream.append,
                                 array=extra[0] if extra else None)
    shared.fast = fast
    done: list[int] = []
    shared.add_program(*_batch(program), on_done=done.append)
    if host:
        rows = sorted({i.row for p in program.units.values() for i in p if i.bank >= 0})
        _traffic(shared, host, gap, rows, seed=n)
    end = shared.drain()
    bad = None
    if extra is not None:
        array, targets, refs = extra
        bad = _verify(array.store, targets, refs, OPT, PREC, 2)
    return stream, done, end, bad


CASES = [
    # (preset, overrides, params, host requests, request gap)
    ("ddr4-2400-x8", {}, 6000, 0, 5),
    ("ddr4-2400-x8", {}, 6000, 1500, 5),
    ("ddr4-2400-x8", {"tREFI": 1500, "max_postponed_refreshes": 1}, 12000, 0, 5),
    ("ddr4-2400-x8", {"tREFI": 1500, "max_postponed_refreshes": 1}, 12000, 2000, 9),
    ("ddr4-2400-x8", {"ranks": 2, "tREFI": 2000, "max_postponed_refreshes": 1}, 12000, 0, 5),
    ("ddr4-2400-x8", {"ranks": 2, "tREFI": 2000, "max_postponed_refreshes": 1}, 12000, 2000, 7),
    ("ddr4-2400-x4", {}, 6000, 1200, 6),
    ("ddr4-3200-x16", {"tREFI": 2500, "max_postponed_refreshes": 2}, 8000, 1500, 6),
]


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1]}-{c[2]}-{c[3]}")
def test_shared_fast_path_gives_the_reference_stream(case: tuple, policy: str) -> None:
    name, over, n, host, gap = case
    cfg = preset(name).with_overrides(**over) if over else preset(name)
    ref = _shared_stream(cfg, n, policy, False, host, gap)
    fast = _shared_stream(cfg, n, policy, True, host, gap)
    assert fast[0] == ref[0]
    assert fast[1:] == ref[1:]
    assert any(c.cmd == Cmd.PIM_RD for c in ref[0])
    if host:
        assert any(c.cmd == Cmd.RD for c in ref[0])
    if "tREFI" in over:
        assert any(c.cmd == Cmd.REF for c in ref[0])


@pytest.mark.parametrize("policy", POLICIES)
def test_shared_fast_path_is_functionally_exact(policy: str) -> None:
    cfg = preset("ddr4-2400-x8").with_overrides(tREFI=1500)
    ref = _shared_stream(cfg, 8000, policy, False, 1500, 7, functional=True)
    fast = _shared_stream(cfg, 8000, policy, True, 1500, 7, functional=True)
    assert fast[0] == ref[0]
    assert ref[3] == [] and fast[3] == []


def test_standalone_run_equals_stepping_with_a_floor() -> None:
    """``run()`` now also takes the inlined loop when ``advance()`` set a floor."""
    cfg = preset("ddr4-2400-x8").with_overrides(ranks=2, tREFI=1800)
    program, _ = _program(cfg, 9000)
    streams = []
    for stepping in (False, True):
        out: list[Command] = []
        chan = PimChannel(cfg, PIM, sink=out.append)
        chan.advance(777)
        chan.add_program(*_batch(program))
        if stepping:
            while chan.peek() < INF:
                chan.issue()
        else:
            chan.run()
        streams.append(out)
    assert streams[0] == streams[1]
    assert min(c.clk for c in streams[0]) >= 777


def _simpy_stream(fast: bool, policy: str) -> list[tuple[str, Any]]:
    """Host requests over time, a second batch added later from a SimPy process, callbacks
    logged with their simulated time."""
    cfg = preset("ddr4-2400-x8").with_overrides(tREFI=2000)
    program, _ = _program(cfg, 4000)
    env = simpy.Environment()
    stream: list[Command] = []
    shared = SharedChannel.build(cfg, PIM, policy=policy, sink=stream.append)
    shared.fast = fast
    proc = SharedChannelProcess(env, shared)
    log: list[tuple[str, Any]] = []
    rng = random.Random(3)

    def host() -> Any:
        dev = shared.ctrl.dev
        for k in range(400):
            yield env.timeout(rng.randrange(1, 30))
            proc.submit(Request(k * 64, rng.random() < 0.3, int(env.now),
                                dev.flat_bank(0, rng.randrange(4), rng.randrange(4)),
                                rng.randrange(100), rng.randrange(128), 0,
                                callback=lambda r: log.append(("req", env.now, r.done))))

    def pim() -> Any:
        proc.add_program(*_batch(program), on_done=lambda c: log.append(("b1", env.now, c)))
        yield env.timeout(5000)
        proc.add_program(*_batch(program), on_done=lambda c: log.append(("b2", env.now, c)))

    env.process(host())
    env.process(pim())
    env.run(until=300_000)
    assert not shared.busy
    return log + [("cmd", c) for c in stream]


@pytest.mark.parametrize("policy", POLICIES)
def test_simpy_batches_and_callbacks_are_unchanged(policy: str) -> None:
    ref = _simpy_stream(False, policy)
    assert _simpy_stream(True, policy) == ref
    assert sum(1 for e in ref if e[0] in ("b1", "b2")) == 2


def test_iteration_command_stream_is_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    """A whole with-PIM iteration (update overlapping the backward pass): the same commands
    on every channel, the same result figures."""
    from gradpimsim.system.config import RunConfig
    from gradpimsim.system.simulate import simulate

    run = RunConfig(workload="mlp-small", batch=8, channels=2, pim=True, precision="mixed",
                    optimizer="momentum")
    outs = []
    for fast in (False, True):
        monkeypatch.setattr(SharedChannel, "fast", fast, raising=False)
        streams: dict[int, list[Command]] = {}

        def factory(ch: int, streams: dict[int, list[Command]] = streams) -> Any:
            return streams.setdefault(ch, []).append

        r = simulate(run, sink_factory=factory)
        outs.append((streams, r.cycles, r.dram, r.phases))
    assert outs[0] == outs[1]
    assert sum(1 for s in outs[0][0].values() for c in s if c.cmd == Cmd.PIM_RD) > 0
