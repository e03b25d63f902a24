"""One training iteration as a task DAG: forward, loss, backward, update.

``expand_training(graph, optimizer, precision, dataflow=Dataflow(...))`` returns a
:class:`TrainingSchedule`: the tasks of one iteration, each with the tensor ranges it reads and
writes in DRAM, the *program order* in which a framework would issue them, and a DAG whose edges
are the data hazards between them (``gradpimsim.host.hazards``).

Program order (``Dataflow.order``)
----------------------------------
``autograd`` (default)
    Forward passes in graph order, the loss, then backward as autograd runs it: passes from the
    output back, each pass's data and weight gradients back to back (``backward="split"``) or in
    one pass that reads the output gradient once (``backward="fused"``, default), then one
    update per parameter tensor (``optimizer.step()`` after ``loss.backward()``).
``legacy``
    The order before 0.2: every data-gradient task before any weight-gradient task.  Only with
    ``fusion="none"`` and ``backward="split"``; reproduces the old cycles bit for bit.

Passes (``Dataflow.fusion``, :mod:`gradpimsim.host.fusion`): one forward and one (or two)
backward tasks per fusion group; ``none`` makes every operator its own group.

Task ids and kinds
------------------
``fwd:<anchor>``        ``forward``           every fusion group (views included)
``loss``                ``loss``              softmax/cross-entropy on the sinks
``bwd:<anchor>``        ``backward``          fused data + weight gradients of a group
``bwd_data:<anchor>``   ``backward_data``     split: data gradient (if an input needs one)
``bwd_weight:<anchor>`` ``backward_weight``   split: weight gradient (groups with parameters)
``update:<param>``      ``update``            one per parameter tensor (``<node>.<name>``)

Task attributes: ``kind``, ``layer`` (the anchor), ``members`` (the group's nodes), ``op``,
``flops``, ``gemm`` (``(M, N, K, G)`` tuples), ``gemm_roles`` (tensors playing the streamed,
stationary and output roles, for the NPU's tiling), ``reads``/``writes`` (:class:`Access` lists:
what the task moves once, before tiling re-reads), ``accumulates`` (tensors this task adds into
rather than overwrites: gradients reaching a tensor from several consumers, or a shared
parameter from several users) and ``resident`` (inputs taken from the NPU buffer, see
``host.residency``).  Update tasks also carry ``param``, ``numel``, ``optimizer``, ``roles``,
``read_bytes`` and ``write_bytes``.

Tensor names
------------
``act:<node>``       output of a node; views alias their source (an offset for slices)
``dact:<node>``      gradient of that output
``<param>/<role>``   a parameter's optimizer group: ``weight`` (fp32 master), ``grad``,
                     ``momentum``/``exp_avg``/``exp_avg_sq``, ``weight_copy`` (mixed precision)

Gradient accumulation: the first backward task (in program order) to produce a gradient
overwrites it; each later contributor reads the partial sum and writes the new one (under
``legacy`` every contributor writes without reading, as before 0.2).

Backward cost conventions (documented approximations): a GEMM's data and weight gradients each
cost the forward FLOPs (an attention matmul's data gradient computes both operand gradients,
twice the forward); other ops' data gradient costs their forward FLOPs; a norm layer's weight
gradient costs 2 FLOPs per element, an embedding's 1 per gathered element.  Embedding forward
gathers (and weight-gradient scatters) only the rows the batch touches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import networkx as nx

from gradpimsim.config.model import ConfigError
from gradpimsim.config.training import DTYPE_BYTES, OptimizerConfig, PrecisionPolicy, precision
from gradpimsim.graph.schema import TENSOR_DTYPE_BYTES, GraphError, numel, parameters, validate
from gradpimsim.host.fusion import (
    FUSION_POLICIES,
    NEEDS_VALUES,
    VIEW_OPS,
    FusionGroup,
    fusion_groups,
)

TASK_ORDERS = ("autograd", "legacy")
#: The phase each task kind belongs to.
PHASE_OF_KIND = {"forward": "forward", "loss": "forward", "backward": "backward",
                 "backward_data": "backward", "backward_weight": "backward",
                 "update": "update"}
BACKWARD_PASSES = ("fused", "split")

#: Vector FLOPs per parameter of one update (approximation for the NPU's vector unit):
#: SGD w -= lr*g; momentum m = mu*m + g, w -= lr*m; Nesterov adds the look-ahead; Adam's two
#: moments, bias corrections, square root and division.  Weight decay adds 2.
UPDATE_FLOPS: dict[str, int] = {"sgd": 2, "momentum": 4, "nesterov": 6, "adam": 12, "adamw": 14}
#: The regularizer of an ``ewc-*`` optimizer: theta - theta_old, times omega, times lambda,
#: plus the gradient.
REGULARIZER_FLOPS = 4

LOSS_FLOPS_PER_ELEMENT = 5
#: A mean-squared-error loss per element of the trained output: difference, square, sum, and
#: the gradient's scaled difference.
MSE_FLOPS_PER_ELEMENT = 4
#: Loss kinds a graph may name in ``graph["loss"]`` (default: softmax/cross-entropy).
LOSS_KINDS = ("cross_entropy", "mse")
GEMM_WITH_WEIGHTS = ("conv2d", "linear", "lstm")
#: Activations whose derivative follows from their output alone.
OUTPUT_DERIVATIVE = frozenset({"relu", "relu6", "tanh", "sigmoid", "softmax"})


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


@dataclass(frozen=True)
class Dataflow:
    """How the NPU runs an iteration: which layers it fuses, in what order, how many passes.

    ``resident_bytes`` is the on-chip residency budget of ``fusion="full"`` (the NPU preset's;
    0 turns residency off).
    """

    fusion: str = "full"
    order: str = "autograd"
    backward: str = "fused"
    resident_bytes: int = 0

    def __post_init__(self) -> None:
        if self.fusion not in FUSION_POLICIES:
            raise ConfigError("fusion", f"unknown fusion policy {self.fusion!r}; choose one of "
                                        f"{', '.join(FUSION_POLICIES)}")
        if self.order not in TASK_ORDERS:
            raise ConfigError("task_order", f"unknown task order {self.order!r}; choose one of "
                                            f"{', '.join(TASK_ORDERS)}")
        if self.backward not in BACKWARD_PASSES:
            raise ConfigError("backward", f"unknown backward pass {self.backward!r}; choose "
                                          f"one of {', '.join(BACKWARD_PASSES)}")
        if self.order == "legacy" and (self.fusion != "none" or self.backward != "split"):
            raise ConfigError("task_order", "the legacy order is defined only for fusion "
                                            "'none' with split backward passes (use "
                                            "--fusion none --backward split)")
        if isinstance(self.resident_bytes, bool) or not isinstance(self.resident_bytes, int) \
                or self.resident_bytes < 0:
            raise ConfigError("resident_bytes", f"must be an integer >= 0, got "
                                                f"{self.resident_bytes!r}")

    @classmethod
    def legacy(cls) -> Dataflow:
        """The model before 0.2: no fusion, split passes, data gradients first."""
        return cls("none", "legacy", "split", 0)


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
    for r in optimizer.state_roles + optimizer.const_roles:
        roles[r] = param_numel * DTYPE_BYTES[policy.state_dtype]
    if policy.has_weight_copy:
        roles["weight_copy"] = param_numel * DTYPE_BYTES[policy.compute_dtype]
    return roles


def update_traffic(param_numel: int, optimizer: OptimizerConfig,
                   policy: PrecisionPolicy) -> tuple[int, int]:
    """(bytes read, bytes written) by a host-side update of one parameter tensor (the
    regularizer's read-only tensors are read, never written)."""
    roles = group_roles(param_numel, optimizer, policy)
    read = roles["grad"] + roles["weight"] + sum(
        roles[r] for r in optimizer.state_roles + optimizer.const_roles)
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
    #: Every task in the order a framework issues them (the reference sequential semantics).
    program: list[str] = field(default_factory=list)
    dataflow: Dataflow = field(default_factory=Dataflow)
    #: task -> the hazard waits of its accesses (``gradpimsim.host.hazards.Wait``).
    waits: dict[str, list[Any]] = field(default_factory=dict)

    def order(self) -> list[str]:
        """The program order (forward first, updates last)."""
        return list(self.program)

    def tasks(self, kind: str | None = None) -> list[str]:
        return [t for t in self.program if kind is None or self.dag.nodes[t]["kind"] == kind]

    def traffic(self, kind: str | None = None) -> tuple[int, int]:
        """(bytes read, bytes written) summed over tasks, before tiling re-reads."""
        r = w = 0
        for _, d in self.dag.nodes(data=True):
            if kind is None or d["kind"] == kind:
                r += sum(a.nbytes for a in d["reads"])
                w += sum(a.nbytes for a in d["writes"])
        return r, w


class _Expander:
    """Builds the tasks of one iteration from fusion groups (see the module docstring)."""

    def __init__(self, g: nx.DiGraph, opt: OptimizerConfig, pol: PrecisionPolicy,
                 flow: Dataflow) -> None:
        self.g, self.opt, self.pol, self.flow = g, opt, pol, flow
        self.dag = nx.DiGraph(workload=g.graph.get("name"), batch=g.graph.get("batch"),
                              optimizer=opt.name, precision=pol.name, fusion=flow.fusion,
                              task_order=flow.order, backward=flow.backward)
        self.tensors: dict[str, TensorSpec] = {}
        self.alias: dict[str, Access] = {}
        every = parameters(g)
        #: Nodes whose own parameters are not trained (``frozen``: a teacher network, a
        #: stored table): no weight gradient, no update; their weights are read as stored.
        self.frozen = frozenset(n for n in g.nodes if g.nodes[n].get("frozen"))
        self.frozen_params = {pid: p for pid, p in every.items() if p["node"] in self.frozen}
        #: The trained parameters: one optimizer group and one update each.
        self.params = {pid: p for pid, p in every.items() if p["node"] not in self.frozen}
        self.order = list(nx.topological_sort(g))
        self.requires_grad: dict[str, bool] = {}
        for n in self.order:
            self.requires_grad[n] = self._trainable(n) or any(
                self.requires_grad[p] for p in g.predecessors(n))
        self.loss_kind, self.loss_targets = _loss_spec(g)
        self.groups = fusion_groups(g, flow.fusion)
        self.group = {m: grp for grp in self.groups for m in grp.members}
        #: (tensor, offset, nbytes) ranges of gradients written so far in backward order
        self._produced: list[Access] = []
        self._contributors: dict[Access, int] = {}

    def _trainable(self, node: str) -> bool:
        """Does ``node`` use a parameter that is trained (its own or a shared one)?"""
        d = self.g.nodes[node]
        refs = {f"{node}.{p}" for p in d["params"]} | set(d.get("shared_params", {}).values())
        return any(pid not in self.frozen_params for pid in refs)

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
            name = src.tensor.replace("act:", f"{prefix}:", 1)
            if name not in self.tensors:
                base = self.tensors[src.tensor]
                self.tensors[name] = TensorSpec(name, base.nbytes, "act_grad", base.dtype)
            return Access(name, src.offset, src.nbytes)
        name = f"{prefix}:{node}"
        if name not in self.tensors:
            kind = "input" if self.g.nodes[node]["op"] == "input" else "activation"
            self.tensors[name] = TensorSpec(name, self._bytes(node),
                                            "act_grad" if prefix == "dact" else kind,
                                            self._dtype(node))
        return Access(name, 0, self._bytes(node))

    def stored(self, node: str) -> Access:
        """What a consumer reads for ``node``'s output: the output itself, or the anchor
        output its group stores instead when the consumer recomputes the tail."""
        grp = self.group.get(node)
        if grp is not None and not grp.stores_tail and node == grp.tail:
            return self.act(grp.anchor)
        return self.act(node)

    def weights(self, node: str, grad: bool = False, backward: bool = False) -> list[Access]:
        """A node's parameter tensors (the compute copy, or the gradients with ``grad``).
        ``backward``: only what a data gradient reads, biases left out (the legacy order read
        them too)."""
        d = self.g.nodes[node]
        own = [p for p in d["params"]
               if not (backward and self.flow.order != "legacy" and "bias" in p)]
        refs = {f"{node}.{p}" for p in own} | set(d.get("shared_params", {}).values())
        role = "grad" if grad else ("weight_copy" if self.pol.has_weight_copy else "weight")
        out = []
        for pid in sorted(refs):
            if pid in self.frozen_params:
                if not grad:  # a frozen parameter has no gradient
                    out.append(self.frozen_weight(pid, role))
                continue
            nb = self.groups_bytes(pid)[role]
            out.append(Access(group_tensor_name(pid, role), 0, nb))
        return out

    def frozen_weight(self, pid: str, role: str) -> Access:
        """A frozen parameter as the compute reads it: the compute-dtype copy only (no
        master, gradient or optimizer state), placed with the other tensors."""
        name = group_tensor_name(pid, role)
        dtype = self.pol.compute_dtype
        nb = numel(self.frozen_params[pid]["shape"]) * DTYPE_BYTES[dtype]
        if name not in self.tensors:
            self.tensors[name] = TensorSpec(name, nb, role, dtype)
        return Access(name, 0, nb)

    def groups_bytes(self, pid: str) -> dict[str, int]:
        return group_roles(numel(self.params[pid]["shape"]), self.opt, self.pol)

    def inputs(self, node: str) -> list[str]:
        return [u for u, _, _ in sorted(self.g.in_edges(node, data="index"), key=lambda e: e[2])]

    # -- tasks --------------------------------------------------------------------------------
    def add(self, tid: str, kind: str, grp: FusionGroup | None, op: str, flops: int,
            reads: list[Access], writes: list[Access], gemm: list[tuple[int, int, int, int]]
            | None = None, gemm_roles: dict[str, list[str]] | None = None,
            **extra: Any) -> None:
        if self.flow.order != "legacy":
            reads = _unique(reads)
            writes = _unique(writes)
        accumulates: list[str] = []
        if kind in ("loss", "backward", "backward_data", "backward_weight"):
            writes, extra_reads, accumulates = self._gradient_writes(writes)
            reads = reads + [r for r in extra_reads if r not in reads]
        self.dag.add_node(tid, kind=kind, layer=grp.anchor if grp else None,
                          members=list(grp.members) if grp else [], op=op, flops=int(flops),
                          gemm=list(gemm or []), gemm_roles=gemm_roles or {}, reads=reads,
                          writes=writes, accumulates=accumulates, resident=[], onchip=[],
                          **extra)

    def _gradient_writes(self, writes: list[Access]) -> tuple[list[Access], list[Access],
                                                              list[str]]:
        """Gradient writes of a backward task: an overwrite for the first contributor, an
        accumulation (read the partial sum, write the new one) for every later one."""
        extra_reads: list[Access] = []
        acc: list[str] = []
        for w in writes:
            if any(_overlap(w, p) for p in self._produced):
                acc.append(w.tensor)
                if self.flow.order != "legacy":
                    extra_reads.append(w)
            self._produced.append(w)
        return writes, extra_reads, acc

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

    def expand(self) -> list[str]:
        """Create every task; returns the program order."""
        g = self.g
        for grp in self.groups:
            self.forward(grp)
        compute = [n for n in self.order if g.nodes[n]["op"] != "input"]
        sinks = [n for n in compute if g.out_degree(n) == 0]
        if self.loss_kind == "mse":
            flops = MSE_FLOPS_PER_ELEMENT * sum(numel(g.nodes[s]["out_shape"]) for s in sinks
                                                if self.requires_grad[s])
        else:
            flops = LOSS_FLOPS_PER_ELEMENT * sum(numel(g.nodes[s]["out_shape"]) for s in sinks)
        targets = [self.stored(t) for t in self.loss_targets if t not in sinks]
        self.add("loss", "loss", None, "loss", flops,
                 [self.stored(s) for s in sinks] + targets,
                 [self.act(s, "dact") for s in sinks if self.requires_grad[s]])
        program = [f"fwd:{grp.anchor}" for grp in self.groups] + ["loss"]
        if self.flow.order == "legacy":
            data, weight = [], []
            for grp in reversed(self.groups):
                data += self.backward_data(grp)
            for grp in reversed(self.groups):
                weight += self.backward_weight(grp)
            program += data + weight
        else:
            for grp in reversed(self.groups):
                if self.flow.backward == "fused":
                    program += self.backward_fused(grp)
                else:
                    program += self.backward_data(grp) + self.backward_weight(grp)
        for pid in self.params:
            program.append(self.update(pid))
        if self.flow.order == "legacy":
            self._legacy_accumulations(program)
        return program

    def _legacy_accumulations(self, program: list[str]) -> None:
        """Before 0.2 every contributor to a gradient wrote it without reading the partial
        sum: all of them, the first included, are accumulations that commute."""
        writers: dict[str, list[str]] = {}
        for t in program:
            node = self.dag.nodes[t]
            if node["kind"] in ("update", "forward"):
                continue
            for w in node["writes"]:
                writers.setdefault(w.tensor, []).append(t)
        for tensor, ts in writers.items():
            if len(ts) > 1:
                for t in ts:
                    acc = self.dag.nodes[t]["accumulates"]
                    if tensor not in acc:
                        acc.append(tensor)

    # -- forward ------------------------------------------------------------------------------
    def forward(self, grp: FusionGroup) -> None:
        g = self.g
        inside = set(grp.members)
        reads: list[Access] = []
        flops = 0
        for m in grp.members:
            d = g.nodes[m]
            ins = self.inputs(m)
            if d["op"] in VIEW_OPS:
                src = self.act(ins[0])
                offset = src.offset
                a = d.get("attrs", {})
                if d["op"] == "slice" and "dim" in a and "start" in a:
                    dim_len = d["in_shapes"][0][a["dim"]]
                    offset += src.nbytes * a["start"] // dim_len
                self.alias[m] = Access(src.tensor, offset, self._bytes(m))
                continue
            flops += d["flops"]
            reads += [self.stored(u) for u in ins if u not in inside]
            if d["op"] == "embedding":
                table = self.weights(m)[0]
                gathered = numel(d["out_shape"]) * TENSOR_DTYPE_BYTES[self._dtype(m)]
                reads.append(Access(table.tensor, 0, min(table.nbytes, gathered)))
            else:
                reads += self.weights(m)
        anchor = grp.anchor
        writes = []
        # under no_grad (a graph with frozen nodes, a group needing no gradient) nothing is
        # saved for a backward pass that never comes; a stored form of the output still is
        no_grad = bool(self.frozen) and not self._needs_grad(grp)
        if grp.saves_anchor and not (no_grad and grp.stores_tail):
            writes.append(self.act(anchor))
        if grp.stores_tail and self.act(grp.tail) not in writes:
            writes.append(self.act(grp.tail))
        op = g.nodes[anchor]["op"]
        if op in VIEW_OPS and len(grp.members) == 1:
            self.add(f"fwd:{anchor}", "forward", grp, op, 0, [], [])
            return
        gemm = self.gemm_dims(anchor)
        roles: dict[str, list[str]] = {}
        if gemm:
            first = self.stored(self.inputs(anchor)[0])
            w = [a.tensor for a in self.weights(anchor)]
            out = [a.tensor for a in writes]
            roles = ({"a": [first.tensor], "b": [self.stored(self.inputs(anchor)[1]).tensor],
                      "c": out} if op == "matmul" else {"a": [first.tensor], "b": w, "c": out})
        self.add(f"fwd:{anchor}", "forward", grp, op, flops, reads, writes, gemm, roles)

    # -- backward -----------------------------------------------------------------------------
    def _needs_grad(self, grp: FusionGroup) -> bool:
        return self.requires_grad[grp.tail]

    def _external_grad_inputs(self, grp: FusionGroup) -> list[str]:
        inside = set(grp.members)
        out = []
        for m in grp.members:
            for u in self.inputs(m):
                if u not in inside and self.requires_grad[u] and u not in out:
                    out.append(u)
        return out

    def _has_params(self, grp: FusionGroup) -> bool:
        """Does the group train a parameter (frozen ones do not count)?"""
        return any(self._trainable(m) for m in grp.members)

    def _value_reads(self, grp: FusionGroup, weight_pass: bool) -> list[Access]:
        """Forward values a group's backward reads (besides its output gradient): what the
        anchor's own gradient needs, then what the chain after it needs (see
        :meth:`_chain_reads`)."""
        g = self.g
        anchor = grp.anchor
        op = g.nodes[anchor]["op"]
        ins = self.inputs(anchor)
        reads: list[Access] = []
        if weight_pass:
            if op in GEMM_WITH_WEIGHTS or op in ("batchnorm", "layernorm"):
                reads.append(self.stored(ins[0]))
        elif op in GEMM_WITH_WEIGHTS:
            reads += self.weights(anchor, backward=True)
        elif op == "matmul":
            reads += [self.stored(u) for u in ins]
        elif op == "pool" and g.nodes[anchor].get("attrs", {}).get("mode") == "avg" \
                and self.flow.order != "legacy":
            pass  # an average pool's gradient spreads evenly: no forward values needed
        elif op not in ("add", "embedding") and op not in VIEW_OPS:
            reads.append(self.stored(ins[0]) if op in ("batchnorm", "layernorm", "pool")
                         else self.act(anchor))
        return reads + self._chain_reads(grp, weight_pass)

    def _chain_reads(self, grp: FusionGroup, weight_pass: bool) -> list[Access]:
        """Values the members after the anchor need in backward.

        An activation whose derivative follows from its output (ReLU, tanh, sigmoid, softmax)
        reads the group's stored tail when it is the tail.  Every other value is recomputed
        elementwise from the pass's base (the saved anchor output, or an elementwise anchor's
        own inputs) and the other passes' tensors the chain adds in up to that point (a
        residual operand), which are read.  Norm layers also read their scale for the data
        gradient; ``mul`` reads its other operand.
        """
        g = self.g
        ms = grp.members
        if len(ms) == 1:
            return []
        inside = set(ms)
        reads: list[Access] = []
        need_base = False
        upto = 0  # members 1..upto are recomputed from the base
        for i, m in enumerate(ms[1:], start=1):
            op = g.nodes[m]["op"]
            if op not in NEEDS_VALUES:
                continue
            if op in OUTPUT_DERIVATIVE and m == grp.tail and grp.stores_tail:
                reads.append(self.act(m))
                continue
            need_base = True
            upto = max(upto, i if op in OUTPUT_DERIVATIVE else i - 1)
            if op == "mul":
                reads += [self.stored(u) for u in self.inputs(m) if u not in inside]
            if not weight_pass and op in ("batchnorm", "layernorm"):
                reads += self.weights(m, backward=True)
        if need_base:
            if grp.saves_anchor:
                reads.append(self.act(grp.anchor))
            else:  # an elementwise anchor: recomputed from its own inputs
                reads += [self.stored(u) for u in self.inputs(grp.anchor)]
            for m in ms[1:upto + 1]:
                reads += [self.stored(u) for u in self.inputs(m) if u not in inside]
        return reads

    def _data_flops(self, grp: FusionGroup) -> int:
        total = 0
        for m in grp.members:
            d = self.g.nodes[m]
            if d["op"] not in VIEW_OPS:
                total += d["flops"] * (2 if d["op"] == "matmul" else 1)
        return total

    def _weight_flops(self, grp: FusionGroup) -> int:
        total = 0
        for m in grp.members:
            d = self.g.nodes[m]
            if not self._trainable(m):
                continue
            if d["op"] == "embedding":
                total += numel(d["out_shape"])
            elif d["op"] in ("batchnorm", "layernorm"):
                total += 2 * numel(d["out_shape"])
            else:
                total += d["flops"]
        return total

    def _grad_writes(self, grp: FusionGroup) -> list[Access]:
        out = []
        for m in grp.members:
            d = self.g.nodes[m]
            if not self._trainable(m):
                continue
            grads = self.weights(m, grad=True)
            if d["op"] == "embedding":
                gathered = numel(d["out_shape"]) * DTYPE_BYTES[self.pol.grad_dtype]
                grads = [Access(gr.tensor, 0, min(gr.nbytes, gathered)) for gr in grads]
            out += grads
        return out

    def _data_gemm(self, grp: FusionGroup) -> list[tuple[int, int, int, int]]:
        gemm = self.gemm_dims(grp.anchor)
        if not gemm:
            return []
        m, nn, k, gr = gemm[0]
        if self.g.nodes[grp.anchor]["op"] == "matmul":
            return [(m, k, nn, gr), (k, nn, m, gr)]
        return [(m, k, nn, gr)]

    def _weight_gemm(self, grp: FusionGroup) -> list[tuple[int, int, int, int]]:
        gemm = self.gemm_dims(grp.anchor)
        if not gemm or not self._trainable(grp.anchor):
            return []
        m, nn, k, gr = gemm[0]
        return [(k, nn, m, gr)]

    def backward_data(self, grp: FusionGroup) -> list[str]:
        if not self._needs_grad(grp):
            return []
        grad_ins = self._external_grad_inputs(grp)
        if not grad_ins:
            return []
        tid = f"bwd_data:{grp.anchor}"
        op = self.g.nodes[grp.anchor]["op"]
        if op in VIEW_OPS and len(grp.members) == 1:
            self.add(tid, "backward_data", grp, op, 0, [], [])
            return [tid]
        dout = self.act(grp.tail, "dact")
        reads = [dout] + self._value_reads(grp, weight_pass=False)
        writes = [self.act(u, "dact") for u in grad_ins]
        roles: dict[str, list[str]] = {}
        bgemm = self._data_gemm(grp)
        if bgemm:
            roles = {"a": [dout.tensor], "b": [r.tensor for r in reads[1:]],
                     "c": [w.tensor for w in writes]}
        self.add(tid, "backward_data", grp, op, self._data_flops(grp), reads, writes, bgemm,
                 roles)
        return [tid]

    def backward_weight(self, grp: FusionGroup) -> list[str]:
        if not self._needs_grad(grp) or not self._has_params(grp):
            return []
        tid = f"bwd_weight:{grp.anchor}"
        op = self.g.nodes[grp.anchor]["op"]
        dout = self.act(grp.tail, "dact")
        reads = [dout]
        if self.flow.order == "legacy":
            reads.append(self.act(self.inputs(grp.anchor)[0]))
        else:
            reads += self._value_reads(grp, weight_pass=True)
        grads = self._grad_writes(grp)
        wgemm = self._weight_gemm(grp)
        roles: dict[str, list[str]] = {}
        if wgemm:
            x = self.stored(self.inputs(grp.anchor)[0])
            roles = {"a": [x.tensor], "b": [dout.tensor], "c": [gr.tensor for gr in grads]}
        self.add(tid, "backward_weight", grp, op, self._weight_flops(grp), reads, grads, wgemm,
                 roles)
        return [tid]

    def backward_fused(self, grp: FusionGroup) -> list[str]:
        if not self._needs_grad(grp):
            return []
        grad_ins = self._external_grad_inputs(grp)
        params = self._has_params(grp)
        if not grad_ins and not params:
            return []
        tid = f"bwd:{grp.anchor}"
        op = self.g.nodes[grp.anchor]["op"]
        if op in VIEW_OPS and len(grp.members) == 1:
            self.add(tid, "backward", grp, op, 0, [], [])
            return [tid]
        dout = self.act(grp.tail, "dact")
        reads = [dout]
        flops = 0
        gemm: list[tuple[int, int, int, int]] = []
        if grad_ins:
            reads += self._value_reads(grp, weight_pass=False)
            flops += self._data_flops(grp)
            gemm += self._data_gemm(grp)
        if params:
            reads += self._value_reads(grp, weight_pass=True)
            flops += self._weight_flops(grp)
            gemm += self._weight_gemm(grp)
        writes = [self.act(u, "dact") for u in grad_ins] + self._grad_writes(grp)
        reads = _unique(reads)
        roles: dict[str, list[str]] = {}
        if gemm:
            stationary = {a.tensor for a in self.weights(grp.anchor, backward=True)}
            roles = {"a": [r.tensor for r in reads if r.tensor not in stationary],
                     "b": sorted(t for t in stationary if any(r.tensor == t for r in reads)),
                     "c": [w.tensor for w in writes]}
        self.add(tid, "backward", grp, op, flops, reads, writes, gemm, roles)
        return [tid]

    # -- update -------------------------------------------------------------------------------
    def update(self, pid: str) -> str:
        roles = self.groups_bytes(pid)
        states = list(self.opt.state_roles)
        rroles = ["grad", "weight", *states, *self.opt.const_roles]
        reads = [Access(group_tensor_name(pid, r), 0, roles[r]) for r in rroles]
        wroles = ["weight", *states] + (["weight_copy"] if "weight_copy" in roles else [])
        writes = [Access(group_tensor_name(pid, r), 0, roles[r]) for r in wroles]
        for r, nb in roles.items():
            name = group_tensor_name(pid, r)
            dt = {"weight": self.pol.master_dtype, "grad": self.pol.grad_dtype,
                  "weight_copy": self.pol.compute_dtype}.get(r, self.pol.state_dtype)
            self.tensors[name] = TensorSpec(name, nb, r, dt)
        count = numel(self.params[pid]["shape"])
        per = UPDATE_FLOPS[self.opt.base] + (2 if self.opt.weight_decay else 0) + (
            REGULARIZER_FLOPS if self.opt.regularized else 0)
        tid = f"update:{pid}"
        self.add(tid, "update", None, "update", per * count, reads, writes, param=pid,
                 numel=count, optimizer=self.opt.name, roles=roles,
                 read_bytes=sum(a.nbytes for a in reads),
                 write_bytes=sum(a.nbytes for a in writes))
        return tid


def _loss_spec(g: nx.DiGraph) -> tuple[str, list[str]]:
    """The graph's loss: ``graph["loss"]`` (default ``cross_entropy``) and
    ``graph["loss_targets"]``, nodes whose outputs the loss reads besides the sinks (a
    regression target: the teacher activation of a recasting step, an autoencoder's input)."""
    kind = g.graph.get("loss", "cross_entropy")
    if kind not in LOSS_KINDS:
        raise GraphError("graph.loss", f"unknown loss {kind!r}; choose one of "
                                       f"{', '.join(LOSS_KINDS)}")
    targets = g.graph.get("loss_targets", [])
    if not isinstance(targets, (list, tuple)) or not all(isinstance(t, str) for t in targets):
        raise GraphError("graph.loss_targets", "must be a list of node names")
    for t in targets:
        if t not in g.nodes:
            raise GraphError("graph.loss_targets", f"no node {t!r} in the graph")
    return kind, list(targets)


def _overlap(a: Access, b: Access) -> bool:
    return a.tensor == b.tensor and a.offset < b.offset + b.nbytes and \
        b.offset < a.offset + a.nbytes


def _unique(accesses: list[Access]) -> list[Access]:
    seen: set[Access] = set()
    out = []
    for a in accesses:
        if a not in seen:
            seen.add(a)
            out.append(a)
    return out


def expand_training(graph: nx.DiGraph, optimizer: OptimizerConfig | None = None,
                    policy: PrecisionPolicy | str = "fp32",
                    dataflow: Dataflow | None = None) -> TrainingSchedule:
    """Expand a workload graph into the task DAG of one training iteration."""
    from gradpimsim.host.hazards import derive_hazards
    from gradpimsim.host.residency import apply_residency

    validate(graph)
    opt = optimizer or OptimizerConfig()
    pol = precision(policy) if isinstance(policy, str) else policy
    flow = dataflow or Dataflow()
    ex = _Expander(graph, opt, pol, flow)
    program = ex.expand()
    groups = {pid: ex.groups_bytes(pid) for pid in ex.params}
    schedule = TrainingSchedule(graph, ex.dag, opt, pol, ex.tensors, groups, program, flow)
    if flow.fusion == "full" and flow.resident_bytes > 0:
        apply_residency(schedule, flow.resident_bytes)
    derive_hazards(schedule)
    assert nx.is_directed_acyclic_graph(ex.dag)
    return schedule


def critical_path_flops(schedule: TrainingSchedule) -> int:
    """FLOPs on the longest dependency chain (a lower bound on serialized compute)."""
    dag = schedule.dag
    best: dict[str, int] = {}
    for t in nx.topological_sort(dag):
        best[t] = dag.nodes[t]["flops"] + max((best[p] for p in dag.predecessors(t)), default=0)
    return max(best.values(), default=0)


__all__ = [
    "Access",
    "BACKWARD_PASSES",
    "PHASE_OF_KIND",
    "Dataflow",
    "TASK_ORDERS",
    "TensorSpec",
    "TrainingSchedule",
    "UPDATE_FLOPS",
    "critical_path_flops",
    "expand_training",
    "group_roles",
    "group_tensor_name",
    "update_traffic",
]
