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
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import simpy

from gradpimsim.arbiter.shared_channel import SharedChannel, SharedChannelProcess
from gradpimsim.checker import ProtocolChecker
from gradpimsim.config import preset
from gradpimsim.config.pim import PimConfig
from gradpimsim.config.training import OptimizerConfig, precision
from gradpimsim.controller.request import Request
from gradpimsim.dram.codes import INF
from gradpimsim.dram.commands import Cmd, Command
from gradpimsim.host.allocator import Allocator
from gradpimsim.pim.channel import PimChannel
from gradpimsim.pim.errors import PimCapabilityError
from gradpimsim.pim.functional import PimArray
from gradpimsim.pim.kernels import PimProgram, UpdateTarget, build_program
from gradpimsim.pim.layout import ColocatedPolicy, update_tensors
from gradpimsim.pim.phases import Loc
from gradpimsim.pim.recipes import Recipe
from gradpimsim.pim.store import DramStore
from gradpimsim.pim.unit import PimInstr, pim_rd, pim_wr
from gradpimsim.pim.values import fill_parameters, verify_parameters

PIM = PimConfig()
OPT = OptimizerConfig("momentum", momentum=0.9)
PREC = precision("mixed")
POLICIES = ("host-first", "pim-first", "fair", "fair:200", "throttled")


def arb(policy: str) -> dict[str, Any]:
    """``SharedChannel.build`` arguments of a test policy id (``fair:200``: wait bound 200)."""
    name, _, bound = policy.partition(":")
    return {"policy": name, "wait_bound": int(bound) if bound else None}


def _program(cfg: Any, n: int, *, opt: OptimizerConfig = OPT, functional: bool = False,
             pim: PimConfig = PIM) -> tuple[PimProgram, Any]:
    alloc = Allocator(cfg, ColocatedPolicy(chunk_columns=64))
    pl = alloc.place_group("p", update_tensors(n, opt, PREC))
    targets = [UpdateTarget("p", n, pl)]
    program = build_program(targets, opt, PREC, cfg, pim, step=2, amap=alloc.amap, lazy=True)
    extra = None
    if functional:
        store = DramStore(cfg, alloc.amap)
        refs = fill_parameters(store, targets, opt, PREC, np.random.default_rng(0))
        extra = (PimArray(cfg, store, pim), targets, refs)
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
                   functional: bool = False, pim: PimConfig = PIM,
                   ) -> tuple[list[Command], list[int], int, Any]:
    program, extra = _program(cfg, n, functional=functional, pim=pim)
    stream: list[Command] = []
    shared = SharedChannel.build(cfg, pim, **arb(policy), sink=stream.append,
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
        bad = verify_parameters(array.store, targets, refs, OPT, PREC, 2)
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


def _bulk_stream(cfg: Any, n: int, policy: str, fast: bool, host: int, gap: int, seed: int,
                 pim: PimConfig = PIM,
                 ) -> tuple[list[Command], list[int], int, tuple[int, ...], int]:
    """PIM's update with host *bulk* requests (a few to 64 bursts each, to rows PIM uses and
    others): the host streams bursts while PIM fills the command bus between them."""
    program, _ = _program(cfg, n, pim=pim)
    stream: list[Command] = []
    shared = SharedChannel.build(cfg, pim, **arb(policy), sink=stream.append)
    shared.fast = fast
    done: list[int] = []
    shared.add_program(*_batch(program), on_done=done.append)
    rows = sorted({i.row for p in program.units.values() for i in p if i.bank >= 0})
    rng = random.Random(seed)
    dev = shared.ctrl.dev
    for k in range(host):
        ncols = rng.choice((2, 3, 8, 16, 32, 64))
        rank = rng.randrange(dev.ranks)
        shared.submit(Request(k * 4096, rng.random() < 0.3, k * gap,
                              dev.flat_bank(rank, rng.randrange(dev.bankgroups),
                                            rng.randrange(dev.banks_per_group)),
                              rng.choice(rows) if rng.random() < 0.3 else rng.randrange(200),
                              rng.randrange(128 - ncols + 1), rank, ncols=ncols))
    end = shared.drain()
    ctrl = shared.ctrl
    stats = (ctrl.row_misses, ctrl.read_bursts, ctrl.write_bursts, ctrl.reads_done,
             ctrl.writes_done)
    return stream, done, end, stats, shared.interleaved


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("case", [
    ("ddr4-2400-x8", {}, 6000, 400, 40, 1),
    ("ddr4-2400-x8", {"tREFI": 1500, "max_postponed_refreshes": 1}, 12000, 600, 60, 2),
    ("ddr4-2400-x8", {"ranks": 2, "tREFI": 2000}, 12000, 500, 50, 3),
    ("ddr4-3200-x16", {}, 8000, 400, 30, 4),
], ids=lambda c: f"{c[0]}-{c[2]}-{c[5]}")
def test_shared_fast_path_with_host_bulk_streams(case: tuple, policy: str) -> None:
    """Host bulk streams interleaved burst by burst with PIM spans (host-first) give the
    reference stream, completions and controller counts; pim-first never interleaves."""
    name, over, n, host, gap, seed = case
    cfg = preset(name).with_overrides(**over) if over else preset(name)
    ref = _bulk_stream(cfg, n, policy, False, host, gap, seed)
    fast = _bulk_stream(cfg, n, policy, True, host, gap, seed)
    assert fast[0] == ref[0]
    assert fast[1:4] == ref[1:4]
    assert ref[4] == 0
    if policy == "host-first":
        assert fast[4] > 100, fast[4]  # the burst-by-burst path was taken
    else:
        assert fast[4] == 0


@pytest.mark.parametrize("policy", POLICIES)
def test_shared_fast_path_is_functionally_exact(policy: str) -> None:
    cfg = preset("ddr4-2400-x8").with_overrides(tREFI=1500)
    ref = _shared_stream(cfg, 8000, policy, False, 1500, 7, functional=True)
    fast = _shared_stream(cfg, 8000, policy, True, 1500, 7, functional=True)
    assert fast[0] == ref[0]
    assert ref[3] == [] and fast[3] == []


#: A PIM read-to-operation latency (``pim.read_to_op``): the device's table holds each PIM_OP
#: 7 cycles after its unit's latest PIM_RD, so every path must take its PIM_OP cycles from there.
SLOW_READ = PimConfig(read_to_op=7)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("case", [CASES[1], CASES[3], CASES[5], CASES[7]],
                         ids=lambda c: f"{c[0]}-{c[1]}-{c[2]}-{c[3]}")
def test_fast_paths_with_a_read_to_op_latency(case: tuple, policy: str) -> None:
    """With ``read_to_op`` set, the shared fast path (random and bulk host traffic) still
    gives the reference stream, and the knob changed that stream (it binds somewhere)."""
    name, over, n, host, gap = case
    cfg = preset(name).with_overrides(**over) if over else preset(name)
    ref = _shared_stream(cfg, n, policy, False, host, gap, pim=SLOW_READ)
    fast = _shared_stream(cfg, n, policy, True, host, gap, pim=SLOW_READ)
    assert fast[0] == ref[0]
    assert fast[1:] == ref[1:]
    assert ref[0] != _shared_stream(cfg, n, policy, False, host, gap)[0]
    bulk_ref = _bulk_stream(cfg, n, policy, False, host // 4, gap * 8, 5, pim=SLOW_READ)
    bulk_fast = _bulk_stream(cfg, n, policy, True, host // 4, gap * 8, 5, pim=SLOW_READ)
    assert bulk_fast[0] == bulk_ref[0]
    assert bulk_fast[1:4] == bulk_ref[1:4]


@pytest.mark.parametrize("policy", ("host-first", "fair:200"))
def test_fast_path_with_a_read_to_op_latency_is_functionally_exact(policy: str) -> None:
    cfg = preset("ddr4-2400-x8").with_overrides(tREFI=1500)
    ref = _shared_stream(cfg, 8000, policy, False, 1500, 7, functional=True, pim=SLOW_READ)
    fast = _shared_stream(cfg, 8000, policy, True, 1500, 7, functional=True, pim=SLOW_READ)
    assert fast[0] == ref[0]
    assert ref[3] == [] and fast[3] == []


def _run_and_step(cfg: Any, pim: PimConfig, program: Any, floor: int = 0) -> list[list[Command]]:
    """The program's command stream from ``run()`` (the inlined loop) and from stepping
    ``peek()``/``issue()``, in that order (after ``advance(floor)`` when a floor is given)."""
    streams = []
    for stepping in (False, True):
        out: list[Command] = []
        chan = PimChannel(cfg, pim, sink=out.append)
        if floor:
            chan.advance(floor)
        chan.add_program(*_batch(program))
        if stepping:
            while chan.peek() < INF:
                chan.issue()
        else:
            chan.run()
        streams.append(out)
    return streams


def test_standalone_run_equals_stepping_with_a_read_to_op_latency() -> None:
    """``run()``'s inlined loop and ``peek()``/``issue()`` agree with ``read_to_op`` set,
    refresh and two ranks included; every PIM_OP sits >= 7 after its unit's latest PIM_RD."""
    cfg = preset("ddr4-2400-x8").with_overrides(ranks=2, tREFI=1800)
    program, _ = _program(cfg, 9000, pim=SLOW_READ)
    streams = _run_and_step(cfg, SLOW_READ, program)
    assert streams[0] == streams[1]
    checker = ProtocolChecker(cfg, SLOW_READ)
    checker.observe_many(streams[0])
    assert checker.finish().ok
    last_rd: dict[tuple[int, int], int] = {}
    gaps = []
    for c in streams[0]:
        if c.cmd == Cmd.PIM_RD:
            last_rd[c.rank, c.bankgroup] = c.clk
        elif c.cmd == Cmd.PIM_OP and (c.rank, c.bankgroup) in last_rd:
            gaps.append(c.clk - last_rd[c.rank, c.bankgroup])
    assert min(gaps) == 7
    assert any(c.cmd == Cmd.REF for c in streams[0])


def test_standalone_run_equals_stepping_with_a_floor() -> None:
    """``run()`` now also takes the inlined loop when ``advance()`` set a floor."""
    cfg = preset("ddr4-2400-x8").with_overrides(ranks=2, tREFI=1800)
    program, _ = _program(cfg, 9000)
    streams = _run_and_step(cfg, PIM, program, floor=777)
    assert streams[0] == streams[1]
    assert min(c.clk for c in streams[0]) >= 777


def test_standalone_run_equals_stepping_when_a_callback_adds_work() -> None:
    """A batch's ``on_done`` appends the next batch for the same units while they are in
    ``run()``'s inlined loop: their buffers are refilled under it, and the loop must go on
    from the refilled buffer exactly as stepping does (it once proposed the instruction at
    the old buffer position)."""
    cfg = preset("ddr4-2400-x8")
    first, _ = _program(cfg, 300)
    second, _ = _program(cfg, 3000)
    streams = []
    for stepping in (False, True):
        out: list[Command] = []
        chan = PimChannel(cfg, PIM, sink=out.append)
        ends: list[int] = []

        def then(end: int, chan: PimChannel = chan, ends: list[int] = ends) -> None:
            ends.append(end)
            if len(ends) == 1:  # no prologue (same scalars): its PIM_OPs may go at once
                chan.add_program(_batch(second)[0], on_done=ends.append)

        units, sets = _batch(first)
        chan.add_program(units, sets, on_done=then)
        if stepping:
            while chan.peek() < INF:
                chan.issue()
        else:
            chan.run()
        streams.append((out, ends))
    assert len(streams[0][1]) == 2
    assert streams[0] == streams[1]


def _simpy_stream(fast: bool, policy: str) -> list[tuple[str, Any]]:
    """Host requests over time, a second batch added later from a SimPy process, callbacks
    logged with their simulated time."""
    cfg = preset("ddr4-2400-x8").with_overrides(tREFI=2000)
    program, _ = _program(cfg, 4000)
    env = simpy.Environment()
    stream: list[Command] = []
    shared = SharedChannel.build(cfg, PIM, **arb(policy), sink=stream.append)
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


def _callback_stream(fast: bool, policy: str) -> list[Any]:
    """Two batches queued at once on an otherwise idle channel (PIM spans issue row commands
    too); the first one's ``on_done`` submits host requests at its end cycle and stops the
    channel deciding past it, as the memory system's callbacks do: the span must stop there."""
    cfg = preset("ddr4-2400-x8")
    program, _ = _program(cfg, 3000)
    stream: list[Command] = []
    shared = SharedChannel.build(cfg, PIM, **arb(policy), sink=stream.append)
    shared.fast = fast
    dev = shared.ctrl.dev
    rows = sorted({i.row for p in program.units.values() for i in p if i.bank >= 0})
    log: list[Any] = []

    def first_done(cycle: int) -> None:
        log.append(("b1", cycle))
        shared.lower_cap(cycle)
        for k in range(64):
            shared.submit(Request(k * 64, False, cycle, dev.flat_bank(0, k % 4, (k // 4) % 4),
                                  rows[k % len(rows)], k % 128, 0))

    shared.add_program(*_batch(program), on_done=first_done)
    shared.add_program(*_batch(program), on_done=lambda c: log.append(("b2", c)))
    while shared.busy:
        shared.cap = INF
        shared.run_until(INF)
    return log + stream


@pytest.mark.parametrize("policy", POLICIES)
def test_span_with_row_commands_stops_at_a_batch_callback(policy: str) -> None:
    ref = _callback_stream(False, policy)
    assert _callback_stream(True, policy) == ref
    assert any(isinstance(c, Command) and c.cmd == Cmd.RD for c in ref)


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


# --- instruction generation: phase templates give the reference instruction stream ----------

def _schedule_reference(lgs: list[tuple[int, int]], locs: list[dict[str, Loc]],
                        recipe: Recipe, pim: PimConfig) -> Iterator[PimInstr]:
    """The generator before phase templates (verbatim, lane groups as a list): the reference."""
    read_roles = ["grad", "weight"] + (list(recipe.state_roles) if recipe.read_state else [])
    write_roles = ["weight", *recipe.state_roles]
    copy = recipe.copy_dtype is not None

    def needs(item: tuple[int, int]) -> tuple[list[tuple], list[tuple]]:
        ti, lg = item
        loc = locs[ti]
        ins = [(ti, r, lg // loc[r].parts) for r in read_roles]
        outs = [(ti, r, lg // loc[r].parts) for r in write_roles]
        if copy:
            outs.append((ti, "weight_copy", lg // loc["weight_copy"].parts))
        return ins, outs

    need = [needs(item) for item in lgs]
    last: dict[tuple, int] = {}
    for i, (ins, outs) in enumerate(need):
        for k in ins:
            last[k] = i
        for k in outs:
            last[k] = i

    temps = recipe.temps
    n_vec = pim.vector_registers
    budget = n_vec - len(temps)
    temp_regs = {name: budget + i for i, name in enumerate(temps)}
    free = list(range(budget - 1, -1, -1))
    held: dict[tuple, int] = {}  # column key -> register (carried across phases)
    i = 0
    while i < len(lgs):
        keys: set[tuple] = set(held)
        j = i
        while j < len(lgs):
            ins, outs = need[j]
            more = keys.union(ins, outs)
            if len(more) > budget:
                break
            keys = more
            j += 1
        if j == i:
            raise PimCapabilityError(
                "pim.vector_registers", f"one lane group needs {len(keys.union(*need[i]))} "
                f"column registers plus {len(temps)} temporaries; the unit has {n_vec}")
        # reads, in lane-group order
        for k in range(i, j):
            for key in need[k][0]:
                if key not in held:
                    reg = held[key] = free.pop()
                    loc = locs[key[0]][key[1]]
                    c = key[2]
                    yield pim_rd(loc.bank[c], loc.row[c], loc.col[c], reg)
        # arithmetic
        for k in range(i, j):
            ti, lg = lgs[k]
            ins, outs = need[k]
            for key in outs:
                if key not in held:
                    held[key] = free.pop()
            r = {key[1]: held[key] for key in ins + outs}
            r.update(temp_regs)
            loc = locs[ti]
            cpart = lg % loc["weight_copy"].parts if copy else 0
            yield from recipe.ops(r, lg % loc["grad"].parts, cpart)
        # writes of completed columns; release registers no later lane group needs
        done = sorted((key for key in held if last[key] < j), key=lambda kk: last[kk])
        written = set()
        for k in range(i, j):
            for key in need[k][1]:
                if key in written or last[key] >= j:
                    continue
                written.add(key)
                loc = locs[key[0]][key[1]]
                c = key[2]
                yield pim_wr(loc.bank[c], loc.row[c], loc.col[c], held[key])
        for key in done:
            free.append(held.pop(key))
        i = j


def _reference_units(program: PimProgram) -> dict:
    """Every unit's instructions from the reference generator, on the same inputs."""
    out = {}
    for key, unit in program.units.items():
        runs, locs, recipe, pim = unit._args  # type: ignore[attr-defined]
        lgs = [(ti, lg0 + k) for ti, lg0, n in runs for k in range(n)]
        out[key] = list(_schedule_reference(lgs, locs, recipe, pim))
    return out


GEN_CASES = [
    # (optimizer, precision, step, sizes, chunk_columns, preset)
    ("momentum", "mixed", 2, [70_000], None, "ddr4-2400-x8"),
    ("momentum", "mixed", 1, [5000, 333, 12_345], 8, "ddr4-2400-x8"),
    ("momentum", "fp32", 2, [20_000, 17], 16, "ddr4-2400-x4"),
    ("nesterov", "mixed-bf16", 2, [9000, 4000], 4, "ddr4-3200-x16"),
    ("sgd", "mixed-int8", 2, [30_000, 1, 64], None, "ddr4-2400-x8"),
    ("adam", "mixed", 3, [12_000, 700], 32, "ddr4-2400-x8"),
    ("adamw", "mixed-int8", 1, [8000], 8, "ddr4-2400-x16"),
]


@pytest.mark.parametrize("case", GEN_CASES, ids=lambda c: f"{c[0]}-{c[1]}-{c[4]}")
def test_generator_gives_the_reference_instructions(case: tuple) -> None:
    name, prec_name, step, sizes, chunk, cfg_name = case
    cfg = preset(cfg_name)
    opt = OptimizerConfig(name, momentum=0.9 if name in ("momentum", "nesterov") else 0.0,
                          weight_decay=0.01 if name in ("sgd", "nesterov") else 0.0)
    prec = precision(prec_name)
    pim = PimConfig(has_sqrt_div=True) if opt.needs_sqrt_div else PIM
    alloc = Allocator(cfg, ColocatedPolicy(chunk_columns=chunk))
    targets = [UpdateTarget(f"p{k}", n, alloc.place_group(f"p{k}", update_tensors(n, opt, prec)))
               for k, n in enumerate(sizes)]
    program = build_program(targets, opt, prec, cfg, pim, step=step, amap=alloc.amap,
                            lazy=True)
    ref = _reference_units(program)
    for key, unit in program.units.items():
        assert list(unit) == ref[key], key
    assert sum(len(v) for v in ref.values()) > 0


def test_generator_reports_a_register_shortage_at_build_time() -> None:
    cfg = preset("ddr4-2400-x8")
    alloc = Allocator(cfg, ColocatedPolicy())
    pl = alloc.place_group("p", update_tensors(1000, OPT, PREC))
    with pytest.raises(PimCapabilityError, match="column registers"):
        build_program([UpdateTarget("p", 1000, pl)], OPT, PREC, cfg,
                      PimConfig(vector_registers=3), lazy=True)


@pytest.mark.skipif(not PimChannel.__module__ or not hasattr(sys.modules[PimChannel.__module__],
                                                              "__file__")
                    or not sys.modules[PimChannel.__module__].__file__.endswith(".py"),
                    reason="wraps a method: needs the pure-Python module")
@pytest.mark.parametrize("case", [c for c in CASES if c[3]], ids=lambda c: f"{c[0]}-{c[2]}")
def test_proposals_kept_after_host_commands_equal_fresh_plans(
        case: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    """After host RD/WR only, PIM plans again only the units of the bank groups they touched
    and units about to close a host-open bank (its queue may have filled).  Every proposal
    it keeps must be the one a fresh plan gives (up to the command bus, which ``peek``
    applies to all): the reference plans everything again after any host command."""
    name, over, n, host, gap = case
    cfg = preset(name).with_overrides(**over) if over else preset(name)
    sync = PimChannel._sync
    checked = [0, 0]  # selective looks, kept proposals compared

    def checking_sync(self: PimChannel) -> None:
        dev = self.dev
        selective = (dev.last_issue != self._own_last
                     and dev.other_issues == self._other_seen)
        sync(self)
        if not selective:
            return
        checked[0] += 1
        bus = dev.cmd_bus_next
        for j in range(len(self.ready)):
            if self.stamp[j] != self.epoch:
                continue
            a = self.agents[j]
            kept = (max(self.ready[j], bus), a.cmd, a.fb, a.sel, a.row)
            self._plan(j)
            assert (max(self.ready[j], bus), a.cmd, a.fb, a.sel, a.row) == kept
            checked[1] += 1

    monkeypatch.setattr(PimChannel, "_sync", checking_sync)
    _shared_stream(cfg, n, "host-first", True, host, gap)
    assert checked[0] > 20 and checked[1] > 20, checked
