"""Which layers the NPU fuses into one pass: fusion groups and the tensors each group stores.

A training accelerator does not send every operator's output to DRAM.  It applies elementwise
layers (activations, residual additions, normalisations, softmax) to a GEMM's results on chip
and keeps in DRAM only what a later pass needs.  This module decides, from the workload graph
and a *fusion policy*, which nodes form one pass (a :class:`FusionGroup`) and which of a
group's values go to DRAM.  The counting rules are stated in ``docs/iteration.md``; the
policies, from least to most fusion:

``none``
    Every operator is its own pass and writes its output (the model before 0.2: kept so that
    old results can be reproduced).
``elementwise``
    An elementwise operator joins the pass of its producer when that producer has no other
    consumer: activations, ``add``, ``mul``, ``softmax``, ``layernorm`` (row statistics are
    available to a GEMM epilogue that holds whole rows) and views.  BatchNorm starts a pass of
    its own: it needs the statistics of its whole input (the batch) before it can normalise the
    first value, so its input goes to DRAM and comes back.
``bn-fission``
    BatchNorm fission-and-fusion (Jung et al., MLSys 2019): the statistics are reduced in the
    producing GEMM's epilogue and the normalisation is applied by the consumers as they read, so
    BatchNorm joins its producer's pass like any elementwise layer.  Generalised to every
    elementwise tail that depends on the GEMM output alone: the pass stores the GEMM output,
    and consumers apply the tail (normalise, activate) on the fly.
``full``
    ``bn-fission`` plus on-chip residency: a pass's output that fits the NPU's residency budget
    stays in the buffer for the next pass when that pass consumes it (``host.residency``).

Rules, per group (the anchor is the first member, the tail the last):

- *Saved*: when a member after the anchor needs values for its backward (a normalisation, an
  activation, softmax, ``mul``) and the anchor is not elementwise (a GEMM, a pool, an
  embedding), the anchor's output is written to DRAM: backward recomputes the rest of the
  chain from it elementwise.  An elementwise anchor (BatchNorm under ``elementwise``) is itself
  recomputable from its input, which is already in DRAM.
- *Stored output*: the tail is written for the consumers, except under ``bn-fission``/``full``
  when the tail depends only on the anchor's output (no member after the anchor reads another
  pass's tensor, no view changes the extent): then the consumers read the saved anchor output
  and apply the tail themselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import networkx as nx

from gradpimsim.config.model import ConfigError
from gradpimsim.graph.schema import ACTIVATION_OPS, numel

FUSION_POLICIES = ("none", "elementwise", "bn-fission", "full")
#: Operators that alias their input (no data moves): a reshape, a slice, dropout (its mask is
#: not modelled).
VIEW_OPS = frozenset({"reshape", "slice", "dropout"})
NORM_OPS = frozenset({"batchnorm", "layernorm"})
#: Operators a pass can apply to a GEMM's output on chip (BatchNorm only with fission).
ELEMENTWISE_OPS = ACTIVATION_OPS | frozenset({"add", "mul", "softmax", "layernorm"})
#: Members whose backward needs forward values (their input or output): recomputed from the
#: saved anchor output when they sit after the anchor.
NEEDS_VALUES = ACTIVATION_OPS | NORM_OPS | frozenset({"softmax", "mul"})


def check_fusion(policy: str) -> str:
    if policy not in FUSION_POLICIES:
        raise ConfigError("fusion", f"unknown fusion policy {policy!r}; choose one of "
                                    f"{', '.join(FUSION_POLICIES)}")
    return policy


@dataclass(frozen=True)
class FusionGroup:
    """Nodes executed as one NPU pass, in graph order: the anchor first, the tail last."""

    members: tuple[str, ...]
    #: The anchor's output goes to DRAM besides the tail: for backward, or as the stored form
    #: of a tail its consumers recompute (see the module docstring).
    saves_anchor: bool
    #: The tail goes to DRAM; False: consumers read the anchor output and apply the tail.
    stores_tail: bool

    @property
    def anchor(self) -> str:
        return self.members[0]

    @property
    def tail(self) -> str:
        return self.members[-1]


def _fusible(op: str, policy: str) -> bool:
    if policy == "none":
        return False
    if op in VIEW_OPS or op in ELEMENTWISE_OPS:
        return True
    return op == "batchnorm" and policy in ("bn-fission", "full")


def _inputs(g: nx.DiGraph, node: str) -> list[str]:
    return [u for u, _, _ in sorted(g.in_edges(node, data="index"), key=lambda e: e[2])]


def fusion_groups(g: nx.DiGraph, policy: str) -> list[FusionGroup]:
    """The passes of one forward sweep, in a topological order of their anchors.

    A node joins the group of one of its inputs (the first in slot order that qualifies) when
    it is fusible under ``policy`` and that input is the current tail of a group, has no other
    consumer, and is not a graph input.  Otherwise it anchors a group of its own.
    """
    check_fusion(policy)
    order = [n for n in nx.topological_sort(g) if g.nodes[n]["op"] != "input"]
    members: dict[str, list[str]] = {}
    owner: dict[str, str] = {}
    for n in order:
        join = None
        if _fusible(g.nodes[n]["op"], policy):
            for u in _inputs(g, n):
                a = owner.get(u)
                if a is not None and members[a][-1] == u and g.out_degree(u) == 1:
                    join = a
                    break
        if join is None:
            members[n] = [n]
            owner[n] = n
        else:
            members[join].append(n)
            owner[n] = join
    return [_group(g, tuple(ms), policy) for ms in members.values()]


def _group(g: nx.DiGraph, ms: tuple[str, ...], policy: str) -> FusionGroup:
    first = g.nodes[ms[0]]["op"]
    rest = ms[1:]
    anchor_elementwise = first in ELEMENTWISE_OPS or first in NORM_OPS or first in VIEW_OPS
    needs = any(g.nodes[m]["op"] in NEEDS_VALUES for m in rest)
    inside = set(ms)
    external = any(u not in inside for m in rest for u in g.predecessors(m))
    extent = numel(g.nodes[ms[0]]["out_shape"])
    same_extent = all(numel(g.nodes[m]["out_shape"]) == extent and g.nodes[m]["op"] != "slice"
                      for m in rest)
    computes = any(g.nodes[m]["op"] not in VIEW_OPS for m in rest)
    recomputable = (policy in ("bn-fission", "full") and computes and not external
                    and same_extent and not anchor_elementwise)
    saves = not anchor_elementwise and computes and (needs or recomputable)
    return FusionGroup(ms, saves, not recomputable)


def group_of(groups: Iterable[FusionGroup]) -> dict[str, FusionGroup]:
    """Node -> the group it belongs to."""
    return {m: grp for grp in groups for m in grp.members}


__all__ = ["ELEMENTWISE_OPS", "FUSION_POLICIES", "FusionGroup", "NEEDS_VALUES", "NORM_OPS",
           "VIEW_OPS", "check_fusion", "fusion_groups", "group_of"]
