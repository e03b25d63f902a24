"""PyTorch ``nn.Module`` -> workload graph (optional extra: PyTorch).

:func:`import_torch` traces the module with ``torch.export`` where PyTorch has it (2.1 and
later; :mod:`.torch_export` maps its ATen graph, and it traces Hugging Face models), and with
``torch.fx`` otherwise or when export fails (for Hugging Face models through
``transformers.utils.fx`` where that exists).  ``tracer="export"`` or ``"fx"`` picks one.
Tracing runs the module's Python code with fake or meta tensors: no weights are read, no real
computation runs, and any batch size is cheap.

The ``torch.fx`` path: shapes are propagated on the ``meta`` device (a deep copy of the module
is moved there).  Node names are the traced names with ``_`` kept as fx writes them, except
module calls, which keep the module's qualified name (``layer1.0.conv1``) so parameter ids read
like ``state_dict`` keys; a module called twice gets ``#2``, ``#3`` suffixes.  Module calls map
like the ONNX importer's ops (Conv2d, Linear, BatchNorm2d, LayerNorm, ReLU, ReLU6, GELU, Tanh,
Sigmoid, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, Embedding, Dropout, Identity, Flatten,
Softmax); other modules keep their class name in lowercase and own their parameters, so the
parameter count is always the module's.  Functions and methods map
``add``/``mul``/``matmul``/``relu``/``softmax``/``flatten``/``reshape``/``view``; tensors the
module reads directly (``get_attr``), such as a tied weight in ``F.linear``, become
``shared_params`` of the reading node when another node owns them.
"""

from __future__ import annotations

import contextlib
import copy
import io
import operator
from collections.abc import Sequence
from typing import Any

import networkx as nx

from gradpimsim.graph.builder import GraphBuilder, Tensor
from gradpimsim.graph.schema import ELEMENTWISE_FLOPS, GraphError, numel

TRACERS = ("auto", "export", "fx")


def _require_torch() -> Any:
    try:
        import torch
        import torch.fx  # noqa: F401
    except ModuleNotFoundError:
        raise GraphError("torch", "importing a PyTorch model needs PyTorch "
                                  "(pip install torch)") from None
    return torch


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = next((t.strip() for t in text if t.strip()), type(exc).__name__)
    return line if len(line) <= 240 else line[:237] + "..."


def import_torch(module: Any, input_shapes: Sequence[Sequence[int]],
                 input_dtypes: Sequence[str] | None = None, *, name: str | None = None,
                 input_names: Sequence[str] | None = None,
                 tracer: str = "auto") -> nx.DiGraph:
    """Trace ``module`` with inputs of ``input_shapes`` (dtypes ``fp32`` or ``int64``)."""
    torch = _require_torch()
    if tracer not in TRACERS:
        raise GraphError("torch", f"tracer must be one of {TRACERS}, got {tracer!r}")
    dtypes = list(input_dtypes or ["fp32"] * len(input_shapes))
    if len(dtypes) != len(input_shapes):
        raise GraphError(type(module).__name__, f"{len(input_shapes)} input shapes but "
                                                f"{len(dtypes)} dtypes")
    label = name or type(module).__name__.lower()
    batch = int(input_shapes[0][0]) if input_shapes and input_shapes[0] else 1
    failures = []
    export = getattr(torch, "export", None)
    if tracer in ("auto", "export") and export is not None:
        from gradpimsim.graph.importers.torch_export import convert_exported

        args = tuple(torch.zeros(tuple(s), dtype=torch.long if dt == "int64" else torch.float32)
                     for s, dt in zip(input_shapes, dtypes, strict=True))
        try:
            ep = export.export(module, args, strict=False)
        except Exception as exc:  # any failure of user code or of the tracer
            failures.append(f"torch.export: {_first_line(exc)}")
        else:
            return convert_exported(torch, ep, label, batch, input_names)
    elif tracer == "export":
        failures.append(f"torch.export: not in PyTorch {torch.__version__}")
    if tracer in ("auto", "fx"):
        try:
            return _import_fx(torch, module, input_shapes, dtypes, label, batch, input_names)
        except _TraceError as exc:
            failures.append(f"torch.fx: {exc}")
    raise GraphError(type(module).__name__, "cannot trace the module: " + "; ".join(failures))


class _TraceError(Exception):
    """torch.fx could not trace or shape-propagate the module."""


def _fx_trace(module: Any, input_names: Sequence[str] | None) -> Any:
    """``torch.fx.symbolic_trace``, or Hugging Face's tracer for its own models."""
    import torch.fx as fx

    try:
        from transformers import PreTrainedModel  # type: ignore[import-not-found]
        from transformers.utils import fx as hf_fx  # type: ignore[import-not-found]
    except ImportError:
        PreTrainedModel = hf_fx = None  # noqa: N806
    if PreTrainedModel is not None and isinstance(module, PreTrainedModel):
        return hf_fx.symbolic_trace(module, input_names=list(input_names or ["input_ids"]))
    return fx.symbolic_trace(module)


def _import_fx(torch: Any, module: Any, input_shapes: Sequence[Sequence[int]],
               dtypes: list[str], label: str, batch: int,
               input_names: Sequence[str] | None) -> nx.DiGraph:
    from torch.fx.passes.shape_prop import ShapeProp

    try:
        gm = _fx_trace(module, input_names)
    except Exception as exc:
        raise _TraceError(_first_line(exc)) from None
    meta_gm = copy.deepcopy(gm).to("meta")
    args = [torch.zeros(tuple(s), dtype=torch.long if dt == "int64" else torch.float32,
                        device="meta") for s, dt in zip(input_shapes, dtypes, strict=True)]
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # ShapeProp prints its traceback
            ShapeProp(meta_gm).propagate(*args)
    except Exception as exc:
        cause = exc.__cause__ or exc
        raise _TraceError(f"shape propagation failed: {_first_line(cause)}") from None
    shapes = {n.name: n.meta.get("tensor_meta") for n in meta_gm.graph.nodes}
    b = GraphBuilder(label, batch)
    mods = dict(gm.named_modules())
    owners: dict[int, str] = {}  # id(parameter) -> "<node>.<name>"
    for mname, mod in mods.items():
        for pname, par in mod.named_parameters(recurse=False):
            owners.setdefault(id(par), f"{mname}.{pname}" if mname else pname)
    used_param: dict[int, str] = {}
    tensors: dict[str, Tensor] = {}
    calls: dict[str, int] = {}
    placeholders = 0

    def shape_of(n: Any) -> list[int]:
        meta = shapes.get(n.name)
        if meta is None or not hasattr(meta, "shape"):
            raise GraphError(f"node {n.name!r}", "produces no single tensor (tuples are not "
                                                 "supported)")
        return [int(s) for s in meta.shape]

    for n in gm.graph.nodes:
        where = f"node {n.name!r}"
        if n.op == "placeholder":
            i = placeholders
            placeholders += 1
            in_name = input_names[i] if input_names else n.name
            tensors[n.name] = b.input(in_name, shape_of(n), dtypes[i])
            continue
        if n.op in ("output", "get_attr"):
            continue
        acts = [tensors[a.name] for a in n.all_input_nodes if a.name in tensors]
        try:
            if n.op == "call_module":
                target = str(n.target)
                calls[target] = calls.get(target, 0) + 1
                nid = target if calls[target] == 1 else f"{target}#{calls[target]}"
                t = _module(b, mods[target], nid, acts, shape_of(n))
                for pname, par in mods[target].named_parameters(recurse=True):
                    used_param.setdefault(id(par), f"{nid}.{pname}")
            else:
                t = _function(b, n, acts, shape_of(n), gm, owners, used_param)
        except GraphError as exc:
            if exc.where.startswith("node "):
                raise
            raise GraphError(where, exc.message) from None
        except (KeyError, IndexError, ValueError) as exc:
            raise GraphError(where, f"cannot convert {n.op} {n.target!r}: {exc}") from None
        tensors[n.name] = t
    return b.build()


def _module(b: GraphBuilder, m: Any, nid: str, acts: list[Tensor], shape: list[int]) -> Tensor:
    import torch.nn as nn

    x = acts[0] if acts else None
    if isinstance(m, nn.Conv2d):
        if isinstance(m.padding, str):
            raise GraphError(f"node {nid!r}", "string padding is not supported")
        return b.conv2d(x, nid, m.out_channels, m.kernel_size, m.stride, m.padding,
                        groups=m.groups, bias=m.bias is not None, dilation=m.dilation[0])
    if isinstance(m, nn.Linear):
        return b.linear(x, nid, m.out_features, bias=m.bias is not None)
    if isinstance(m, nn.BatchNorm2d) and m.affine:
        return b.batchnorm(x, nid)
    if isinstance(m, nn.LayerNorm) and m.elementwise_affine and m.bias is not None:
        return b.layernorm(x, nid)
    simple = {nn.ReLU: "relu", nn.ReLU6: "relu6", nn.GELU: "gelu", nn.Tanh: "tanh",
              nn.Sigmoid: "sigmoid", nn.SiLU: "silu"}
    for cls, op in simple.items():
        if isinstance(m, cls):
            return b.act(x, nid, op)
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        k, s, p = (v if isinstance(v, int) else v[0] for v in (m.kernel_size, m.stride or
                                                                m.kernel_size, m.padding))
        return b.pool(x, nid, "max" if isinstance(m, nn.MaxPool2d) else "avg", k, s, p)
    if isinstance(m, nn.AdaptiveAvgPool2d) and shape[-1] == shape[-2]:
        return b.adaptive_avgpool(x, nid, shape[-1])
    if isinstance(m, nn.Embedding):
        return b.embedding(x, nid, m.num_embeddings, m.embedding_dim)
    if isinstance(m, nn.Softmax):
        return b.softmax(x, nid, m.dim if m.dim is not None else -1)
    if isinstance(m, (nn.Dropout, nn.Identity, nn.Flatten)):
        return b.reshape(x, nid, shape)
    params = {k: list(p.shape) for k, p in m.named_parameters(recurse=True)}
    op = type(m).__name__.lower()
    return b.node(nid, op, acts, shape, params=params,
                  flops=ELEMENTWISE_FLOPS.get(op, 1) * numel(shape), module=type(m).__name__)


def _function(b: GraphBuilder, n: Any, acts: list[Tensor], shape: list[int], gm: Any,
              owners: dict[int, str], used: dict[int, str]) -> Tensor:
    import torch
    import torch.nn.functional as F  # noqa: N812

    nid, tgt = n.name, n.target
    name = tgt if isinstance(tgt, str) else getattr(tgt, "__name__", str(tgt))
    is_add = tgt in (operator.add, torch.add, operator.iadd) or name == "add"
    if is_add and len(acts) == 2:
        return b.add(acts[0], acts[1], nid)
    if tgt in (operator.matmul, torch.matmul, torch.bmm) and len(acts) == 2:
        return b.matmul(acts[0], acts[1], nid)
    if tgt is F.linear:
        weight = n.args[1] if len(n.args) > 1 else n.kwargs.get("weight")
        if getattr(weight, "op", None) == "get_attr":
            par = _attr(gm, str(weight.target))
            out_f = int(par.shape[0])
            has_bias = (len(n.args) > 2 and n.args[2] is not None) or n.kwargs.get("bias") \
                is not None
            owner = used.get(id(par))
            t = b.linear(acts[0], nid, out_f, bias=has_bias, shared_weight=owner)
            if owner is None:
                used[id(par)] = f"{nid}.weight"
            return t
    if tgt in (torch.relu, F.relu) or name == "relu":
        return b.act(acts[0], nid, "relu")
    if tgt in (F.gelu,) or name == "gelu":
        return b.act(acts[0], nid, "gelu")
    if tgt in (torch.softmax, F.softmax) or name == "softmax":
        return b.softmax(acts[0], nid)
    if tgt is F.adaptive_avg_pool2d and len(shape) == 4 and shape[-1] == shape[-2]:
        return b.adaptive_avgpool(acts[0], nid, shape[-1])
    is_view = tgt in (torch.flatten, operator.getitem) or name in (
        "flatten", "view", "reshape", "contiguous", "squeeze", "unsqueeze", "getitem")
    if is_view and acts and numel(shape) == numel(acts[0].shape):
        return b.reshape(acts[0], nid, shape)
    if (tgt in (operator.mul, torch.mul) or name == "mul") and len(acts) == 2:
        t = b.add(acts[0], acts[1], nid)
        b.g.nodes[nid]["op"] = "mul"
        return t
    op = str(name).lower()
    uniq: list[Tensor] = []
    for a in acts:
        if all(a.node != u.node for u in uniq):
            uniq.append(a)
    return b.node(nid, op, uniq, shape, flops=ELEMENTWISE_FLOPS.get(op, 1) * numel(shape),
                  fx_op=n.op)


def _attr(gm: Any, target: str) -> Any:
    obj = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


__all__ = ["import_torch"]
