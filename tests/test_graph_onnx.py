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

from gradpimsim.graph.importers.onnx import OnnxImportWarning, import_onnx  # noqa: E402


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


# -- what exporters write (synthetic graphs: these run wherever onnx is installed) ------------

def _model(nodes: list, inputs: list, inits: list, outputs: list | None = None,
           metadata: dict[str, str] | None = None, domains: tuple[str, ...] = ()
           ) -> onnx.ModelProto:
    outs = outputs or [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT,
                                                     None)]
    graph = helper.make_graph(nodes, "t", inputs, outs, inits)
    for k, v in (metadata or {}).items():
        graph.metadata_props.add(key=k, value=v)
    opsets = [helper.make_opsetid("", 18)] + [helper.make_opsetid(d, 1) for d in domains]
    return helper.make_model(graph, opset_imports=opsets)


def _x(shape: list[int], name: str = "x") -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _values(name: str, arr) -> TensorProto:
    return numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name)


def _meta(node: onnx.NodeProto, **props: str) -> onnx.NodeProto:
    for k, v in props.items():
        node.metadata_props.add(key=k.replace("__", "."), value=v)
    return node


def _conv_relu_conv(bias2: str, extra_nodes: list, inits: list) -> onnx.ModelProto:
    nodes = extra_nodes + [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", bias2], ["c2"], name="conv2",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
    ]
    rng = np.random.default_rng(0)
    return _model(nodes, [_x([1, 3, 8, 8])],
                  [_values("w1", rng.normal(size=(4, 3, 3, 3))),
                   _values("w2", rng.normal(size=(4, 4, 3, 3)))] + inits)


def test_identity_deduplicated_initializers_are_distinct_parameters() -> None:
    """The legacy exporter keeps one of several equal initializers and re-creates the others
    with Identity nodes (main failed: "input 'b2' is produced by no earlier node")."""
    model = _conv_relu_conv("b2", [helper.make_node("Identity", ["b1"], ["b2"], name="dedup")],
                            [_values("b1", np.arange(4))])  # equal, not uniform: not a tie
    g = import_onnx(model)
    assert g.nodes["conv2"]["params"]["bias"]["shape"] == [4]
    assert "shared_params" not in g.nodes["conv2"]
    assert param_count(g) == 4 * 27 + 4 + 4 * 36 + 4


def test_one_initializer_read_by_two_layers_is_a_copy_or_a_tie() -> None:
    """The dynamo optimizer lets layers read one initializer when values are equal (zero
    biases, unit scales): copies, each counted.  A random matrix read twice is tied (GPT-2's
    LM head): counted once, the second reader shares it."""
    dedup = _conv_relu_conv("b1", [], [_values("b1", np.zeros(4))])
    assert param_count(import_onnx(dedup)) == 4 * 27 + 4 + 4 * 36 + 4
    rng = np.random.default_rng(1)
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, [2, 5])
    nodes = [helper.make_node("Gather", ["wte", "ids"], ["e"], name="wte"),
             helper.make_node("Transpose", ["wte"], ["wte_t"], name="t", perm=[1, 0]),
             helper.make_node("MatMul", ["e", "wte_t"], ["logits"], name="lm_head")]
    tied = import_onnx(_model(nodes, [ids], [_values("wte", rng.normal(size=(50, 8)))]))
    assert tied.nodes["lm_head"]["shared_params"] == {"weight": "wte.weight"}
    assert tied.nodes["lm_head"]["out_shape"] == [2, 5, 50]
    assert param_count(tied) == 50 * 8


def test_unoptimized_dynamo_zero_bias_is_not_a_parameter() -> None:
    """``optimize=False`` exports give a bias-free conv a zero bias computed from the input's
    type (CastLike) and the weight's shape (main failed: "static shape of 'val_4' is
    unknown")."""
    consts = [
        helper.make_node("Shape", ["w2"], ["w_shape"], name="shape", start=0, end=1),
        helper.make_node("Constant", [], ["zero"], name="zero",
                         value=numpy_helper.from_array(np.array(0.0, dtype=np.float64))),
        helper.make_node("CastLike", ["zero", "x"], ["zero_f"], name="castlike"),
        helper.make_node("Expand", ["zero_f", "w_shape"], ["b2"], name="expand"),
    ]
    model = _conv_relu_conv("b2", consts, [_values("b1", np.ones(4))])
    g = import_onnx(model)
    assert set(g) == {"x", "conv1", "relu1", "conv2"}  # the bias arithmetic folded away
    assert "bias" not in g.nodes["conv2"]["params"]
    assert param_count(g) == 4 * 27 + 4 + 4 * 36


def test_shapes_inference_leaves_open_come_from_op_semantics() -> None:
    """An op of another domain stops ONNX shape inference; the importer continues from the
    op's semantics (elementwise FastGelu keeps its input's shape, MatMul, Reshape)."""
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
             helper.make_node("FastGelu", ["h"], ["a"], name="act", domain="com.microsoft"),
             helper.make_node("MatMul", ["a", "w2"], ["o"], name="fc2"),
             helper.make_node("Reshape", ["o", "heads"], ["y"], name="split_heads")]
    model = _model(nodes, [_x([2, 8, 16])],
                   [_values("w1", np.ones((16, 32))), _values("w2", np.ones((32, 16))),
                    numpy_helper.from_array(np.array([0, 0, 4, -1]), "heads")],
                   domains=("com.microsoft",))
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    assert "a" not in {v.name for v in inferred.graph.value_info}  # ONNX gave up here
    g = import_onnx(model)
    assert g.nodes["act"]["out_shape"] == [2, 8, 32]
    assert g.nodes["fc2"]["op"] == "linear" and g.nodes["fc2"]["out_shape"] == [2, 8, 16]
    assert g.nodes["split_heads"]["out_shape"] == [2, 8, 4, 4]
    assert g.nodes["fc2"]["flops"] == 2 * 16 * 32 * 16


def test_constant_indices_gather_becomes_an_input() -> None:
    """BERT's position embeddings gather a buffer's constant ids: the table stays a
    parameter, the ids become an int64 input (as in the built-in zoo)."""
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, [2, 4])
    nodes = [helper.make_node("Gather", ["tok", "ids"], ["e"], name="tok"),
             helper.make_node("Gather", ["pos", "pos_ids"], ["p"], name="pos"),
             helper.make_node("Add", ["e", "p"], ["y"], name="add")]
    g = import_onnx(_model(nodes, [ids], [
        _values("tok", np.ones((30, 8))), _values("pos", np.ones((16, 8))),
        numpy_helper.from_array(np.arange(4, dtype=np.int64).reshape(1, 4), "pos_ids")]))
    assert g.nodes["pos"]["op"] == "embedding"
    assert g.nodes["pos.indices"]["op"] == "input"
    assert g.nodes["pos.indices"]["out_dtype"] == "int64"
    assert g.nodes["add"]["out_shape"] == [2, 4, 8]
    assert param_count(g) == 30 * 8 + 16 * 8


def _fused_export(signature: list[str], bias: str | None) -> onnx.ModelProto:
    """A conv the dynamo optimizer fused a BatchNorm into, with the metadata it writes."""
    conv = helper.make_node("Conv", ["x", "c1.weight"] + ([bias] if bias else []), ["y"],
                            name="node_Conv_7", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    _meta(conv, pkg__onnxscript__rewriter__rule_name="FuseBatchNormIntoConv",
          pkg__torch__onnx__name_scopes="['', 'b1', '_native_batch_norm_legit_no_training']")
    sig = "\n# inputs\n" + "".join(f"p_{n.replace('.', '_')}: PARAMETER target='{n}'\n"
                                   for n in signature) + "x: USER_INPUT\n"
    inits = [_values("c1.weight", np.ones((4, 3, 3, 3)))] + (
        [_values(bias, np.ones(4))] if bias else [])
    return _model([conv], [_x([1, 3, 8, 8])], inits,
                  metadata={"pkg.torch.export.ExportedProgram.graph_signature": sig})


def test_batchnorm_fused_by_the_dynamo_optimizer_is_restored() -> None:
    with pytest.warns(OnnxImportWarning, match="restored 1 BatchNorm layer .8 parameters"):
        g = import_onnx(_fused_export(["c1.weight", "b1.weight", "b1.bias"], "c1.weight_bias"))
    assert g.nodes["c1"]["params"] == {"weight": {"shape": [4, 3, 3, 3], "dtype": "fp32"}}
    assert g.nodes["b1"]["op"] == "batchnorm" and list(g.predecessors("b1")) == ["c1"]
    assert param_count(g) == 108 + 8
    # A conv that had its own bias keeps it (the signature lists it).
    with pytest.warns(OnnxImportWarning):
        g = import_onnx(_fused_export(["c1.weight", "c1.bias", "b1.weight", "b1.bias"],
                                      "c1.bias"))
    assert param_count(g) == 108 + 4 + 8


@pytest.mark.filterwarnings("ignore:.*restored 1 BatchNorm")
def test_parameter_the_export_lists_but_the_graph_lacks_is_named() -> None:
    with pytest.warns(OnnxImportWarning, match="1 parameter the export lists is not in the "
                                               "graph .'wpe.weight'"):
        import_onnx(_fused_export(["c1.weight", "b1.weight", "b1.bias", "wpe.weight"], None))


def test_legacy_folded_batchnorm_warns_exactly_or_restores() -> None:
    """torch.onnx.export(dynamo=False) folds BatchNorm into convs in eval mode, leaving only
    computed weights named ``onnx::Conv_N``: the warning says how far the count is off."""
    conv = helper.make_node("Conv", ["x", "onnx::Conv_5", "onnx::Conv_6"], ["y"],
                            name="/c1/Conv", kernel_shape=[3, 3])
    model = _model([conv], [_x([1, 3, 8, 8])], [_values("onnx::Conv_5", np.ones((4, 3, 3, 3))),
                                                _values("onnx::Conv_6", np.ones(4))])
    with pytest.warns(OnnxImportWarning) as rec:
        g = import_onnx(model)
    msg = str(rec[0].message)
    assert param_count(g) == 108 + 4
    assert "'/c1/Conv'" in msg and "8 parameters are missing" in msg
    assert "4 fewer than the model's (116)" in msg and "8 fewer (120)" in msg
    with pytest.warns(OnnxImportWarning, match="restored a BatchNorm after each"):
        g = import_onnx(model, folded_batchnorm="restore")
    assert param_count(g) == 108 + 8
    assert g.nodes["/c1/Conv.bn"]["op"] == "batchnorm"
    with pytest.raises(GraphError, match="folded_batchnorm"):
        import_onnx(model, folded_batchnorm="maybe")


def test_split_to_sequence_pieces_are_slices() -> None:
    nodes = [helper.make_node("SplitToSequence", ["x", "three"], ["seq"], name="split", axis=2),
             helper.make_node("SequenceAt", ["seq", "one"], ["k"], name="take_k"),
             helper.make_node("Relu", ["k"], ["y"], name="relu")]
    g = import_onnx(_model(nodes, [_x([2, 4, 9])], [
        numpy_helper.from_array(np.array(3, dtype=np.int64), "three"),
        numpy_helper.from_array(np.array(1, dtype=np.int64), "one")]))
    assert g.nodes["take_k"]["op"] == "slice"
    assert g.nodes["take_k"]["attrs"]["start"] == 3 and g.nodes["relu"]["out_shape"] == [2, 4, 3]
