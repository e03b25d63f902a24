"""``torch.export`` program -> workload graph (the default path of :func:`import_torch`).

``torch.export`` traces what ``torch.fx`` cannot: Hugging Face models (BERT, GPT-2) with their
data-dependent Python, keyword arguments and ``ModelOutput`` results.  Its graph is made of
ATen operators (``aten.conv2d``, ``aten.linear``, ``aten.scaled_dot_product_attention``...)
whose inputs are either activations, parameters or buffers; the graph signature says which
placeholder is which parameter (``layer1.0.conv1.weight``).  Mapping:

* conv2d, linear, addmm (Hugging Face's ``Conv1D``), mm/matmul with a parameter -> conv2d /
  linear; matmul/bmm of two activations -> matmul; scaled_dot_product_attention -> the score
  matmul, softmax and context matmul it computes; embedding; batch_norm (every variant) and
  layer_norm; relu/gelu/tanh/sigmoid/silu, hardtanh(0, 6) -> relu6; add/sub, mul/div;
  max/avg/adaptive-avg pooling and a mean over H and W -> pool; softmax; view-like ops ->
  reshape; slice/select/split/chunk -> slices; anything else is elementwise work.
* Nodes computing on buffers and constants only (position ids, masks, the running-statistics
  counter of a training-mode BatchNorm) are folded away; an embedding of a parameter table at
  such constant indices keeps its table and gets an ``int64`` graph input, as in the zoo.
* Layers are named after their ``torch.nn`` module (``layer1.0.conv1``, ``relu0``); a module
  called twice gets ``#2``.  Parameters keep their ``state_dict`` names where the layer owning
  them is that module.  A parameter read by several layers (tied weights) is owned by the
  first and shared by the others; one that no layer reads is reported.
"""

from __future__ import annotations

import operator
import warnings
from collections.abc import Sequence
from typing import Any

import networkx as nx

from gradpimsim.graph.builder import GraphBuilder, Tensor
from gradpimsim.graph.schema import ELEMENTWISE_FLOPS, GraphError, numel

VIEWS = frozenset({"view", "reshape", "_unsafe_view", "flatten", "unsqueeze", "squeeze",
                   "contiguous", "clone", "alias", "detach", "dropout", "feature_dropout",
                   "alpha_dropout", "lift_fresh_copy", "_to_copy", "to", "type_as"})
ACTS = {"relu": "relu", "gelu": "gelu", "tanh": "tanh", "sigmoid": "sigmoid", "silu": "silu",
        "relu6": "relu6"}
BATCHNORMS = frozenset({"batch_norm", "_native_batch_norm_legit_no_training",
                        "_native_batch_norm_legit", "native_batch_norm",
                        "_native_batch_norm_legit_functional", "cudnn_batch_norm"})
SKIP = frozenset({"_assert_tensor_metadata", "_assert_scalar", "sym_constrain_range_for_size",
                  "_assert_async"})


class TorchImportWarning(UserWarning):
    """The traced graph does not hold every parameter of the module."""


def _base(target: Any) -> str:
    """``aten.relu_.default`` -> ``relu``: the operator, in-place or not."""
    name = getattr(target, "__name__", str(target))
    parts = str(target).split(".")
    if len(parts) >= 2 and parts[0] == "aten":
        name = parts[1]
    return name[:-1] if name.endswith("_") and not name.startswith("_") else name


def _dtype(torch: Any, dt: Any) -> str:
    return {torch.int64: "int64", torch.int32: "int32", torch.float16: "fp16",
            torch.bfloat16: "bf16", torch.bool: "int8", torch.int8: "int8"}.get(dt, "fp32")


class _Export:
    def __init__(self, torch: Any, ep: Any, name: str, batch: int,
                 input_names: Sequence[str] | None) -> None:
        self.torch, self.ep = torch, ep
        self.b = GraphBuilder(name, batch)
        self.input_names = list(input_names or [])
        sig = ep.graph_signature
        self.param_of: dict[str, str] = dict(sig.inputs_to_parameters)  # placeholder -> fqn
        state = ep.state_dict
        #: placeholder -> identity of the tensor (tied parameters are one tensor).
        self.identity = {ph: id(state[fqn]) if fqn in state else fqn
                         for ph, fqn in self.param_of.items()}
        self.tensors: dict[str, Tensor] = {}
        self.multi: dict[str, list[Tensor]] = {}
        self.owner: dict[Any, str] = {}  # tensor identity -> "<node>.<slot>"
        self.used: set[str] = set()
        self.calls: dict[str, int] = {}

    # -- helpers ------------------------------------------------------------------------------
    def shape(self, n: Any) -> list[int]:
        val = n.meta.get("val")
        if not hasattr(val, "shape"):
            raise GraphError(f"node {n.name!r}", "produces no single tensor")
        try:
            return [int(s) for s in val.shape]
        except (TypeError, ValueError):
            raise GraphError(f"node {n.name!r}", "has a dynamic shape; trace with fixed "
                                                 "input shapes") from None

    def param(self, a: Any) -> list[int] | None:
        """The shape of a parameter operand, or None when ``a`` is not a parameter."""
        if getattr(a, "op", None) == "placeholder" and a.name in self.param_of:
            return [int(s) for s in a.meta["val"].shape]
        return None

    def act(self, a: Any) -> Tensor | None:
        return self.tensors.get(a.name) if hasattr(a, "name") else None

    def unique(self, nid: str) -> str:
        count = self.calls.get(nid, 0) + 1
        self.calls[nid] = count
        out = nid if count == 1 else f"{nid}#{count}"
        while out in self.used:
            count += 1
            out = f"{nid}#{count}"
        self.used.add(out)
        return out

    def name(self, n: Any, weight: Any | None = None) -> str:
        """A torch.nn leaf module's path, else the parameter's module, else the fx name."""
        stack = n.meta.get("nn_module_stack") or {}
        if stack:
            path, cls = list(stack.values())[-1]
            cls_name = cls if isinstance(cls, str) else f"{cls.__module__}.{cls.__qualname__}"
            if path and cls_name.startswith("torch.nn.modules."):
                return self.unique(path)
        if weight is not None:
            stem, dot, _ = self.param_of[weight.name].rpartition(".")
            if dot and stem not in self.used:
                return self.unique(stem)
        return self.unique(n.name)

    def own(self, nid: str, slots: dict[str, Any]) -> None:
        """First reader owns a parameter; later readers of the same tensor share it."""
        data = self.b.g.nodes[nid]
        for slot, ph in slots.items():
            if ph is None or self.param(ph) is None:
                continue
            key = self.identity[ph.name]
            prev = self.owner.get(key)
            if prev is None:
                self.owner[key] = f"{nid}.{slot}"
                continue
            data["params"].pop(slot, None)
            data.setdefault("shared_params", {})[slot] = prev

    # -- conversion ---------------------------------------------------------------------------
    def run(self) -> nx.DiGraph:
        torch = self.torch
        user = list(self.ep.graph_signature.user_inputs)
        for n in self.ep.graph.nodes:
            if n.op == "placeholder":
                if n.name in user:
                    i = user.index(n.name)
                    label = self.input_names[i] if i < len(self.input_names) else n.name
                    self.used.add(label)
                    val = n.meta["val"]
                    self.tensors[n.name] = self.b.input(label, self.shape(n),
                                                        _dtype(torch, val.dtype))
                continue
            if n.op != "call_function":
                continue
            where = f"node {n.name!r}"
            try:
                self.convert(n)
            except GraphError as exc:
                if exc.where.startswith("node "):
                    raise
                raise GraphError(where, exc.message) from None
            except (IndexError, KeyError, TypeError, ValueError) as exc:
                raise GraphError(where, f"cannot convert {n.target}: {exc}") from None
        self.report()
        return self.b.build()

    def convert(self, n: Any) -> None:
        base = _base(n.target)
        if base in SKIP:
            return
        if n.target is operator.getitem:
            src, idx = n.args
            if src.name in self.multi:
                self.tensors[n.name] = self.multi[src.name][idx]
            elif src.name in self.tensors and idx == 0:  # (out, mean, var) of a batch norm
                self.tensors[n.name] = self.tensors[src.name]
            return
        args = list(n.args)
        acts = [t for a in _flat(args) + _flat(list(n.kwargs.values()))
                if (t := self.act(a)) is not None]
        if not acts:
            if base == "embedding" and self.param(args[0]) is not None:
                self.tensors[n.name] = self.embedding(n, args)
            return  # constants: buffers, ids, masks
        x = self.act(args[0]) if args else None
        b = self.b
        out_shape = self.shape(n) if hasattr(n.meta.get("val"), "shape") else None
        t: Tensor | None = None
        if base in ("conv2d", "convolution") and x is not None and len(x.shape) == 4:
            t = self.conv(n, args, x)
        elif base == "linear" and x is not None and self.param(args[1]) is not None:
            w = args[1]
            has_bias = len(args) > 2 and args[2] is not None
            nid = self.name(n, w)
            t = b.linear(x, nid, self.param(w)[0], bias=has_bias)
            self.own(nid, {"weight": w, "bias": args[2] if has_bias else None})
        elif base == "addmm" and self.param(args[2]) is not None and self.act(args[1]):
            w = args[2]
            nid = self.name(n, w)
            t = b.linear(self.act(args[1]), nid, self.param(w)[1], bias=True)
            self.own(nid, {"weight": w, "bias": args[0]})
        elif base in ("mm", "matmul", "bmm") and x is not None:
            if self.param(args[1]) is not None and len(self.param(args[1])) == 2:
                nid = self.name(n, args[1])
                t = b.linear(x, nid, self.param(args[1])[1], bias=False)
                self.own(nid, {"weight": args[1]})
            elif self.act(args[1]) is not None:
                t = self.matmul(n, x, self.act(args[1]), out_shape)
        elif base == "scaled_dot_product_attention":
            t = self.attention(n, args)
        elif base == "embedding" and self.param(args[0]) is not None:
            t = self.embedding(n, args)
        elif base in BATCHNORMS and x is not None:
            t = self.norm(n, x, "batchnorm", args[1], args[2], x.shape[1])
        elif base in ("layer_norm", "native_layer_norm") and x is not None:
            dims = numel(args[1])
            t = self.norm(n, x, "layernorm", args[2] if len(args) > 2 else None,
                          args[3] if len(args) > 3 else None, dims)
        elif base in ACTS and x is not None:
            t = b.act(x, self.name(n), ACTS[base])
        elif base == "hardtanh" and x is not None and tuple(args[1:3]) == (0.0, 6.0):
            t = b.act(x, self.name(n), "relu6")
        elif base in ("add", "sub", "mul", "div") and len(acts) == 2:
            t = self.binary(n, base, acts, out_shape)
        elif base in ("softmax", "_softmax", "_safe_softmax") and x is not None:
            t = b.softmax(x, self.name(n), int(args[1]) if len(args) > 1 else -1)
        elif base in ("max_pool2d", "avg_pool2d", "max_pool2d_with_indices") and x is not None:
            t = self.pool(n, args, x, out_shape)
        elif base == "adaptive_avg_pool2d" and x is not None and out_shape is not None and \
                out_shape[-1] == out_shape[-2]:
            t = b.adaptive_avgpool(x, self.name(n), out_shape[-1])
        elif base == "mean" and x is not None and len(x.shape) == 4 and \
                {int(d) % 4 for d in args[1]} == {2, 3}:
            t = b.adaptive_avgpool(x, self.name(n), 1)
            if out_shape is not None and len(out_shape) == 2:
                t = b.reshape(t, self.unique(f"{n.name}.squeeze"), out_shape)
        elif base in VIEWS and x is not None and out_shape is not None and \
                numel(out_shape) == numel(x.shape):
            t = b.reshape(x, self.name(n), out_shape)
        elif base in ("slice", "select") and x is not None and out_shape is not None:
            t = self.slice(n, base, args, x, out_shape)
        elif base in ("split", "split_with_sizes", "chunk", "unbind", "tensor_split") \
                and x is not None:
            self.split(n, base, args, x)
            return
        if t is None:
            t = self.generic(n, base, acts, out_shape)
        if out_shape is not None and list(t.shape) != list(out_shape):
            raise GraphError(f"node {n.name!r}", f"output shape {list(t.shape)} differs from "
                                                 f"the traced {out_shape}; this form of "
                                                 f"{n.target} is not supported")
        self.tensors[n.name] = t

    def conv(self, n: Any, args: list[Any], x: Tensor) -> Tensor:
        w, bias = args[1], args[2] if len(args) > 2 else None
        ws = self.param(w)
        if ws is None:
            raise GraphError(f"node {n.name!r}", "the convolution weight is not a parameter")
        stride, pad, dil = (list(args[i]) if len(args) > i else [d, d]
                            for i, d in ((3, 1), (4, 0), (5, 1)))
        if n.target.__name__.startswith("convolution"):  # (x, w, b, s, p, d, transposed, ...)
            if args[6]:
                raise GraphError(f"node {n.name!r}", "transposed convolutions are not "
                                                     "supported")
            groups = int(args[8])
        else:
            groups = int(args[6]) if len(args) > 6 else 1
        if isinstance(pad, str) or isinstance(args[4] if len(args) > 4 else 0, str):
            raise GraphError(f"node {n.name!r}", "string padding is not supported")
        nid = self.name(n, w)
        t = self.b.conv2d(x, nid, ws[0], tuple(ws[2:]), tuple(stride), tuple(pad),
                          groups=groups, bias=bias is not None, dilation=int(dil[0]))
        self.own(nid, {"weight": w, "bias": bias})
        return t

    def norm(self, n: Any, x: Tensor, op: str, w: Any, bias: Any, dim: int) -> Tensor:
        nid = self.name(n, w if self.param(w) is not None else None)
        params = {k: [dim] for k, a in (("weight", w), ("bias", bias))
                  if a is not None and self.param(a) is not None}
        t = self.b.node(nid, op, [x], x.shape, params=params,  # type: ignore[arg-type]
                        flops=ELEMENTWISE_FLOPS[op] * numel(x.shape))
        self.own(nid, {"weight": w, "bias": bias})
        return t

    def embedding(self, n: Any, args: list[Any]) -> Tensor:
        table = self.param(args[0])
        assert table is not None
        ids = self.act(args[1])
        nid = self.name(n, args[0])
        if ids is None:  # constant ids (position ids): a graph input, as in the zoo
            ids = self.b.input(self.unique(f"{nid}.indices"), self.shape(args[1]), "int64")
        t = self.b.embedding(ids, nid, table[0], table[1])
        self.own(nid, {"weight": args[0]})
        return t

    def matmul(self, n: Any, a: Tensor, b: Tensor, out_shape: list[int] | None) -> Tensor:
        nid = self.name(n)
        if len(a.shape) >= 2 and len(b.shape) >= 2 and a.shape[:-2] == b.shape[:-2]:
            return self.b.matmul(a, b, nid)
        shape = out_shape or []
        return self.b.node(nid, "matmul", [a, b], shape, flops=2 * numel(shape) * a.shape[-1],
                           transpose_b=False)

    def attention(self, n: Any, args: list[Any]) -> Tensor:
        """``softmax(q @ k^T * scale + mask) @ v``: the two matmuls and the softmax."""
        q, k, v = (self.act(a) for a in args[:3])
        if q is None or k is None or v is None:
            raise GraphError(f"node {n.name!r}", "attention over constant q/k/v")
        nid = self.name(n)
        scores = self.b.matmul(q, k, f"{nid}.scores", transpose_b=True)
        mask = self.act(args[3]) if len(args) > 3 and args[3] is not None else None
        mask = mask or self.act(n.kwargs.get("attn_mask"))
        if mask is not None:
            scores = self.b.add(scores, mask, f"{nid}.mask")
        probs = self.b.softmax(scores, f"{nid}.softmax")
        return self.b.matmul(probs, v, nid)

    def binary(self, n: Any, base: str, acts: list[Tensor], shape: list[int] | None) -> Tensor:
        op = "add" if base in ("add", "sub") else "mul"
        nid = self.name(n)
        if acts[0].node == acts[1].node:
            s = shape or list(acts[0].shape)
            return self.b.node(nid, op, [acts[0]], s, flops=numel(s), same_input_twice=True)
        t = self.b.add(acts[0], acts[1], nid)
        self.b.g.nodes[nid]["op"] = op
        return t

    def pool(self, n: Any, args: list[Any], x: Tensor, shape: list[int] | None) -> Tensor:
        k = list(args[1]) if isinstance(args[1], (list, tuple)) else [args[1]] * 2
        s = list(args[2]) if len(args) > 2 and args[2] else k
        p = list(args[3]) if len(args) > 3 else [0, 0]
        ceil = bool(args[5]) if len(args) > 5 and "max" in str(n.target) else (
            bool(args[4]) if len(args) > 4 and "avg" in str(n.target) else False)
        mode = "max" if "max" in str(n.target) else "avg"
        nid = self.name(n)
        if k[0] == k[1] and s[0] == s[1] and p[0] == p[1] and not ceil:
            return self.b.pool(x, nid, mode, int(k[0]), int(s[0]), int(p[0]))
        out = shape or []
        return self.b.node(nid, "pool", [x], out, flops=k[0] * k[1] * numel(out), mode=mode,
                           kernel=k, stride=s, padding=p, ceil_mode=int(ceil))

    def slice(self, n: Any, base: str, args: list[Any], x: Tensor, shape: list[int]) -> Tensor:
        dim = int(args[1]) % len(x.shape) if len(args) > 1 else 0
        if base == "select":
            start = int(args[2]) % x.shape[dim]
            t = self.b.slice(x, self.unique(f"{n.name}.slice"), dim, start, start + 1)
            return self.b.reshape(t, self.name(n), shape)
        start = int(args[2]) if len(args) > 2 and args[2] is not None else 0
        step = int(args[4]) if len(args) > 4 else 1
        start = max(0, start + x.shape[dim] if start < 0 else start)
        if step != 1:
            return self.generic(n, "slice", [x], shape)
        return self.b.slice(x, self.name(n), dim, start, start + shape[dim])

    def split(self, n: Any, base: str, args: list[Any], x: Tensor) -> None:
        vals = n.meta["val"]
        dim = int(args[2] if len(args) > 2 else n.kwargs.get("dim", 0)) if base != "unbind" \
            else int(args[1] if len(args) > 1 else 0)
        dim %= len(x.shape)
        outs, start = [], 0
        for i, v in enumerate(vals):
            size = 1 if base == "unbind" else int(v.shape[dim])
            t = self.b.slice(x, self.unique(f"{n.name}:{i}"), dim, start, start + size)
            if base == "unbind":
                t = self.b.reshape(t, self.unique(f"{n.name}:{i}.squeeze"),
                                   [int(s) for s in v.shape])
            outs.append(t)
            start += size
        self.multi[n.name] = outs

    def generic(self, n: Any, base: str, acts: list[Tensor], shape: list[int] | None) -> Tensor:
        """Elementwise work on the output; parameters it reads (a learned position embedding
        added, a class token concatenated) stay parameters of this node."""
        if shape is None:
            raise GraphError(f"node {n.name!r}", f"{n.target} produces no single tensor")
        uniq: list[Tensor] = []
        for a in acts:
            if all(a.node != u.node for u in uniq):
                uniq.append(a)
        params = {self.param_of[a.name].rpartition(".")[2]: a
                  for a in _flat(list(n.args)) if self.param(a) is not None}
        nid = self.name(n, next(iter(params.values()), None))
        op = "concat" if base == "cat" else base.lower()
        val = n.meta.get("val")
        t = self.b.node(nid, op, uniq, shape, flops=ELEMENTWISE_FLOPS.get(op, 1) * numel(shape),
                        out_dtype=_dtype(self.torch, getattr(val, "dtype", None)),
                        params={k: self.param(a) for k, a in params.items()},  # type: ignore
                        aten=str(n.target))
        self.own(nid, params)
        return t

    def report(self) -> None:
        """Warn about parameters no traced operator reads: they are not in the graph."""
        missing = {}
        for ph, fqn in self.param_of.items():
            if self.identity[ph] not in self.owner:
                missing[self.identity[ph]] = (fqn, numel(self.ep.state_dict[fqn].shape)
                                              if fqn in self.ep.state_dict else 0)
        if missing:
            names = [f for f, _ in missing.values()]
            total = sum(c for _, c in missing.values())
            shown = ", ".join(repr(s) for s in names[:5]) + (
                f" and {len(names) - 5} more" if len(names) > 5 else "")
            warnings.warn(f"{self.b.g.graph['name']}: {len(names)} parameter tensor(s) "
                          f"({total:,} values: {shown}) are not used by the traced forward "
                          "pass and are not in the graph", TorchImportWarning, stacklevel=4)


def _flat(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for a in items:
        if isinstance(a, (list, tuple)):
            out.extend(_flat(list(a)))
        else:
            out.append(a)
    return out


def convert_exported(torch: Any, ep: Any, name: str, batch: int,
                     input_names: Sequence[str] | None) -> nx.DiGraph:
    return _Export(torch, ep, name, batch, input_names).run()
