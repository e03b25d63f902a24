"""Model-building helpers: write a network as Python calls, get a schema-valid graph.

Each method adds one node, infers its output shape, records its parameters and forward FLOPs
(conventions in :mod:`gradpimsim.graph.schema`) and wires the edges from its inputs.  The zoo
(``workloads``) and the importers share this code, which is what makes "the CSV describes the
same network as the built-in model" checkable: both go through the same shape and FLOP rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import networkx as nx

from gradpimsim.graph.schema import (
    ELEMENTWISE_FLOPS,
    SCHEMA_VERSION,
    GraphError,
    numel,
    tensor_bytes,
    validate,
)


class Tensor(NamedTuple):
    """A handle on a node's output while building."""

    node: str
    shape: tuple[int, ...]
    dtype: str = "fp32"


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(v, int):
        return v, v
    a, b = v
    return int(a), int(b)


def conv_out(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    """Output extent of a convolution or pooling window (floor mode, as PyTorch)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _broadcast(a: Sequence[int], b: Sequence[int], where: str) -> tuple[int, ...]:
    out = []
    for x, y in zip(reversed(list(a)), reversed(list(b)), strict=False):
        if x != y and 1 not in (x, y):
            raise GraphError(where, f"shapes {list(a)} and {list(b)} do not broadcast")
        out.append(max(x, y))
    longer = a if len(a) > len(b) else b
    return tuple(list(longer[: len(longer) - len(out)]) + out[::-1])


class GraphBuilder:
    """Accumulates nodes and edges; :meth:`build` validates and returns the DiGraph."""

    def __init__(self, name: str, batch: int, seq_len: int | None = None) -> None:
        if not isinstance(batch, int) or batch < 1:
            raise GraphError(name, f"batch must be a positive int, got {batch!r}")
        if seq_len is not None and (not isinstance(seq_len, int) or seq_len < 1):
            raise GraphError(name, f"seq_len must be a positive int, got {seq_len!r}")
        self.g = nx.DiGraph(schema=SCHEMA_VERSION, name=name, batch=batch)
        if seq_len is not None:
            self.g.graph["seq_len"] = seq_len
        self.batch = batch
        self.seq_len = seq_len

    # -- core ---------------------------------------------------------------------------------
    def node(self, name: str, op: str, inputs: Sequence[Tensor], out_shape: Sequence[int], *,
             params: dict[str, Sequence[int]] | None = None, flops: int = 0,
             out_dtype: str = "fp32", shared_params: dict[str, str] | None = None,
             **attrs: Any) -> Tensor:
        """Add a node of any op; the typed helpers below all end here."""
        if name in self.g:
            raise GraphError(f"node {name!r}", "duplicate node name")
        data: dict[str, Any] = {
            "op": op,
            "in_shapes": [list(t.shape) for t in inputs],
            "out_shape": [int(s) for s in out_shape],
            "out_dtype": out_dtype,
            "params": {k: {"shape": [int(s) for s in v], "dtype": "fp32"}
                       for k, v in (params or {}).items()},
            "flops": int(flops),
            "attrs": attrs,
        }
        if shared_params:
            data["shared_params"] = dict(shared_params)
        self.g.add_node(name, **data)
        for i, t in enumerate(inputs):
            if self.g.has_edge(t.node, name):
                raise GraphError(f"node {name!r}", f"reads {t.node!r} twice")
            self.g.add_edge(t.node, name, shape=list(t.shape), dtype=t.dtype,
                            bytes=tensor_bytes(t.shape, t.dtype), index=i)
        return Tensor(name, tuple(int(s) for s in out_shape), out_dtype)

    def build(self) -> nx.DiGraph:
        return validate(self.g)

    def _elementwise(self, name: str, op: str, inputs: Sequence[Tensor],
                     shape: Sequence[int], **attrs: Any) -> Tensor:
        return self.node(name, op, inputs, shape,
                         flops=ELEMENTWISE_FLOPS.get(op, 1) * numel(shape), **attrs)

    # -- sources ------------------------------------------------------------------------------
    def input(self, name: str, shape: Sequence[int], dtype: str = "fp32") -> Tensor:
        return self.node(name, "input", [], shape, out_dtype=dtype)

    # -- GEMM-like ----------------------------------------------------------------------------
    def conv2d(self, x: Tensor, name: str, out_channels: int, kernel: int | Sequence[int],
               stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
               groups: int = 1, bias: bool = False, dilation: int = 1) -> Tensor:
        """2-D convolution on NCHW; weight ``[out, in/groups, kh, kw]`` like PyTorch."""
        n, c, h, w = x.shape
        kh, kw = _pair(kernel)
        sh, sw = _pair(stride)
        ph, pw = _pair(padding)
        if c % groups or out_channels % groups:
            raise GraphError(f"node {name!r}", f"channels {c}->{out_channels} not divisible "
                                               f"by groups={groups}")
        ho, wo = conv_out(h, kh, sh, ph, dilation), conv_out(w, kw, sw, pw, dilation)
        if ho < 1 or wo < 1:
            raise GraphError(f"node {name!r}", f"kernel {kh}x{kw} larger than input {h}x{w}")
        params: dict[str, Sequence[int]] = {"weight": (out_channels, c // groups, kh, kw)}
        if bias:
            params["bias"] = (out_channels,)
        macs = n * out_channels * ho * wo * (c // groups) * kh * kw
        return self.node(name, "conv2d", [x], (n, out_channels, ho, wo), params=params,
                         flops=2 * macs, kernel=[kh, kw], stride=[sh, sw], padding=[ph, pw],
                         groups=groups, dilation=dilation, bias=bias)

    def linear(self, x: Tensor, name: str, out_features: int, bias: bool = True,
               shared_weight: str | None = None) -> Tensor:
        """Fully connected layer on the last dimension; weight ``[out, in]``."""
        in_features = x.shape[-1]
        rows = numel(x.shape[:-1])
        params: dict[str, Sequence[int]] = {}
        shared = None
        if shared_weight:
            shared = {"weight": shared_weight}
        else:
            params["weight"] = (out_features, in_features)
        if bias:
            params["bias"] = (out_features,)
        return self.node(name, "linear", [x], (*x.shape[:-1], out_features), params=params,
                         flops=2 * rows * in_features * out_features, shared_params=shared,
                         bias=bias, in_features=in_features, out_features=out_features)

    def matmul(self, a: Tensor, b: Tensor, name: str, transpose_b: bool = False) -> Tensor:
        """Batched matrix product of activations (attention scores and context)."""
        m, k = a.shape[-2:]
        kb, nb = (b.shape[-1], b.shape[-2]) if transpose_b else b.shape[-2:]
        if k != kb or a.shape[:-2] != b.shape[:-2]:
            raise GraphError(f"node {name!r}", f"cannot multiply {list(a.shape)} by "
                                               f"{list(b.shape)} (transpose_b={transpose_b})")
        batch = numel(a.shape[:-2])
        return self.node(name, "matmul", [a, b], (*a.shape[:-2], m, nb),
                         flops=2 * batch * m * k * nb, transpose_b=transpose_b)

    def lstm(self, x: Tensor, name: str, hidden: int) -> Tensor:
        """One LSTM layer over ``[batch, seq, in]`` (PyTorch gate layout, both biases).

        FLOPs: the gate GEMMs, ``2 * B * S * 4H * (in + H)``, plus 10 elementwise operations per
        hidden unit and step (gate nonlinearities, cell and hidden updates).
        """
        b, s, i = x.shape
        params: dict[str, Sequence[int]] = {
            "weight_ih": (4 * hidden, i), "weight_hh": (4 * hidden, hidden),
            "bias_ih": (4 * hidden,), "bias_hh": (4 * hidden,)}
        flops = 2 * b * s * 4 * hidden * (i + hidden) + 10 * b * s * hidden
        return self.node(name, "lstm", [x], (b, s, hidden), params=params, flops=flops,
                         hidden=hidden, input_size=i)

    def embedding(self, ids: Tensor, name: str, num: int, dim: int) -> Tensor:
        return self.node(name, "embedding", [ids], (*ids.shape, dim),
                         params={"weight": (num, dim)}, num_embeddings=num, dim=dim)

    # -- normalisation ------------------------------------------------------------------------
    def batchnorm(self, x: Tensor, name: str) -> Tensor:
        c = x.shape[1]
        return self.node(name, "batchnorm", [x], x.shape,
                         params={"weight": (c,), "bias": (c,)},
                         flops=ELEMENTWISE_FLOPS["batchnorm"] * numel(x.shape))

    def layernorm(self, x: Tensor, name: str) -> Tensor:
        d = x.shape[-1]
        return self.node(name, "layernorm", [x], x.shape,
                         params={"weight": (d,), "bias": (d,)},
                         flops=ELEMENTWISE_FLOPS["layernorm"] * numel(x.shape))

    # -- elementwise and data movement --------------------------------------------------------
    def act(self, x: Tensor, name: str, op: str = "relu") -> Tensor:
        return self._elementwise(name, op, [x], x.shape)

    def add(self, a: Tensor, b: Tensor, name: str) -> Tensor:
        return self._elementwise(name, "add", [a, b], _broadcast(a.shape, b.shape, name))

    def softmax(self, x: Tensor, name: str, dim: int = -1) -> Tensor:
        return self._elementwise(name, "softmax", [x], x.shape, dim=dim)

    def pool(self, x: Tensor, name: str, mode: str, kernel: int, stride: int | None = None,
             padding: int = 0) -> Tensor:
        """Max or average pooling over NCHW; FLOPs = window size per output element."""
        n, c, h, w = x.shape
        stride = stride or kernel
        ho, wo = conv_out(h, kernel, stride, padding), conv_out(w, kernel, stride, padding)
        return self.node(name, "pool", [x], (n, c, ho, wo), flops=kernel * kernel * n * c * ho * wo,
                         mode=mode, kernel=[kernel, kernel], stride=[stride, stride],
                         padding=[padding, padding])

    def adaptive_avgpool(self, x: Tensor, name: str, out_hw: int = 1) -> Tensor:
        n, c, h, w = x.shape
        return self.node(name, "pool", [x], (n, c, out_hw, out_hw), flops=numel(x.shape),
                         mode="avg", adaptive=True, output_size=[out_hw, out_hw])

    def reshape(self, x: Tensor, name: str, shape: Sequence[int]) -> Tensor:
        if numel(shape) != numel(x.shape):
            raise GraphError(f"node {name!r}", f"cannot reshape {list(x.shape)} to {list(shape)}")
        return self.node(name, "reshape", [x], shape, out_dtype=x.dtype)

    def flatten(self, x: Tensor, name: str) -> Tensor:
        return self.reshape(x, name, (x.shape[0], numel(x.shape[1:])))

    def slice(self, x: Tensor, name: str, dim: int, start: int, stop: int) -> Tensor:
        shape = list(x.shape)
        shape[dim] = stop - start
        return self.node(name, "slice", [x], shape, dim=dim, start=start, stop=stop)
