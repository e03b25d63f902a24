"""Exporter folds undone or reported: BatchNorm fused into the layer before it, zero biases
dropped, parameters the export lists but the graph lacks (see :mod:`.onnx`'s docstring).

The parameter count is what the simulator's update phase is sized by, so an import either
restores what the exporter folded or says exactly how far its count is off.
"""

from __future__ import annotations

from typing import Any

import networkx as nx

from gradpimsim.graph.builder import Tensor
from gradpimsim.graph.importers.onnx_model import ParamRef, module_scope, node_metadata
from gradpimsim.graph.schema import ELEMENTWISE_FLOPS, GraphError, numel, param_count

RULES = "pkg.onnxscript.rewriter.rule_name"


def _rules(node: Any) -> str:
    return node_metadata(node).get(RULES, "")


def _own_bias(ctx: Any, nid: str, bias: ParamRef | None) -> bool:
    """After a BatchNorm fusion, is the layer's bias its own or the fusion's product?"""
    if ctx.signature is not None:
        return f"{nid}.bias" in ctx.signature
    return bias is not None and bias.init == f"{nid}.bias"


def _bias(ctx: Any, node: Any, nid: str, bias: ParamRef | None, fused: bool,
          kind: str) -> tuple[bool, ParamRef | None]:
    """(has a bias parameter, the initializer holding it) for a conv or linear layer."""
    if fused:
        own = _own_bias(ctx, nid, bias)
        if not own:
            return False, None
        if bias is None:
            ctx.accounted.add(f"{nid}.bias")
            ctx.restored_bias.append(nid)
        return True, bias
    if bias is None and f"RemoveOptionalBiasFrom{kind}" in _rules(node) and \
            ctx.signature is not None and f"{nid}.bias" in ctx.signature:
        ctx.accounted.add(f"{nid}.bias")
        ctx.restored_bias.append(nid)
        return True, None
    return bias is not None, bias


def after_gemm(ctx: Any, node: Any, nid: str, bias: ParamRef | None,
               fused: bool) -> tuple[bool, ParamRef | None]:
    return _bias(ctx, node, nid, bias, fused, "Gemm")


def conv(ctx: Any, node: Any, default: str, where: str, x: Tensor,
         at: dict[str, Any]) -> Tensor:
    """A Conv node, with the BatchNorm an exporter folded into it restored or recorded."""
    ins = list(node.input)
    w = ctx.need_ref(ins[1], where)
    if len(w.shape) != 4 or len(x.shape) != 4:
        raise GraphError(where, "only 2-D convolutions are supported")
    bias = ctx.ref(ins[2]) if len(ins) > 2 and ins[2] else None
    fused = "FuseBatchNormIntoConv" in _rules(node)
    nid = ctx.layer_name(node, default, w, fused)
    legacy_fold = (not fused and bias is not None and w.init.startswith("onnx::")
                   and not node_metadata(node))
    if legacy_fold and ctx.folded_mode == "restore":
        has_bias, bias = False, None
    else:
        has_bias, bias = _bias(ctx, node, nid, bias, fused, "Conv")
    t = _conv_node(ctx, node, nid, where, x, w, has_bias, at)
    ctx.own(nid, {"weight": w, "bias": bias}, None if fused else module_scope(node))
    ctx.check_shape(t, node.output[0], where)
    if fused:
        return restore_bn(ctx, node, t)
    if legacy_fold:
        ctx.folded.append((nid, t.shape[1], w.init))
        if ctx.folded_mode == "restore":
            return _batchnorm(ctx, ctx.unique(f"{nid}.bn"), t, True)
    return t


def _conv_node(ctx: Any, node: Any, nid: str, where: str, x: Tensor, w: ParamRef,
               has_bias: bool, at: dict[str, Any]) -> Tensor:
    kh, kw = w.shape[2:]
    strides = list(at.get("strides", [1, 1]))
    dil = list(at.get("dilations", [1, 1]))
    pads = list(at.get("pads", [0] * 4))
    groups = int(at.get("group", 1))
    auto = at.get("auto_pad", b"NOTSET")
    if auto in (b"NOTSET", "NOTSET") and pads[0] == pads[2] and pads[1] == pads[3] \
            and dil[0] == dil[1]:
        return ctx.b.conv2d(x, nid, w.shape[0], (kh, kw), tuple(strides), (pads[0], pads[1]),
                            groups=groups, bias=has_bias, dilation=dil[0])
    # Asymmetric or automatic padding: the output shape is ONNX's, the cost follows from it.
    shape = ctx.shape_of(node.output[0], where)
    n, c = x.shape[:2]
    params = {"weight": list(w.shape), **({"bias": [w.shape[0]]} if has_bias else {})}
    macs = n * w.shape[0] * shape[2] * shape[3] * (c // groups) * kh * kw
    return ctx.b.node(nid, "conv2d", [x], shape, params=params, flops=2 * macs,
                      kernel=[kh, kw], stride=strides, padding=pads, groups=groups,
                      dilation=dil, bias=has_bias)


def _batchnorm(ctx: Any, nid: str, x: Tensor, affine: bool) -> Tensor:
    c = x.shape[1]
    params = {"weight": [c], "bias": [c]} if affine else {}
    return ctx.b.node(nid, "batchnorm", [x], x.shape, params=params,
                      flops=ELEMENTWISE_FLOPS["batchnorm"] * numel(x.shape))


def restore_bn(ctx: Any, node: Any, t: Tensor) -> Tensor:
    """Put back the BatchNorm the dynamo exporter's optimizer fused into ``node``."""
    scope = module_scope(node)  # the fused node keeps the BatchNorm's module path
    nid = ctx.unique(scope or f"{t.node}.bn")
    affine = ctx.signature is None or f"{nid}.weight" in ctx.signature
    out = _batchnorm(ctx, nid, t, affine)
    ctx.accounted.update({f"{nid}.weight", f"{nid}.bias"})
    ctx.restored_bn.append((nid, 2 * t.shape[1] if affine else 0))
    return out


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _names(items: list[str], limit: int = 3) -> str:
    shown = ", ".join(repr(s) for s in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def report(ctx: Any, g: nx.DiGraph, mode: str) -> list[str]:
    """Warnings saying what the import restored and how far its parameter count may be off."""
    src, total = ctx.m.source, param_count(g)
    out = []
    if ctx.restored_bn:
        n = sum(p for _, p in ctx.restored_bn)
        out.append(f"{src}: restored {_count(len(ctx.restored_bn), 'BatchNorm layer')} "
                   f"({_count(n, 'parameter')}) that the exporter folded into the layers "
                   f"before them ({_names([b for b, _ in ctx.restored_bn])}), as its "
                   "metadata records")
    if ctx.restored_bias:
        n = sum(g.nodes[b]["out_shape"][1] if g.nodes[b]["op"] == "conv2d"
                else g.nodes[b]["out_shape"][-1] for b in ctx.restored_bias)
        out.append(f"{src}: restored the biases of {_count(len(ctx.restored_bias), 'layer')} "
                   f"({_count(n, 'parameter')}: {_names(ctx.restored_bias)}) that the "
                   "exporter dropped because they were zero")
    if ctx.folded:
        c = sum(ch for _, ch, _ in ctx.folded)
        layers = _names([nid for nid, _, _ in ctx.folded])
        head = (f"{src}: the exporter folded BatchNorm into {len(ctx.folded)} convolutions "
                f"({layers}; their weights are computed tensors such as "
                f"{ctx.folded[0][2]!r}, as torch.onnx.export(dynamo=False) writes in eval "
                "mode)")
        if mode == "restore":
            out.append(f"{head}: restored a BatchNorm after each ({2 * c:,} parameters), "
                       "assuming the convolutions have no bias of their own")
        else:
            out.append(f"{head}: the BatchNorm layers' {2 * c:,} parameters are missing and "
                       f"the folded biases count {c:,}, so these {total:,} parameters are "
                       f"{c:,} fewer than the model's ({total + c:,}) if those convolutions "
                       f"have no bias of their own, {2 * c:,} fewer ({total + 2 * c:,}) if "
                       "they have; re-export with do_constant_folding=False, or import with "
                       "import_onnx(..., folded_batchnorm='restore')")
    if ctx.signature:
        missing = sorted(ctx.signature - ctx.accounted - _params_and_inits(g, ctx))
        if missing:
            out.append(f"{src}: {_count(len(missing), 'parameter')} the export lists "
                       f"{'is' if len(missing) == 1 else 'are'} not in the graph "
                       f"({_names(missing, 5)}; the exporter's optimizer folded them into "
                       f"constants): the {total:,} parameters counted lack them, and the file "
                       "does not record their sizes; export with optimize=False to keep them")
    return out


def _params_and_inits(g: nx.DiGraph, ctx: Any) -> set[str]:
    names = set(ctx.m.inits)
    for n, d in g.nodes(data=True):
        names.update(f"{n}.{p}" for p in d["params"])
        names.update(f"{n}.{p}" for p in d.get("shared_params", {}))
    return names
