"""Overlap metrics computed by hand: gain captured, exposed update, the ideal bound."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gradpimsim.config import load_config
from gradpimsim.config.pim import PimConfig
from gradpimsim.config.training import OptimizerConfig, precision
from gradpimsim.system.executor import AccessTime, TaskRecord
from gradpimsim.system.overlap import (
    compare_overlap,
    gradient_completions,
    run_overlap,
    work_bound_cycles,
)

CFG = load_config("ddr4-2400")  # tCCD_L = 6, one channel, 4 bank groups


def _rec(task: str, kind: str, end: int, writes: list[tuple[str, int]]) -> TaskRecord:
    return TaskRecord(task, kind, None, "npu", end=end,
                      accesses=[AccessTime(t, "write", 0, e) for t, e in writes])


def test_gradient_completion_is_the_last_write() -> None:
    recs = [_rec("bwd:a", "backward", 50, [("w/grad", 40), ("dact:x", 50)]),
            _rec("bwd:b", "backward", 90, [("w/grad", 80)]),
            _rec("update:w", "update", 120, [("w/grad", 999)])]  # updates do not count
    assert gradient_completions(recs) == {"w": 80}


def test_run_overlap_by_hand() -> None:
    phases = {"backward": {"end": 1000}}
    # PIM: 30 of 120 PIM commands issued by the end of backward
    got = run_overlap([], phases, 1500, {"PIM_RD": 10, "PIM_WR": 10, "PIM_OP": 10},
                      {"PIM_RD": 40, "PIM_WR": 40, "PIM_OP": 40, "RD": 7})
    assert got["exposed_update_cycles"] == 500
    assert got["update_work_at_backward_end"] == 0.25
    # host: 1 of 2 update tasks finished by cycle 1000
    recs = [_rec("update:a", "update", 900, []), _rec("update:b", "update", 1200, [])]
    got = run_overlap(recs, phases, 1200, None, {"RD": 5})
    assert got["update_work_at_backward_end"] == 0.5


def test_work_bound_by_hand() -> None:
    pim = PimConfig()
    # 1000 column ops on 4 units: 250 x tCCD_L(6) = 1500; commands 1.8 per column op on one
    # command bus: 1800
    assert work_bound_cycles(1000, CFG, pim, 1.8, 4) == 1800
    assert work_bound_cycles(1000, CFG, pim, 1.0, 4) == 1500
    assert work_bound_cycles(1000, CFG, pim, 1.0, 1) == 6000


def test_compare_overlap_by_hand() -> None:
    opt, prec = OptimizerConfig("momentum"), precision("mixed")
    # mixed momentum: 20 B per parameter -> 20/64 column ops per parameter
    base = SimpleNamespace(cycles=10_000, overlap={"backward_end": 6_000,
                                                   "gradients_complete": {"p": 5_000}})
    pim = SimpleNamespace(cycles=7_000, overlap={"backward_end": 6_600},
                          dram={"commands": {"PIM_RD": 100, "PIM_WR": 100, "PIM_OP": 160}})
    got = compare_overlap(base, pim, {"p": 64_000}, opt, prec, CFG, PimConfig(), 4, 2)
    assert got["gain_captured"] == pytest.approx(3_000 / 4_000)
    assert got["host_slowdown"] == pytest.approx(1.1)
    # 64,000 x 20/64 = 20,000 column ops; 1.8 commands each; its fp32 master fills 32 rows
    # (2,048 values a row) so all 4 units work: max(20,000 / 4 x 6, 20,000 x 1.8) = 36,000
    # cycles after its gradient at 5,000
    assert got["ideal_cycles"] == min(5_000 + 36_000, 10_000)
    assert got["captured_of_ideal"] is None  # the bound is the baseline itself here
    base.cycles = 100_000
    got = compare_overlap(base, pim, {"p": 64_000}, opt, prec, CFG, PimConfig(), 4, 2)
    assert got["ideal_cycles"] == 41_000
    assert got["captured_of_ideal"] == pytest.approx((100_000 - 7_000) / (100_000 - 41_000))
