"""Multi-burst (bulk) requests: exact closed-form runs, closed forms, and the range splitter.

The online checker (conftest) judges every command stream these tests produce.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradpimsim.config import MemoryConfig, preset
from gradpimsim.controller.bulk import BulkRun, bulk_requests, split_range
from gradpimsim.controller.controller import ChannelController
from gradpimsim.controller.periodic import leader_cycle
from gradpimsim.controller.request import Request
from gradpimsim.dram.address_map import AddressMap
from gradpimsim.dram.commands import Cmd, Command

CONFIGS = ["ddr4-2400", "ddr4-3200-x16", "ddr4-2400-x8-2r", "ddr4-3200"]
COLUMN = (Cmd.RD, Cmd.RDA, Cmd.WR, Cmd.WRA)


@dataclass(frozen=True)
class Spec:
    """One request of a test workload (fresh Request objects are built per simulation)."""

    rank: int
    bg: int
    bank: int
    row: int
    col: int
    ncols: int
    is_write: bool
    arrival: int


def run(cfg: MemoryConfig, specs: list[Spec], *, batch_runs: bool,
        until: int = 0) -> tuple[ChannelController, list[Command], list[Request]]:
    """Simulate ``specs`` on channel 0; return the controller, its commands and requests."""
    cmds: list[Command] = []
    ctrl = ChannelController(cfg, sink=cmds.append, batch_runs=batch_runs)
    reqs = [Request(0, s.is_write, s.arrival, ctrl.dev.flat_bank(s.rank, s.bg, s.bank), s.row,
                    s.col, s.rank, ncols=s.ncols) for s in specs]
    ctrl.submit_many(reqs)
    ctrl.drain()
    if until:
        ctrl.run_until(until)
    return ctrl, cmds, reqs


def traffic(cfg: MemoryConfig, seed: int, n: int, *, arrivals: str = "mixed",
            max_ncols: int = 128, rows: int = 6) -> list[Spec]:
    """Random bulk traffic: DMA-like sweeps over consecutive banks and rows, random bulk
    pieces and single bursts, with reads and writes mixed."""
    rng = random.Random(seed)
    o = cfg.org
    bpr = o.bursts_per_row
    out: list[Spec] = []
    t = 0
    cursor = (0, 0, 0, 0)  # rank, bg, bank, row of the sweep
    for _ in range(n):
        if arrivals == "spread":
            t += rng.choice((0, 5, 20, 80, 300))
        elif arrivals == "bursts":
            t += rng.choice((0, 0, 0, 0, 0, 0, 2000))
        elif arrivals == "mixed":
            t += rng.choice((0, 0, 1, 3, 8, 40, 400))
        kind = rng.random()
        is_write = rng.random() < 0.35
        if kind < 0.45:  # the next piece of a sweep: bank groups, then banks, then rows
            rank, bg, bank, row = cursor
            ncols = min(rng.choice((bpr, bpr, rng.randint(1, max_ncols))), bpr, max_ncols)
            col = rng.randrange(0, bpr - ncols + 1) if ncols < bpr else 0
            bg += 1
            if bg == o.bankgroups:
                bg, bank = 0, bank + 1
                if bank == o.banks_per_group:
                    bank, rank = 0, rank + 1
                    if rank == o.ranks:
                        rank, row = 0, (row + 1) % rows
            cursor = (rank, bg, bank, row)
            rank, bg, bank, row = cursor
        else:
            rank = rng.randrange(o.ranks)
            bg = rng.randrange(o.bankgroups)
            bank = rng.randrange(o.banks_per_group)
            row = rng.randrange(rows)
            ncols = 1 if kind < 0.7 else rng.randint(1, max_ncols)
            ncols = min(ncols, bpr)
            col = rng.randrange(0, bpr - ncols + 1)
        out.append(Spec(rank, bg, bank, row, col, ncols, is_write, t))
    return out


def assert_same(cfg: MemoryConfig, specs: list[Spec]) -> ChannelController:
    """Batched and one-by-one runs give identical commands, completions and statistics."""
    a, cmds_a, reqs_a = run(cfg, specs, batch_runs=True)
    b, cmds_b, reqs_b = run(cfg, specs, batch_runs=False)
    assert len(cmds_a) == len(cmds_b)
    assert cmds_a == cmds_b
    assert [r.done for r in reqs_a] == [r.done for r in reqs_b]
    assert [r.admitted for r in reqs_a] == [r.admitted for r in reqs_b]
    assert a.cmd_counts == b.cmd_counts
    assert (a.reads_done, a.writes_done) == (b.reads_done, b.writes_done)
    assert (a.read_bursts, a.write_bursts) == (b.read_bursts, b.write_bursts)
    assert a.row_misses == b.row_misses
    assert a.read_latency.mean() == b.read_latency.mean()
    assert a.write_latency.mean() == b.write_latency.mean()
    assert a.last_done == b.last_done
    # every request complete, each column served exactly once
    assert all(r.done > r.admitted >= r.arrival for r in reqs_a)
    assert a.reads_done + a.writes_done == len(specs)
    columns = [c for c in cmds_a if c.cmd in COLUMN]
    assert len(columns) == sum(s.ncols for s in specs)
    assert a.read_bursts + a.write_bursts == len(columns)
    return a


def _cfg(name: str, *, policy: str = "open", scheduler: str = "fr-fcfs",
         depth: int = 32) -> MemoryConfig:
    return preset(name).with_overrides(
        page_policy=policy, scheduler=scheduler, read_queue_depth=depth,
        write_queue_depth=depth, write_high_watermark=max(1, depth * 3 // 4),
        write_low_watermark=max(0, depth // 4 - 1))


# -- exact batching ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("arrivals", ["zero", "spread", "bursts", "mixed"])
def test_bulk_batched_runs_equal_one_by_one(name: str, arrivals: str) -> None:
    """Open page FR-FCFS (where runs are taken), long enough to cross several refreshes."""
    cfg = _cfg(name)
    specs = traffic(cfg, 5, 500, arrivals=arrivals)
    ctrl = assert_same(cfg, specs)
    assert ctrl.last_done > 5 * cfg.timing.tREFI
    assert ctrl.cmd_counts[Cmd.REF] >= 3


def test_fast_forwards_trigger_on_interleaved_streams() -> None:
    """DMA-like sweeps (whole rows across bank groups) make the multi-stream merge periodic:
    the periodic jump and the single-stream jump both fire, and nothing changes."""
    cfg = _cfg("ddr4-2400")
    specs = traffic(cfg, 3, 400, arrivals="zero", max_ncols=128)
    ctrl = assert_same(cfg, specs)
    assert ctrl.periodic_jumps > 0
    assert ctrl.bulk_jumps > 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 300),
    name=st.sampled_from(CONFIGS),
    policy=st.sampled_from(["open", "closed", "adaptive"]),
    scheduler=st.sampled_from(["fr-fcfs", "fcfs"]),
    depth=st.sampled_from([1, 2, 3, 8, 32]),
    arrivals=st.sampled_from(["zero", "spread", "bursts", "mixed"]),
    max_ncols=st.sampled_from([1, 4, 32, 128]),
)
def test_random_bulk_traffic_batches_exactly(seed: int, n: int, name: str, policy: str,
                                             scheduler: str, depth: int, arrivals: str,
                                             max_ncols: int) -> None:
    cfg = _cfg(name, policy=policy, scheduler=scheduler, depth=depth)
    assert_same(cfg, traffic(cfg, seed, n, arrivals=arrivals, max_ncols=max_ncols))


# -- closed forms ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["ddr4-2400", "ddr4-3200"])
@pytest.mark.parametrize("is_write", [False, True])
@pytest.mark.parametrize("n", [1, 2, 17, 128])
def test_single_bulk_request_closed_form(name: str, is_write: bool, n: int) -> None:
    """Idle bank: ACT at arrival, first burst tRCD later, then one per tCCD_L; the request is
    done when its last burst's data ends (RL or WL + BL/2 after the last command)."""
    cfg = preset(name)
    t = cfg.timing
    arrival = 100
    for batch in (True, False):
        ctrl, cmds, (req,) = run(cfg, [Spec(0, 1, 2, 7, 128 - n, n, is_write, arrival)],
                                 batch_runs=batch)
        data = (t.WL if is_write else t.RL) + cfg.org.burst_length // 2
        assert req.done - arrival == t.tRCD + (n - 1) * t.tCCD_L + data
        kind = Cmd.WR if is_write else Cmd.RD
        assert [(c.clk, c.cmd, c.col) for c in cmds] == (
            [(arrival, Cmd.ACT, -1)]
            + [(arrival + t.tRCD + i * t.tCCD_L, kind, 128 - n + i) for i in range(n)])
        assert ctrl.read_bursts + ctrl.write_bursts == n
        assert ctrl.reads_done + ctrl.writes_done == 1
        hist = ctrl.write_latency if is_write else ctrl.read_latency
        assert hist.mean() == req.done - arrival


def test_closed_page_auto_precharges_only_the_last_burst() -> None:
    cfg = _cfg("ddr4-2400", policy="closed")
    for batch in (True, False):
        _, cmds, _ = run(cfg, [Spec(0, 0, 0, 3, 0, 5, False, 0),
                               Spec(0, 0, 0, 4, 10, 3, True, 0)], batch_runs=batch)
        assert [c.cmd.name for c in cmds] == (["ACT"] + ["RD"] * 4 + ["RDA"]
                                             + ["ACT"] + ["WR"] * 2 + ["WRA"])


@pytest.mark.parametrize("name", ["ddr4-2400", "ddr4-3200"])
def test_four_bank_groups_reach_one_burst_per_tccd_s(name: str) -> None:
    cfg = _cfg(name, depth=4)
    t = cfg.timing
    n = 128
    specs = [Spec(0, g, 0, 9, 0, n, False, 0) for g in range(4)]
    ctrl = assert_same(cfg, specs)
    assert ctrl.periodic_jumps > 0
    _, cmds, reqs = run(cfg, specs, batch_runs=True)
    reads = [c.clk for c in cmds if c.cmd == Cmd.RD]
    assert len(reads) == 4 * n
    gaps = [b - a for a, b in zip(reads, reads[1:], strict=False)]
    # after the four ACTs' tRCD ramp, data streams at one burst per tCCD_S
    assert set(gaps[3:]) == {t.tCCD_S}
    assert max(r.done for r in reqs) == reads[-1] + t.RL + cfg.org.burst_length // 2


# -- bulk versus single bursts -----------------------------------------------------------------
def _explode(specs: list[Spec]) -> list[Spec]:
    return [Spec(s.rank, s.bg, s.bank, s.row, s.col + i, 1, s.is_write, s.arrival)
            for s in specs for i in range(s.ncols)]


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("policy", ["open", "closed", "adaptive"])
@pytest.mark.parametrize("scheduler", ["fr-fcfs", "fcfs"])
def test_bulk_equals_its_single_bursts_when_queues_do_not_bind(
        name: str, policy: str, scheduler: str) -> None:
    """n single bursts and one bulk request of n give the same command stream when nothing
    counts requests: queues deep enough for every burst, writes below the high watermark, and
    no FR-FCFS bypass (its starvation cap counts requests).  Each bank gets whole rows in row
    order here, so no younger request ever hits a row ahead of an older one."""
    cfg = preset(name).with_overrides(
        page_policy=policy, scheduler=scheduler, read_queue_depth=4096, write_queue_depth=4096,
        write_high_watermark=4096, write_low_watermark=0)
    o = cfg.org
    rng = random.Random(hash((name, policy, scheduler)) & 0xFFFF)
    specs = []
    t = 0
    for i in range(24):
        g = i % o.bankgroups
        bank = (i // o.bankgroups) % o.banks_per_group
        ncols = rng.randint(1, 40)
        specs.append(Spec(0, g, bank, i // (o.bankgroups * o.banks_per_group), 0, ncols,
                          rng.random() < 0.4, t))
        t += rng.choice((0, 0, 50, 400))
    for batch in (True, False):
        _, bulk_cmds, _ = run(cfg, specs, batch_runs=batch)
        _, single_cmds, _ = run(cfg, _explode(specs), batch_runs=batch)
        assert bulk_cmds == single_cmds


def test_refresh_interrupts_a_bulk_request_and_it_resumes() -> None:
    """A busy rank is refreshed once 8 REFs are owed, wherever its requests are: PRE, REF, ACT
    of the same row, then the next column of the same request."""
    cfg = _cfg("ddr4-2400")
    specs = [Spec(0, 0, 0, i % 3, 0, 128, False, 0) for i in range(200)]
    ctrl = assert_same(cfg, specs)
    _, cmds, _ = run(cfg, specs, batch_runs=True)
    refs = [i for i, c in enumerate(cmds) if c.cmd == Cmd.REF]
    assert refs
    resumed = 0
    for i in refs:
        before = [c for c in cmds[:i] if c.cmd == Cmd.RD][-1]
        after = next(c for c in cmds[i:] if c.cmd == Cmd.RD)
        if 0 < before.col < 127 and after.row == before.row and after.col == before.col + 1:
            resumed += 1
    assert resumed >= 1
    assert ctrl.reads_done == 200 and ctrl.read_bursts == 200 * 128


# -- splitting byte ranges ---------------------------------------------------------------------
SPLIT_CONFIGS = {
    "default": preset("ddr4-2400"),
    "bg-lowest": preset("ddr4-2400").with_overrides(address_mapping="rochrabacobg"),
    "xor": preset("ddr4-2400").with_overrides(xor_bank_hash=True),
    "xor-bg-lowest": preset("ddr4-2400").with_overrides(xor_bank_hash=True,
                                                        address_mapping="rochrabacobg"),
    "2ch-2r": preset("ddr4-2400-x8-2r").with_overrides(channels=2),
    "2ch-ch-lowest": preset("ddr4-2400").with_overrides(channels=2,
                                                        address_mapping="rorababgcoch"),
    "x16-co-middle": preset("ddr4-3200-x16").with_overrides(address_mapping="rochracobabg"),
}


def _check_split(cfg: MemoryConfig, addr: int, nbytes: int) -> list[BulkRun]:
    """The runs cover exactly the bursts the range touches, in address order, no overlaps,
    and are maximal (no run continues its predecessor)."""
    amap = AddressMap(cfg)
    runs = split_range(amap, addr, nbytes)
    ob = amap.offset_bits
    bursts = range(addr >> ob, ((addr + nbytes - 1) >> ob) + 1) if nbytes else range(0)
    expanded = []
    for r in runs:
        assert r.ncols >= 1
        assert r.col >= 0 and r.col + r.ncols <= cfg.org.bursts_per_row
        for i in range(r.ncols):
            expanded.append((r.channel, r.bank, r.rank, r.row, r.col + i))
    expected = []
    starts = []
    for burst in bursts:
        loc = amap.decode(burst << ob)
        bank = (loc.rank * cfg.org.bankgroups + loc.bankgroup) * cfg.org.banks_per_group + loc.bank
        expected.append((loc.channel, bank, loc.rank, loc.row, loc.col))
        starts.append(burst << ob)
    assert expanded == expected
    first = 0
    for r in runs:
        assert r.addr == starts[first]
        first += r.ncols
    for p, q in zip(runs, runs[1:], strict=False):
        assert not ((p.channel, p.bank, p.row) == (q.channel, q.bank, q.row)
                    and p.col + p.ncols == q.col)
    return runs


@pytest.mark.parametrize("mapping", sorted(SPLIT_CONFIGS))
@pytest.mark.parametrize("addr,nbytes", [(0, 0), (0, 64), (100, 20000), (8192 - 1, 2),
                                         (3 << 20, 1 << 16), (12345 * 64 + 7, 300 * 64 + 11)])
def test_split_range_covers_the_range(mapping: str, addr: int, nbytes: int) -> None:
    runs = _check_split(SPLIT_CONFIGS[mapping], addr, nbytes)
    assert (runs == []) == (nbytes == 0)


@settings(max_examples=60, deadline=None)
@given(mapping=st.sampled_from(sorted(SPLIT_CONFIGS)), addr=st.integers(0, 1 << 26),
       nbytes=st.integers(0, 40_000))
def test_split_range_random(mapping: str, addr: int, nbytes: int) -> None:
    _check_split(SPLIT_CONFIGS[mapping], addr, nbytes)


def test_split_range_rows_when_column_bits_lowest() -> None:
    """Default mapping: a row-aligned range is whole rows, one run each."""
    cfg = SPLIT_CONFIGS["default"]
    row = cfg.org.row_bytes
    runs = split_range(AddressMap(cfg), 5 * row, 64 * row)
    assert len(runs) == 64 and {r.ncols for r in runs} == {cfg.org.bursts_per_row}
    assert len(split_range(AddressMap(cfg), 0, 1 << 30)) == (1 << 30) // row


def test_split_range_rejects_ranges_outside_memory() -> None:
    amap = AddressMap(SPLIT_CONFIGS["default"])
    with pytest.raises(ValueError):
        split_range(amap, amap.capacity - 64, 128)


@pytest.mark.parametrize("mapping", ["default", "2ch-2r", "2ch-ch-lowest"])
def test_bulk_requests_per_channel_and_replay(mapping: str) -> None:
    cfg = SPLIT_CONFIGS[mapping]
    amap = AddressMap(cfg)
    addr, nbytes = 3 * cfg.org.row_bytes + 640, 40 * cfg.org.row_bytes
    seen: list[Request] = []
    per_channel = bulk_requests(cfg, amap, addr, nbytes, True, 10, callback=seen.append,
                                tag="dma")
    assert len(per_channel) == cfg.org.channels
    runs = split_range(amap, addr, nbytes)
    assert sum(len(reqs) for reqs in per_channel) == len(runs)
    for ch, reqs in enumerate(per_channel):
        mine = [r for r in runs if r.channel == ch]
        assert [(q.addr, q.bank, q.rank, q.row, q.col, q.ncols) for q in reqs] == [
            (r.addr, r.bank, r.rank, r.row, r.col, r.ncols) for r in mine]
        assert all(q.is_write and q.arrival == 10 and q.tag == "dma" for q in reqs)
        assert [q.seq for q in reqs] == sorted(q.seq for q in reqs)
        ctrl = ChannelController(cfg, ch)
        ctrl.submit_many(reqs)
        ctrl.drain()
        assert ctrl.writes_done == len(reqs)
        assert ctrl.write_bursts == sum(r.ncols for r in mine)
    assert len(seen) == len(runs)


def test_runs_stop_where_fr_fcfs_would_bypass_a_missing_head() -> None:
    """Regression (single bursts too): when a run stream's new head misses the open row but a
    younger request hits it, FR-FCFS serves that hit next, not a PRE; the multi-stream run
    used to bound itself only by the PRE and ran past the hit."""
    cfg = preset("ddr4-3200-x16").with_overrides(
        read_queue_depth=16, write_queue_depth=16, write_high_watermark=12,
        write_low_watermark=3, starvation_cap=4)
    specs = _explode(traffic(cfg, 39, 60, arrivals="zero", max_ncols=8))
    assert_same(cfg, specs)


@pytest.mark.parametrize("policy,scheduler", [("closed", "fr-fcfs"), ("open", "fcfs"),
                                              ("closed", "fcfs"), ("adaptive", "fr-fcfs")])
def test_fast_forward_under_fcfs_and_closed_page(policy: str, scheduler: str) -> None:
    """FCFS and closed page run a bulk head's bursts before its last one in closed form too
    (the last one, perhaps RDA/WRA, is the scheduler's), so their cost stays per row."""
    cfg = _cfg("ddr4-2400", policy=policy, scheduler=scheduler, depth=8)
    specs = [Spec(0, g, b, r, 0, 128, r % 2 == 1, 0)
             for r in range(3) for b in range(2) for g in range(4)]
    ctrl = assert_same(cfg, specs)
    assert ctrl.bulk_jumps + ctrl.periodic_jumps > 0
    # the scheduler decided once per row piece, not once per burst
    assert ctrl.events < 12 * len(specs)
    if scheduler == "fr-fcfs":
        assert ctrl.periodic_jumps > 0


def _bypass_traffic(cfg: MemoryConfig, seed: int, n: int) -> list[Spec]:
    """Bulk requests that keep FR-FCFS bypassing: each bank's queue alternates between the
    open row and other rows, so younger hits wait behind missing heads."""
    rng = random.Random(seed)
    o = cfg.org
    out: list[Spec] = []
    t = 0
    for _ in range(n):
        t += rng.choice((0, 0, 0, 2, 30))
        bg = rng.randrange(min(2, o.bankgroups))
        bank = rng.randrange(min(2, o.banks_per_group))
        row = rng.choice((0, 0, 0, 1, 2))
        ncols = rng.choice((1, 2, 8, 32, o.bursts_per_row))
        col = rng.randrange(0, o.bursts_per_row - ncols + 1)
        out.append(Spec(0, bg, bank, row, col, ncols, rng.random() < 0.3, t))
    return out


@pytest.mark.parametrize("cap", [1, 2, 3, 16])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_runs_serve_bypass_hits_exactly(cap: int, seed: int) -> None:
    """A younger hit served past a missing head (within the starvation cap) is a stream of
    the run, on a queue of its own; when it completes its bank counts one more bypass.  The
    command stream must equal one-by-one issue, at every cap (the cap ends the bypassing)."""
    cfg = _cfg("ddr4-2400", depth=8).with_overrides(starvation_cap=cap)
    ctrl = assert_same(cfg, _bypass_traffic(cfg, seed, 120))
    assert ctrl.bypass_streams > 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), cap=st.integers(1, 6), depth=st.sampled_from([4, 8, 32]),
       name=st.sampled_from(CONFIGS))
def test_bypass_streams_random(seed: int, cap: int, depth: int, name: str) -> None:
    cfg = _cfg(name, depth=depth).with_overrides(starvation_cap=cap)
    assert_same(cfg, _bypass_traffic(cfg, seed, 60))


@settings(max_examples=80, deadline=None)
@given(mapping=st.sampled_from(sorted(SPLIT_CONFIGS)), addr=st.integers(0, 1 << 26),
       rows=st.integers(0, 80), tail=st.integers(0, 9000))
def test_bulk_requests_small_path_equals_split_range(mapping: str, addr: int, rows: int,
                                                     tail: int) -> None:
    """Small ranges are cut with integer arithmetic, large ones with numpy: same requests."""
    cfg = SPLIT_CONFIGS[mapping]
    amap = AddressMap(cfg)
    nbytes = rows * cfg.org.row_bytes + tail
    runs = split_range(amap, addr, nbytes)
    got = [r for reqs in bulk_requests(cfg, amap, addr, nbytes, False, 0) for r in reqs]
    want = sorted(runs, key=lambda r: (r.channel, r.addr))
    assert [(q.addr, q.bank, q.rank, q.row, q.col, q.ncols) for q in got] == [
        (r.addr, r.bank, r.rank, r.row, r.col, r.ncols) for r in want]


@pytest.mark.parametrize("name", CONFIGS)
def test_row_commands_inside_runs(name: str) -> None:
    """ACT and PRE of other banks are issued inside a run when they fall due (a run's column
    commands delay them only through the command bus), and a stream whose bank needs a PRE
    retires to the scheduler's candidates and comes back after its next ACT; the command
    stream must equal one-by-one issue, and the scheduler decides far fewer times."""
    cfg = _cfg(name)
    bpr = cfg.org.bursts_per_row
    specs = [Spec(0, g, b, r, 0, bpr, (r // 2) % 2 == 1, 0)
             for r in range(6) for b in range(cfg.org.banks_per_group)
             for g in range(cfg.org.bankgroups)]
    ctrl = assert_same(cfg, specs)
    assert ctrl.row_commands_in_runs > 0
    row_cmds = ctrl.cmd_counts[int(Cmd.ACT)] + ctrl.cmd_counts[int(Cmd.PRE)]
    assert ctrl.events < row_cmds


@pytest.mark.parametrize("seed", range(6))
def test_row_commands_inside_runs_random(seed: int) -> None:
    cfg = _cfg(CONFIGS[seed % len(CONFIGS)], depth=(4, 8, 32)[seed % 3])
    ctrl = assert_same(cfg, traffic(cfg, 100 + seed, 300, arrivals="mixed"))
    assert ctrl.row_commands_in_runs > 0


@pytest.mark.parametrize("seed", range(8))
def test_admissions_inside_runs(seed: int) -> None:
    """Requests that are not another hit for a run's streams are admitted inside the run, at
    the cycle the scheduler would admit them (before a row command due later, after one due
    earlier), with their banks' candidates refreshed; a mode switch still ends the run."""
    name = CONFIGS[seed % len(CONFIGS)]
    cfg = _cfg(name, depth=(4, 8, 16, 32)[seed % 4])
    ctrl = assert_same(cfg, traffic(cfg, 500 + seed, 400, arrivals="spread"))
    assert ctrl.admissions_in_runs > 0
    ctrl = assert_same(cfg, traffic(cfg, 900 + seed, 1500, arrivals="mixed", max_ncols=4))
    assert ctrl.admissions_in_runs > 0


def test_row_commands_tied_with_others_follow_the_scheduler_order() -> None:
    """Regression: two idle-close PREs (adaptive page, no request, so equal priority and age)
    due at the same bus cycle inside a run go in the heap's order, bank index last."""
    cfg = _cfg("ddr4-2400-x8-2r", policy="adaptive", depth=2).with_overrides(starvation_cap=1)
    ctrl = assert_same(cfg, traffic(cfg, 637728, 386, arrivals="bursts", max_ncols=4))
    assert ctrl.row_commands_in_runs > 0


def _merge_by_steps(ready: list[int], gap_bg: int, gap_rank: int, steps: int,
                    ) -> list[tuple[int, int]]:
    """The steady merge written the run's way, on absolute cycles: each leader (oldest first)
    may issue at ``max(last in its bank group + gap_bg, previous command + gap_rank)``; the
    earliest goes, the oldest on ties.  Returns (cycle, leader) per command, from cycle 0."""
    last = [r - gap_bg for r in ready]  # the bank groups' last commands, relative to cycle 0
    t = 0
    out = []
    for _ in range(steps):
        e = [max(v + gap_bg, t + gap_rank) for v in last]
        j = e.index(min(e))  # the first minimum: the oldest on ties
        t = e[j]
        last[j] = t
        out.append((t, j))
    return out


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 10), st.integers(1, 8), st.data())
def test_leader_cycle_is_the_stepped_merge(gap_bg: int, gap_rank: int,
                                          data: st.DataObject) -> None:
    """The cached period of the leaders' merge repeats exactly what stepping the merge gives,
    and a state called transient does not recur within the steps it follows."""
    top = max(gap_bg, gap_rank)
    ready = data.draw(st.lists(st.integers(gap_rank, top), min_size=1, max_size=4))
    cyc = leader_cycle(ready, gap_bg, gap_rank)
    steps = _merge_by_steps(ready, gap_bg, gap_rank, 3 * max(cyc.period, 1) + 70)
    if cyc.period == 0:
        for k in range(1, 65):  # no return to the state within the 64 steps followed
            t, _ = steps[k - 1]
            last = {j: tt for tt, j in steps[:k]}
            state = [max(last.get(j, r - gap_bg) + gap_bg - t, gap_rank)
                     for j, r in enumerate(ready)]
            assert state != ready
        return
    n = len(cyc.offsets)
    expect = [(rep * cyc.period + off, j) for rep in range(3)
              for off, j in zip(cyc.offsets, cyc.positions, strict=True)]
    assert steps[:3 * n] == expect
    assert cyc.counts == [cyc.positions.count(j) for j in range(len(ready))]

