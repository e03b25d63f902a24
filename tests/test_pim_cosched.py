"""PIM streams co-scheduled with host traffic on one channel (``arbiter.shared_channel``).

Every controller built here carries the suite's online protocol checker (conftest), and the
PIM side writes to the controller's sink, so one checker judges the merged command stream."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
import simpy

from gradpimsim.arbiter.shared_channel import SharedChannel, SharedChannelProcess
from gradpimsim.config import preset
from gradpimsim.config.model import ConfigError
from gradpimsim.config.pim import PimConfig
from gradpimsim.config.training import OptimizerConfig, precision
from gradpimsim.controller.controller import ChannelController
from gradpimsim.controller.request import Request
from gradpimsim.dram.codes import INF
from gradpimsim.dram.commands import Cmd, Command
from gradpimsim.host.allocator import Allocator
from gradpimsim.pim import reference
from gradpimsim.pim.channel import PimChannel
from gradpimsim.pim.engine import PimEngine
from gradpimsim.pim.functional import PimArray
from gradpimsim.pim.kernels import PimProgram, UpdateTarget, build_program
from gradpimsim.pim.layout import ColocatedPolicy, update_tensors
from gradpimsim.pim.store import DramStore
from gradpimsim.pim.values import fill_parameters, verify_parameters

CFG = preset("ddr4-2400")
PIM = PimConfig()
OPT = OptimizerConfig("momentum", momentum=0.9)
PREC = precision("mixed")
POLICIES = ("host-first", "pim-first", "fair", "fair:200", "throttled")


def arb(policy: str) -> dict[str, Any]:
    """``SharedChannel.build`` arguments of a test policy id (``fair:200``: wait bound 200)."""
    name, _, bound = policy.partition(":")
    return {"policy": name, "wait_bound": int(bound) if bound else None}
HOST_CMDS = {Cmd.ACT, Cmd.PRE, Cmd.RD, Cmd.RDA, Cmd.WR, Cmd.WRA}


class Setup:
    """A placed update (one channel), its program, and optionally functional DRAM."""

    def __init__(self, cfg=CFG, n: int = 8000, step: int = 2, functional: bool = False) -> None:
        self.cfg = cfg
        self.alloc = Allocator(cfg, ColocatedPolicy(chunk_columns=64))
        pl = self.alloc.place_group("p", update_tensors(n, OPT, PREC))
        self.targets = [UpdateTarget("p", n, pl)]
        self.step = step
        self.program = self.build(step)
        self.array = self.refs = None
        if functional:
            store = DramStore(cfg, self.alloc.amap)
            self.refs = fill_parameters(store, self.targets, OPT, PREC, np.random.default_rng(0))
            self.array = PimArray(cfg, store, PIM)

    def build(self, step: int) -> PimProgram:
        return build_program(self.targets, OPT, PREC, self.cfg, PIM, step=step,
                             amap=self.alloc.amap)

    def rows(self) -> list[int]:
        return sorted({i.row for p in self.program.units.values() for i in p if i.bank >= 0})

    def verify(self) -> list[str]:
        assert self.array is not None and self.refs is not None
        return verify_parameters(self.array.store, self.targets, self.refs, OPT, PREC, self.step)


def batch(program: PimProgram, rank: int | None = None) -> tuple[dict, dict]:
    """Channel 0's part of a program as ``add_program`` arguments (optionally one rank)."""
    units = {(r, bg): p for (c, r, bg), p in program.units.items()
             if c == 0 and rank in (None, r)}
    sets = {r: s for (c, r), s in program.prologue.items() if c == 0 and rank in (None, r)}
    return units, sets


class Tagged:
    """The merged command stream, each command tagged with its source."""

    def __init__(self, shared: SharedChannel, stream: list[Command]) -> None:
        self.stream = stream
        self.from_pim: set[int] = set()
        inner = shared.pim.sink
        assert inner is not None

        def tag(cmd: Command) -> None:
            self.from_pim.add(len(stream))
            inner(cmd)

        shared.pim.sink = tag

    def check_ownership(self) -> int:
        """Replay the stream: the host never touches a bank PIM holds (ACT..PRE by PIM), PIM
        columns go only to banks it holds, REF finds no held bank.  Returns PIM's ACT count."""
        held: set[tuple[int, int, int]] = set()
        acts = 0
        for k, c in enumerate(self.stream):
            key = (c.rank, c.bankgroup, c.bank)
            if k in self.from_pim:
                assert c.cmd != Cmd.REF
                if c.cmd == Cmd.ACT:
                    held.add(key)
                    acts += 1
                elif c.cmd == Cmd.PRE:
                    held.discard(key)
                elif c.cmd in (Cmd.PIM_RD, Cmd.PIM_WR):
                    assert key in held, f"PIM column to a bank it does not hold: {c}"
            else:
                assert c.cmd not in (Cmd.PIM_RD, Cmd.PIM_WR, Cmd.PIM_OP, Cmd.PIM_SET)
                if c.cmd in HOST_CMDS:
                    assert key not in held, f"host issued to a PIM-held bank: {c}"
                if c.cmd == Cmd.REF:
                    assert not any(h[0] == c.rank for h in held)
        assert not held  # PIM releases every bank when its work is done
        return acts


def host_traffic(shared: SharedChannel, n: int, gap: int, rows: list[int], *, rank: int = 0,
                 seed: int = 1) -> list[Request]:
    """``n`` random 64 B requests (30 % writes) every ``gap`` cycles, to every bank of ``rank``,
    half of them to rows PIM works on."""
    rng = random.Random(seed)
    reqs = []
    for k in range(n):
        row = rng.choice(rows) if rng.random() < 0.5 else rng.randrange(200)
        dev = shared.ctrl.dev
        req = Request(k * 64, rng.random() < 0.3, k * gap,
                      dev.flat_bank(rank, rng.randrange(4), rng.randrange(4)), row,
                      rng.randrange(128), rank, callback=_count_done)
        req.tag = 0
        reqs.append(req)
        shared.submit(req)
    return reqs


def _count_done(req: Request) -> None:
    req.tag = int(req.tag) + 1  # type: ignore[call-overload]


def mean_latency(reqs: list[Request]) -> float:
    return sum(r.done - r.arrival for r in reqs) / len(reqs)


# --- the public surface --------------------------------------------------------------------

def test_policy_is_validated_and_the_pim_side_must_share_the_device() -> None:
    with pytest.raises(ConfigError) as err:
        SharedChannel.build(CFG, PIM, policy="round-robin")
    assert err.value.field == "policy"
    assert all(p in str(err.value) for p in ("host-first", "pim-first", "fair", "throttled"))
    ctrl = ChannelController(CFG, pim=PIM)
    with pytest.raises(ValueError, match="device"):
        SharedChannel(ctrl, PimChannel(CFG, PIM, refreshing=ctrl.refresh.refreshing))
    with pytest.raises(ValueError, match="refresh"):
        SharedChannel(ctrl, PimChannel(CFG, PIM, dev=ctrl.dev, refreshing=[False]))


def test_stepping_equals_the_standalone_run() -> None:
    """``while peek() < INF: issue()`` makes exactly the decisions of ``run()`` (whose hot
    path is an inlined copy), refresh included."""
    cfg = CFG.with_overrides(ranks=2, tREFI=1500, max_postponed_refreshes=1)
    s = Setup(cfg, n=20000)
    streams = []
    for stepping in (False, True):
        out: list[Command] = []
        chan = PimChannel(cfg, PIM, sink=out.append)
        chan.add_program(*batch(s.program))
        if stepping:
            while chan.peek() < INF:
                chan.issue()
        else:
            chan.run()
        streams.append(out)
    assert streams[0] == streams[1]
    assert any(c.cmd == Cmd.REF for c in streams[0])


# --- PIM alone through the shared channel --------------------------------------------------

def test_pim_alone_is_bit_exact_and_as_fast_as_standalone(online_checker) -> None:
    s = Setup(functional=True)
    stream: list[Command] = []
    shared = SharedChannel.build(CFG, PIM, sink=stream.append, array=s.array)
    tagged = Tagged(shared, stream)
    done: list[int] = []
    shared.add_program(*batch(s.program), on_done=done.append)
    end = shared.drain()
    assert s.verify() == []
    assert len(online_checker) == 1 and online_checker[0].finish().ok
    alone = PimEngine(CFG, PIM).run(s.program)
    # the same schedule, plus the PREs that hand the banks back at the end
    assert alone.cycles <= end <= alone.cycles * 1.01
    assert done == [max(c.clk + (4 if c.cmd in (Cmd.PIM_RD, Cmd.PIM_WR) else 1)
                        for c in stream if c.cmd.name.startswith("PIM"))]
    assert tagged.check_ownership() > 0
    assert shared.ctrl.cmd_counts[int(Cmd.REF)] == 0  # busy PIM postpones refresh, as alone


# --- PIM and heavy host traffic on the same banks ------------------------------------------

@pytest.mark.parametrize("policy", POLICIES)
def test_heavy_host_traffic_on_the_same_banks(policy: str) -> None:
    """Both hammer every bank of the rank PIM works in (half the host requests hit PIM's
    rows), with queues overflowing: no violation, no deadlock, every request exactly once,
    PIM still bit-exact, the host never touches a bank PIM holds."""
    s = Setup(functional=True)
    stream: list[Command] = []
    shared = SharedChannel.build(CFG, PIM, **arb(policy), sink=stream.append, array=s.array)
    tagged = Tagged(shared, stream)
    done: list[int] = []
    shared.add_program(*batch(s.program), on_done=done.append)
    reqs = host_traffic(shared, 3000, 3, s.rows())
    shared.drain()
    assert not shared.busy
    assert all(r.tag == 1 and r.done > r.arrival for r in reqs)
    assert shared.ctrl.reads_done + shared.ctrl.writes_done == len(reqs)
    assert s.verify() == []
    assert len(done) == 1
    assert tagged.check_ownership() > 0
    assert any(k not in tagged.from_pim and c.cmd in (Cmd.RD, Cmd.WR)
               for k, c in enumerate(stream))


def test_policy_matters() -> None:
    """PIM on rank 0, host traffic on rank 1: they meet on the command bus.  Host-first gives
    the host lower latency and finishes PIM later than pim-first."""
    cfg = CFG.with_overrides(ranks=2, refresh=False)
    s = Setup(cfg)
    results = {}
    for policy in POLICIES:
        shared = SharedChannel.build(cfg, PIM, **arb(policy))
        shared.add_program(*batch(s.program, rank=0))
        reqs = host_traffic(shared, 1000, 4, list(range(100)), rank=1)
        shared.drain()
        results[policy] = (mean_latency(reqs), shared.pim.end)
    (host_hf, pim_hf), (host_pf, pim_pf) = results["host-first"], results["pim-first"]
    assert host_hf < host_pf
    assert pim_hf > pim_pf


@pytest.mark.parametrize("policy", POLICIES)
def test_contention_is_real_but_bounded(policy: str) -> None:
    cfg = CFG.with_overrides(refresh=False)
    s = Setup(cfg)

    def run(pim_on: bool, host_on: bool) -> int:
        shared = SharedChannel.build(cfg, PIM, **arb(policy))
        if pim_on:
            shared.add_program(*batch(s.program))
        if host_on:
            host_traffic(shared, 1500, 8, s.rows())
        return shared.drain()

    pim_alone, host_alone, both = run(True, False), run(False, True), run(True, True)
    assert both > max(pim_alone, host_alone)
    if policy in ("host-first", "pim-first"):
        # a bank changes hands only when its holder is done with its row: never worse than
        # running one after the other.  (The bounded policies take banks away mid-row, at
        # the price of reopening rows; their own bounds are in tests/test_arbitration.py.)
        assert both <= pim_alone + host_alone


# --- batches appended while running --------------------------------------------------------

def _instr_end(stream: list[Command]) -> int:
    return max(c.clk + (4 if c.cmd in (Cmd.PIM_RD, Cmd.PIM_WR) else 1)
               for c in stream if c.cmd.name.startswith("PIM"))


def test_second_batch_added_from_the_first_ones_callback() -> None:
    """Step 1 then step 2 of momentum SGD as two batches (the second with its own prologue),
    the second appended by the first one's ``on_done``, host traffic alongside: both
    ``on_done`` cycles are the end of their batch's last command, and DRAM equals the
    reference after two steps."""
    s = Setup(functional=True, step=1)
    stream: list[Command] = []
    shared = SharedChannel.build(CFG, PIM, sink=stream.append, array=s.array)
    fired: list[tuple[int, int]] = []

    def second_done(cycle: int) -> None:
        fired.append((2, cycle))
        assert cycle == _instr_end(stream)

    def first_done(cycle: int) -> None:
        fired.append((1, cycle))
        assert cycle == _instr_end(stream)
        shared.add_program(*batch(s.build(2)), on_done=second_done)

    shared.add_program(*batch(s.program), on_done=first_done)
    reqs = host_traffic(shared, 800, 20, s.rows())
    shared.drain()
    assert [k for k, _ in fired] == [1, 2] and fired[0][1] < fired[1][1]
    assert all(r.tag == 1 for r in reqs)
    assert s.refs is not None and s.array is not None
    for t, r in zip(s.targets, s.refs, strict=True):  # the reference's two steps, in place
        r["state"].clear()  # step 1 starts the momentum buffer from the gradient (torch)
        for step in (1, 2):
            copy = reference.mixed_precision_step(OPT, PREC, r["master"], r["grad"], r["state"],
                                                  step)
        got = s.array.store.read_tensor(t.placements["weight"], "fp32", t.numel)
        np.testing.assert_array_equal(got.view(np.uint32), r["master"].view(np.uint32))
        got = s.array.store.read_tensor(t.placements["weight_copy"], "fp16", t.numel)
        np.testing.assert_array_equal(got, copy)


def test_simpy_process_batches_at_later_times_and_callbacks_on_time() -> None:
    """Through SimPy: host requests arrive over time, a second batch is added at a later
    cycle; nothing of it issues before that cycle, callbacks fire at their simulated cycle."""
    s = Setup(n=4000)
    env = simpy.Environment()
    stream: list[Command] = []
    shared = SharedChannel.build(CFG, PIM, sink=stream.append)
    tagged = Tagged(shared, stream)
    proc = SharedChannelProcess(env, shared)
    events: list[tuple[str, float, int]] = []
    late: dict[str, Any] = {}
    rng = random.Random(4)
    read_lat = CFG.timing.AL + CFG.timing.CL + CFG.org.burst_length // 2
    write_lat = CFG.timing.AL + CFG.timing.CWL + CFG.org.burst_length // 2

    def on_req(req: Request) -> None:
        issue = req.done - (write_lat if req.is_write else read_lat)
        events.append(("req", env.now, issue))

    def host() -> Any:
        for k in range(300):
            yield env.timeout(rng.randrange(1, 40))
            dev = shared.ctrl.dev
            proc.submit(Request(k * 64, rng.random() < 0.3, int(env.now),
                                dev.flat_bank(0, rng.randrange(4), rng.randrange(4)),
                                rng.randrange(100), rng.randrange(128), 0, callback=on_req))

    def pim() -> Any:
        proc.add_program(*batch(s.program), on_done=lambda c: events.append(("b1", env.now, c)))
        yield env.timeout(9000)
        late["start"] = len(stream)
        proc.add_program(*batch(s.build(2)), on_done=lambda c: events.append(("b2", env.now, c)))

    env.process(host())
    env.process(pim())
    env.run(until=200_000)
    assert not shared.busy
    kinds = [k for k, _, _ in events]
    assert kinds.count("req") == 300 and kinds.count("b1") == 1 and kinds.count("b2") == 1
    for kind, now, cycle in events:
        if kind == "req":
            assert now == cycle  # the request's command issued at this simulated cycle
        else:
            assert now <= cycle <= now + 4  # the batch's last command issued now
    b1 = next(c for k, _, c in events if k == "b1")
    assert b1 < 9000  # the first batch was done before the second arrived
    second = [c for k, c in enumerate(stream[late["start"]:], late["start"])
              if k in tagged.from_pim]
    assert second and min(c.clk for c in second) >= 9000
    tagged.check_ownership()


# --- refresh -------------------------------------------------------------------------------

@pytest.mark.parametrize("policy", POLICIES)
def test_refresh_during_coscheduling(policy: str) -> None:
    """A run of many tREFI with both sides busy: the controller issues every REF (within the
    postponement rule: never more than 8 owed), PIM closes its banks for them, no violation
    (the checker also checks the REF gaps)."""
    cfg = CFG.with_overrides(tREFI=1500)
    s = Setup(cfg, n=16000, functional=True)
    stream: list[Command] = []
    shared = SharedChannel.build(cfg, PIM, **arb(policy), sink=stream.append, array=s.array)
    tagged = Tagged(shared, stream)
    shared.add_program(*batch(s.program))
    reqs = host_traffic(shared, 1500, 12, s.rows())
    end = shared.drain()
    refs = [c.clk for c in stream if c.cmd == Cmd.REF]
    assert end > 10 * 1500
    owed_at_end = end // 1500 - len(refs)
    assert 0 <= owed_at_end <= cfg.controller.max_postponed_refreshes
    assert max(b - a for a, b in zip([0] + refs, refs, strict=False)) <= 9 * 1500
    assert all(r.tag == 1 for r in reqs)
    assert s.verify() == []
    tagged.check_ownership()


def test_empty_batches_and_empty_unit_parts_complete() -> None:
    """A batch with nothing fires at once; a unit given an empty stream does not hold its
    batch back; a PIM_SET-only batch ends with its last PIM_SET."""
    s = Setup(n=2000)
    shared = SharedChannel.build(CFG, PIM)
    fired: list[tuple[str, int]] = []
    shared.add_program({}, {}, on_done=lambda c: fired.append(("nothing", c)))
    assert fired == [("nothing", 0)]
    units, sets = batch(s.program)
    units[(0, 3)] = []
    shared.add_program(units, sets, on_done=lambda c: fired.append(("update", c)))
    shared.add_program({}, sets, on_done=lambda c: fired.append(("sets", c)))
    end = shared.drain()
    assert [k for k, _ in fired] == ["nothing", "update", "sets"]
    assert fired[1][1] < fired[2][1] <= end
