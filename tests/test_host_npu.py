"""Host NPU model: systolic-array compute cycles, buffer tiling, transfers, presets."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

import workloads
from gradpimsim.config import ConfigError
from gradpimsim.host.npu import NPUConfig, NPUModel, Transfer, load_npu_config
from gradpimsim.host.training import Access, Dataflow, expand_training


@pytest.mark.parametrize("name, rows, buffer_mib, lanes, flop_per_byte", [
    # FLOP/B against one DDR4-2400 channel (19.2 GB/s): 2 * rows * cols * 1 GHz / 19.2e9
    ("edge", 16, 2, 16, 26.67), ("small", 32, 8, 32, 106.67), ("mid", 64, 16, 64, 426.67),
    ("large", 128, 24, 128, 1706.67)])
def test_presets_documented_values(name: str, rows: int, buffer_mib: int, lanes: int,
                                   flop_per_byte: float) -> None:
    cfg = load_npu_config(name)
    assert (cfg.name, cfg.rows, cfg.cols, cfg.freq_ghz, cfg.buffer_bytes, cfg.vector_lanes,
            cfg.dataflow, cfg.dma_chunk_bytes) == (
        name, rows, rows, 1.0, buffer_mib * 2**20, lanes, "ws", 65536)
    assert cfg.flop_per_byte(19.2) == pytest.approx(flop_per_byte, abs=0.01)
    assert cfg.residency_budget == buffer_mib * 2**20 // 2
    assert f"{round(flop_per_byte):,}" in cfg.description


def test_default_preset_is_small_and_old_name_is_large() -> None:
    assert load_npu_config() == load_npu_config("small")
    assert dataclasses.replace(load_npu_config(), description="") == NPUConfig()
    assert load_npu_config("default") == load_npu_config("large")


def test_preset_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown NPU preset"):
        load_npu_config("tpu-v9")
    bad = tmp_path / "npu.toml"
    bad.write_text("rows = 0\n")
    with pytest.raises(ConfigError, match="npu.rows"):
        load_npu_config(bad)
    bad.write_text("colz = 3\n")
    with pytest.raises(ConfigError, match="npu.colz"):
        load_npu_config(bad)
    good = tmp_path / "small.toml"
    good.write_text('name = "small"\nrows = 32\ncols = 16\ndataflow = "os"\n')
    assert load_npu_config(good).cols == 16


def test_gemm_cycles_by_hand() -> None:
    npu = NPUModel("large")
    # WS: Sr = K = 300 -> 3 row folds, Sc = N = 200 -> 2 column folds, T = M = 1000.
    assert npu.gemm_cycles(1000, 200, 300) == 3 * 2 * (2 * 128 + 128 + 1000 - 2)
    assert npu.gemm_cycles(1000, 200, 300, groups=4) == 4 * npu.gemm_cycles(1000, 200, 300)
    os_npu = NPUModel(NPUConfig(rows=128, cols=128, dataflow="os"))
    assert os_npu.gemm_cycles(1000, 200, 300) == 8 * 2 * (2 * 128 + 128 + 300 - 2)


def test_conv_task_cycles() -> None:
    s = expand_training(workloads.get_workload("resnet18", batch=2), dataflow=Dataflow.legacy())
    task = s.dag.nodes["fwd:layer1.0.conv1"]
    # im2col GEMM: M = 2*56*56, K = 64*3*3 = 576 (5 folds), N = 64 (1 fold).
    assert task["gemm"] == [(2 * 56 * 56, 64, 576, 1)]
    assert NPUModel("large").compute_cycles(task) == 5 * (2 * 128 + 128 + 2 * 56 * 56 - 2)
    relu = s.dag.nodes["fwd:relu"]
    assert NPUModel("large").compute_cycles(relu) == math.ceil(relu["flops"] / 128)


def test_fused_conv_task_cycles() -> None:
    """A fused pass costs its GEMM on the array plus its elementwise members on the lanes."""
    s = expand_training(workloads.get_workload("resnet18", batch=2))
    task = s.dag.nodes["fwd:layer1.0.conv1"]
    assert task["members"] == ["layer1.0.conv1", "layer1.0.bn1", "layer1.0.relu1"]
    # small: 32 x 32; K = 576 -> 18 folds, N = 64 -> 2 folds; BN 4 + ReLU 1 FLOP per element
    elems = 2 * 64 * 56 * 56
    assert NPUModel().compute_cycles(task) == 18 * 2 * (2 * 32 + 32 + 2 * 56 * 56 - 2) + \
        math.ceil(5 * elems / 32)


def test_small_task_moves_each_tensor_once() -> None:
    s = expand_training(workloads.get_workload("mlp", batch=8), policy="mixed")
    task = s.dag.nodes["fwd:fc1"]
    cost = NPUModel("large").cost(task)
    assert cost.plan == "fits"
    assert cost.read_bytes == sum(a.nbytes for a in task["reads"])
    assert cost.write_bytes == sum(a.nbytes for a in task["writes"])
    assert all(isinstance(t, Transfer) for t in cost.transfers)


def test_rereads_when_operands_exceed_buffer() -> None:
    npu = NPUModel(NPUConfig(buffer_bytes=1 << 20, dma_chunk_bytes=1 << 16))
    mib = 1 << 20
    task = {"flops": 0, "gemm": [(4096, 4096, 512, 1)],
            "gemm_roles": {"a": ["A"], "b": ["B"], "c": ["C"]},
            "reads": [Access("A", 0, 4 * mib), Access("B", 0, 2 * mib)],
            "writes": [Access("C", 0, 8 * mib)]}
    cost = npu.cost(task)
    # Half the buffer (512 KiB) holds a block of B: 4 blocks, A re-read 4 times.
    assert cost.plan == "b_resident" and cost.passes == 4
    assert cost.read_bytes == 4 * 4 * mib + 2 * mib
    assert cost.write_bytes == 8 * mib
    # Every byte of C is written exactly once, in order of the blocks.
    c = sorted((t.offset, t.nbytes) for t in cost.transfers if t.is_write)
    assert c[0][0] == 0 and sum(n for _, n in c) == 8 * mib
    assert all(a[0] + a[1] == b[0] for a, b in zip(c, c[1:], strict=False))
    assert max(t.nbytes for t in cost.transfers) <= 1 << 16


def test_update_task_streams_group_once() -> None:
    s = expand_training(workloads.get_workload("mlp", batch=8), policy="mixed")
    t = s.dag.nodes["update:fc1.weight"]
    cost = NPUModel().cost(t)
    assert cost.plan == "stream"
    assert (cost.read_bytes, cost.write_bytes) == (t["read_bytes"], t["write_bytes"])
    # Streams interleave: the first transfers touch the gradient, the master and the momentum.
    first = {x.tensor_name for x in cost.transfers[:6]}
    assert {"fc1.weight/grad", "fc1.weight/weight", "fc1.weight/momentum"} <= first
