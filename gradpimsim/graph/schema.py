"""The DNN graph schema: what a workload graph must look like, and its validation.

A workload is a :class:`networkx.DiGraph`.  Every node is one layer or operator, every edge one
activation tensor flowing from its producer to a consumer.  The host turns this graph into a
training task DAG (``gradpimsim.host.training``); the schema therefore records exactly what the
host needs to cost a layer -- shapes, parameters, FLOPs -- and nothing framework-specific.

Graph attributes (``G.graph``)
------------------------------
``schema``   ``"gradpimsim.graph/1"`` (written by the builders and by :func:`save_graph`).
``name``     workload name, e.g. ``"resnet18"``.
``batch``    batch size the shapes were built for (int).
``seq_len``  sequence length for sequence models (int, optional).

Node attributes (one node per layer/op; the node id is a unique string such as
``"layer1.0.conv1"``, mirroring the reference implementation's module names so that parameter
ids read like ``state_dict`` keys)
---------------------------------------------------------------------------------------------
``op``           operator name, lowercase.  Known ops (:data:`KNOWN_OPS`): ``input``,
                 ``conv2d``, ``linear``, ``matmul``, ``embedding``, ``batchnorm``,
                 ``layernorm``, elementwise activations (``relu``, ``relu6``, ``gelu``, ``tanh``,
                 ``sigmoid``, ``silu``), ``add``, ``mul``, ``pool``, ``softmax``, ``lstm``,
                 ``reshape``, ``slice``, ``concat``, ``dropout``.  Other names are accepted (an
                 importer may meet them) and costed as elementwise work.
``in_shapes``    list of input shapes, one per input slot (``[]`` for ``input`` nodes).  Slot
                 ``i`` is fed by exactly one in-edge with ``index == i``.
``out_shape``    shape of the single output tensor (list of positive ints).  Convolutions use
                 NCHW, sequence models ``[batch, seq, features]``.
``out_dtype``    dtype of the output (``"fp32"`` unless stated; token ids are ``"int64"``).
                 Float activations are re-typed by the training precision policy.
``params``       ``{name: {"shape": [...], "dtype": "fp32"}}`` -- trainable tensors owned by
                 the node.  The global parameter id is ``"<node>.<name>"``.  Non-trainable
                 buffers (BatchNorm running statistics) are not parameters.
``shared_params`` optional ``{local_name: "<node>.<name>"}``: parameters the node uses but does
                 not own (tied embeddings: GPT-2's LM head uses ``wte.weight``).  They are not
                 counted again; their gradients accumulate into the owner's.
``flops``        forward floating-point operations of the whole batch (int).  GEMM-like ops
                 (conv2d, linear, matmul, lstm gates) count ``2 * MACs``; bias additions are not
                 counted (the usual convention, and what hand calculations compare against).
                 Other ops count :data:`ELEMENTWISE_FLOPS` per output element.
``attrs``        op-specific settings (``kernel``, ``stride``, ``padding``, ``groups``,
                 ``mode`` of a pool, ``transpose_b`` of a matmul, ``hidden`` of an lstm ...).

Edge attributes (producer -> consumer)
--------------------------------------
``shape``   activation shape (equal to the producer's ``out_shape`` and to the consumer's
            ``in_shapes[index]``).
``dtype``   the producer's ``out_dtype``.
``bytes``   ``prod(shape) * bytes(dtype)``.
``index``   consumer input slot.

A DiGraph allows one edge per (producer, consumer) pair, so an op cannot read the same tensor
in two slots (``add(x, x)``); insert an identity ``reshape`` if a model ever needs that.

Validation (:func:`validate`) raises :class:`GraphError` naming the offending node for: missing
or mistyped attributes, dangling edges, unfed or doubly-fed input slots, shape mismatches
between an edge and its endpoints, unknown shared parameters, and cycles.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import networkx as nx

from gradpimsim.config.training import DTYPE_BYTES

SCHEMA_VERSION = "gradpimsim.graph/1"

#: Bytes per element of every dtype a graph may carry (parameters use the float ones).
TENSOR_DTYPE_BYTES: dict[str, int] = {**DTYPE_BYTES, "int64": 8, "int32": 4}

GEMM_OPS = frozenset({"conv2d", "linear", "matmul", "lstm"})
ACTIVATION_OPS = frozenset({"relu", "relu6", "gelu", "tanh", "sigmoid", "silu"})
KNOWN_OPS = frozenset(
    {"input", "embedding", "batchnorm", "layernorm", "add", "mul", "pool", "softmax",
     "reshape", "slice", "concat", "dropout"}
) | GEMM_OPS | ACTIVATION_OPS

#: Forward FLOPs per output element of the non-GEMM ops (documented approximations: batchnorm
#: normalises, scales and shifts; layernorm also needs the statistics; softmax exponentiates,
#: sums and divides; GELU's tanh form costs about eight operations).
ELEMENTWISE_FLOPS: dict[str, int] = {
    "relu": 1, "relu6": 2, "gelu": 8, "tanh": 4, "sigmoid": 4, "silu": 5,
    "add": 1, "mul": 1, "batchnorm": 4, "layernorm": 5, "softmax": 3, "dropout": 1,
    "embedding": 0, "reshape": 0, "slice": 0, "concat": 0, "input": 0,
}

REQUIRED_NODE_ATTRS = ("op", "in_shapes", "out_shape", "params", "flops")


class GraphError(ValueError):
    """A workload graph (or a file describing one) is malformed.

    ``where`` names the node, edge, row or file position at fault so the user can fix it.
    """

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


def numel(shape: Iterable[int]) -> int:
    """Number of elements of a shape (1 for a scalar ``[]``)."""
    return math.prod(int(s) for s in shape)


def tensor_bytes(shape: Iterable[int], dtype: str) -> int:
    return numel(shape) * TENSOR_DTYPE_BYTES[dtype]


def _is_shape(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(
        isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in value
    )


def _check_node(g: nx.DiGraph, node: str) -> None:
    data = g.nodes[node]
    where = f"node {node!r}"
    missing = [a for a in REQUIRED_NODE_ATTRS if a not in data]
    if missing:
        raise GraphError(where, f"missing attribute(s) {', '.join(missing)}")
    if not isinstance(data["op"], str) or not data["op"]:
        raise GraphError(where, f"'op' must be a non-empty string, got {data['op']!r}")
    if not isinstance(data["in_shapes"], (list, tuple)) or not all(
        _is_shape(s) for s in data["in_shapes"]
    ):
        raise GraphError(where, "'in_shapes' must be a list of shapes (lists of positive ints)")
    if not _is_shape(data["out_shape"]):
        raise GraphError(where, f"'out_shape' must be a list of positive ints, "
                                f"got {data['out_shape']!r}")
    dtype = data.get("out_dtype", "fp32")
    if not isinstance(dtype, str) or dtype not in TENSOR_DTYPE_BYTES:
        raise GraphError(where, f"unknown out_dtype {_shown(dtype)}; known: "
                         f"{', '.join(TENSOR_DTYPE_BYTES)}")
    flops = data["flops"]
    if not isinstance(flops, int) or isinstance(flops, bool) or flops < 0:
        raise GraphError(where, f"'flops' must be a non-negative int, got {flops!r}")
    params = data["params"]
    if not isinstance(params, dict):
        raise GraphError(where, "'params' must be a dict name -> {shape, dtype}")
    for pname, spec in params.items():
        if not isinstance(spec, dict) or not _is_shape(spec.get("shape")):
            raise GraphError(where, f"parameter {pname!r} needs a 'shape' of positive ints")
        if not isinstance(spec.get("dtype", "fp32"), str) or \
                spec.get("dtype", "fp32") not in DTYPE_BYTES:
            raise GraphError(where, f"parameter {pname!r} has unknown dtype "
                             f"{_shown(spec.get('dtype'))}; known: {', '.join(DTYPE_BYTES)}")
    if data["op"] == "input" and data["in_shapes"]:
        raise GraphError(where, "an 'input' node takes no inputs")
    if not isinstance(data.get("attrs", {}), dict):
        raise GraphError(where, "'attrs' must be a dict")
    shared = data.get("shared_params", {})
    if not isinstance(shared, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in shared.items()):
        raise GraphError(where, "'shared_params' must map local names to \"<node>.<param>\" "
                         "strings")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:60]}..."


def _check_graph_attrs(g: nx.DiGraph) -> None:
    for key in ("batch", "seq_len"):
        v = g.graph.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise GraphError(f"graph.{key}", f"must be a positive integer, got {_shown(v)}")
    for key in ("name", "schema"):
        v = g.graph.get(key)
        if v is not None and not isinstance(v, str):
            raise GraphError(f"graph.{key}", f"must be a string, got {_shown(v)}")


def validate(g: nx.DiGraph) -> nx.DiGraph:
    """Check ``g`` against the schema; return it unchanged or raise :class:`GraphError`."""
    if not isinstance(g, nx.DiGraph) or g.is_multigraph():
        raise GraphError("graph", "a workload must be a networkx DiGraph")
    _check_graph_attrs(g)
    if g.number_of_nodes() == 0:
        raise GraphError("graph", "the graph has no nodes")
    for node in g.nodes:
        _check_node(g, node)
    for node in g.nodes:
        data = g.nodes[node]
        where = f"node {node!r}"
        slots: dict[int, str] = {}
        for src, _, e in g.in_edges(node, data=True):
            edge = f"edge {src!r} -> {node!r}"
            idx = e.get("index")
            if not isinstance(idx, int) or isinstance(idx, bool) or \
                    not 0 <= idx < len(data["in_shapes"]):
                raise GraphError(edge, f"input slot 'index' {idx!r} is not one of the "
                                       f"{len(data['in_shapes'])} inputs of {node!r}")
            if idx in slots:
                raise GraphError(where, f"input slot {idx} fed twice (by {slots[idx]!r} and "
                                        f"{src!r})")
            slots[idx] = src
            if not isinstance(e.get("shape", []), (list, tuple)):
                raise GraphError(edge, f"edge 'shape' must be a list, got {_shown(e['shape'])}")
            shape = list(e.get("shape", []))
            produced = list(g.nodes[src]["out_shape"])
            if shape != produced:
                raise GraphError(edge, f"edge shape {shape} differs from the output shape "
                                       f"{produced} of {src!r}")
            expected = list(data["in_shapes"][idx])
            if shape != expected:
                raise GraphError(where, f"shape mismatch on input {idx} from {src!r}: "
                                        f"expects {expected}, gets {shape}")
        unfed = [i for i in range(len(data["in_shapes"])) if i not in slots]
        if unfed:
            raise GraphError(where, f"input slot(s) {unfed} have no incoming edge")
        for local, ref in data.get("shared_params", {}).items():
            owner, _, pname = str(ref).rpartition(".")
            if owner not in g.nodes or pname not in g.nodes[owner].get("params", {}):
                raise GraphError(where, f"shared parameter {local!r} refers to unknown "
                                        f"parameter {ref!r}")
    if not nx.is_directed_acyclic_graph(g):
        cycle = nx.find_cycle(g)
        raise GraphError(f"node {cycle[0][0]!r}",
                         "the graph has a cycle: " + " -> ".join(str(u) for u, _ in cycle))
    return g


# ---------------------------------------------------------------------------------------------
# Summaries used by the CLI, the tests and the host.

def parameters(g: nx.DiGraph) -> dict[str, dict[str, Any]]:
    """Every trainable parameter owned by a node: ``{"<node>.<name>": {shape, dtype, node}}``."""
    out: dict[str, dict[str, Any]] = {}
    for node in nx.topological_sort(g):
        for pname, spec in g.nodes[node]["params"].items():
            out[f"{node}.{pname}"] = {
                "shape": list(spec["shape"]), "dtype": spec.get("dtype", "fp32"), "node": node,
                "name": pname,
            }
    return out


def param_count(g: nx.DiGraph) -> int:
    """Trainable parameters (shared ones counted once, like ``sum(p.numel() for p in ...)``)."""
    return sum(numel(p["shape"]) for p in parameters(g).values())


def param_bytes(g: nx.DiGraph) -> int:
    return sum(tensor_bytes(p["shape"], p["dtype"]) for p in parameters(g).values())


def total_flops(g: nx.DiGraph) -> int:
    """Forward FLOPs of one batch."""
    return sum(int(d["flops"]) for _, d in g.nodes(data=True))


def activation_bytes(g: nx.DiGraph) -> int:
    """Bytes of all node outputs (graph inputs included) at the graph's own dtypes."""
    return sum(
        tensor_bytes(d["out_shape"], d.get("out_dtype", "fp32")) for _, d in g.nodes(data=True)
    )


def compute_nodes(g: nx.DiGraph) -> list[str]:
    """Nodes other than graph inputs, in topological order."""
    return [n for n in nx.topological_sort(g) if g.nodes[n]["op"] != "input"]
