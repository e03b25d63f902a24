"""The HIC (hybrid in-memory computing, PCM) comparison model against hand-computed cases.

Default configuration: 6 binary devices and one 4-level device per weight (256 codes over
[-1, 1): one step = 1/128), an 8-bit accumulator with 4 bits below one step (threshold 16
units, range -128..127), lr 0.1.  A gradient ``g`` adds ``round(-0.1 * g / (1/2048))`` units.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import workloads
from gradpimsim.cli import main
from gradpimsim.config.model import ConfigError
from gradpimsim.graph.builder import GraphBuilder
from gradpimsim.hic.model import Counts, HicArray, HicConfig, pcm_parameters, run_hic

CFG = HicConfig()
UNIT = CFG.acc_lsb  # one accumulator unit of weight


def _grad(units: float) -> float:
    """The gradient that adds ``units`` accumulator units (-lr * g = units * lsb)."""
    return -units * UNIT / CFG.lr


def test_config_by_hand() -> None:
    assert CFG.codes == 256 and CFG.step == 1 / 128 and CFG.threshold == 16
    assert UNIT == 1 / 2048
    with pytest.raises(ConfigError, match="hic.acc_frac_bits"):
        HicConfig(acc_bits=4, acc_frac_bits=3)
    with pytest.raises(ConfigError, match="hic.mlc_levels"):
        HicConfig(mlc_levels=1)


def test_never_crossing_programs_nothing() -> None:
    arr = HicArray(np.zeros(10), CFG)
    start = arr.code.copy()
    total = Counts()
    for _ in range(5):  # 5 x 3 = 15 units: one short of a step
        total.add(arr.step(np.full(10, _grad(3))))
    for i in range(200):  # +-7 units: never reaches 16 either way
        total.add(arr.step(np.full(10, _grad(7 if i % 2 else -7))))
    assert total.crossings == total.programs == 0
    assert total.acc_reads == total.acc_writes == 205 * 10
    assert np.array_equal(arr.code, start)
    assert arr.device_events.sum() == 0


def test_crossing_every_step_programs_every_step() -> None:
    """One step (16 units) per iteration from weight 0 (code 128: level 0, binary 32).
    Eight iterations: the 4-level device changes every time (8 events); carries after the
    4th and 8th: binary 32 -> 33 (one bit) -> 34 (two bits): 3 binary events."""
    arr = HicArray(np.zeros(3), CFG)
    total = Counts()
    for _ in range(8):
        total.add(arr.step(np.full(3, _grad(16))))
    assert total.crossings == 8 * 3
    assert total.mlc_programs == 8 * 3
    assert total.binary_programs == 3 * 3
    assert np.array_equal(arr.code, [136] * 3)
    assert np.allclose(arr.weights(), 8 / 128)
    # per device: the MLC 8 times, binary bit 0 twice, bit 1 once
    assert arr.device_events[-1].tolist() == [8] * 3
    assert arr.device_events[0].tolist() == [2] * 3
    assert arr.device_events[1].tolist() == [1] * 3
    assert arr.device_events[2:-1].sum() == 0


def test_toward_zero_residue_negative_updates() -> None:
    """-17 units: one step down, -1 left; then -15 more: -16, a second step down."""
    arr = HicArray(np.zeros(1), CFG)
    c = arr.step(np.array([_grad(-17)]))
    assert (c.crossings, int(arr.acc[0]), int(arr.code[0])) == (1, -1, 127)
    # 128 -> 127 changes the level (0 -> 3) and borrows: binary 32 -> 31 flips 6 bits
    assert (c.mlc_programs, c.binary_programs) == (1, 6)
    c = arr.step(np.array([_grad(-15)]))
    assert (c.crossings, int(arr.acc[0]), int(arr.code[0])) == (1, 0, 126)


def test_saturation_and_range_lose_updates() -> None:
    arr = HicArray(np.zeros(1), CFG)
    c = arr.step(np.array([_grad(1000)]))  # the accumulator saturates at 127: 7 steps
    assert (c.lost_updates, int(arr.code[0]), int(arr.acc[0])) == (1, 135, 127 - 112)
    top = HicArray(np.array([0.999]), CFG)  # the top code, 255
    assert int(top.code[0]) == 255
    c = top.step(np.array([_grad(16)]))
    assert (c.crossings, c.programs, c.lost_updates, int(top.code[0])) == (1, 0, 1, 255)


def test_wide_accumulator_by_hand() -> None:
    """A 16-bit accumulator with 12 bits below a step (threshold 4,096 units): 3,000 units
    stay below it; 2,000 more make 5,000, one step up with 904 left over."""
    cfg = HicConfig(acc_bits=16, acc_frac_bits=12)
    arr = HicArray(np.zeros(2), cfg)
    g = -cfg.acc_lsb / cfg.lr  # one unit
    c = arr.step(np.full(2, 3000 * g))
    assert (c.crossings, arr.acc.tolist(), arr.code.tolist()) == (0, [3000] * 2, [128] * 2)
    c = arr.step(np.full(2, 2000 * g))
    assert (c.crossings, arr.acc.tolist(), arr.code.tolist()) == (2, [904] * 2, [129] * 2)


def test_energy_is_counts_times_figures() -> None:
    cfg = HicConfig(acc_read_pj=0.25, acc_write_pj=0.75, binary_program_pj=8.0,
                    mlc_program_pj=40.0)
    c = Counts(iterations=2, acc_reads=10, acc_writes=12, crossings=3, mlc_programs=3,
               binary_programs=4)
    e = c.energy_pj(cfg)
    assert e == {"acc_read": 2.5, "acc_write": 9.0, "mlc_program": 120.0,
                 "binary_program": 32.0, "total": 163.5}


def _tiny() -> object:
    b = GraphBuilder("tiny", 2)
    x = b.input("input", (2, 8))
    x = b.linear(x, "fc0", 4)  # weight 32 (PCM), bias 4 (digital)
    b.linear(b.act(x, "relu"), "fc1", 3, bias=False)  # weight 12
    return b.build()


def test_run_hic_every_weight_every_step() -> None:
    g = _tiny()
    assert set(pcm_parameters(g)) == {"fc0.weight", "fc1.weight"}
    assert set(pcm_parameters(g, "all")) == {"fc0.weight", "fc0.bias", "fc1.weight"}
    zero = {pid: np.zeros(n) for pid, n in (("fc0.weight", 32), ("fc1.weight", 12))}
    cfg = HicConfig(endurance=1000.0, iterations_per_run=10)
    r = run_hic(g, cfg, iterations=8, init=zero,
                gradients=lambda it, pid, n: np.full(n, _grad(16)))
    per = r.per_iteration()
    assert r.weights == 44 and r.devices == 44 * 7
    assert per["mlc_programs"] == 44 and per["crossings"] == 44
    assert per["binary_programs"] == 44 * 3 / 8
    assert per["acc_reads"] == per["acc_writes"] == 44
    assert r.worst_device_rate == 1.0  # every MLC device, every iteration
    assert r.lifetime_iterations == 1000.0 and r.lifetime_runs == 100.0
    assert r.mean_device_events == 44 * (8 + 3) / (44 * 7)
    # energy per iteration: 44 reads and writes at 0.5 pJ, 44 MLC events at 50 pJ, 16.5
    # binary events at 10 pJ
    e = r.energy_per_iteration_pj()
    assert e == {"acc_read": 22.0, "acc_write": 22.0, "mlc_program": 2200.0,
                 "binary_program": 165.0, "total": 2409.0}
    quiet = run_hic(g, cfg, iterations=4, init=zero,
                    gradients=lambda it, pid, n: np.full(n, _grad(2)))
    assert quiet.totals.programs == 0 and math.isinf(quiet.lifetime_iterations)
    assert quiet.to_dict()["lifetime"] == {"iterations": None, "training_runs": None}


def test_run_hic_every_other_step() -> None:
    """8 units per iteration: a step every second iteration.  Over 8 iterations each weight
    goes 128 -> 132: the MLC device is programmed 4 times (rate 0.5, the worst device), the
    carry into the binary code (32 -> 33) flips bit 0 once.  Lifetime 1000 / 0.5 = 2000
    iterations = 200 runs of 10; the mean device: (4 + 1) / 7 events per 8 iterations."""
    g = _tiny()
    zero = {pid: np.zeros(n) for pid, n in (("fc0.weight", 32), ("fc1.weight", 12))}
    cfg = HicConfig(endurance=1000.0, iterations_per_run=10)
    r = run_hic(g, cfg, iterations=8, init=zero,
                gradients=lambda it, pid, n: np.full(n, _grad(8)))
    per = r.per_iteration()
    assert per["crossings"] == per["mlc_programs"] == 44 * 4 / 8
    assert per["binary_programs"] == 44 / 8
    assert r.worst_device_rate == 0.5
    assert r.lifetime_iterations == 2000.0 and r.lifetime_runs == 200.0
    assert r.mean_device_events == 5 / 7
    d = r.to_dict()
    assert d["lifetime"] == {"iterations": 2000.0, "training_runs": 200.0}
    assert d["per_device"]["max_events_per_iteration"] == 0.5
    assert [layer["weights"] for layer in d["layers"]] == [32, 12]


def test_frozen_parameters_are_not_in_the_update() -> None:
    """ae-proto's prototype table (64 x 10, frozen) is read, never updated: the six linear
    weights of the autoencoder are, 784*512 + 512*256 + 256*64 (encoder) and the mirror
    (decoder) = 1,097,728 weights."""
    g = workloads.get_workload("ae-proto", batch=1)
    assert "prototypes.weight" not in pcm_parameters(g, "all")
    assert sum(int(np.prod(p["shape"])) for p in pcm_parameters(g).values()) == \
        2 * (784 * 512 + 512 * 256 + 256 * 64) == 1_097_728


def test_cli_refuses_what_does_not_fit(monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """ResNet-18's 11,678,912 GEMM weights x (8 + 7 x 4) B plus its largest tensor's step
    (512*512*9 x 128 B) is about 689 MiB: refused under a 100 MiB budget, exit 2."""
    monkeypatch.setenv("GRADPIMSIM_MEMORY_MB", "100")
    assert main(["hic", "resnet18", "--iterations", "1"]) == 2
    err = capsys.readouterr().err
    assert "11,678,912 weights" in err and "689.0 MiB" in err


def test_resnet32_report(capsys: pytest.CaptureFixture[str]) -> None:
    """ResNet-32's GEMM weights in PCM: 464,154 parameters less BatchNorm (2 * (16 + 5*2*16
    + 5*2*32 + 5*2*64) = 2,272) and the classifier bias (10): 461,872 weights."""
    g = workloads.get_workload("resnet32", batch=1)
    r = run_hic(g, iterations=3)
    assert r.weights == 461_872
    assert r.totals.acc_reads == 3 * 461_872
    assert 0 < r.totals.programs < 3 * 461_872 * 7
    assert main(["hic", "resnet32", "--iterations", "2", "--json", "-"]) == 0
    out = capsys.readouterr().out
    data = json.loads(out[out.index("{\n"):])
    assert data["schema"] == "gradpimsim.hic/1" and data["weights"] == 461_872
    assert data["per_iteration"]["acc_reads"] == 461_872
    assert main(["hic", "resnet32", "--acc-bits", "4", "--acc-frac-bits", "3"]) == 2
