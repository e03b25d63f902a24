"""ONNX model -> workload graph (optional extra: ``pip install onnx``).

Only the structure is read: operator types, attributes, initializer *shapes* (initializers are
the trainable parameters) and the static shapes that ONNX shape inference derives.  Weight
values are never needed, so a model exported with dummy or zero weights imports the same.

Mapping (ONNX op -> schema op): Conv -> conv2d; Gemm, and MatMul with an initializer operand
(optionally followed by Add of a 1-D initializer, the bias PyTorch exports separately) -> linear
with its weight in ``[out, in]`` layout; MatMul of two activations -> matmul;
BatchNormalization -> batchnorm (scale and bias are parameters, running statistics are not);
LayerNormalization -> layernorm; Relu/Gelu/Tanh/Sigmoid -> activations; Clip(0, 6) -> relu6;
Add/Sub and Mul/Div -> add and mul; MaxPool/AveragePool/GlobalAveragePool -> pool; Softmax;
Gather from an initializer -> embedding; LSTM -> lstm (one direction); Flatten/Reshape/Squeeze/
Unsqueeze/Identity/Dropout -> reshape views.  Any other op keeps its lowercase name and is
costed as elementwise work on its inferred output shape.  Nodes computing only on constants
(shape arithmetic) are folded away.  Errors name the ONNX node.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import networkx as nx

from gradpimsim.graph.builder import GraphBuilder, Tensor
from gradpimsim.graph.schema import ELEMENTWISE_FLOPS, GraphError, numel

ACTIVATIONS = {"Relu": "relu", "Gelu": "gelu", "Tanh": "tanh", "Sigmoid": "sigmoid"}
VIEWS = ("Flatten", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Dropout")


def _require_onnx() -> Any:
    try:
        import onnx
    except ModuleNotFoundError:
        raise GraphError("onnx", "ONNX import needs the optional 'onnx' package "
                                 "(pip install onnx)") from None
    return onnx


class _Ctx:
    def __init__(self, onnx: Any, model: Any, source: str, batch: int | None) -> None:
        self.onnx, self.source = onnx, source
        g = model.graph
        self.inits = {t.name: t for t in g.initializer}
        self.consts: dict[str, Any] = {}
        self.shapes: dict[str, list[int] | None] = {}
        for vi in list(g.input) + list(g.value_info) + list(g.output):
            self.shapes[vi.name] = self._dims(vi)
        first = next((vi for vi in g.input if vi.name not in self.inits), None)
        if first is None:
            raise GraphError(source, "the model has no non-initializer input")
        in_shape = self.shapes.get(first.name) or []
        self.b = GraphBuilder(g.name or Path(source).stem or "onnx",
                              batch or (in_shape[0] if in_shape and in_shape[0] > 0 else 1))
        self.tensors: dict[str, Tensor] = {}
        self.batch = batch

    @staticmethod
    def _dims(vi: Any) -> list[int] | None:
        t = vi.type.tensor_type
        if not t.HasField("shape"):
            return None
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
        return dims

    def const_value(self, name: str) -> Any:
        if name in self.consts:
            return self.consts[name]
        if name in self.inits:
            return self.onnx.numpy_helper.to_array(self.inits[name])
        return None

    def init_shape(self, name: str, where: str) -> list[int]:
        if name not in self.inits:
            raise GraphError(where, f"operand {name!r} must be an initializer (a trainable "
                                    "parameter), not a computed tensor")
        return list(self.inits[name].dims)

    def shape_of(self, name: str, where: str) -> list[int]:
        s = self.shapes.get(name)
        if not s or any(d < 1 for d in s):
            raise GraphError(where, f"the static shape of {name!r} is unknown; export the "
                                    "model with fixed input shapes")
        return s


def _attrs(node: Any, onnx: Any) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def import_onnx(model: str | Path | Any, *, batch: int | None = None,
                name: str | None = None) -> nx.DiGraph:
    """Import an ONNX file (or ``ModelProto``) as a schema-valid workload graph."""
    onnx = _require_onnx()
    source = "onnx model"
    if isinstance(model, (str, Path)):
        source = str(model)
        try:
            model = onnx.load(str(model), load_external_data=False)
        except FileNotFoundError:
            raise GraphError(source, "no such file") from None
        except Exception as exc:  # protobuf raises DecodeError and friends
            raise GraphError(source, f"not a readable ONNX model ({type(exc).__name__})") from None
    if batch is not None:
        for vi in model.graph.input:
            dims = vi.type.tensor_type.shape.dim
            if dims and not dims[0].HasField("dim_value"):
                dims[0].dim_value = batch
    try:
        model = onnx.shape_inference.infer_shapes(model)
    except Exception as exc:
        raise GraphError(source, f"ONNX shape inference failed: {exc}") from None
    ctx = _Ctx(onnx, model, source, batch)
    if name:
        ctx.b.g.graph["name"] = name
    g = model.graph
    for vi in g.input:
        if vi.name in ctx.inits:
            continue
        shape = ctx.shape_of(vi.name, f"input {vi.name!r}")
        elem = vi.type.tensor_type.elem_type
        dtype = "int64" if elem == onnx.TensorProto.INT64 else (
            "int32" if elem == onnx.TensorProto.INT32 else "fp32")
        ctx.tensors[vi.name] = ctx.b.input(vi.name, shape, dtype)
    consumers: dict[str, list[Any]] = {}
    for node in g.node:
        for x in node.input:
            consumers.setdefault(x, []).append(node)
    folded: set[int] = set()  # ids of Add nodes merged into the preceding MatMul
    used_names: set[str] = set(ctx.tensors)
    for i, node in enumerate(g.node):
        if id(node) in folded:
            continue
        nid = node.name or f"{node.op_type}_{i}"
        while nid in used_names:
            nid = f"{nid}_{i}"
        used_names.add(nid)
        where = f"node {nid!r} ({node.op_type})"
        acts = [x for x in node.input if x in ctx.tensors]
        if not acts:
            if node.op_type == "Constant":
                val = _attrs(node, onnx).get("value")
                ctx.consts[node.output[0]] = (onnx.numpy_helper.to_array(val)
                                              if val is not None else None)
            continue  # constant folding: shape arithmetic and the like
        for x in node.input:
            if x and x not in ctx.tensors and x not in ctx.inits and x not in ctx.consts:
                raise GraphError(where, f"input {x!r} is produced by no earlier node")
        try:
            out = _convert(ctx, node, nid, where, consumers, folded)
        except GraphError as exc:
            if exc.where.startswith("node "):
                raise
            raise GraphError(where, exc.message) from None
        ctx.tensors[node.output[0]] = out
        for extra in node.output[1:]:
            if extra and consumers.get(extra):
                raise GraphError(where, f"output {extra!r} is used, but only the first output "
                                        "of an op is supported")
    return ctx.b.build()


def _convert(ctx: _Ctx, node: Any, nid: str, where: str, consumers: dict[str, list[Any]],
             folded: set[int]) -> Tensor:
    b, op, onnx = ctx.b, node.op_type, ctx.onnx
    at = _attrs(node, onnx)
    ins = list(node.input)
    x = ctx.tensors.get(ins[0]) if ins else None
    out_name = node.output[0]
    if op == "Conv":
        w = ctx.init_shape(ins[1], where)
        if at.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise GraphError(where, "auto_pad is not supported; export explicit pads")
        pads = list(at.get("pads", [0] * 4))
        if len(pads) != 4 or pads[0] != pads[2] or pads[1] != pads[3]:
            raise GraphError(where, f"only symmetric 2-D padding is supported, got {pads}")
        dil = list(at.get("dilations", [1, 1]))
        if dil[0] != dil[1]:
            raise GraphError(where, f"only equal dilations are supported, got {dil}")
        has_bias = len(ins) > 2 and bool(ins[2])
        return b.conv2d(x, nid, w[0], (w[2], w[3]), tuple(at.get("strides", [1, 1])),
                        (pads[0], pads[1]), groups=int(at.get("group", 1)), bias=has_bias,
                        dilation=dil[0])
    if op == "Gemm":
        if at.get("transA", 0):
            raise GraphError(where, "transA=1 is not supported")
        w = ctx.init_shape(ins[1], where)
        out_features = w[0] if at.get("transB", 0) else w[1]
        return b.linear(x, nid, out_features, bias=len(ins) > 2 and bool(ins[2]))
    if op == "MatMul":
        if ins[1] in ctx.tensors:
            return b.matmul(x, ctx.tensors[ins[1]], nid)
        w = ctx.init_shape(ins[1], where)
        if len(w) != 2:
            raise GraphError(where, f"a MatMul weight must be 2-D, got shape {w}")
        users = consumers.get(out_name, [])
        bias = False
        if len(users) == 1 and users[0].op_type == "Add":
            other = [y for y in users[0].input if y != out_name]
            if len(other) == 1 and other[0] in ctx.inits and list(ctx.inits[other[0]].dims) == [
                    w[1]]:
                bias = True
                folded.add(id(users[0]))
        t = b.linear(x, nid, w[1], bias=bias)
        if bias:
            ctx.tensors[users[0].output[0]] = t
        return t
    if op == "BatchNormalization":
        return b.batchnorm(x, nid)
    if op == "LayerNormalization":
        return b.layernorm(x, nid)
    if op in ACTIVATIONS:
        return b.act(x, nid, ACTIVATIONS[op])
    if op == "Clip":
        lo = ctx.const_value(ins[1]) if len(ins) > 1 and ins[1] else at.get("min")
        hi = ctx.const_value(ins[2]) if len(ins) > 2 and ins[2] else at.get("max")
        if lo is not None and hi is not None and float(lo) == 0.0 and float(hi) == 6.0:
            return b.act(x, nid, "relu6")
        return _generic(ctx, node, nid, where, "clip")
    if op in ("Add", "Sub", "Mul", "Div"):
        kind = "add" if op in ("Add", "Sub") else "mul"
        acts = [ctx.tensors[y] for y in ins if y in ctx.tensors]
        if len(acts) == 2:
            if acts[0].node == acts[1].node:
                raise GraphError(where, "an op reading the same tensor twice is not supported")
            if kind == "add":
                return b.add(acts[0], acts[1], nid)
            t = b.add(acts[0], acts[1], nid)  # same shape rule; fix the op name
            b.g.nodes[nid]["op"] = "mul"
            return t
        return _generic(ctx, node, nid, where, kind)
    if op in ("MaxPool", "AveragePool"):
        k = list(at.get("kernel_shape", [1, 1]))
        s = list(at.get("strides", k))
        pads = list(at.get("pads", [0] * 4))
        if k[0] != k[1] or s[0] != s[1] or len(set(pads)) > 1:
            raise GraphError(where, "only square kernels, strides and uniform pads are supported")
        return b.pool(x, nid, "max" if op == "MaxPool" else "avg", k[0], s[0], pads[0])
    if op == "GlobalAveragePool":
        return b.adaptive_avgpool(x, nid, 1)
    if op == "Softmax":
        return b.softmax(x, nid, int(at.get("axis", -1)))
    if op == "Gather" and ins[0] in ctx.inits and ins[1] in ctx.tensors:
        w = ctx.init_shape(ins[0], where)
        if len(w) != 2 or at.get("axis", 0) != 0:
            raise GraphError(where, "only a 2-D table gathered on axis 0 is an embedding")
        return b.embedding(ctx.tensors[ins[1]], nid, w[0], w[1])
    if op in VIEWS:
        shape = ctx.shape_of(out_name, where)
        return b.reshape(x, nid, shape)
    if op == "LSTM":
        return _lstm(ctx, node, nid, where, at)
    return _generic(ctx, node, nid, where, op.lower())


def _lstm(ctx: _Ctx, node: Any, nid: str, where: str, at: dict[str, Any]) -> Tensor:
    ins = list(node.input)
    w = ctx.init_shape(ins[1], where)
    ctx.init_shape(ins[2], where)
    if w[0] != 1:
        raise GraphError(where, "only single-direction LSTMs are supported")
    hidden, in_size = w[1] // 4, w[2]
    params: dict[str, list[int]] = {"weight_ih": [4 * hidden, in_size],
                                    "weight_hh": [4 * hidden, hidden]}
    if len(ins) > 3 and ins[3]:
        params |= {"bias_ih": [4 * hidden], "bias_hh": [4 * hidden]}
    x = ctx.tensors[ins[0]]
    seq, bsz = (x.shape[1], x.shape[0]) if at.get("layout", 0) else (x.shape[0], x.shape[1])
    flops = 2 * bsz * seq * 4 * hidden * (in_size + hidden) + 10 * bsz * seq * hidden
    shape = ctx.shape_of(node.output[0], where)
    return ctx.b.node(nid, "lstm", [x], shape, params=params, flops=flops, hidden=hidden,
                      input_size=in_size, layout=int(at.get("layout", 0)))


def _generic(ctx: _Ctx, node: Any, nid: str, where: str, op: str) -> Tensor:
    acts = []
    for y in node.input:
        t = ctx.tensors.get(y)
        if t is not None and all(t.node != a.node for a in acts):
            acts.append(t)
    shape = ctx.shape_of(node.output[0], where)
    per = ELEMENTWISE_FLOPS.get(op, 1)
    return ctx.b.node(nid, op, acts, shape, flops=per * numel(shape), onnx_op=node.op_type,
                      const_inputs=sum(1 for y in node.input if y and y not in ctx.tensors))


__all__ = ["import_onnx"]
