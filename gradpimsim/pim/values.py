"""Real parameter values in the simulated DRAM: fill them, and check them against the reference.

The update bench, the full-system run and the tests all start from seeded random weights,
optimizer state and gradients written into a :class:`~gradpimsim.pim.store.DramStore`, and
afterwards compare the stored bytes bit for bit with :mod:`gradpimsim.pim.reference`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gradpimsim.config.training import OptimizerConfig, PrecisionPolicy
from gradpimsim.pim import datapath, reference
from gradpimsim.pim.kernels import UpdateTarget
from gradpimsim.pim.store import DramStore


def seeded_gradient(rng: np.random.Generator, n: int, dtype: str) -> np.ndarray:
    """``n`` seeded gradient values in ``dtype``: int8 quantized with scale 1.0 (as the PIM
    program assumes), otherwise N(0, 0.1) rounded from fp32.  One definition, so the update
    bench, the importance programs and the full-system run draw the same stream."""
    if dtype == "int8":
        return rng.integers(-128, 128, n).astype(np.int8)
    return datapath.from_fp32((rng.standard_normal(n) * 0.1).astype(np.float32), dtype)


def fill_parameters(store: DramStore, targets: Sequence[UpdateTarget], opt: OptimizerConfig,
                    prec: PrecisionPolicy, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Seeded random weights, state and gradients in DRAM; returns the reference's own copies."""
    refs = []
    for t in targets:
        n, pl = t.numel, t.placements
        w = rng.standard_normal(n).astype(np.float32)
        store.write_tensor(pl["weight"], w, "fp32")
        state = {}
        for role in opt.state_roles:
            s = (rng.standard_normal(n) * 0.01).astype(np.float32)
            if role == "exp_avg_sq":
                s = np.abs(s)
            store.write_tensor(pl[role], s, "fp32")
            state[role] = s.copy()
        g = seeded_gradient(rng, n, prec.grad_dtype)
        store.write_tensor(pl["grad"], g, prec.grad_dtype)
        # a regularizer's importance (>= 0) and the weights of the last task boundary (near
        # today's), drawn last so that the other values match the unregularized optimizer's
        for role in opt.const_roles:
            if role == "omega":
                c = np.abs(rng.standard_normal(n)).astype(np.float32)
            else:
                c = (w + rng.standard_normal(n) * 0.05).astype(np.float32)
            store.write_tensor(pl[role], c, "fp32")
            state[role] = c.copy()
        refs.append({"master": w.copy(), "state": state, "grad": g})
    return refs


def verify_parameters(store: DramStore, targets: Sequence[UpdateTarget],
                      refs: list[dict[str, Any]], opt: OptimizerConfig, prec: PrecisionPolicy,
                      step: int) -> list[str]:
    """Mismatches between the stored parameters and the reference optimizer (empty: exact).
    A regularizer's read-only tensors are in ``state`` too: they must come out unchanged."""
    bad = []
    for t, r in zip(targets, refs, strict=True):
        copy = reference.mixed_precision_step(opt, prec, r["master"], r["grad"], r["state"], step)
        got = store.read_tensor(t.placements["weight"], "fp32", t.numel)
        if not np.array_equal(got.view(np.uint32), r["master"].view(np.uint32)):
            bad.append(f"{t.name}: master weights differ from the reference")
        for role, ref_state in r["state"].items():
            got = store.read_tensor(t.placements[role], "fp32", t.numel)
            if not np.array_equal(got.view(np.uint32), ref_state.view(np.uint32)):
                bad.append(f"{t.name}: {role} differs from the reference")
        if copy is not None:
            got = store.read_tensor(t.placements["weight_copy"], prec.compute_dtype, t.numel)
            if not np.array_equal(got, copy):
                bad.append(f"{t.name}: weight copy differs from the reference")
    return bad
