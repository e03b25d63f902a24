"""Reference optimizers in numpy fp32, following torch.optim's update rules.

These are the yardstick the PIM kernels are tested against, written the way torch.optim's
single-tensor (``foreach=False``) implementations read, over whole arrays and independent of the
PIM code.  Every scalar is rounded to fp32 once (torch casts a Python-float ``alpha`` to the
tensor's dtype) and every array operation is a separate correctly rounded fp32 operation.

Rounding order where torch's fused kernels leave it open (documented in ``docs/gradpim.md``):
``addcmul`` is taken as ``v + (1 - beta2) * (g * g)``, ``addcdiv`` as
``w + (-step_size) * (m / denom)``, and the Adam first moment uses the documented
``beta1 * m + (1 - beta1) * g`` rather than torch's newer ``lerp`` (equal in exact arithmetic,
at most an ulp apart in fp32).

The mixed-precision flow (:func:`mixed_precision_step`): the low-precision gradient is widened to
fp32 (times its scale: int8 dequantization, or the inverse loss scale), the fp32 master weights
and fp32 optimizer state are updated, and a low-precision copy of the new weights is produced for
the next forward pass.
"""

from __future__ import annotations

import math

import numpy as np

from gradpimsim.config.model import ConfigError
from gradpimsim.config.training import OptimizerConfig, PrecisionPolicy
from gradpimsim.pim import datapath

f32 = np.float32


def sgd_step(param: np.ndarray, grad: np.ndarray, state: dict[str, np.ndarray], *, lr: float,
             momentum: float = 0.0, dampening: float = 0.0, weight_decay: float = 0.0,
             nesterov: bool = False) -> None:
    """torch.optim.SGD on one tensor, in place (``state['momentum']`` is the momentum buffer)."""
    d_p = grad
    if weight_decay != 0:
        d_p = d_p + f32(weight_decay) * param
    if momentum != 0:
        buf = state.get("momentum")
        # torch: buf = clone(d_p) on the first step
        buf = d_p.copy() if buf is None else f32(momentum) * buf + f32(1.0 - dampening) * d_p
        state["momentum"] = buf
        d_p = d_p + f32(momentum) * buf if nesterov else buf
    param[:] = param + f32(-lr) * d_p


def adam_step(param: np.ndarray, grad: np.ndarray, state: dict[str, np.ndarray], *, step: int,
              lr: float, beta1: float, beta2: float, eps: float, weight_decay: float = 0.0,
              decoupled: bool = False) -> None:
    """torch.optim.Adam (``decoupled=False``) or AdamW (``True``) on one tensor, in place.

    ``state`` holds ``exp_avg`` and ``exp_avg_sq`` (zeros before the first step, as in torch).
    """
    if step < 1:
        raise ValueError("Adam steps count from 1")
    if weight_decay != 0:
        if decoupled:
            param[:] = f32(1.0 - lr * weight_decay) * param
        else:
            grad = grad + f32(weight_decay) * param
    m = state.get("exp_avg")
    v = state.get("exp_avg_sq")
    m = np.zeros_like(param) if m is None else m
    v = np.zeros_like(param) if v is None else v
    m = f32(beta1) * m + f32(1.0 - beta1) * grad
    v = f32(beta2) * v + f32(1.0 - beta2) * (grad * grad)
    state["exp_avg"], state["exp_avg_sq"] = m, v
    bias_correction1 = 1.0 - beta1 ** step
    bias_correction2 = 1.0 - beta2 ** step
    step_size = lr / bias_correction1
    bias_correction2_sqrt = math.sqrt(bias_correction2)
    denom = np.sqrt(v) / f32(bias_correction2_sqrt) + f32(eps)
    param[:] = param + f32(-step_size) * (m / denom)


def regularized_grad(grad: np.ndarray, param: np.ndarray, omega: np.ndarray,
                     theta_old: np.ndarray, reg_lambda: float) -> np.ndarray:
    """The EWC/MAS-style gradient ``g + lambda * (omega * (theta - theta_old))``: the
    gradient of ``loss + lambda/2 * sum(omega * (theta - theta_old)**2)``, in this order."""
    with np.errstate(all="ignore"):
        return grad + f32(reg_lambda) * (omega * (param - theta_old))


def optimizer_step(opt: OptimizerConfig, param: np.ndarray, grad: np.ndarray,
                   state: dict[str, np.ndarray], step: int) -> None:
    """One step of ``opt`` on fp32 ``param`` with fp32 ``grad``; updates ``param``/``state``.

    A regularized optimizer (``ewc-*``) reads ``state['omega']`` and ``state['theta_old']``
    (never writing them) and steps its base optimizer on :func:`regularized_grad`; weight
    decay, if any, is added after the regularizer, inside the base step, as torch.optim does
    for a penalty that is part of the loss."""
    with np.errstate(all="ignore"):
        if opt.regularized:
            grad = regularized_grad(grad, param, state["omega"], state["theta_old"],
                                    opt.reg_lambda)
        if opt.base == "sgd":
            sgd_step(param, grad, state, lr=opt.lr, weight_decay=opt.weight_decay)
        elif opt.base in ("momentum", "nesterov"):
            nesterov = opt.base == "nesterov"
            if nesterov and (opt.momentum <= 0 or opt.dampening != 0):
                raise ConfigError("optimizer.dampening",
                                  "Nesterov momentum requires a momentum and zero dampening")
            sgd_step(param, grad, state, lr=opt.lr, momentum=opt.momentum,
                     dampening=opt.dampening, weight_decay=opt.weight_decay, nesterov=nesterov)
        else:
            adam_step(param, grad, state, step=step, lr=opt.lr, beta1=opt.beta1, beta2=opt.beta2,
                      eps=opt.eps, weight_decay=opt.weight_decay, decoupled=opt.base == "adamw")


def fisher_step(fisher: np.ndarray | None, grad: np.ndarray) -> np.ndarray:
    """Accumulate one sample's squared gradient: ``F + g*g`` (``g*g`` for the first,
    ``fisher=None``); ``grad`` is fp32 (widened)."""
    with np.errstate(all="ignore"):
        sq = grad * grad
        return sq if fisher is None else fisher + sq


def consolidate(omega: np.ndarray, fisher: np.ndarray, param: np.ndarray,
                samples: int) -> tuple[np.ndarray, np.ndarray]:
    """The task boundary: the importance of the task just learned (the empirical Fisher
    diagonal, the mean of ``samples`` squared gradients) is added to ``omega``, and the
    weights are kept as ``theta_old``; returns ``(omega, theta_old)``."""
    if samples < 1:
        raise ValueError("the importance needs at least one sample")
    with np.errstate(all="ignore"):
        return omega + f32(1.0 / samples) * fisher, param.copy()


def widen_grad(grad: np.ndarray, dtype: str, grad_scale: float = 1.0) -> np.ndarray:
    """Stored gradient -> fp32: ``fp32(g) * grad_scale`` (the multiply skipped when the scale is
    1 and the dtype is not int8, exactly as the PIM kernel skips it)."""
    with np.errstate(all="ignore"):
        if dtype == "int8" or grad_scale != 1.0:
            return datapath.to_fp32(grad, dtype, grad_scale)
        return datapath.to_fp32(grad, dtype)


def narrow_weight(master: np.ndarray, dtype: str, copy_scale: float = 1.0) -> np.ndarray:
    """fp32 master -> the stored low-precision copy (int8: quantized with ``copy_scale``)."""
    with np.errstate(all="ignore"):
        if dtype == "int8":
            return datapath.from_fp32(master, "int8", datapath.int8_inverse_scale(copy_scale))
        return datapath.from_fp32(master, dtype)


def mixed_precision_step(opt: OptimizerConfig, prec: PrecisionPolicy, master: np.ndarray,
                         grad_stored: np.ndarray, state: dict[str, np.ndarray], step: int, *,
                         grad_scale: float = 1.0, copy_scale: float = 1.0) -> np.ndarray | None:
    """One update under ``prec``: widen the gradient, step the fp32 master and state in place,
    and return the new low-precision weight copy (``None`` when ``prec`` keeps no copy)."""
    if prec.master_dtype != "fp32" or prec.state_dtype != "fp32":
        raise ConfigError("precision.master_dtype", "the reference keeps fp32 master and state")
    g = widen_grad(grad_stored, prec.grad_dtype, grad_scale)
    optimizer_step(opt, master, g, state, step)
    if prec.has_weight_copy:
        return narrow_weight(master, prec.compute_dtype, copy_scale)
    return None
