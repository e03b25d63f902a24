"""One training iteration as a task DAG: forward, backward (data and weight gradients), update.

``expand_training(graph, optimizer, precision)`` returns a :class:`TrainingSchedule` whose
``dag`` is a :class:`networkx.DiGraph` of tasks.  The DAG carries exactly the dependencies the
math needs, no more, so a scheduler can overlap work the way a real framework does: the weight
gradient of a layer does not wait for its data gradient, and a parameter's optimizer update may
start as soon as its weight gradient exists (while backward continues with earlier layers).

Task ids and kinds
------------------
``fwd:<layer>``         kind ``forward``          every non-input layer
``loss``                kind ``loss``             one task: softmax/cross-entropy on the sinks
``bwd_data:<layer>``    kind ``backward_data``    layers with an input that requires a gradient
                                                  (not e.g. the first convolution, whose input
                                                  is the image, nor embeddings)
``bwd_weight:<layer>``  kind ``backward_weight``  layers owning or sharing parameters
``update:<param>``      kind ``update``           one per parameter tensor (``<node>.<name>``)

A layer gets backward tasks only if its output requires a gradient (it, or an ancestor, has
parameters).

Task attributes
---------------
``kind``, ``layer`` (graph node or ``None``), ``op`` (graph op, ``"loss"`` or ``"update"``),
``flops`` (int), ``gemm`` (list of ``(M, N, K, G)``: ``G`` independent ``M x K @ K x N``
products; empty for vector work), ``gemm_roles`` (``{"a": [...], "b": [...], "c": [...]}``
tensor names playing the streamed input, stationary input and output of the GEMMs),
``reads``/``writes`` (lists of :class:`Access`: the DRAM-resident tensor ranges the task reads
or writes once, before any tiling; see ``gradpimsim.host.npu`` for re-reads).
Update tasks also carry ``param``, ``numel``, ``optimizer``, ``roles`` (role -> bytes, the
``tensors`` argument of ``Allocator.place_group``), ``read_bytes``, ``write_bytes`` and
``next_forward`` (forward tasks of the *next* iteration that must wait for this update).

Tensor names
------------
``act:<node>``       output of a node (graph inputs included); views (reshape, slice, dropout)
                     alias their source, with an offset for slices
``dact:<node>``      gradient of that output
``<param>/<role>``   the tensors of a parameter's optimizer group: ``weight`` (fp32 master),
                     ``grad``, optimizer state (``momentum``, ``exp_avg``, ``exp_avg_sq``) and,
                     under mixed precision, ``weight_copy`` (the low-precision weights that
                     forward and backward read).  This is ``group_tensor_name(param, role)``,
                     the name the allocator gives a group member.

Backward cost conventions (documented approximations): for GEMM ops each of data and weight
gradients costs the forward FLOPs (an attention matmul's data gradient computes both operand
gradients, twice the forward); other ops' data gradient costs their forward FLOPs; a norm
layer's weight gradient costs 2 FLOPs per element, an embedding's 1 per gathered element.
Embedding forward gathers (and weight-gradient scatters) only the rows the batch touches.
An ``add``'s data gradient writes the output gradient to each input's gradient tensor (a
framework may alias them instead); gradients reaching a tensor from several consumers are
written by each (accumulation is not modelled as a separate read).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import networkx as nx

from gradpimsim.config.training import DTYPE_BYTES, OptimizerConfig, PrecisionPolicy, precision
from gradpimsim.graph.schema import (
    TENSOR_DTYPE_BYTES,
    numel,
    parameters,
    validate,
)

VIEW_OPS = frozenset({"reshape", "slice", "dropout"})

#: Vector FLOPs per parameter of one update (approximation for the NPU's vector unit):
#: SGD w -= lr*g; momentum m = mu*m + g, w -= lr*m; Nesterov adds the look-ahead; Adam's two
#: moments, bias corrections, square root and division.  Weight decay adds 2.
UPDATE_FLOPS: dict[str, int] = {"sgd": 2, "momentum": 4, "nesterov": 6, "adam": 12, "adamw": 14}

LOSS_FLOPS_PER_ELEMENT = 5


class Access(NamedTuple):
    """A contiguous byte range of a named tensor that a task reads or writes."""

    tensor: str
    offset: int
    nbytes: int


@dataclass(frozen=True)
class TensorSpec:
    """A DRAM-resident tensor of the iteration: activations, their gradients, parameter groups."""

    name: str
    nbytes: int
    kind: str  # "input", "activation", "act_grad", or a parameter-group role
    dtype: str


def group_tensor_name(param: str, role: str) -> str:
    """The tensor name of one member of a parameter's optimizer group."""
    return f"{param}/{role}"


def group_roles(param_numel: int, optimizer: OptimizerConfig,
                policy: PrecisionPolicy) -> dict[str, int]:
    """Role -> bytes of everything one update of a ``param_numel``-element tensor touches."""
    roles = {
        "weight": param_numel * DTYPE_BYTES[policy.master_dtype],
        "grad": param_numel * DTYPE_BYTES[policy.grad_dtype],
    }
    for r in optimizer.state_roles:
        roles[r] = param_numel * DTYPE_BYTES[policy.state_dtype]
    if policy.has_weight_copy:
        roles["weight_copy"] = param_numel * DTYPE_BYTES[policy.compute_dtype]
    return roles


def update_traffic(param_numel: int, optimizer: OptimizerConfig,
                   policy: PrecisionPolicy) -> tuple[int, int]:
    """(bytes read, bytes written) by a host-side update of one parameter tensor."""
    roles = group_roles(param_numel, optimizer, policy)
    read = roles["grad"] + roles["weight"] + sum(roles[r] for r in optimizer.state_roles)
    write = roles["weight"] + sum(roles[r] for r in optimizer.state_roles)
    write += roles.get("weight_copy", 0)
    return read, write


@dataclass
class TrainingSchedule:
    """The task DAG of one iteration plus the tensors it touches."""

    graph: nx.DiGraph
    dag: nx.DiGraph
    optimizer: OptimizerConfig
    precision: PrecisionPolicy
    tensors: dict[str, TensorSpec] = field(default_factory=dict)
    #: parameter id -> {role: bytes}: pass to ``Allocator.place_group(param, roles)``.
    groups: dict[str, dict[str, int]] = field(default_factory=dict)

    def order(self) -> list[str]:
        """A topological order of the tasks (forward first, deterministic)."""
        return list(nx.lexicographical_topological_sort(self.dag, key=_task_sort_key(self.dag)))

    def tasks(self, kind: str | None = None) -> list[str]:
        return [t for t in self.order() if kind is None or self.dag.nodes[t]["kind"] == kind]

    def traffic(self, kind: str | None = None) -> tuple[int, int]:
        """(bytes read, bytes written) summed over tasks, before tiling re-reads."""
        r = w = 0
        for _, d in self.dag.nodes(data=True):
            if kind is None or d["kind"] == kind:
                r += sum(a.nbytes for a in d["reads"])
                w += sum(a.nbytes for a in d["writes"])
        return r, w


def _task_sort_key(dag: nx.DiGraph) -> Any:
    rank = {"forward": 0, "loss": 1, "backward_data": 2, "backward_weight": 3, "update": 4}
    index = {t: i for i, t in enumerate(dag.nodes)}
    return lambda t: f"{rank[dag.nodes[t]['kind']]}{index[t]:09d}"


class _Expander:
    def __init__(self, g: nx.DiGraph, opt: OptimizerConfig, pol: PrecisionPolicy) -> None:
        self.g, self.opt, self.pol = g, opt, pol
        self.dag = nx.DiGraph(workload=g.graph.get("name"), batch=g.graph.get("batch"),
                              optimizer=opt.name, precision=pol.name)
        self.tensors: dict[str, TensorSpec] = {}
        self.alias: dict[str, Access] = {}
        self.params = parameters(g)
        self.order = list(nx.topological_sort(g))
        self.requires_grad: dict[str, bool] = {}
        for n in self.order:
            d = g.nodes[n]
            self.requires_grad[n] = bool(d["params"] or d.get("shared_params")) or any(
                self.requires_grad[p] for p in g.predecessors(n))

    # -- tensors ------------------------------------------------------------------------------
    def _dtype(self, node: str) -> str:
        dt = self.g.nodes[node].get("out_dtype", "fp32")
        return self.pol.compute_dtype if dt in DTYPE_BYTES else dt

    def _bytes(self, node: str) -> int:
        return numel(self.g.nodes[node]["out_shape"]) * TENSOR_DTYPE_BYTES[self._dtype(node)]

    def act(self, node: str, prefix: str = "act") -> Access:
        """The access of a node's output (or its gradient), following view aliases."""
        if node in self.alias:
            src = self.alias[node]
            return Access(src.tensor.replace("act:", f"{prefix}:", 1), src.offset, src.nbytes)
        name = f"{prefix}:{node}"
        if name not in self.tensors:
            kind = "input" if self.g.nodes[node]["op"] == "input" else "activation"
            self.tensors[name] = TensorSpec(name, self._bytes(node),
                                            "act_grad" if prefix == "dact" else kind,
                                            self._dtype(node))
        return Access(name, 0, self._bytes(node))

    def weights(self, node: str, grad: bool = False) -> list[Access]:
        d = self.g.nodes[node]
        refs = {f"{node}.{p}" for p in d["params"]} | set(d.get("shared_params", {}).values())
        role = "grad" if grad else ("weight_copy" if self.pol.has_weight_copy else "weight")
        out = []
        for pid in sorted(refs):
            nb = self.groups_bytes(pid)[role]
            out.append(Access(group_tensor_name(pid, role), 0, nb))
        return out

    def groups_bytes(self, pid: str) -> dict[str, int]:
        return group_roles(numel(self.params[pid]["shape"]), self.opt, self.pol)

    # -- tasks --------------------------------------------------------------------------------
    def add(self, tid: str, kind: str, layer: str | None, op: str, flops: int,
            reads: list[Access], writes: list[Access], gemm: list[tuple[int, int, int, int]]
            | None = None, gemm_roles: dict[str, list[str]] | None = None, **extra: Any) -> None:
        self.dag.add_node(tid, kind=kind, layer=layer, op=op, flops=int(flops),
                          gemm=list(gemm or []), gemm_roles=gemm_roles or {}, reads=reads,
                          writes=writes, **extra)

    def gemm_dims(self, node: str) -> list[tuple[int, int, int, int]]:
        d = self.g.nodes[node]
        op, a = d["op"], d.get("attrs", {})
        if op == "conv2d":
            n, cin = d["in_shapes"][0][:2]
            _, cout, ho, wo = d["out_shape"]
            grp = a.get("groups", 1)
            kh, kw = a.get("kernel", [1, 1])
            return [(n * ho * wo, cout // grp, cin // grp * kh * kw, grp)]
        if op == "linear":
            shp = d["in_shapes"][0]
            return [(numel(shp[:-1]), d["out_shape"][-1], shp[-1], 1)]
        if op == "matmul":
            sa = d["in_shapes"][0]
            m, k = sa[-2:]
            return [(m, d["out_shape"][-1], k, numel(sa[:-2]))]
        if op == "lstm":
            b, s, i = d["in_shapes"][0]
            h = d["out_shape"][-1]
            return [(b, 4 * h, i + h, s)]
        return []

    def expand(self) -> None:
        g = self.g
        compute = [n for n in self.order if g.nodes[n]["op"] != "input"]
        for n in compute:
            self.forward(n)
        sinks = [n for n in compute if g.out_degree(n) == 0]
        loss_reads = [self.act(s) for s in sinks]
        loss_writes = [self.act(s, "dact") for s in sinks if self.requires_grad[s]]
        self.add("loss", "loss", None, "loss",
                 LOSS_FLOPS_PER_ELEMENT * sum(numel(g.nodes[s]["out_shape"]) for s in sinks),
                 loss_reads, loss_writes)
        for s in sinks:
            self.dag.add_edge(f"fwd:{s}", "loss")
        for n in reversed(compute):
            if self.requires_grad[n]:
                self.backward(n)
        for pid in self.params:
            self.update(pid)

    def forward(self, n: str) -> None:
        d = self.g.nodes[n]
        ins = [u for u, _, _ in sorted(self.g.in_edges(n, data="index"), key=lambda e: e[2])]
        for u in ins:
            if self.g.nodes[u]["op"] != "input":
                self.dag.add_edge(f"fwd:{u}", f"fwd:{n}")
        op = d["op"]
        if op in VIEW_OPS:
            src = self.act(ins[0])
            offset = src.offset
            a = d.get("attrs", {})
            if op == "slice" and "dim" in a and "start" in a:
                dim_len = d["in_shapes"][0][a["dim"]]
                offset += src.nbytes * a["start"] // dim_len
            self.alias[n] = Access(src.tensor, offset, self._bytes(n))
            self.add(f"fwd:{n}", "forward", n, op, 0, [], [])
            return
        reads = [self.act(u) for u in ins]
        if op == "embedding":
            table = self.weights(n)[0]
            gathered = numel(d["out_shape"]) * TENSOR_DTYPE_BYTES[self._dtype(n)]
            reads.append(Access(table.tensor, 0, min(table.nbytes, gathered)))
        else:
            reads += self.weights(n)
        out = self.act(n)
        gemm = self.gemm_dims(n)
        roles = {}
        if gemm:
            w = [a.tensor for a in self.weights(n)]
            roles = ({"a": [reads[0].tensor], "b": [reads[1].tensor], "c": [out.tensor]}
                     if op == "matmul" else
                     {"a": [reads[0].tensor], "b": w, "c": [out.tensor]})
        self.add(f"fwd:{n}", "forward", n, op, d["flops"], reads, [out], gemm, roles)

    def backward(self, n: str) -> None:
        g, d = self.g, self.g.nodes[n]
        op = d["op"]
        ins = [u for u, _, _ in sorted(g.in_edges(n, data="index"), key=lambda e: e[2])]
        grad_ins = [u for u in ins if self.requires_grad[u]]
        # Tasks that produce this node's output gradient.
        producers = ([f"bwd_data:{w}" for w in g.successors(n)] if g.out_degree(n) else ["loss"])
        dout = self.act(n, "dact")
        gemm = self.gemm_dims(n)
        if grad_ins:
            tid = f"bwd_data:{n}"
            if op in VIEW_OPS:
                self.add(tid, "backward_data", n, op, 0, [], [])
            else:
                reads = [dout]
                if op in ("conv2d", "linear", "lstm"):
                    reads += self.weights(n)
                elif op == "matmul":
                    reads += [self.act(u) for u in ins]
                elif op not in ("add", "embedding"):
                    reads.append(self.act(ins[0]) if op in ("batchnorm", "layernorm", "pool")
                                 else self.act(n))
                writes = [self.act(u, "dact") for u in grad_ins]
                flops = d["flops"] * (2 if op == "matmul" else 1)
                bgemm: list[tuple[int, int, int, int]] = []
                roles: dict[str, list[str]] = {}
                if gemm:
                    m, nn, k, grp = gemm[0]
                    if op == "matmul":
                        bgemm = [(m, k, nn, grp), (k, nn, m, grp)]
                        roles = {"a": [dout.tensor], "b": [r.tensor for r in reads[1:]],
                                 "c": [w.tensor for w in writes]}
                    else:
                        bgemm = [(m, k, nn, grp)]
                        roles = {"a": [dout.tensor], "b": [r.tensor for r in reads[1:]],
                                 "c": [w.tensor for w in writes]}
                self.add(tid, "backward_data", n, op, flops, reads, writes, bgemm, roles)
            for p in producers:
                self.dag.add_edge(p, tid)
        if d["params"] or d.get("shared_params"):
            tid = f"bwd_weight:{n}"
            grads = self.weights(n, grad=True)
            x = self.act(ins[0])
            if op == "embedding":
                gathered = numel(d["out_shape"]) * DTYPE_BYTES[self.pol.grad_dtype]
                grads = [Access(gr.tensor, 0, min(gr.nbytes, gathered)) for gr in grads]
                flops = numel(d["out_shape"])
            elif op in ("batchnorm", "layernorm"):
                flops = 2 * numel(d["out_shape"])
            else:
                flops = d["flops"]
            wgemm = []
            roles = {}
            if gemm:
                m, nn, k, grp = gemm[0]
                wgemm = [(k, nn, m, grp)]
                roles = {"a": [x.tensor], "b": [dout.tensor], "c": [gr.tensor for gr in grads]}
            self.add(tid, "backward_weight", n, op, flops, [dout, x], grads, wgemm, roles)
            for p in producers:
                self.dag.add_edge(p, tid)

    def update(self, pid: str) -> None:
        roles = self.groups_bytes(pid)
        states = list(self.opt.state_roles)
        rroles = ["grad", "weight", *states]
        reads = [Access(group_tensor_name(pid, r), 0, roles[r]) for r in rroles]
        wroles = ["weight", *states] + (["weight_copy"] if "weight_copy" in roles else [])
        writes = [Access(group_tensor_name(pid, r), 0, roles[r]) for r in wroles]
        for r, nb in roles.items():
            name = group_tensor_name(pid, r)
            dt = {"weight": self.pol.master_dtype, "grad": self.pol.grad_dtype,
                  "weight_copy": self.pol.compute_dtype}.get(r, self.pol.state_dtype)
            self.tensors[name] = TensorSpec(name, nb, r, dt)
        count = numel(self.params[pid]["shape"])
        per = UPDATE_FLOPS[self.opt.name] + (2 if self.opt.weight_decay else 0)
        users = sorted(n for n in self.order
                       if pid in {f"{n}.{p}" for p in self.g.nodes[n]["params"]}
                       | set(self.g.nodes[n].get("shared_params", {}).values()))
        tid = f"update:{pid}"
        self.add(tid, "update", None, "update", per * count, reads, writes, param=pid,
                 numel=count, optimizer=self.opt.name, roles=roles,
                 read_bytes=sum(a.nbytes for a in reads),
                 write_bytes=sum(a.nbytes for a in writes),
                 next_forward=[f"fwd:{u}" for u in users])
        for u in users:
            self.dag.add_edge(f"bwd_weight:{u}", tid)


def expand_training(graph: nx.DiGraph, optimizer: OptimizerConfig | None = None,
                    policy: PrecisionPolicy | str = "fp32") -> TrainingSchedule:
    """Expand a workload graph into the task DAG of one training iteration."""
    validate(graph)
    opt = optimizer or OptimizerConfig()
    pol = precision(policy) if isinstance(policy, str) else policy
    ex = _Expander(graph, opt, pol)
    ex.expand()
    groups = {pid: ex.groups_bytes(pid) for pid in ex.params}
    assert nx.is_directed_acyclic_graph(ex.dag)
    return TrainingSchedule(graph, ex.dag, opt, pol, ex.tensors, groups)


def critical_path_flops(schedule: TrainingSchedule) -> int:
    """FLOPs on the longest dependency chain (a lower bound on serialized compute)."""
    dag = schedule.dag
    best: dict[str, int] = {}
    for t in nx.topological_sort(dag):
        best[t] = dag.nodes[t]["flops"] + max((best[p] for p in dag.predecessors(t)), default=0)
    return max(best.values(), default=0)


__all__ = [
    "Access",
    "TensorSpec",
    "TrainingSchedule",
    "UPDATE_FLOPS",
    "critical_path_flops",
    "expand_training",
    "group_roles",
    "group_tensor_name",
    "update_traffic",
]
