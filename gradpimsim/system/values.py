"""Functional mode: real parameter values in the simulated DRAM, updated by host or GradPIM.

Both runs start from the same seeded weights and optimizer state (``fill``).  The gradients
are seeded too, but they are *not* in DRAM at the start: the gradient buffers hold zeros until
the backward task that completes a parameter's gradient (its last weight-gradient contribution
in program order) has finished writing it, and only then are the seeded values stored
(:class:`GradientWriter`, called at the cycle the write completes).  An update that ran before
its gradient was complete would read zeros and end with the wrong weights: values carry the
schedule's causality.  In the baseline the host applies the reference optimizer when each
update task finishes computing (``HostUpdater``: read from the DRAM store, step, write back);
with PIM the units compute on the stored bytes as their commands issue.  Afterwards the stored
weights, state and low-precision copies are checked bit for bit against the reference optimizer
(``verify``), and ``compare`` checks that the two runs ended with identical bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gradpimsim.config.training import OptimizerConfig, PrecisionPolicy
from gradpimsim.pim import reference
from gradpimsim.pim.kernels import UpdateTarget
from gradpimsim.pim.store import DramStore
from gradpimsim.pim.values import fill_parameters as fill_seeded
from gradpimsim.pim.values import verify_parameters


def fill_parameters(store: DramStore, targets: Sequence[UpdateTarget], opt: OptimizerConfig,
                    prec: PrecisionPolicy, rng: np.random.Generator, *,
                    gradients: bool = True) -> list[dict[str, Any]]:
    """Seeded random weights, state and gradients; returns the reference's copies.  With
    ``gradients=False`` the gradient buffers are left zero (a :class:`GradientWriter` stores
    the seeded values when backward writes them)."""
    refs = fill_seeded(store, targets, opt, prec, rng)
    if not gradients:
        for t, r in zip(targets, refs, strict=True):
            store.write_tensor(t.placements["grad"], np.zeros_like(r["grad"]), prec.grad_dtype)
    return refs


class GradientWriter:
    """Stores a parameter's seeded gradient when the task completing it has written it.

    ``last_writer[tensor]`` is the task whose write of the ``<param>/grad`` tensor completes
    the gradient (the last contributor in program order); earlier contributions to a shared
    parameter store nothing (their partial sums are not modelled as values).
    """

    def __init__(self, store: DramStore, targets: Mapping[str, UpdateTarget],
                 refs: Mapping[str, dict[str, Any]], prec: PrecisionPolicy,
                 last_writer: Mapping[str, str]) -> None:
        self.store = store
        self.targets = targets
        self.refs = refs
        self.prec = prec
        self.last_writer = last_writer
        #: parameter -> cycle its gradient was stored (for tests and the verifier)
        self.stored_at: dict[str, int] = {}

    def __call__(self, task: str, tensor: str, cycle: int) -> None:
        if self.last_writer.get(tensor) != task:
            return
        pid = tensor.rsplit("/", 1)[0]
        t = self.targets[pid]
        self.store.write_tensor(t.placements["grad"], self.refs[pid]["grad"],
                                self.prec.grad_dtype)
        self.stored_at[pid] = cycle


def last_gradient_writers(program: Sequence[str], nodes: Any) -> dict[str, str]:
    """``<param>/grad`` tensor -> the last task in ``program`` that writes it."""
    out: dict[str, str] = {}
    for t in program:
        for a in nodes[t]["writes"]:
            if a.tensor.endswith("/grad") and nodes[t]["kind"] != "update":
                out[a.tensor] = t
    return out




class HostUpdater:
    """The baseline's optimizer step on real values, applied when an update task computes."""

    def __init__(self, store: DramStore, targets: Mapping[str, UpdateTarget],
                 opt: OptimizerConfig, prec: PrecisionPolicy, step: int) -> None:
        self.store = store
        self.targets = targets
        self.opt = opt
        self.prec = prec
        self.step = step

    def __call__(self, task: str, node: Mapping[str, Any]) -> None:
        t = self.targets[node["param"]]
        pl, n, prec, store = t.placements, t.numel, self.prec, self.store
        master = store.read_tensor(pl["weight"], "fp32", n).copy()
        grad = store.read_tensor(pl["grad"], prec.grad_dtype, n).copy()
        roles = self.opt.state_roles + self.opt.const_roles
        state = {r: store.read_tensor(pl[r], "fp32", n).copy() for r in roles}
        copy = reference.mixed_precision_step(self.opt, prec, master, grad, state, self.step)
        store.write_tensor(pl["weight"], master, "fp32")
        for role in self.opt.state_roles:  # the regularizer's tensors are read-only
            store.write_tensor(pl[role], state[role], "fp32")
        if copy is not None:
            store.write_tensor(pl["weight_copy"], copy, prec.compute_dtype)


__all__ = ["GradientWriter", "HostUpdater", "fill_parameters", "last_gradient_writers",
           "verify_parameters"]
