"""The numpy reference optimizers follow torch.optim's update rules (checked in float64 and on
hand-worked values; torch itself is not a dependency)."""

from __future__ import annotations

import numpy as np
import pytest

from gradpimsim.config.model import ConfigError
from gradpimsim.config.training import OptimizerConfig, PrecisionPolicy, precision
from gradpimsim.pim import reference


def _f64_sgd(p, grads, lr, mu, damp, wd, nesterov):
    buf = None
    for g in grads:
        d = g + wd * p
        if mu:
            buf = d.copy() if buf is None else mu * buf + (1 - damp) * d
            d = d + mu * buf if nesterov else buf
        p = p - lr * d
    return p, buf


def _f64_adam(p, grads, lr, b1, b2, eps, wd, decoupled):
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        if decoupled:
            p = p * (1 - lr * wd)
        else:
            g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        mhat = m / (1 - b1 ** t)
        vhat = v / (1 - b2 ** t)
        p = p - lr * mhat / (np.sqrt(vhat) + eps)
    return p


@pytest.mark.parametrize("name,damp,nesterov", [("sgd", 0, False), ("momentum", 0.1, False),
                                                ("nesterov", 0, True)])
def test_sgd_family_close_to_float64(name, damp, nesterov) -> None:
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(1000)
    grads = [rng.standard_normal(1000) for _ in range(5)]
    opt = OptimizerConfig(name, lr=0.05, momentum=0.9, dampening=damp, weight_decay=0.01)
    p = p0.astype(np.float32)
    state: dict = {}
    for step, g in enumerate(grads, start=1):
        reference.optimizer_step(opt, p, g.astype(np.float32), state, step)
    mu = 0.0 if name == "sgd" else 0.9
    expect, buf = _f64_sgd(p0, grads, 0.05, mu, damp, 0.01, nesterov)
    np.testing.assert_allclose(p, expect, rtol=1e-5, atol=1e-5)
    if mu:
        np.testing.assert_allclose(state["momentum"], buf, rtol=1e-4, atol=1e-5)
    else:
        assert "momentum" not in state


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adam_close_to_float64(name) -> None:
    rng = np.random.default_rng(1)
    p0 = rng.standard_normal(1000)
    grads = [rng.standard_normal(1000) for _ in range(5)]
    opt = OptimizerConfig(name, lr=1e-2, weight_decay=0.1)
    p = p0.astype(np.float32)
    state: dict = {}
    for step, g in enumerate(grads, start=1):
        reference.optimizer_step(opt, p, g.astype(np.float32), state, step)
    expect = _f64_adam(p0, grads, 1e-2, 0.9, 0.999, 1e-8, 0.1, name == "adamw")
    np.testing.assert_allclose(p, expect, rtol=1e-5, atol=1e-6)


def test_first_momentum_step_clones_the_gradient() -> None:
    # torch: buf = clone(d_p) on the first step (dampening not applied)
    opt = OptimizerConfig("momentum", lr=1.0, momentum=0.5, dampening=0.5)
    p = np.zeros(2, np.float32)
    state: dict = {}
    reference.optimizer_step(opt, p, np.array([2.0, 4.0], np.float32), state, 1)
    assert state["momentum"].tolist() == [2.0, 4.0] and p.tolist() == [-2.0, -4.0]
    reference.optimizer_step(opt, p, np.array([2.0, 4.0], np.float32), state, 2)
    assert state["momentum"].tolist() == [2.0, 4.0]  # 0.5*2 + 0.5*2


def test_mixed_precision_flow() -> None:
    opt = OptimizerConfig("sgd", lr=0.5)
    master = np.array([1.0, 2.0], np.float32)
    copy = reference.mixed_precision_step(opt, precision("mixed-fp16"), master,
                                          np.array([2.0, 4.0], np.float16), {}, 1,
                                          grad_scale=0.5)
    assert master.tolist() == [0.5, 1.0] and copy.dtype == np.float16
    assert copy.tolist() == [0.5, 1.0]
    none = reference.mixed_precision_step(opt, precision("fp32"), master,
                                          np.ones(2, np.float32), {}, 1)
    assert none is None
    with pytest.raises(ConfigError):
        reference.mixed_precision_step(opt, PrecisionPolicy("h", "fp16", "fp16", "fp16", "fp16"),
                                       master, np.ones(2, np.float16), {}, 1)


def test_nesterov_needs_zero_dampening() -> None:
    with pytest.raises(ConfigError):
        reference.optimizer_step(OptimizerConfig("nesterov", dampening=0.1),
                                 np.zeros(1, np.float32), np.zeros(1, np.float32), {}, 1)
