"""Training expansion: the per-iteration task DAG, its order, hazards and update traffic."""

from __future__ import annotations

from collections import Counter

import networkx as nx
import pytest

import workloads
from gradpimsim.config import ConfigError
from gradpimsim.config.training import OptimizerConfig, PrecisionPolicy, precision
from gradpimsim.graph.schema import numel
from gradpimsim.host.training import Dataflow, expand_training, group_roles, update_traffic


@pytest.fixture(scope="module")
def legacy18():
    return expand_training(workloads.get_workload("resnet18", batch=2),
                           OptimizerConfig("momentum"), "mixed", Dataflow.legacy())


@pytest.fixture(scope="module")
def fused18():
    return expand_training(workloads.get_workload("resnet18", batch=2),
                           OptimizerConfig("momentum"), "mixed", Dataflow())


def test_legacy_task_counts(legacy18) -> None:
    dag = legacy18.dag
    assert nx.is_directed_acyclic_graph(dag)
    kinds = Counter(d["kind"] for _, d in dag.nodes(data=True))
    # 69 layers: conv1/bn1/relu/maxpool, 8 basic blocks x 7 nodes, 3 downsample conv+bn pairs,
    # avgpool/flatten/fc.  conv1's input is the image, so it has no data-gradient task.
    # Weight gradients: 20 convolutions + 20 batch norms + fc; updates: 62 parameter tensors.
    assert kinds == {"forward": 69, "loss": 1, "backward_data": 68, "backward_weight": 41,
                     "update": 62}
    # every data gradient before any weight gradient, updates last
    kinds_in_order = [dag.nodes[t]["kind"] for t in legacy18.order()]
    assert kinds_in_order == sorted(kinds_in_order, key=["forward", "loss", "backward_data",
                                                         "backward_weight",
                                                         "update"].index)


def test_fused_task_counts(fused18) -> None:
    kinds = Counter(d["kind"] for _, d in fused18.dag.nodes(data=True))
    # passes: stem conv1+bn1+relu, maxpool, 8 blocks x (conv1+bn1+relu1, conv2+bn2+add+relu2),
    # 3 downsample conv+bn, avgpool+flatten, fc = 23; each has one fused backward pass.
    assert kinds == {"forward": 23, "loss": 1, "backward": 23, "update": 62}
    assert fused18.dag.nodes["fwd:layer1.0.conv2"]["members"] == [
        "layer1.0.conv2", "layer1.0.bn2", "layer1.0.add", "layer1.0.relu2"]


def test_backward_runs_in_autograd_order(fused18) -> None:
    order = fused18.order()
    bwd = [t for t in order if t.startswith("bwd:")]
    # from the output back: fc, avgpool, then the last block's second conv first
    assert bwd[:4] == ["bwd:fc", "bwd:avgpool", "bwd:layer4.1.conv2", "bwd:layer4.1.conv1"]
    assert bwd[-2:] == ["bwd:maxpool", "bwd:conv1"]
    assert order.index("loss") == order.index("bwd:fc") - 1
    assert all(order.index(t) > order.index("bwd:conv1") for t in order if "update" in t)
    split = expand_training(workloads.get_workload("resnet18", batch=2),
                            dataflow=Dataflow(backward="split"))
    order = split.order()
    # each pass's data and weight gradients back to back
    i = order.index("bwd_data:layer3.0.conv2")
    assert order[i + 1] == "bwd_weight:layer3.0.conv2"
    assert "bwd_data:conv1" not in order and order[order.index("bwd_weight:conv1") - 1] == \
        "bwd_data:maxpool"


def test_update_hazards_are_derived_from_accesses(fused18) -> None:
    dag = fused18.dag
    edges = {p: sorted(dag.edges[p, "update:fc.weight"]["hazards"])
             for p in dag.predecessors("update:fc.weight")}
    # reads the gradient bwd:fc writes; overwrites the fp16 copy fwd:fc and bwd:fc read
    assert edges == {"bwd:fc": ["raw:fc.weight/grad", "war:fc.weight/weight_copy"],
                     "fwd:fc": ["war:fc.weight/weight_copy"]}
    # the bias is not read by the data gradient, so only forward must finish with it
    edges = {p: sorted(dag.edges[p, "update:fc.bias"]["hazards"])
             for p in dag.predecessors("update:fc.bias")}
    assert edges == {"bwd:fc": ["raw:fc.bias/grad"], "fwd:fc": ["war:fc.bias/weight_copy"]}
    # an update does not wait for earlier layers' backward
    assert not nx.has_path(dag, "bwd:layer1.0.conv1", "update:fc.weight")


def test_gradient_of_a_shared_tensor_accumulates(fused18, legacy18) -> None:
    # maxpool's output feeds layer1.0.conv1 and the block's skip (the add in conv2's pass)
    first, second = fused18.dag.nodes["bwd:layer1.0.conv2"], fused18.dag.nodes[
        "bwd:layer1.0.conv1"]
    assert "dact:maxpool" not in first["accumulates"]
    assert second["accumulates"] == ["dact:maxpool"]
    # the partial sum is read before the new one is written
    assert [a.tensor for a in second["reads"]].count("dact:maxpool") == 1
    hz = fused18.dag.edges["bwd:layer1.0.conv2", "bwd:layer1.0.conv1"]["hazards"]
    assert "raw:dact:maxpool" in hz
    # legacy: every contributor writes without reading, all of them accumulations
    for t in ("bwd_data:layer1.0.conv1", "bwd_data:layer1.0.add"):
        node = legacy18.dag.nodes[t]
        assert "dact:maxpool" in node["accumulates"]
        assert "dact:maxpool" not in [a.tensor for a in node["reads"]]


def test_residency_keeps_handoffs_on_chip() -> None:
    g = workloads.get_workload("resnet18", batch=2)
    s = expand_training(g, OptimizerConfig("momentum"), "mixed", Dataflow(resident_bytes=2**30))
    conv1 = s.dag.nodes["fwd:layer1.0.conv1"]
    # maxpool's output comes from the buffer, but goes to DRAM too: the skip and backward
    # read it later
    assert [a.tensor for a in conv1["resident"]] == ["act:maxpool"]
    assert "act:maxpool" in [a.tensor for a in s.dag.nodes["fwd:maxpool"]["writes"]]
    # layer1.0.relu1's gradient lives only from one backward pass to the next
    assert "dact:layer1.0.relu1" in [a.tensor for a in s.dag.nodes["bwd:layer1.0.conv2"]
                                     ["onchip"]]
    # budget 0: nothing resident
    none = expand_training(g, OptimizerConfig("momentum"), "mixed", Dataflow(resident_bytes=0))
    assert all(not d["resident"] for _, d in none.dag.nodes(data=True))
    # a budget one byte short of the tensor keeps it in DRAM
    nb = s.tensors["act:maxpool"].nbytes
    tight = expand_training(g, OptimizerConfig("momentum"), "mixed",
                            Dataflow(resident_bytes=nb - 1))
    assert not tight.dag.nodes["fwd:layer1.0.conv1"]["resident"]
    exact = expand_training(g, OptimizerConfig("momentum"), "mixed",
                            Dataflow(resident_bytes=nb))
    assert exact.dag.nodes["fwd:layer1.0.conv1"]["resident"]


def test_dataflow_options_are_validated() -> None:
    with pytest.raises(ConfigError, match="fusion"):
        Dataflow(fusion="everything")
    with pytest.raises(ConfigError, match="legacy order"):
        Dataflow(order="legacy")
    with pytest.raises(ConfigError, match="backward"):
        Dataflow(backward="twice")
    with pytest.raises(ConfigError, match="resident_bytes"):
        Dataflow(resident_bytes=-1)


def test_update_task_attributes(legacy18) -> None:
    t = legacy18.dag.nodes["update:conv1.weight"]
    n = 64 * 3 * 7 * 7
    assert t["numel"] == n
    assert t["roles"] == {"weight": 4 * n, "grad": 2 * n, "momentum": 4 * n,
                          "weight_copy": 2 * n}
    assert t["read_bytes"] == t["write_bytes"] == 10 * n
    assert {a.tensor for a in t["reads"]} == {"conv1.weight/grad", "conv1.weight/weight",
                                               "conv1.weight/momentum"}
    # Forward reads the fp16 weight copy, weight gradient writes the fp16 gradient.
    fwd = legacy18.dag.nodes["fwd:conv1"]
    assert ("conv1.weight/weight_copy", 0, 2 * n) in fwd["reads"]
    bw = legacy18.dag.nodes["bwd_weight:conv1"]
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


@pytest.mark.parametrize("flow", [Dataflow(), Dataflow.legacy()], ids=["fused", "legacy"])
def test_tied_embedding_update_waits_for_both_users(flow: Dataflow) -> None:
    s = expand_training(workloads.get_workload("gpt2", batch=1, seq_len=8), dataflow=flow)
    raw = {p for p in s.dag.predecessors("update:wte.weight")
           if "raw:wte.weight/grad" in s.dag.edges[p, "update:wte.weight"]["hazards"]}
    prefix = "bwd:" if flow.order == "autograd" else "bwd_weight:"
    assert raw == {f"{prefix}wte", f"{prefix}lm_head"}
    assert "bwd_data:wte" not in s.dag  # token ids need no gradient


@pytest.mark.parametrize("fusion", ["none", "elementwise", "bn-fission", "full"])
def test_every_workload_expands_acyclic(fusion: str) -> None:
    for w in workloads.list_workloads():
        g = workloads.get_workload(w.name, batch=1, seq_len=8 if w.is_sequence else None)
        s = expand_training(g, dataflow=Dataflow(fusion=fusion, resident_bytes=1 << 20))
        assert nx.is_directed_acyclic_graph(s.dag)
        assert sorted(s.program) == sorted(s.dag.nodes)
        pos = {t: i for i, t in enumerate(s.program)}
        assert all(pos[u] < pos[v] for u, v in s.dag.edges), w.name  # edges follow the order
        for _, d in s.dag.nodes(data=True):
            for acc in d["reads"] + d["writes"]:
                spec = s.tensors[acc.tensor]
                assert acc.offset >= 0 and acc.offset + acc.nbytes <= spec.nbytes
