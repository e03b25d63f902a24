"""Training expansion: the per-iteration task DAG and host update traffic."""

from __future__ import annotations

from collections import Counter

import networkx as nx
import pytest

import workloads
from gradpimsim.config.training import OptimizerConfig, PrecisionPolicy, precision
from gradpimsim.graph.schema import numel
from gradpimsim.host.training import expand_training, group_roles, update_traffic


@pytest.fixture(scope="module")
def resnet18_schedule():
    return expand_training(workloads.get_workload("resnet18", batch=2),
                           OptimizerConfig("momentum"), "mixed")


def test_resnet18_task_counts(resnet18_schedule) -> None:
    dag = resnet18_schedule.dag
    assert nx.is_directed_acyclic_graph(dag)
    kinds = Counter(d["kind"] for _, d in dag.nodes(data=True))
    # 69 layers: conv1/bn1/relu/maxpool, 8 basic blocks x 7 nodes, 3 downsample conv+bn pairs,
    # avgpool/flatten/fc.  conv1's input is the image, so it has no data-gradient task.
    # Weight gradients: 20 convolutions + 20 batch norms + fc; updates: 62 parameter tensors.
    assert kinds == {"forward": 69, "loss": 1, "backward_data": 68, "backward_weight": 41,
                     "update": 62}


def test_dependencies_allow_overlap(resnet18_schedule) -> None:
    dag = resnet18_schedule.dag
    # An update depends only on its weight gradient; it does not wait for earlier layers.
    assert list(dag.predecessors("update:fc.weight")) == ["bwd_weight:fc"]
    assert not nx.has_path(dag, "bwd_data:layer1.0.conv1", "update:fc.weight")
    assert nx.has_path(dag, "update:fc.weight", "update:fc.weight")  # trivially present
    # Weight and data gradients of a layer are siblings: neither waits for the other.
    assert not nx.has_path(dag, "bwd_data:layer4.1.conv2", "bwd_weight:layer4.1.conv2")
    assert not nx.has_path(dag, "bwd_weight:layer4.1.conv2", "bwd_data:layer4.1.conv2")
    # Backward of a layer waits for the gradient flowing from all its consumers.
    assert set(dag.predecessors("bwd_data:layer1.1.relu2")) == {
        "bwd_data:layer2.0.conv1", "bwd_data:layer2.0.downsample.0"}
    assert nx.has_path(dag, "fwd:fc", "loss") and nx.has_path(dag, "loss", "bwd_data:fc")
    order = resnet18_schedule.order()
    assert order.index("fwd:conv1") < order.index("loss") < order.index("bwd_weight:conv1")


def test_update_task_attributes(resnet18_schedule) -> None:
    t = resnet18_schedule.dag.nodes["update:conv1.weight"]
    n = 64 * 3 * 7 * 7
    assert t["numel"] == n
    assert t["roles"] == {"weight": 4 * n, "grad": 2 * n, "momentum": 4 * n,
                          "weight_copy": 2 * n}
    assert t["read_bytes"] == t["write_bytes"] == 10 * n
    assert {a.tensor for a in t["reads"]} == {"conv1.weight/grad", "conv1.weight/weight",
                                               "conv1.weight/momentum"}
    assert t["next_forward"] == ["fwd:conv1"]
    # Forward reads the fp16 weight copy, weight gradient writes the fp16 gradient.
    fwd = resnet18_schedule.dag.nodes["fwd:conv1"]
    assert ("conv1.weight/weight_copy", 0, 2 * n) in fwd["reads"]
    bw = resnet18_schedule.dag.nodes["bwd_weight:conv1"]
    assert bw["writes"] == [("conv1.weight/grad", 0, 2 * n)]


@pytest.mark.parametrize("opt,prec,read,write", [
    # momentum SGD, fp16 grads, fp32 master & momentum, fp16 copy: 2+4+4 read, 4+4+2 written
    ("momentum", "mixed", 10, 10),
    ("sgd", "fp32", 8, 4),              # grad + master read, master written
    ("momentum", "fp32", 12, 8),
    ("nesterov", "mixed-bf16", 10, 10),
    ("adam", "fp32", 16, 12),           # grad, master, exp_avg, exp_avg_sq
    ("adam", "mixed", 14, 14),
    ("sgd", "mixed-int8", 5, 6),        # int8 grad + fp32 master; master + fp16 copy
])
def test_update_bytes_per_parameter(opt: str, prec: str, read: int, write: int) -> None:
    o, p = OptimizerConfig(opt), precision(prec)
    assert update_traffic(1, o, p) == (read, write) == p.update_bytes(o)
    assert update_traffic(1000, o, p) == (1000 * read, 1000 * write)


def test_schedule_update_traffic_matches_param_count() -> None:
    g = workloads.get_workload("mlp", batch=4)
    s = expand_training(g, OptimizerConfig("momentum"), "mixed")
    total = sum(numel(g.nodes[n]["params"][p]["shape"]) for n in g for p in g.nodes[n]["params"])
    assert s.traffic("update") == (10 * total, 10 * total)
    assert set(s.groups) == {f"fc{i}.{w}" for i in range(4) for w in ("weight", "bias")}
    assert s.groups["fc0.weight"] == group_roles(784 * 2048, s.optimizer, s.precision)


def test_activation_dtype_follows_precision() -> None:
    g = workloads.get_workload("mlp", batch=4)
    s32 = expand_training(g, OptimizerConfig("sgd"), PrecisionPolicy())
    s16 = expand_training(g, OptimizerConfig("sgd"), "mixed")
    assert s32.tensors["act:fc0"].nbytes == 4 * 4 * 2048
    assert s16.tensors["act:fc0"].nbytes == 2 * 4 * 2048


def test_tied_embedding_update_waits_for_both_users() -> None:
    s = expand_training(workloads.get_workload("gpt2", batch=1, seq_len=8))
    preds = set(s.dag.predecessors("update:wte.weight"))
    assert preds == {"bwd_weight:wte", "bwd_weight:lm_head"}
    assert "bwd_data:wte" not in s.dag  # token ids need no gradient


def test_every_workload_expands_acyclic() -> None:
    for w in workloads.list_workloads():
        g = workloads.get_workload(w.name, batch=1, seq_len=8 if w.is_sequence else None)
        s = expand_training(g)
        assert nx.is_directed_acyclic_graph(s.dag)
        for _, d in s.dag.nodes(data=True):
            for acc in d["reads"] + d["writes"]:
                spec = s.tensors[acc.tensor]
                assert acc.offset >= 0 and acc.offset + acc.nbytes <= spec.nbytes
