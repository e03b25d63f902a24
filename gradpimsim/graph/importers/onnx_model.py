"""What an ONNX file says, read the way the ONNX importer needs it.

Three questions have to be answered before any op is mapped:

* **Which tensors carry data?**  A tensor is an *activation* when it depends on a graph input
  through data; everything else is a constant the exporter happened to leave in (shape
  arithmetic, masks built from buffers, the zero bias the dynamo exporter writes for a
  bias-free convolution).  ``Shape``/``Size`` read only the (static) shape of their input and
  ``CastLike`` only the element type of its second input, so they do not make their outputs
  activations: without that rule a dynamo export with ``optimize=False`` looks data-dependent
  everywhere.
* **Which constants are trainable parameters?**  A float initializer, seen directly or through
  view-like ops (``Identity``, ``Transpose``, ``Cast``, ``Reshape``...), is a parameter where a
  layer uses it as weight, bias or table.  Exporters deduplicate identical initializers: the
  legacy TorchScript exporter keeps one and re-creates the others with ``Identity`` nodes (each
  ``Identity`` output is a distinct parameter), the dynamo exporter's optimizer lets several
  layers read one initializer.  :meth:`OnnxModel.uniform` tells such duplicates (a fresh
  model's zero biases and unit norm scales: every element equal) from tied weights (the same
  random matrix used twice, like GPT-2's LM head).
* **What is each activation's static shape?**  ONNX shape inference (with data propagation,
  so ``Reshape`` targets computed from ``Shape`` resolve) answers most; :func:`op_shape`
  answers the rest from the op's semantics, the inputs' shapes and the constants' values
  (:meth:`OnnxModel.value`, a small evaluator for shape arithmetic).
"""

from __future__ import annotations

import ast
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from gradpimsim.graph.schema import GraphError

#: Ops whose output has the shape of their first input.
SAME_SHAPE = frozenset({
    "Relu", "LeakyRelu", "PRelu", "Gelu", "FastGelu", "QuickGelu", "BiasGelu", "Tanh",
    "Sigmoid", "HardSigmoid", "HardSwish", "Elu", "Selu", "Celu", "Softplus", "Softsign", "Mish",
    "Clip", "Dropout", "Identity", "Cast", "CastLike", "Softmax", "LogSoftmax", "Erf", "Sqrt",
    "Exp", "Log", "Neg", "Abs", "Reciprocal", "Floor", "Ceil", "Round", "Sign", "Not", "IsNaN",
    "IsInf", "BatchNormalization", "LayerNormalization", "SimplifiedLayerNormalization",
    "SkipLayerNormalization", "RMSNormalization", "InstanceNormalization", "LpNormalization",
    "Sin", "Cos", "Hardmax", "Shrink", "ThresholdedRelu", "Trilu",
})
#: Elementwise ops whose inputs broadcast (numpy rules).
BROADCAST = frozenset({
    "Add", "Sub", "Mul", "Div", "Pow", "Mod", "Max", "Min", "Sum", "Mean", "Where", "Equal",
    "Greater", "GreaterOrEqual", "Less", "LessOrEqual", "And", "Or", "Xor", "BitShift",
})
#: Constant ops that only view a parameter (the parameter stays the same tensor).
PARAM_VIEWS = frozenset({"Identity", "Transpose", "Cast", "CastLike", "Reshape", "Squeeze",
                         "Unsqueeze", "Flatten"})
FLOAT_TYPES = frozenset({1, 10, 11, 16})  # FLOAT, FLOAT16, DOUBLE, BFLOAT16
#: Largest initializer whose values are read for shape arithmetic (elements).
VALUE_LIMIT = 1 << 16


class ParamRef(NamedTuple):
    """A constant tensor that is (a view of) a float initializer.

    ``key`` identifies the parameter: the initializer's name, or the name of an ``Identity``
    output, which a deduplicating exporter wrote for a distinct parameter with equal values.
    ``init`` is the initializer holding the values, ``shape`` the shape as the reading op sees
    it (after views), ``size`` its element count.
    """

    key: str
    init: str
    shape: tuple[int, ...]
    size: int


def require_onnx() -> Any:
    try:
        import onnx
    except ModuleNotFoundError:
        raise GraphError("onnx", "ONNX import needs the optional 'onnx' package "
                                 "(pip install onnx)") from None
    return onnx


def _attrs(onnx: Any, node: Any) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _broadcast(*shapes: list[int]) -> list[int] | None:
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        dims = {s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0}
        dims.discard(1)
        if len(dims) > 1:
            return None
        out.append(dims.pop() if dims else 1)
    return out


class OnnxModel:
    """An ONNX model with shapes inferred and every tensor classified (see the module doc)."""

    def __init__(self, model: Any, source: str, batch: int | None,
                 base_dir: str | None) -> None:
        self.onnx = onnx = require_onnx()
        self.source, self.base_dir = source, base_dir
        #: The file's initializers, values included (the inferred model holds shapes only).
        self.inits: dict[str, Any] = {t.name: t for t in model.graph.initializer}
        skeleton = _skeleton(onnx, model)
        if batch is not None:
            for vi in skeleton.graph.input:
                dims = vi.type.tensor_type.shape.dim
                if vi.name in self.inits or not dims:
                    continue
                if not dims[0].HasField("dim_value"):
                    dims[0].dim_value = batch
                elif dims[0].dim_value != batch:
                    raise GraphError(source, f"the export fixed input {vi.name!r} at batch "
                                             f"{dims[0].dim_value}, not {batch}: export with "
                                             "a dynamic batch dimension (dynamic_axes or "
                                             "dynamic_shapes) to choose the batch here")
        self.model = self._infer(skeleton)
        g = self.model.graph
        self.graph = g
        self.shapes: dict[str, list[int] | None] = {}
        self.elem: dict[str, int] = {}
        for vi in list(g.input) + list(g.value_info) + list(g.output):
            t = vi.type.tensor_type
            self.elem[vi.name] = t.elem_type
            if t.HasField("shape"):
                dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
                self.shapes[vi.name] = dims if all(d > 0 for d in dims) else None
        for name, t in self.inits.items():
            self.shapes[name] = list(t.dims)
            self.elem[name] = t.data_type
        self.inputs = [vi for vi in g.input if vi.name not in self.inits]
        self.producer: dict[str, Any] = {}
        self.consumers: dict[str, list[Any]] = {}
        for node in g.node:
            for x in node.input:
                if x:
                    self.consumers.setdefault(x, []).append(node)
            for y in node.output:
                if y:
                    self.producer[y] = node
        self.attrs: dict[int, dict[str, Any]] = {id(n): _attrs(onnx, n) for n in g.node}
        self.active: set[str] = {vi.name for vi in self.inputs}
        self.params: dict[str, ParamRef] = {}
        self._values: dict[str, Any] = {}
        self._uniform: dict[str, bool | None] = {}
        self._classify()

    # -- loading ------------------------------------------------------------------------------
    def _infer(self, model: Any) -> Any:
        """ONNX shape inference, with data propagation where the checker allows it."""
        infer = self.onnx.shape_inference.infer_shapes
        try:
            return infer(model, data_prop=True)
        except Exception:  # data propagation trips over some custom-domain graphs
            pass
        try:
            return infer(model)
        except Exception as exc:
            raise GraphError(self.source, f"ONNX shape inference failed: {exc}") from None

    # -- classification -----------------------------------------------------------------------
    @staticmethod
    def data_inputs(node: Any) -> list[str]:
        """The inputs whose *values* the node reads (see the module doc)."""
        if node.op_type in ("Shape", "Size"):
            return []
        ins = [x for x in node.input if x]
        return ins[:1] if node.op_type == "CastLike" else ins

    def _classify(self) -> None:
        for name, t in self.inits.items():
            if t.data_type in FLOAT_TYPES:
                self.params[name] = ParamRef(name, name, tuple(t.dims), _numel(t.dims))
        for node in self.graph.node:
            if any(x in self.active for x in self.data_inputs(node)):
                self.active.update(y for y in node.output if y)
                continue
            src = self.params.get(node.input[0]) if node.input else None
            if src is None or node.op_type not in PARAM_VIEWS:
                continue
            out = node.output[0]
            shape = self.shapes.get(out) or self._view_shape(node, list(src.shape))
            if shape is None or _numel(shape) != src.size:
                continue
            key = out if node.op_type == "Identity" else src.key
            self.params[out] = ParamRef(key, src.init, tuple(shape), src.size)

    def _view_shape(self, node: Any, shape: list[int]) -> list[int] | None:
        if node.op_type == "Transpose":
            perm = self.attrs[id(node)].get("perm") or list(range(len(shape)))[::-1]
            return [shape[p] for p in perm]
        if node.op_type in ("Identity", "Cast", "CastLike"):
            return shape
        return op_shape(self, node, [shape] + [self.shapes.get(x) for x in node.input[1:]])

    def is_active(self, name: str) -> bool:
        return name in self.active

    def shape(self, name: str, known: Mapping[str, Any] | None = None,
              depth: int = 0) -> list[int] | None:
        """A tensor's static shape: inferred, else from its value or its op's semantics
        (``known`` maps the activations converted so far to tensors with a ``shape``)."""
        if known and name in known:
            return list(known[name].shape)
        s = self.shapes.get(name)
        if s is not None or depth > 64:
            return s
        node = self.producer.get(name)
        if node is None:
            return None
        if name not in self.active:
            v = self.value(name)
            if v is not None:
                s = list(v.shape)
        if s is None:
            ins = [self.shape(x, known, depth + 1) if x else None for x in node.input]
            s = op_shape(self, node, ins) if node.output[0] == name else None
        if s is not None and all(d > 0 for d in s):
            self.shapes[name] = s
            return s
        return None

    # -- values -------------------------------------------------------------------------------
    def value(self, name: str) -> Any:
        """The value of a constant tensor (numpy), or ``None`` when it cannot be computed."""
        if name in self._values:
            return self._values[name]
        self._values[name] = None  # cycles and failures answer None
        try:
            v = self._evaluate(name)
        except Exception:  # an op this small evaluator does not cover, or a bad value
            v = None
        self._values[name] = v
        return v

    def read(self, init: str, limit: int | None = VALUE_LIMIT) -> Any:
        """An initializer's values (external data included), or ``None`` if unreadable."""
        t = self.inits[init]
        if limit is not None and _numel(t.dims) > limit:
            return None
        try:
            return self.onnx.numpy_helper.to_array(t, base_dir=self.base_dir or "")
        except Exception:  # external data file missing or truncated
            return None

    def uniform(self, init: str) -> bool | None:
        """Whether every element of an initializer is equal (``None``: values unreadable)."""
        if init not in self._uniform:
            arr = self.read(init, limit=None)
            self._uniform[init] = None if arr is None else bool(
                arr.size == 0 or (arr.min() == arr.max()))
        return self._uniform[init]

    def _evaluate(self, name: str) -> Any:
        import numpy as np

        if name in self.inits:
            return self.read(name)
        if name in self.active:
            return None
        node = self.producer.get(name)
        if node is None:
            return None
        op, at = node.op_type, self.attrs[id(node)]
        ins = list(node.input)
        if op == "Constant":
            for key in ("value", "value_int", "value_ints", "value_float", "value_floats"):
                if key in at:
                    v = at[key]
                    return (self.onnx.numpy_helper.to_array(v) if key == "value"
                            else np.array(v))
            return None
        if op in ("Shape", "Size"):
            shape = self.shapes.get(ins[0])
            if shape is None:
                return None
            if op == "Size":
                return np.array(_numel(shape), dtype=np.int64)
            return np.array(shape[at.get("start", 0):at.get("end", len(shape))], dtype=np.int64)
        vals: list[Any] = [self.value(x) if x else None for x in ins]
        if op in ("Identity",):
            return vals[0]
        if op == "Cast":
            return vals[0].astype(self.onnx.helper.tensor_dtype_to_np_dtype(at["to"]))
        if op == "CastLike":
            return vals[0].astype(self.onnx.helper.tensor_dtype_to_np_dtype(self.elem[ins[1]]))
        if op == "ConstantOfShape":
            fill = self.onnx.numpy_helper.to_array(at["value"]) if "value" in at else np.zeros(1)
            return np.full(tuple(int(d) for d in vals[0]), fill.reshape(-1)[0], fill.dtype)
        if any(v is None for v, x in zip(vals, ins, strict=True) if x):
            return None
        if op == "Gather":
            return np.take(vals[0], vals[1], axis=at.get("axis", 0))
        if op == "Concat":
            return np.concatenate([np.atleast_1d(v) for v in vals], axis=at["axis"])
        if op in ("Unsqueeze", "Squeeze"):
            axes = at.get("axes", None) if len(ins) < 2 else [int(a) for a in vals[1]]
            if op == "Squeeze":
                return np.squeeze(vals[0], axis=tuple(axes) if axes is not None else None)
            if axes is None:
                return None
            out = vals[0]
            for a in sorted(int(a) % (out.ndim + len(axes)) for a in axes):
                out = np.expand_dims(out, a)
            return out
        if op == "Reshape":
            return vals[0].reshape(_reshape_target(list(vals[0].shape), list(vals[1]),
                                                   bool(at.get("allowzero", 0))))
        if op == "Slice":
            return vals[0][_slices(vals[0].shape, vals[1:])]
        if op == "Range":
            return np.arange(vals[0], vals[1], vals[2])
        if op == "Expand":
            return vals[0] * np.ones(tuple(int(d) for d in vals[1]), dtype=vals[0].dtype)
        if op == "Transpose":
            return np.transpose(vals[0], at.get("perm"))
        numpy_ops = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Equal": np.equal,
                     "Less": np.less, "Greater": np.greater, "Max": np.maximum,
                     "Min": np.minimum, "Neg": np.negative, "Abs": np.abs, "Sqrt": np.sqrt}
        if op in numpy_ops:
            return numpy_ops[op](*vals)
        if op == "Div":
            a, b = vals
            return (np.trunc(a / b).astype(a.dtype) if a.dtype.kind in "iu" else a / b)
        if op == "Where":
            return np.where(*vals)
        return None


def _skeleton(onnx: Any, model: Any) -> Any:
    """A copy of the model for shape inference, without the values of large initializers.

    Shape inference serialises the model it is given; a legacy export keeps every weight in
    the file, so inferring on the full model would copy gigabytes for BERT-large.  Large
    initializers keep their type and dims and point at external data that is never read.
    """
    sk = onnx.ModelProto()
    for field in ("ir_version", "producer_name", "producer_version", "domain",
                  "model_version", "doc_string"):
        setattr(sk, field, getattr(model, field))
    for field in ("opset_import", "functions", "metadata_props"):
        getattr(sk, field).extend(getattr(model, field))
    g, sg = model.graph, sk.graph
    sg.name, sg.doc_string = g.name, g.doc_string
    for field in ("node", "input", "output", "value_info", "metadata_props",
                  "sparse_initializer"):
        getattr(sg, field).extend(getattr(g, field))
    for t in g.initializer:
        if _numel(t.dims) <= VALUE_LIMIT:
            sg.initializer.append(t)
            continue
        stub = sg.initializer.add(name=t.name, data_type=t.data_type, dims=list(t.dims))
        stub.data_location = onnx.TensorProto.EXTERNAL
        stub.external_data.add(key="location", value="values-not-needed-for-shapes")
    return sk


def _numel(shape: Any) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _reshape_target(shape: list[int], target: list[int], allowzero: bool) -> list[int]:
    out = [shape[i] if d == 0 and not allowzero else int(d) for i, d in enumerate(target)]
    if -1 in out:
        known = _numel(d for d in out if d != -1)
        out[out.index(-1)] = _numel(shape) // known if known else 0
    return out


def _slices(shape: tuple[int, ...], args: list[Any]) -> tuple[slice, ...]:
    starts, ends = list(args[0]), list(args[1])
    axes = list(args[2]) if len(args) > 2 and args[2] is not None else list(range(len(starts)))
    steps = list(args[3]) if len(args) > 3 and args[3] is not None else [1] * len(starts)
    sl = [slice(None)] * len(shape)
    for a, s, e, st in zip(axes, starts, ends, steps, strict=True):
        sl[int(a)] = slice(int(s), int(max(min(e, 2**62), -(2**62))), int(st))
    return tuple(sl)


def op_shape(m: OnnxModel, node: Any, ins: Sequence[list[int] | None]) -> list[int] | None:
    """An op's output shape from its semantics and its inputs' shapes (``None``: unknown).

    Used where ONNX shape inference left a shape open: ops from other domains (an ``Gelu`` of
    ``com.microsoft``) stop inference, and every op after them needs this.
    """
    op, at = node.op_type, m.attrs[id(node)]
    x = ins[0] if ins else None
    if op in SAME_SHAPE:
        return x
    known = [s for s in ins if s is not None]
    if op in BROADCAST:
        return _broadcast(*known) if len(known) == len([i for i in node.input if i]) else None
    if x is None:
        return None
    if op == "Transpose":
        perm = at.get("perm") or list(range(len(x)))[::-1]
        return [x[p] for p in perm]
    if op == "Flatten":
        axis = at.get("axis", 1) % max(len(x), 1)
        return [_numel(x[:axis]), _numel(x[axis:])]
    if op == "MatMul" and len(ins) == 2 and ins[1] is not None:
        a, b = list(x), list(ins[1])
        a2, b2 = (a if len(a) > 1 else [1, *a]), (b if len(b) > 1 else [*b, 1])
        lead = _broadcast(a2[:-2], b2[:-2])
        if lead is None:
            return None
        out = [*lead, a2[-2], b2[-1]]
        if len(a) == 1:
            out.pop(-2)
        if len(b) == 1:
            out.pop(-1)
        return out
    if op == "Gemm" and len(ins) > 1 and ins[1] is not None:
        m_rows = x[1] if at.get("transA", 0) else x[0]
        n_cols = ins[1][0] if at.get("transB", 0) else ins[1][1]
        return [m_rows, n_cols]
    values = [m.value(i) if i else None for i in node.input]
    if op == "Reshape" and values[1] is not None:
        return _reshape_target(x, [int(d) for d in values[1]], bool(at.get("allowzero", 0)))
    if op in ("Squeeze", "Unsqueeze"):
        axes = at.get("axes") if len(node.input) < 2 else values[1]
        if op == "Squeeze":
            if axes is None:
                return [d for d in x if d != 1]
            drop = {int(v) % len(x) for v in axes}
            return [d for i, d in enumerate(x) if i not in drop]
        if axes is None:
            return None
        grown = list(x)
        for ax in sorted(int(v) % (len(x) + len(axes)) for v in axes):
            grown.insert(ax, 1)
        return grown
    if op == "Concat" and len(known) == len(ins):
        axis = at["axis"] % len(x)
        return [sum(s[axis] for s in known) if i == axis else d for i, d in enumerate(x)]
    if op.startswith("Reduce"):
        axes = at.get("axes") if len(node.input) < 2 else values[1]
        if axes is None and at.get("noop_with_empty_axes", 0):
            return x
        axes_set = set(range(len(x))) if axes is None else {int(a) % len(x) for a in axes}
        keep = at.get("keepdims", 1)
        return [1 if i in axes_set else d for i, d in enumerate(x)
                if keep or i not in axes_set]
    if op in ("GlobalAveragePool", "GlobalMaxPool"):
        return [*x[:2], *([1] * (len(x) - 2))]
    if op == "Expand" and values[1] is not None:
        return _broadcast(x, [int(d) for d in values[1]])
    if op == "Gather" and len(ins) > 1:
        idx = ins[1] if ins[1] is not None else (
            list(values[1].shape) if values[1] is not None else None)
        if idx is None:
            return None
        axis = at.get("axis", 0) % len(x)
        return [*x[:axis], *idx, *x[axis + 1:]]
    if op == "Slice" and all(v is not None for v in values[1:3]):
        import numpy as np
        return list(np.empty(x, dtype=np.int8)[_slices(tuple(x), values[1:])].shape)
    return None


def signature_parameters(m: OnnxModel) -> set[str] | None:
    """The model's trainable parameter names, if the exporter recorded them.

    The dynamo exporter stores ``torch.export``'s graph signature in the graph's metadata; its
    ``PARAMETER target='...'`` lines name every parameter (buffers are marked ``BUFFER``).
    """
    for prop in m.graph.metadata_props:
        if prop.key.endswith("graph_signature"):
            names = set()
            for line in prop.value.splitlines():
                _, sep, rest = line.partition(": PARAMETER target=")
                if sep:
                    try:
                        names.add(str(ast.literal_eval(rest.split()[0])))
                    except (ValueError, SyntaxError):
                        continue
            return names
    return None


def node_metadata(node: Any) -> dict[str, str]:
    return {p.key: p.value for p in getattr(node, "metadata_props", [])}


def module_scope(node: Any) -> str | None:
    """The PyTorch module a dynamo-exported node came from (``layer1.0.conv1``), if recorded."""
    scopes = node_metadata(node).get("pkg.torch.onnx.name_scopes")
    if not scopes:
        return None
    try:
        parts = ast.literal_eval(scopes)
    except (ValueError, SyntaxError):
        return None
    return str(parts[-2]) if len(parts) >= 2 and parts[-2] else None


def load(model: str | Path | Any, batch: int | None) -> OnnxModel:
    """Read a file path or a ``ModelProto``; errors name the file."""
    onnx = require_onnx()
    source, base_dir = "onnx model", None
    if isinstance(model, (str, Path)):
        source = str(model)
        base_dir = os.path.dirname(os.path.abspath(source))
        try:
            model = onnx.load(source, load_external_data=False)
        except FileNotFoundError:
            raise GraphError(source, "no such file") from None
        except Exception as exc:  # protobuf raises DecodeError and friends
            raise GraphError(source, f"not a readable ONNX model ({type(exc).__name__})") from None
    return OnnxModel(model, source, batch, base_dir)
