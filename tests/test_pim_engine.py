"""The timed GradPIM engine: bank-group parallelism, row preparation, statistics, refresh, and
functional results equal to the reference optimizer after a timed run.  Every run has the
independent protocol checker attached online."""

from __future__ import annotations

import numpy as np
import pytest

from gradpimsim.checker import ProtocolChecker
from gradpimsim.config import preset
from gradpimsim.config.pim import PimConfig
from gradpimsim.config.training import OptimizerConfig, precision
from gradpimsim.dram.commands import Cmd, Command
from gradpimsim.host.allocator import Allocator
from gradpimsim.pim import datapath, reference
from gradpimsim.pim.engine import EngineResult, PimEngine
from gradpimsim.pim.functional import PimArray
from gradpimsim.pim.kernels import PimProgram, UpdateTarget, build_program
from gradpimsim.pim.layout import ColocatedPolicy, update_tensors
from gradpimsim.pim.store import DramStore
from gradpimsim.pim.unit import PimInstr, pim_rd

CFG = preset("ddr4-2400")
PIM = PimConfig()


def run_checked(program: PimProgram, cfg=CFG, pim=PIM, array=None, keep: bool = False,
                **kw) -> tuple[EngineResult, list[Command]]:
    checker = ProtocolChecker(cfg, pim, raise_on_violation=True)
    cmds: list[Command] = []
    if keep:
        def sink(c: Command) -> None:
            checker.observe(c)
            cmds.append(c)
    else:
        sink = checker.observe
    res = PimEngine(cfg, pim, sink=sink, array=array, **kw).run(program)
    report = checker.finish()
    assert report.ok, report.violations[:3]
    return res, cmds


def _program(units: dict[tuple[int, int, int], list[PimInstr]]) -> PimProgram:
    return PimProgram(OptimizerConfig("momentum"), precision("fp32"), 2, {}, units=units)


def _sweep(columns: int, unit_keys: list[tuple[int, int, int]]) -> PimProgram:
    """``columns`` PIM_RDs of whole rows (bank b, rows 0..), split evenly over the units."""
    per = columns // len(unit_keys)
    bursts = CFG.org.bursts_per_row
    units = {}
    for key in unit_keys:
        units[key] = [pim_rd((i // bursts) % 4, i // (4 * bursts), i % bursts, i % 8)
                      for i in range(per)]
    return _program(units)


# --- (b) bank-group parallelism ------------------------------------------------------------

def test_four_bank_groups_run_concurrently() -> None:
    n = 4 * 4 * 128  # 16 rows of columns
    one, _ = run_checked(_sweep(n, [(0, 0, 0)]))
    four, _ = run_checked(_sweep(n, [(0, 0, bg) for bg in range(4)]))
    assert one.cycles >= n * 6  # tCCD_L per column in one bank group
    ratio = four.cycles / one.cycles
    assert 0.25 <= ratio <= 0.35, ratio
    assert one.column_ops == four.column_ops == n


def test_eight_units_hit_the_command_bus() -> None:
    """Two ranks: eight units want 8 columns per tCCD_L = 6 cycles, more than one command per
    clock, so the command bus binds (one column per cycle)."""
    cfg = CFG.with_overrides(ranks=2)
    n = 8 * 512
    keys = [(0, r, bg) for r in range(2) for bg in range(4)]
    one_rank, _ = run_checked(_sweep(n, keys[:4]), cfg=cfg)
    two_ranks, _ = run_checked(_sweep(n, keys), cfg=cfg)
    assert one_rank.cycles >= n // 4 * 6
    assert n <= two_ranks.cycles <= 1.05 * n


# --- row preparation -----------------------------------------------------------------------

def test_next_bank_is_activated_ahead_of_the_column_stream() -> None:
    """Bank 1's row opens while bank 0 is read, so the stream continues at tCCD_L."""
    prog = [pim_rd(0, 3, c, 0) for c in range(10)] + [pim_rd(1, 4, c, 0) for c in range(10)]
    res, cmds = run_checked(_program({(0, 0, 0): prog}), keep=True)
    reads = [c.clk for c in cmds if c.cmd == Cmd.PIM_RD]
    assert all(b - a == 6 for a, b in zip(reads, reads[1:], strict=False))
    acts = [c for c in cmds if c.cmd == Cmd.ACT]
    assert [a.bank for a in acts] == [0, 1]
    assert acts[1].clk - acts[0].clk == 6  # tRRD_L: ahead of any bank-1 read
    assert res.cycles == reads[-1] + 4


def test_row_change_in_one_bank_precharges_as_early_as_legal() -> None:
    """Rows 3 then 4 of bank 0: PRE at max(tRAS, tRTP), ACT tRP later, read tRCD later."""
    prog = [pim_rd(0, 3, c, 0) for c in range(2)] + [pim_rd(0, 4, 0, 0)]
    _, cmds = run_checked(_program({(0, 0, 0): prog}), keep=True)
    act0, pre, act1 = [c.clk for c in cmds if c.cmd in (Cmd.ACT, Cmd.PRE)]
    last_rd3 = [c.clk for c in cmds if c.cmd == Cmd.PIM_RD and c.row == 3][-1]
    assert pre == max(act0 + 39, last_rd3 + 9)  # tRAS, tRTP
    assert act1 - pre == 17  # tRP
    rd4 = [c.clk for c in cmds if c.cmd == Cmd.PIM_RD and c.row == 4][0]
    assert rd4 - act1 == 17  # tRCD


# --- in-order issue, statistics, determinism -----------------------------------------------

def _placed(cfg, n, opt, prec, chunk_columns=16):
    alloc = Allocator(cfg, ColocatedPolicy(chunk_columns=chunk_columns))
    pl = alloc.place_group("t", update_tensors(n, opt, prec))
    return alloc, [UpdateTarget("t", n, pl)]


def test_units_issue_in_program_order_and_stats_add_up() -> None:
    cfg = CFG.with_overrides(channels=2, ranks=2)
    opt, prec = OptimizerConfig("momentum", momentum=0.9), precision("mixed")
    alloc, targets = _placed(cfg, 9000, opt, prec)
    prog = build_program(targets, opt, prec, cfg, step=2, amap=alloc.amap)
    res, cmds = run_checked(prog, cfg=cfg, keep=True)
    for (ch, rank, bg), instrs in prog.units.items():
        issued = [(c.cmd, c.bank, c.row, c.col) for c in cmds
                  if (c.channel, c.rank, c.bankgroup) == (ch, rank, bg)
                  and c.cmd in (Cmd.PIM_RD, Cmd.PIM_WR, Cmd.PIM_OP)]
        wanted = [(i.cmd, i.bank if i.cmd != Cmd.PIM_OP else -1, i.row, i.col) for i in instrs]
        assert issued == wanted
        ur = res.units[(ch, rank, bg)]
        st = prog.stats()[(ch, rank, bg)]
        assert (ur.reads, ur.writes, ur.ops) == (st.reads, st.writes, st.ops)
        assert ur.utilization == pytest.approx(st.column_ops * 6 / res.cycles)
    assert res.column_ops == prog.column_ops()
    assert res.pim_ops == sum(s.ops for s in prog.stats().values())
    assert res.count(Cmd.PIM_SET) == sum(len(p) for p in prog.prologue.values())
    assert res.bus_bytes == 0
    assert res.activations == res.count(Cmd.ACT) > 0
    assert res.commands == len(cmds)
    assert set(res.channel_cycles) == {0, 1}
    assert res.cycles == max(c.clk for c in cmds) + 1 or res.cycles == max(
        c.clk for c in cmds if c.cmd in (Cmd.PIM_RD, Cmd.PIM_WR)) + 4
    # the sink sees each channel's commands in clock order
    for ch in (0, 1):
        clk = [c.clk for c in cmds if c.channel == ch]
        assert clk == sorted(clk)
        assert len(set(clk)) == len(clk)  # one command per clock


def test_lazy_eager_sink_and_functional_give_identical_timing() -> None:
    opt, prec = OptimizerConfig("momentum", momentum=0.9), precision("mixed")
    alloc, targets = _placed(CFG, 5000, opt, prec)
    eager = build_program(targets, opt, prec, CFG, step=2, amap=alloc.amap)
    lazy = build_program(targets, opt, prec, CFG, step=2, amap=alloc.amap, lazy=True)
    a, cmds_a = run_checked(eager, keep=True)
    b, cmds_b = run_checked(lazy, keep=True)
    c = PimEngine(CFG, PIM).run(lazy)  # no sink
    store = DramStore(CFG, alloc.amap)
    d, _ = run_checked(eager, array=PimArray(CFG, store, PIM))
    assert cmds_a == cmds_b
    assert a.cycles == b.cycles == c.cycles == d.cycles
    assert a.counts == c.counts == d.counts


def test_refresh_is_issued_and_rows_reopen() -> None:
    cfg = CFG.with_overrides(tREFI=1500, max_postponed_refreshes=1)
    opt, prec = OptimizerConfig("momentum", momentum=0.9), precision("mixed")
    alloc, targets = _placed(cfg, 8000, opt, prec, chunk_columns=None)
    prog = build_program(targets, opt, prec, cfg, step=2, amap=alloc.amap)
    res, cmds = run_checked(prog, cfg=cfg, keep=True)
    refs = [c.clk for c in cmds if c.cmd == Cmd.REF]
    assert len(refs) >= res.cycles // 1500 - 1
    no_ref = PimEngine(cfg, PIM, refresh=False).run(prog)
    assert no_ref.count(Cmd.REF) == 0
    assert res.cycles > no_ref.cycles + len(refs) * 420 // 2  # a rank stops for tRFC
    assert res.activations > no_ref.activations


# --- (c) functional results after a timed run ----------------------------------------------

@pytest.mark.parametrize("prec_name", ["fp32", "mixed"])
def test_timed_run_matches_reference(prec_name: str) -> None:
    """Momentum SGD over a tensor spanning channels, bank groups, banks and rows, with
    refresh interrupting the sweep: DRAM after two timed steps equals the reference bit for
    bit (fp32 master and state; the fp16 copy identical)."""
    cfg = CFG.with_overrides(channels=2, tREFI=2000, max_postponed_refreshes=2)
    opt = OptimizerConfig("momentum", lr=0.02, momentum=0.9, dampening=0.1, weight_decay=1e-3)
    prec = precision(prec_name)
    n = 40009
    alloc, targets = _placed(cfg, n, opt, prec)
    pl = targets[0].placements
    store = DramStore(cfg, alloc.amap)
    array = PimArray(cfg, store, PIM)
    rng = np.random.default_rng(5)
    master = rng.standard_normal(n).astype(np.float32)
    store.write_tensor(pl["weight"], master, "fp32")
    state: dict[str, np.ndarray] = {}
    refreshes = 0
    for step in (1, 2):
        g = datapath.from_fp32((rng.standard_normal(n) * 0.1).astype(np.float32),
                               prec.grad_dtype)
        store.write_tensor(pl["grad"], g, prec.grad_dtype)
        copy = reference.mixed_precision_step(opt, prec, master, g, state, step)
        prog = build_program(targets, opt, prec, cfg, step=step, amap=alloc.amap)
        res, _ = run_checked(prog, cfg=cfg, array=array)
        refreshes += res.count(Cmd.REF)
        got = store.read_tensor(pl["weight"], "fp32", n)
        np.testing.assert_array_equal(got.view(np.uint32), master.view(np.uint32))
        mom = store.read_tensor(pl["momentum"], "fp32", n)
        np.testing.assert_array_equal(mom.view(np.uint32), state["momentum"].view(np.uint32))
        if prec.has_weight_copy:
            np.testing.assert_array_equal(
                store.read_tensor(pl["weight_copy"], prec.compute_dtype, n), copy)
    assert refreshes > 0
    rows = {(k, i.bank, i.row) for k, p in prog.units.items() for i in p if i.cmd == Cmd.PIM_RD}
    assert len(prog.units) == 8 and len(rows) > 4 * len(prog.units)


def test_lookahead_must_hold_two_instructions() -> None:
    with pytest.raises(ValueError):
        PimEngine(CFG, PIM, lookahead=1)


def test_adam_extension_waits_for_sqrt_div_latency() -> None:
    """Adam (with the sqrt/div extension): a PIM_WR waits sqrt_div_latency = 16 after the
    unit's last sqrt/div, and the timed functional result equals the reference."""
    pim = PimConfig(has_sqrt_div=True, scalar_registers=16)
    opt = OptimizerConfig("adam", lr=1e-3)
    prec = precision("mixed")
    n = 3000
    alloc, targets = _placed(CFG, n, opt, prec)
    pl = targets[0].placements
    store = DramStore(CFG, alloc.amap)
    rng = np.random.default_rng(2)
    master = rng.standard_normal(n).astype(np.float32)
    store.write_tensor(pl["weight"], master, "fp32")
    g = datapath.from_fp32((rng.standard_normal(n) * 0.1).astype(np.float32), "fp16")
    store.write_tensor(pl["grad"], g, "fp16")
    state: dict[str, np.ndarray] = {}
    copy = reference.mixed_precision_step(opt, prec, master, g, state, 1)
    prog = build_program(targets, opt, prec, CFG, pim, step=1, amap=alloc.amap)
    _, cmds = run_checked(prog, pim=pim, array=PimArray(CFG, store, pim), keep=True)
    np.testing.assert_array_equal(store.read_tensor(pl["weight"], "fp32", n).view(np.uint32),
                                  master.view(np.uint32))
    np.testing.assert_array_equal(store.read_tensor(pl["weight_copy"], "fp16", n), copy)
    tight = 0
    for key, instrs in prog.units.items():
        issued = [c for c in cmds if (c.channel, c.rank, c.bankgroup) == key
                  and c.cmd in (Cmd.PIM_RD, Cmd.PIM_WR, Cmd.PIM_OP)]
        last_long = -(10 ** 9)
        for ins, c in zip(instrs, issued, strict=True):
            if ins.cmd == Cmd.PIM_OP and ins.op in ("sqrt", "div", "divs"):
                last_long = c.clk
            elif ins.cmd == Cmd.PIM_WR:
                assert c.clk - last_long >= 16
                tight += c.clk - last_long == 16
    assert tight > 0  # the rule binds, exactly
