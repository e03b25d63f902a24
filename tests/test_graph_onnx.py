"""ONNX import: a model exported here from a built-in graph imports back to the same graph."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest

import workloads
from gradpimsim.graph import GraphError, param_count

onnx = pytest.importorskip("onnx")
np = pytest.importorskip("numpy")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from gradpimsim.graph.importers.onnx import import_onnx  # noqa: E402


def _init(name: str, shape: list[int]) -> TensorProto:
    return numpy_helper.from_array(np.zeros(shape, dtype=np.float32), name)


def export(g: nx.DiGraph, matmul_linear: bool = False) -> onnx.ModelProto:
    """Write a built-in CNN/MLP graph as ONNX the way torch.onnx would (zero weights)."""
    nodes, inits = [], [_init("relu6_min", []), _init("relu6_max", [])]
    inits[1] = numpy_helper.from_array(np.array(6.0, dtype=np.float32), "relu6_max")
    inputs = []
    for n, d in g.nodes(data=True):
        a = d["attrs"]
        src = [u for u, _, _ in sorted(g.in_edges(n, data="index"), key=lambda e: e[2])]
        p = {k: f"{n}.{k}" for k in d["params"]}
        for k, spec in d["params"].items():
            inits.append(_init(p[k], spec["shape"]))
        op = d["op"]
        if op == "input":
            inputs.append(helper.make_tensor_value_info(n, TensorProto.FLOAT, d["out_shape"]))
        elif op == "conv2d":
            ins = [src[0], p["weight"]] + ([p["bias"]] if "bias" in p else [])
            nodes.append(helper.make_node(
                "Conv", ins, [n], name=n, kernel_shape=a["kernel"], strides=a["stride"],
                pads=a["padding"] * 2, group=a["groups"]))
        elif op == "batchnorm":
            c = d["out_shape"][1]
            inits += [_init(f"{n}.running_mean", [c]), _init(f"{n}.running_var", [c])]
            nodes.append(helper.make_node(
                "BatchNormalization", [src[0], p["weight"], p["bias"], f"{n}.running_mean",
                                       f"{n}.running_var"], [n], name=n))
        elif op == "relu":
            nodes.append(helper.make_node("Relu", src, [n], name=n))
        elif op == "relu6":
            nodes.append(helper.make_node("Clip", [src[0], "relu6_min", "relu6_max"], [n],
                                          name=n))
        elif op == "add":
            nodes.append(helper.make_node("Add", src, [n], name=n))
        elif op == "pool" and a.get("adaptive"):
            nodes.append(helper.make_node("GlobalAveragePool", src, [n], name=n))
        elif op == "pool":
            nodes.append(helper.make_node(
                "MaxPool" if a["mode"] == "max" else "AveragePool", src, [n], name=n,
                kernel_shape=a["kernel"], strides=a["stride"], pads=a["padding"] * 2))
        elif op == "reshape":
            nodes.append(helper.make_node("Flatten", src, [n], name=n, axis=1))
        elif op == "linear" and matmul_linear:
            # torch exports Linear on >2-D inputs as MatMul(x, W^T) + Add(bias).
            wt = f"{n}.weight_t"
            out_f, in_f = d["params"]["weight"]["shape"]
            inits[-2] = _init(wt, [in_f, out_f])
            nodes.append(helper.make_node("MatMul", [src[0], wt], [f"{n}.mm"], name=n))
            nodes.append(helper.make_node("Add", [f"{n}.mm", p["bias"]], [n], name=f"{n}.add"))
        elif op == "linear":
            nodes.append(helper.make_node("Gemm", [src[0], p["weight"], p["bias"]], [n],
                                          name=n, transB=1))
        else:
            raise AssertionError(f"test exporter lacks {op}")
    sinks = [n for n in g if g.out_degree(n) == 0]
    outputs = [helper.make_tensor_value_info(s, TensorProto.FLOAT, None) for s in sinks]
    graph = helper.make_graph(nodes, g.graph["name"], inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def structure(g: nx.DiGraph) -> tuple[dict, set]:
    nodes = {n: (d["op"], d["in_shapes"], d["out_shape"], d["params"], d["flops"])
             for n, d in g.nodes(data=True)}
    return nodes, {(u, v, d["index"]) for u, v, d in g.edges(data=True)}


def test_mobilenetv2_onnx_round_trip(tmp_path: Path) -> None:
    g = workloads.get_workload("mobilenetv2", batch=1)
    path = tmp_path / "mobilenetv2.onnx"
    onnx.save(export(g), str(path))
    imported = import_onnx(path)
    assert structure(imported) == structure(g)
    assert param_count(imported) == 3_504_872


def test_mlp_matmul_add_folds_into_linear() -> None:
    g = workloads.get_workload("mlp", batch=4)
    imported = import_onnx(export(g, matmul_linear=True))
    nodes, _ = structure(imported)
    ref, _ = structure(g)
    assert {n: v[:4] for n, v in nodes.items()} == {n: v[:4] for n, v in ref.items()}
    assert param_count(imported) == param_count(g)


def test_unreadable_file_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00\xffnot a protobuf at all" * 10)
    with pytest.raises(GraphError, match="bad.onnx"):
        import_onnx(bad)
    with pytest.raises(GraphError, match="no such file"):
        import_onnx(tmp_path / "missing.onnx")


def test_conv_with_computed_weight_names_node() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    w = helper.make_tensor_value_info("w", TensorProto.FLOAT, [4, 3, 3, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv_a", kernel_shape=[3, 3])
    model = helper.make_model(helper.make_graph([node], "t", [x, w], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(GraphError, match="'conv_a'.*initializer"):
        import_onnx(model)


def test_symbolic_batch_needs_batch_argument() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    model = helper.make_model(
        helper.make_graph([helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="fc",
                                            transB=1)],
                          "t", [x], [y], [_init("w", [8, 16]), _init("b", [8])]),
        opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(GraphError, match="'x'.*unknown"):
        import_onnx(model)
    g = import_onnx(model, batch=5)
    assert g.nodes["fc"]["out_shape"] == [5, 8]
    assert g.nodes["fc"]["params"]["weight"]["shape"] == [8, 16]


def test_attention_like_ops() -> None:
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, [2, 6])
    out = helper.make_tensor_value_info("probs", TensorProto.FLOAT, None)
    nodes = [
        helper.make_node("Gather", ["emb", "ids"], ["x"], name="wte"),
        helper.make_node("LayerNormalization", ["x", "ln_w", "ln_b"], ["h"], name="ln"),
        helper.make_node("MatMul", ["h", "wq"], ["q0"], name="q"),
        helper.make_node("Add", ["q0", "bq"], ["q"], name="q_bias"),
        helper.make_node("Transpose", ["h"], ["ht"], name="kT", perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "ht"], ["s"], name="scores"),
        helper.make_node("Softmax", ["s"], ["probs"], name="softmax", axis=-1),
    ]
    inits = [_init("emb", [50, 8]), _init("ln_w", [8]), _init("ln_b", [8]), _init("wq", [8, 8]),
             _init("bq", [8])]
    model = helper.make_model(helper.make_graph(nodes, "attn", [ids], [out], inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    g = import_onnx(model)
    ops = {n: d["op"] for n, d in g.nodes(data=True)}
    assert ops == {"ids": "input", "wte": "embedding", "ln": "layernorm", "q": "linear",
                   "kT": "transpose", "scores": "matmul", "softmax": "softmax"}
    assert g.nodes["q"]["params"] == {"weight": {"shape": [8, 8], "dtype": "fp32"},
                                      "bias": {"shape": [8], "dtype": "fp32"}}
    assert g.nodes["scores"]["out_shape"] == [2, 6, 6]
    assert g.nodes["ids"]["out_dtype"] == "int64"
    assert param_count(g) == 50 * 8 + 16 + 64 + 8
