"""ONNX model -> workload graph (optional extra: ``pip install onnx``).

Takes what PyTorch users have: exports of the legacy TorchScript exporter
(``torch.onnx.export(..., dynamo=False)``, eval or training mode) and of the dynamo exporter
(the default of recent PyTorch, optimized or ``optimize=False``), as well as hand-written
models.  Only the structure is read: operator types, attributes, initializer shapes and the
static shapes that shape inference derives (:mod:`.onnx_model` explains how activations,
parameters and shapes are told apart).  Weight values are read only to tell a deduplicated
copy from a tied weight (:meth:`OnnxModel.uniform`), so a model exported with random weights
imports the same as a trained one.

Mapping (ONNX op -> schema op): Conv -> conv2d; Gemm, and MatMul with a parameter operand
(optionally followed by Add of a 1-D parameter, the bias PyTorch exports separately) -> linear
with its weight in ``[out, in]`` layout; MatMul of two activations -> matmul;
BatchNormalization -> batchnorm (scale and bias are parameters, running statistics are not);
LayerNormalization -> layernorm; Relu/Gelu/Tanh/Sigmoid -> activations; Clip(0, 6) -> relu6;
Add/Sub and Mul/Div -> add and mul; MaxPool/AveragePool/GlobalAveragePool and ReduceMean over
H and W -> pool; Softmax; Gather from a parameter -> embedding (constant indices, such as BERT's
position ids, become an ``int64`` graph input as in the built-in zoo); Split -> slices;
LSTM -> lstm (one direction); Flatten/Reshape/Squeeze/Unsqueeze/Identity/Dropout -> reshape
views.  Any other op keeps its lowercase name and is costed as elementwise work on its output
shape.  Nodes computing only on constants (shape arithmetic) are folded away.  Layers owning
parameters are named after their PyTorch module where the export says it (dynamo exports'
metadata, or a parameter named ``<module>.weight``), so parameter ids read like ``state_dict``
keys.  Errors name the ONNX node.

BatchNorm folded away by the exporter
-------------------------------------
* The dynamo exporter's optimizer fuses BatchNorm into the preceding convolution or linear
  layer and drops biases that are zero; the export's metadata still says so (rule names, the
  BatchNorm module, the parameter list of ``torch.export``'s signature).  The importer restores
  the BatchNorm layers and the dropped biases, so the parameter count is the model's, and
  warns (:class:`OnnxImportWarning`) saying what it restored.
* The legacy exporter in eval mode folds BatchNorm into convolutions without a trace except the
  computed weights' names (``onnx::Conv_197``).  The importer warns, naming the layers and
  exactly how far the count is off; ``folded_batchnorm="restore"`` rebuilds a BatchNorm after
  each such convolution instead (assuming, as is usual before BatchNorm, that the convolution
  has no bias of its own).  Re-exporting with ``do_constant_folding=False`` or
  ``training=torch.onnx.TrainingMode.TRAINING`` keeps BatchNorm in the file.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import networkx as nx

from gradpimsim.graph.builder import GraphBuilder, Tensor, conv_out
from gradpimsim.graph.importers.onnx_model import (
    OnnxModel,
    ParamRef,
    load,
    module_scope,
    node_metadata,
    signature_parameters,
)
from gradpimsim.graph.schema import ELEMENTWISE_FLOPS, GraphError, numel

ACTIVATIONS = {"Relu": "relu", "Gelu": "gelu", "Tanh": "tanh", "Sigmoid": "sigmoid"}
VIEWS = ("Flatten", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Dropout")
FOLDED_BN_MODES = ("warn", "restore")


class OnnxImportWarning(UserWarning):
    """The imported graph differs from the exported model in a way the importer could name."""


def _dtype(elem: int | None) -> str:
    return {7: "int64", 6: "int32", 9: "int8", 10: "fp16", 16: "bf16"}.get(elem or 1, "fp32")


class _Ctx:
    """The import in progress: the builder, the tensors made so far, parameter ownership."""

    def __init__(self, m: OnnxModel, batch: int | None, name: str | None,
                 folded_mode: str) -> None:
        self.m, self.folded_mode = m, folded_mode
        first = m.inputs[0] if m.inputs else None
        if first is None:
            raise GraphError(m.source, "the model has no non-initializer input")
        in_shape = m.shapes.get(first.name) or []
        self.b = GraphBuilder(name or m.graph.name or Path(m.source).stem or "onnx",
                              batch or (in_shape[0] if in_shape else 1))
        self.tensors: dict[str, Tensor] = {}
        self.used: set[str] = set()
        self.owner: dict[str, tuple[str, str, str | None]] = {}  # key -> node, slot, scope
        self.signature = signature_parameters(m)
        self.accounted: set[str] = set()  # signature names the graph holds
        self.folded: list[tuple[str, int, str]] = []  # legacy folds: node, channels, weight
        self.restored_bn: list[tuple[str, int]] = []  # dynamo folds undone: bn node, params
        self.restored_bias: list[str] = []  # layers whose dropped zero bias was put back
        self.skip: set[int] = set()  # ids of nodes already converted (a MatMul's bias Add)
        self.sequences: dict[str, tuple[Tensor, int, list[int], bool]] = {}

    # -- names --------------------------------------------------------------------------------
    def unique(self, nid: str) -> str:
        base, i = nid, 1
        while nid in self.used:
            i += 1
            nid = f"{base}#{i}"
        self.used.add(nid)
        return nid

    def layer_name(self, node: Any, default: str, weight: ParamRef | None,
                   fused: bool = False) -> str:
        """A parameter-owning layer's node id: its module path where the export records it."""
        scope = None if fused else module_scope(node)
        if scope is None and weight is not None and weight.key == weight.init:
            stem, dot, tail = weight.init.rpartition(".")
            if dot and tail == "weight" and "::" not in stem:
                scope = stem
        return self.unique(scope or default)

    # -- operands -----------------------------------------------------------------------------
    def ref(self, name: str) -> ParamRef | None:
        return self.m.params.get(name) if name and not self.m.is_active(name) else None

    def need_ref(self, name: str, where: str) -> ParamRef:
        r = self.ref(name)
        if r is None:
            raise GraphError(where, f"operand {name!r} must be an initializer (a trainable "
                                    "parameter), not a computed tensor")
        return r

    def shape_of(self, name: str, where: str) -> list[int]:
        s = self.m.shape(name, self.tensors)
        if not s or any(d < 1 for d in s):
            raise GraphError(where, f"the static shape of {name!r} is unknown; export the "
                                    "model with fixed input shapes")
        return list(s)

    # -- parameters ---------------------------------------------------------------------------
    def own(self, nid: str, slots: dict[str, ParamRef | None], scope: str | None = None) -> None:
        """Record who owns each parameter a new node reads; a later reader of the same
        parameter shares it unless the exporter merely deduplicated equal values."""
        data = self.b.g.nodes[nid]
        for slot, ref in slots.items():
            if ref is None:
                continue
            self.accounted.update({f"{nid}.{slot}", ref.init})
            prev = self.owner.get(ref.key)
            if prev is None:
                self.owner[ref.key] = (nid, slot, scope)
                continue
            same_module = scope is not None and prev[2] == scope
            copy = not same_module and self._duplicate(ref)
            if copy:
                continue
            data["params"].pop(slot, None)
            data.setdefault("shared_params", {})[slot] = f"{prev[0]}.{prev[1]}"

    def _duplicate(self, ref: ParamRef) -> bool:
        """Two layers read one initializer: equal-valued copies, or one tied tensor?"""
        uniform = self.m.uniform(ref.init)
        return len(ref.shape) <= 1 if uniform is None else uniform

    def check_shape(self, t: Tensor, out: str, where: str) -> Tensor:
        """The builder's shape must be the one ONNX inferred, or the mapping is wrong."""
        inferred = self.m.shapes.get(out)
        if inferred is not None and list(inferred) != list(t.shape):
            raise GraphError(where, f"output shape {list(t.shape)} differs from the "
                                    f"{inferred} ONNX infers; this form of the op is not "
                                    "supported")
        return t


def import_onnx(model: str | Path | Any, *, batch: int | None = None,
                name: str | None = None, folded_batchnorm: str = "warn") -> nx.DiGraph:
    """Import an ONNX file (or ``ModelProto``) as a schema-valid workload graph.

    ``batch`` fixes a symbolic batch dimension.  ``folded_batchnorm`` says what to do with
    BatchNorm a legacy eval-mode export folded into convolutions: ``"warn"`` (default) or
    ``"restore"`` (see the module docstring).
    """
    if folded_batchnorm not in FOLDED_BN_MODES:
        raise GraphError("onnx", f"folded_batchnorm must be one of {FOLDED_BN_MODES}, got "
                                 f"{folded_batchnorm!r}")
    m = load(model, batch)
    ctx = _Ctx(m, batch, name, folded_batchnorm)
    for vi in m.inputs:
        shape = ctx.shape_of(vi.name, f"input {vi.name!r}")
        ctx.used.add(vi.name)
        ctx.tensors[vi.name] = ctx.b.input(vi.name, shape, _dtype(m.elem.get(vi.name)))
    for i, node in enumerate(m.graph.node):
        if id(node) in ctx.skip:
            continue
        default = node.name or f"{node.op_type}_{i}"
        where = f"node {default!r} ({node.op_type})"
        active = [x for x in m.data_inputs(node) if m.is_active(x)]
        if not active and not _reads_table(ctx, node):
            continue  # constant folding: shape arithmetic, masks from buffers and the like
        for x in node.input:
            if x and x not in ctx.tensors and x not in m.inits and x not in m.producer:
                raise GraphError(where, f"input {x!r} is produced by no earlier node")
        lost = [x for x in active if x not in ctx.tensors and x not in ctx.sequences]
        if lost:
            raise GraphError(where, f"input {lost[0]!r} comes from an op that was not "
                                    "converted (only its first output is supported)")
        try:
            _convert(ctx, node, default, where)
        except GraphError as exc:
            if exc.where.startswith("node "):
                raise
            raise GraphError(where, exc.message) from None
        for extra in node.output[1:]:
            if extra and extra not in ctx.tensors and m.consumers.get(extra):
                raise GraphError(where, f"output {extra!r} is used, but only the first output "
                                        "of this op is supported")
    g = ctx.b.build()
    from gradpimsim.graph.importers.onnx_folding import report

    for message in report(ctx, g, folded_batchnorm):
        warnings.warn(message, OnnxImportWarning, stacklevel=2)
    return g


def _reads_table(ctx: _Ctx, node: Any) -> bool:
    """A Gather from a parameter table at constant indices (BERT's position embeddings)."""
    return node.op_type == "Gather" and ctx.ref(node.input[0]) is not None \
        and len(ctx.m.params[node.input[0]].shape) == 2


def _convert(ctx: _Ctx, node: Any, default: str, where: str) -> None:
    m, op = ctx.m, node.op_type
    at = m.attrs[id(node)]
    ins = list(node.input)
    out = node.output[0]
    x = ctx.tensors.get(ins[0]) if ins else None
    t: Tensor
    if op == "Conv" and x is not None:
        from gradpimsim.graph.importers.onnx_folding import conv

        t = conv(ctx, node, default, where, x, at)
    elif op == "Gemm" and x is not None and ctx.ref(ins[1]) is not None:
        t = _gemm(ctx, node, default, where, x, at)
    elif op == "MatMul" and x is not None and ins[1] in ctx.tensors:
        t = _matmul(ctx, default, where, x, ctx.tensors[ins[1]], out)
    elif op == "MatMul" and x is not None and ctx.ref(ins[1]) is not None:
        t = _matmul_linear(ctx, node, default, where, x)
    elif op in ("BatchNormalization", "LayerNormalization") and x is not None:
        t = _norm(ctx, node, default, x, at)
    elif op in ACTIVATIONS and x is not None:
        t = ctx.b.act(x, ctx.unique(default), ACTIVATIONS[op])
    elif op == "Clip" and x is not None and _is_relu6(ctx, ins, at):
        t = ctx.b.act(x, ctx.unique(default), "relu6")
    elif op in ("Add", "Sub", "Mul", "Div"):
        t = _binary(ctx, node, default, where)
    elif op in ("MaxPool", "AveragePool") and x is not None:
        t = _pool(ctx, default, where, x, at, op, out)
    elif op == "GlobalAveragePool" and x is not None and len(x.shape) == 4:
        t = ctx.b.adaptive_avgpool(x, ctx.unique(default), 1)
    elif op == "ReduceMean" and x is not None and _spatial_mean(ctx, node, x, at):
        t = ctx.b.adaptive_avgpool(x, ctx.unique(default), 1)
        if not at.get("keepdims", 1):
            t = ctx.b.reshape(t, ctx.unique(f"{default}.squeeze"), list(x.shape[:2]))
    elif op == "Softmax" and x is not None:
        t = ctx.b.softmax(x, ctx.unique(default), int(at.get("axis", -1)))
    elif op == "Gather" and _reads_table(ctx, node):
        t = _embedding(ctx, node, default, where, at)
    elif op == "Split" and x is not None:
        _split(ctx, node, default, where, x, at)
        return
    elif op == "SplitToSequence" and x is not None:
        _split_to_sequence(ctx, node, where, x, at)
        return
    elif op == "SequenceAt" and ins[0] in ctx.sequences:
        t = _sequence_at(ctx, node, default, where)
    elif op in VIEWS and x is not None:
        shape = ctx.shape_of(out, where)
        if numel(shape) == numel(x.shape):
            t = ctx.b.reshape(x, ctx.unique(default), shape)
        else:
            t = _generic(ctx, node, default, where, op.lower())
    elif op == "LSTM" and x is not None:
        t = _lstm(ctx, node, default, where, at)
    else:
        t = _generic(ctx, node, default, where, op.lower())
    ctx.tensors[out] = ctx.check_shape(t, out, where)


def _gemm(ctx: _Ctx, node: Any, default: str, where: str, x: Tensor,
          at: dict[str, Any]) -> Tensor:
    from gradpimsim.graph.importers.onnx_folding import after_gemm

    if at.get("transA", 0):
        raise GraphError(where, "transA=1 is not supported")
    ins = list(node.input)
    w = ctx.need_ref(ins[1], where)
    bias = ctx.ref(ins[2]) if len(ins) > 2 else None
    out_features = w.shape[0] if at.get("transB", 0) else w.shape[1]
    fused = "FuseBatchNormIntoGemm" in node_metadata(node).get(
        "pkg.onnxscript.rewriter.rule_name", "")
    nid = ctx.layer_name(node, default, w, fused)
    has_bias, bias_ref = after_gemm(ctx, node, nid, bias, fused)
    t = ctx.b.linear(x, nid, out_features, bias=has_bias)
    ctx.own(nid, {"weight": w, "bias": bias_ref}, None if fused else module_scope(node))
    ctx.check_shape(t, node.output[0], where)
    from gradpimsim.graph.importers.onnx_folding import restore_bn

    return restore_bn(ctx, node, t) if fused else t


def _matmul(ctx: _Ctx, default: str, where: str, a: Tensor, b: Tensor, out: str) -> Tensor:
    nid = ctx.unique(default)
    if a.node == b.node:
        return _same_twice(ctx, nid, "matmul", a, ctx.shape_of(out, where))
    if len(a.shape) >= 2 and len(b.shape) >= 2 and a.shape[:-2] == b.shape[:-2]:
        return ctx.b.matmul(a, b, nid)
    shape = ctx.shape_of(out, where)
    k = a.shape[-1]
    return ctx.b.node(nid, "matmul", [a, b], shape, flops=2 * numel(shape) * k,
                      transpose_b=False)


def _matmul_linear(ctx: _Ctx, node: Any, default: str, where: str, x: Tensor) -> Tensor:
    """``x @ W`` (+ a following ``Add`` of a 1-D parameter: the bias) as a linear layer."""
    m = ctx.m
    w = ctx.need_ref(node.input[1], where)
    if len(w.shape) != 2:
        raise GraphError(where, f"a MatMul weight must be 2-D, got shape {list(w.shape)}")
    out = node.output[0]
    users = m.consumers.get(out, [])
    bias: ParamRef | None = None
    if len(users) == 1 and users[0].op_type == "Add" and out not in _graph_outputs(m):
        other = [y for y in users[0].input if y != out]
        r = ctx.ref(other[0]) if len(other) == 1 else None
        if r is not None and r.shape == (w.shape[1],):
            bias = r
    nid = ctx.layer_name(node, default, w)
    t = ctx.b.linear(x, nid, w.shape[1], bias=bias is not None)
    ctx.own(nid, {"weight": w, "bias": bias}, module_scope(node))
    if bias is not None:
        ctx.check_shape(t, out, where)
        ctx.skip.add(id(users[0]))
        ctx.tensors[users[0].output[0]] = ctx.check_shape(t, users[0].output[0], where)
    return t


def _graph_outputs(m: OnnxModel) -> set[str]:
    return {o.name for o in m.graph.output}


def _norm(ctx: _Ctx, node: Any, default: str, x: Tensor, at: dict[str, Any]) -> Tensor:
    ins = list(node.input)
    scale = ctx.ref(ins[1]) if len(ins) > 1 else None
    bias = ctx.ref(ins[2]) if len(ins) > 2 else None
    nid = ctx.layer_name(node, default, scale)
    if node.op_type == "BatchNormalization":
        op, dim = "batchnorm", x.shape[1] if len(x.shape) > 1 else x.shape[0]
    else:
        axis = int(at.get("axis", -1)) % len(x.shape)
        op, dim = "layernorm", numel(x.shape[axis:])
    params: dict[str, Sequence[int]] = {
        k: [dim] for k, r in (("weight", scale), ("bias", bias)) if r is not None}
    t = ctx.b.node(nid, op, [x], x.shape, params=params,
                   flops=ELEMENTWISE_FLOPS[op] * numel(x.shape))
    ctx.own(nid, {"weight": scale, "bias": bias}, module_scope(node))
    return t


def _is_relu6(ctx: _Ctx, ins: list[str], at: dict[str, Any]) -> bool:
    lo = ctx.m.value(ins[1]) if len(ins) > 1 and ins[1] else at.get("min")
    hi = ctx.m.value(ins[2]) if len(ins) > 2 and ins[2] else at.get("max")
    try:
        return lo is not None and hi is not None and float(lo) == 0.0 and float(hi) == 6.0
    except (TypeError, ValueError):
        return False


def _same_twice(ctx: _Ctx, nid: str, op: str, x: Tensor, shape: list[int]) -> Tensor:
    """``x + x``, ``x * x``: one edge carries the tensor (the schema allows one per pair)."""
    return ctx.b.node(nid, op, [x], shape, flops=ELEMENTWISE_FLOPS.get(op, 1) * numel(shape),
                      same_input_twice=True)


def _binary(ctx: _Ctx, node: Any, default: str, where: str) -> Tensor:
    kind = "add" if node.op_type in ("Add", "Sub") else "mul"
    acts = [ctx.tensors[y] for y in node.input if y in ctx.tensors]
    if len(acts) == 2:
        nid = ctx.unique(default)
        if acts[0].node == acts[1].node:
            return _same_twice(ctx, nid, kind, acts[0], ctx.shape_of(node.output[0], where))
        t = ctx.b.add(acts[0], acts[1], nid)  # the same broadcast rule for both
        ctx.b.g.nodes[nid]["op"] = kind
        return t
    return _generic(ctx, node, default, where, kind)


def _pool(ctx: _Ctx, default: str, where: str, x: Tensor, at: dict[str, Any], op: str,
          out: str) -> Tensor:
    k = list(at.get("kernel_shape", [1, 1]))
    s = list(at.get("strides", [1] * len(k)))
    pads = list(at.get("pads", [0] * 2 * len(k)))
    mode = "max" if op == "MaxPool" else "avg"
    nid = ctx.unique(default)
    if len(x.shape) != 4:
        raise GraphError(where, "only 2-D pooling is supported")
    plain = (k[0] == k[1] and s[0] == s[1] and len(set(pads)) == 1 and not at.get("ceil_mode")
             and at.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET")
             and set(at.get("dilations", [1, 1])) == {1})
    if plain:
        return ctx.b.pool(x, nid, mode, k[0], s[0], pads[0])
    shape = ctx.m.shapes.get(out) or [*x.shape[:2], *(
        conv_out(x.shape[2 + i] + pads[i] + pads[i + 2] - 0, k[i], s[i], 0) for i in range(2))]
    return ctx.b.node(nid, "pool", [x], shape, flops=k[0] * k[1] * numel(shape), mode=mode,
                      kernel=k, stride=s, padding=pads, ceil_mode=int(at.get("ceil_mode", 0)))


def _spatial_mean(ctx: _Ctx, node: Any, x: Tensor, at: dict[str, Any]) -> bool:
    """ReduceMean over H and W of NCHW: the dynamo exporter's AdaptiveAvgPool2d(1)."""
    if len(x.shape) != 4:
        return False
    axes = at.get("axes")
    if axes is None and len(node.input) > 1:
        axes = ctx.m.value(node.input[1])
    return axes is not None and {int(a) % 4 for a in axes} == {2, 3}


def _embedding(ctx: _Ctx, node: Any, default: str, where: str, at: dict[str, Any]) -> Tensor:
    ins = list(node.input)
    table = ctx.need_ref(ins[0], where)
    if at.get("axis", 0) != 0:
        raise GraphError(where, "only a table gathered on axis 0 is an embedding")
    ids = ctx.tensors.get(ins[1])
    nid = ctx.layer_name(node, default, table)
    if ids is None:  # constant indices (position ids, token types): a graph input, as the zoo
        shape = ctx.shape_of(ins[1], where)
        ids = ctx.b.input(ctx.unique(f"{nid}.indices"), shape,
                          _dtype(ctx.m.elem.get(ins[1], 7)))
    t = ctx.b.embedding(ids, nid, table.shape[0], table.shape[1])
    ctx.own(nid, {"weight": table}, module_scope(node))
    return t


def _split(ctx: _Ctx, node: Any, default: str, where: str, x: Tensor,
           at: dict[str, Any]) -> None:
    """Split into slices along one axis (GPT-2's fused Q/K/V projection)."""
    axis = int(at.get("axis", 0)) % len(x.shape)
    outs = [o for o in node.output]
    sizes = at.get("split")
    if sizes is None and len(node.input) > 1 and node.input[1]:
        v = ctx.m.value(node.input[1])
        sizes = None if v is None else [int(s) for s in v]
    if sizes is None:
        sizes = [ctx.shape_of(o, where)[axis] for o in outs]
    start = 0
    for i, (o, size) in enumerate(zip(outs, sizes, strict=True)):
        if o and ctx.m.consumers.get(o) or o in _graph_outputs(ctx.m):
            t = ctx.b.slice(x, ctx.unique(f"{default}:{i}"), axis, start, start + size)
            ctx.tensors[o] = ctx.check_shape(t, o, where)
        start += size


def _split_to_sequence(ctx: _Ctx, node: Any, where: str, x: Tensor,
                       at: dict[str, Any]) -> None:
    """``torch.split`` as the dynamo exporter writes it unoptimized: pieces are sliced when
    a ``SequenceAt`` reads them."""
    axis = int(at.get("axis", 0)) % len(x.shape)
    dim = x.shape[axis]
    split = ctx.m.value(node.input[1]) if len(node.input) > 1 and node.input[1] else None
    if split is None and len(node.input) > 1 and node.input[1]:
        raise GraphError(where, "the split sizes are not constant")
    if split is None:
        sizes = [1] * dim
    elif split.ndim == 0:
        step = int(split)
        sizes = [min(step, dim - s) for s in range(0, dim, step)]
    else:
        sizes = [int(v) for v in split]
    keep = bool(at.get("keepdims", 1)) or split is not None
    ctx.sequences[node.output[0]] = (x, axis, sizes, keep)


def _sequence_at(ctx: _Ctx, node: Any, default: str, where: str) -> Tensor:
    x, axis, sizes, keep = ctx.sequences[node.input[0]]
    pos = ctx.m.value(node.input[1])
    if pos is None:
        raise GraphError(where, "the sequence position is not constant")
    i = int(pos) % len(sizes)
    start = sum(sizes[:i])
    t = ctx.b.slice(x, ctx.unique(default), axis, start, start + sizes[i])
    if not keep:
        shape = [d for k, d in enumerate(t.shape) if k != axis]
        t = ctx.b.reshape(t, ctx.unique(f"{default}.squeeze"), shape)
    return t


def _lstm(ctx: _Ctx, node: Any, default: str, where: str, at: dict[str, Any]) -> Tensor:
    ins = list(node.input)
    w = ctx.need_ref(ins[1], where).shape
    ctx.need_ref(ins[2], where)
    if w[0] != 1:
        raise GraphError(where, "only single-direction LSTMs are supported")
    hidden, in_size = w[1] // 4, w[2]
    params: dict[str, Sequence[int]] = {"weight_ih": [4 * hidden, in_size],
                                    "weight_hh": [4 * hidden, hidden]}
    if len(ins) > 3 and ins[3]:
        params |= {"bias_ih": [4 * hidden], "bias_hh": [4 * hidden]}
    x = ctx.tensors[ins[0]]
    seq, bsz = (x.shape[1], x.shape[0]) if at.get("layout", 0) else (x.shape[0], x.shape[1])
    flops = 2 * bsz * seq * 4 * hidden * (in_size + hidden) + 10 * bsz * seq * hidden
    shape = ctx.shape_of(node.output[0], where)
    return ctx.b.node(ctx.unique(default), "lstm", [x], shape, params=params, flops=flops,
                      hidden=hidden, input_size=in_size, layout=int(at.get("layout", 0)))


def _generic(ctx: _Ctx, node: Any, default: str, where: str, op: str) -> Tensor:
    """Any other op: elementwise work on its output; parameters the export's signature names
    (a learned position embedding added, a class token concatenated) stay parameters."""
    acts: list[Tensor] = []
    for y in node.input:
        t = ctx.tensors.get(y)
        if t is not None and all(t.node != a.node for a in acts):
            acts.append(t)
    shape = ctx.shape_of(node.output[0], where)
    per = ELEMENTWISE_FLOPS.get(op, 1)
    owned = {}
    if ctx.signature:
        for y in node.input:
            r = ctx.ref(y)
            if r is not None and r.init in ctx.signature and r.init not in ctx.accounted:
                owned[r.init.rpartition(".")[2] or "weight"] = r
    nid = ctx.unique(default)
    t = ctx.b.node(nid, op, acts, shape, flops=per * numel(shape), onnx_op=node.op_type,
                   out_dtype=_dtype(ctx.m.elem.get(node.output[0])),
                   params={k: r.shape for k, r in owned.items()},
                   const_inputs=sum(1 for y in node.input if y and y not in ctx.tensors))
    if owned:
        ctx.own(nid, dict(owned))
    return t


__all__ = ["OnnxImportWarning", "import_onnx"]
