"""The built-in zoo: exact parameter counts against the reference implementations, FLOPs."""

from __future__ import annotations

import pytest

import workloads
from gradpimsim.graph import GraphError, param_count, total_flops, validate
from gradpimsim.graph.schema import parameters

REFERENCE_PARAMS = {
    "resnet18": 11_689_512,      # torchvision
    "resnet50": 25_557_032,      # torchvision
    "vgg16": 138_357_544,        # torchvision
    "mobilenetv2": 3_504_872,    # torchvision
    "bert-base": 109_482_240,    # HF BertModel with pooler
    "bert-large": 335_141_888,   # HF BertModel with pooler
    "gpt2": 124_439_808,         # HF GPT-2 small, tied embeddings
}


@pytest.mark.parametrize("name,count", sorted(REFERENCE_PARAMS.items()))
def test_reference_parameter_counts(name: str, count: int) -> None:
    g = workloads.get_workload(name, batch=1, seq_len=16 if "bert" in name or name == "gpt2"
                               else None)
    assert param_count(g) == count


def test_mlp_small_count_by_hand() -> None:
    g = workloads.get_workload("mlp-small")
    assert param_count(g) == 784 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10 == 669_706


def test_mlp_count_by_hand() -> None:
    g = workloads.get_workload("mlp")
    hand = 784 * 2048 + 2048 + 2 * (2048 * 2048 + 2048) + 2048 * 10 + 10
    assert param_count(g) == hand == 10_020_874


def test_mlp_tiny_count_by_hand() -> None:
    g = workloads.get_workload("mlp-tiny")
    assert param_count(g) == 64 * 128 + 128 + 128 * 128 + 128 + 128 * 10 + 10 == 26_122


def test_lstm_lm_count_by_hand() -> None:
    g = workloads.get_workload("lstm-lm")
    h, v = 650, 10_000
    per_layer = 4 * h * h + 4 * h * h + 4 * h + 4 * h
    assert param_count(g) == v * h + 2 * per_layer + h * v + v == 19_780_400


def test_registry_lists_all_and_builds_valid_graphs() -> None:
    names = [w.name for w in workloads.list_workloads()]
    assert set(REFERENCE_PARAMS) | {"mlp", "mlp-small", "mlp-tiny", "lstm-lm", "resnet32",
                                    "ae-proto"} == set(names)
    for name in names:
        validate(workloads.get_workload(name, batch=2))


def test_unknown_workload_lists_known_ones() -> None:
    with pytest.raises(GraphError, match="resnet18.*gpt2"):
        workloads.get_workload("alexnet")


def test_seq_len_only_for_sequence_models() -> None:
    with pytest.raises(GraphError, match="not a sequence model"):
        workloads.get_workload("resnet18", seq_len=10)
    g = workloads.get_workload("bert-base", batch=3, seq_len=64)
    assert g.nodes["encoder.layer.0.attention.self.scores"]["out_shape"] == [3, 12, 64, 64]
    with pytest.raises(GraphError, match="exceeds"):
        workloads.get_workload("gpt2", seq_len=2048)


def test_batch_scales_shapes_and_flops_not_params() -> None:
    g1 = workloads.get_workload("resnet18", batch=1)
    g4 = workloads.get_workload("resnet18", batch=4)
    assert total_flops(g4) == 4 * total_flops(g1)
    assert param_count(g1) == param_count(g4)
    assert g4.nodes["fc"]["out_shape"] == [4, 1000]


def test_conv_flops_by_hand() -> None:
    g = workloads.get_workload("resnet18", batch=2)
    # conv1: 3 -> 64 channels, 7x7, stride 2, pad 3: 224 -> 112.
    assert g.nodes["conv1"]["out_shape"] == [2, 64, 112, 112]
    assert g.nodes["conv1"]["flops"] == 2 * (2 * 64 * 112 * 112 * 3 * 7 * 7)
    # depthwise 3x3 conv of MobileNetV2's first block: 32 channels at 112x112, groups=32.
    m = workloads.get_workload("mobilenetv2", batch=1)
    dw = m.nodes["features.1.conv.0.0"]
    assert dw["attrs"]["groups"] == 32
    assert dw["flops"] == 2 * 32 * 112 * 112 * 1 * 3 * 3


def test_gemm_flops_by_hand() -> None:
    g = workloads.get_workload("bert-base", batch=2, seq_len=128)
    ffn = g.nodes["encoder.layer.3.intermediate.dense"]
    assert ffn["flops"] == 2 * (2 * 128) * 768 * 3072
    scores = g.nodes["encoder.layer.0.attention.self.scores"]
    assert scores["flops"] == 2 * (2 * 12) * 128 * 64 * 128
    fc = workloads.get_workload("vgg16", batch=3).nodes["classifier.0"]
    assert fc["flops"] == 2 * 3 * 25088 * 4096


def test_param_ids_follow_reference_names() -> None:
    ids = parameters(workloads.get_workload("resnet18", batch=1))
    assert len(ids) == 62  # torchvision resnet18 has 62 parameter tensors
    assert "layer2.0.downsample.0.weight" in ids
    assert ids["fc.weight"]["shape"] == [1000, 512]


def test_gpt2_lm_head_is_tied() -> None:
    g = workloads.get_workload("gpt2", batch=1, seq_len=8)
    head = g.nodes["lm_head"]
    assert head["params"] == {}
    assert head["shared_params"] == {"weight": "wte.weight"}
    assert head["flops"] == 2 * 8 * 768 * 50257
