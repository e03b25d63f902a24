"""Functional mode: real parameter values in the simulated DRAM, updated by host or GradPIM.

Both runs start from the same seeded weights, optimizer state and gradients (``fill``).  In the
baseline the host applies the reference optimizer when each update task finishes computing
(``HostUpdater``: read from the DRAM store, step, write back); with PIM the units compute on the
same bytes as their commands issue.  Afterwards the stored weights, state and low-precision
copies are checked bit for bit against the reference optimizer (``verify``), and ``compare``
checks that the two runs ended with identical bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gradpimsim.config.training import OptimizerConfig, PrecisionPolicy
from gradpimsim.pim import reference
from gradpimsim.pim.kernels import UpdateTarget
from gradpimsim.pim.store import DramStore
from gradpimsim.pim.values import fill_parameters, verify_parameters

__all__ = ["HostUpdater", "fill_parameters", "verify_parameters"]


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
        state = {r: store.read_tensor(pl[r], "fp32", n).copy() for r in self.opt.state_roles}
        copy = reference.mixed_precision_step(self.opt, prec, master, grad, state, self.step)
        store.write_tensor(pl["weight"], master, "fp32")
        for role, values in state.items():
            store.write_tensor(pl[role], values, "fp32")
        if copy is not None:
            store.write_tensor(pl["weight_copy"], copy, prec.compute_dtype)
