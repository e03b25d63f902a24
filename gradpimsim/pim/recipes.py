"""Recipes: what the unit computes for an optimizer, and whether it can.

:func:`check_supported` says whether the unit can run an optimizer under a precision policy;
:func:`scalar_values` and :func:`assign_scalars` put the hyperparameters in scalar registers;
:class:`Recipe` is the arithmetic of one lane group (16 parameters), decided once per program.
A new optimizer recipe lands here (and its reference in ``reference.py``).

Besides the optimizer step (kind ``update``) a recipe can be one of the two task-boundary
programs of a regularized optimizer (``ewc-*``, ``docs/related-methods.md``): ``fisher``
accumulates squared gradients (``F = F + G*G``, the first sample ``F = G*G``), and
``consolidate`` turns them into the importance and snapshots the weights
(``omega = omega + (1/N)*F``, ``theta_old = W``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradpimsim.config.model import ConfigError
from gradpimsim.config.pim import PimConfig
from gradpimsim.config.training import OptimizerConfig, PrecisionPolicy
from gradpimsim.pim import datapath
from gradpimsim.pim.errors import PimCapabilityError
from gradpimsim.pim.unit import PimInstr, pim_op

#: What a recipe computes: an optimizer step, or one of the two importance programs.
RECIPE_KINDS = ("update", "fisher", "consolidate")


def uses_momentum(opt: OptimizerConfig) -> bool:
    return opt.base in ("momentum", "nesterov") and opt.momentum != 0


def check_supported(opt: OptimizerConfig, prec: PrecisionPolicy, pim: PimConfig) -> None:
    """Raise :class:`PimCapabilityError` unless the unit can run ``opt`` under ``prec``."""
    if prec.master_dtype != "fp32" or prec.state_dtype != "fp32":
        raise PimCapabilityError(
            "precision.master_dtype", "GradPIM keeps fp32 master weights and optimizer state "
            f"(got master {prec.master_dtype}, state {prec.state_dtype})")
    for role, dtype in (("grad", prec.grad_dtype), ("weight copy", prec.compute_dtype)):
        if dtype not in pim.dtypes:
            raise PimCapabilityError("pim.dtypes", f"{role} dtype {dtype!r} is not one the unit "
                                     f"converts (pim.dtypes = {list(pim.dtypes)})")
    if opt.needs_sqrt_div and not pim.has_sqrt_div:
        raise PimCapabilityError(
            "pim.has_sqrt_div", f"{opt.name} needs a square root and a division, which the "
            "paper's GradPIM unit lacks; enable the extension with has_sqrt_div = true in "
            "the memory TOML's [pim] section, or --pim-knob has_sqrt_div=true")
    if opt.base == "nesterov" and (opt.momentum <= 0 or opt.dampening != 0):
        raise ConfigError("optimizer.dampening",
                          "Nesterov momentum requires a momentum and zero dampening")


# --- scalars ------------------------------------------------------------------------------

def scalar_values(opt: OptimizerConfig, prec: PrecisionPolicy, step: int, grad_scale: float,
                   copy_scale: float) -> dict[str, float]:
    """Every hyperparameter the program needs, as the fp32 value its register holds."""
    s: dict[str, float] = {"one": 1.0}
    if prec.grad_dtype == "int8" or grad_scale != 1.0:
        s["grad_scale"] = grad_scale
    if prec.has_weight_copy and prec.compute_dtype == "int8":
        s["copy_inv_scale"] = float(datapath.int8_inverse_scale(copy_scale))
    if opt.regularized:
        s["neg_one"] = -1.0
        s["reg_lambda"] = opt.reg_lambda
    if opt.base in ("adam", "adamw"):
        if opt.weight_decay != 0:
            if opt.base == "adamw":
                s["decay"] = 1.0 - opt.lr * opt.weight_decay
            else:
                s["wd"] = opt.weight_decay
        s["beta1"], s["one_minus_beta1"] = opt.beta1, 1.0 - opt.beta1
        s["beta2"], s["one_minus_beta2"] = opt.beta2, 1.0 - opt.beta2
        s["bias_correction2_sqrt"] = math.sqrt(1.0 - opt.beta2 ** step)
        s["eps"] = opt.eps
        s["neg_step_size"] = -(opt.lr / (1.0 - opt.beta1 ** step))
    else:
        if opt.weight_decay != 0:
            s["wd"] = opt.weight_decay
        if uses_momentum(opt):
            s["momentum"] = opt.momentum
            s["one_minus_dampening"] = 1.0 - opt.dampening
        s["neg_lr"] = -opt.lr
    return s


def assign_scalars(values: dict[str, float], pim: PimConfig) -> dict[str, tuple[int, float]]:
    """Registers for the scalars, one per distinct fp32 value."""
    by_bits: dict[int, int] = {}
    out = {}
    for name, v in values.items():
        bits = int(np.float32(v).view(np.uint32))
        if bits not in by_bits:
            by_bits[bits] = len(by_bits)
        out[name] = (by_bits[bits], float(np.float32(v)))
    if len(by_bits) > pim.scalar_registers:
        raise PimCapabilityError(
            "pim.scalar_registers", f"the update needs {len(by_bits)} distinct scalars "
            f"({', '.join(values)}) but the unit has {pim.scalar_registers} scalar registers")
    return out


# --- the arithmetic of one lane group -----------------------------------------------------

@dataclass(frozen=True)
class Recipe:
    """What the kernel computes, decided once per program."""

    opt: OptimizerConfig
    grad_dtype: str
    copy_dtype: str | None
    first_step: bool
    scale_grad: bool
    s: dict[str, int]  # scalar name -> register
    #: ``update`` (the optimizer step), ``fisher`` or ``consolidate`` (``RECIPE_KINDS``).
    kind: str = "update"

    def __reduce__(self) -> tuple[type[Recipe], tuple[Any, ...]]:
        """Pickle through the constructor (compiled, a frozen dataclass cannot be rebuilt field
        by field; see ``UpdateTarget.__reduce__``)."""
        return (Recipe, (self.opt, self.grad_dtype, self.copy_dtype, self.first_step,
                         self.scale_grad, self.s, self.kind))

    @property
    def adam(self) -> bool:
        return self.kind == "update" and self.opt.base in ("adam", "adamw")

    @property
    def momentum(self) -> bool:
        return uses_momentum(self.opt)

    @property
    def nesterov(self) -> bool:
        return self.opt.base == "nesterov"

    @property
    def regularized(self) -> bool:
        return self.kind == "update" and self.opt.regularized

    @property
    def state_roles(self) -> tuple[str, ...]:
        if self.kind != "update":
            return ()
        if self.adam:
            return ("exp_avg", "exp_avg_sq")
        return ("momentum",) if self.momentum else ()

    @property
    def read_state(self) -> bool:
        return self.adam or not self.first_step

    @property
    def read_roles(self) -> tuple[str, ...]:
        """Roles each lane group reads, in read order (the first one's lane-group part is
        the ``gpart`` of :meth:`ops`)."""
        if self.kind == "fisher":
            return ("grad",) if self.first_step else ("grad", "fisher")
        if self.kind == "consolidate":
            return ("fisher", "omega", "weight")
        state = self.state_roles if self.read_state else ()
        const = self.opt.const_roles if self.regularized else ()
        return ("grad", "weight", *state, *const)

    @property
    def out_roles(self) -> tuple[str, ...]:
        """Roles each lane group writes, in write order."""
        if self.kind == "fisher":
            return ("fisher",)
        if self.kind == "consolidate":
            return ("omega", "theta_old")
        copy = ("weight_copy",) if self.copy_dtype is not None else ()
        return ("weight", *self.state_roles, *copy)

    @property
    def roles(self) -> tuple[str, ...]:
        """Every role the program touches (each needs a placement)."""
        if self.kind == "update":
            const = self.opt.const_roles if self.regularized else ()
            copy = ("weight_copy",) if self.copy_dtype is not None else ()
            return ("grad", "weight", *self.state_roles, *const, *copy)
        return tuple(dict.fromkeys(self.read_roles + self.out_roles))

    @property
    def temps(self) -> tuple[str, ...]:
        t = ("G",) if self.grad_dtype != "fp32" and self.kind != "consolidate" else ()
        return t + (("T",) if self.adam else ())

    def ops(self, r: dict[str, int], gpart: int, cpart: int) -> list[PimInstr]:
        """PIM_OPs of one lane group; ``r`` maps operand names to vector registers."""
        if self.kind == "consolidate":
            return self._consolidate_ops(r)
        s, out = self.s, []
        gs = s.get("grad_scale", -1) if self.scale_grad else -1
        if self.grad_dtype != "fp32":
            G = r["G"]
            out.append(pim_op("cvt", G, r["grad"], self.grad_dtype, "fp32", gpart, gs))
        else:
            G = r["grad"]
            if gs >= 0:
                out.append(pim_op("scale", G, G, gs))
        one = s["one"]
        if self.kind == "fisher":
            return out + self._fisher_ops(r, G)
        W = r["weight"]
        if self.regularized:
            # G = G + lambda * (omega * (W - theta_old)); the read-only columns' registers
            # serve as temporaries (an fp32 column belongs to one lane group)
            D, O = r["theta_old"], r["omega"]
            out.append(pim_op("axpby", D, W, s["neg_one"], one))
            out.append(pim_op("mul", O, O, D))
            out.append(pim_op("axpby", G, O, one, s["reg_lambda"]))
        if self.adam:
            M, V, T = r["exp_avg"], r["exp_avg_sq"], r["T"]
            if "decay" in s:
                out.append(pim_op("scale", W, W, s["decay"]))
            elif "wd" in s:
                out.append(pim_op("axpby", G, W, one, s["wd"]))
            out.append(pim_op("axpby", M, G, s["beta1"], s["one_minus_beta1"]))
            out.append(pim_op("mul", T, G, G))
            out.append(pim_op("axpby", V, T, s["beta2"], s["one_minus_beta2"]))
            out.append(pim_op("sqrt", T, V))
            out.append(pim_op("divs", T, T, s["bias_correction2_sqrt"]))
            out.append(pim_op("adds", T, T, s["eps"]))
            out.append(pim_op("div", T, M, T))
            out.append(pim_op("axpby", W, T, one, s["neg_step_size"]))
        else:
            if "wd" in s:
                out.append(pim_op("axpby", G, W, one, s["wd"]))
            D = G
            if self.momentum:
                M = r["momentum"]
                if self.first_step:
                    out.append(pim_op("mov", M, G))
                else:
                    out.append(pim_op("axpby", M, G, s["momentum"], s["one_minus_dampening"]))
                if self.nesterov:
                    out.append(pim_op("axpby", G, M, one, s["momentum"]))
                else:
                    D = M
            out.append(pim_op("axpby", W, D, one, s["neg_lr"]))
        if self.copy_dtype is not None:
            out.append(pim_op("cvt", r["weight_copy"], W, "fp32", self.copy_dtype, cpart,
                              s.get("copy_inv_scale", -1)))
        return out

    def _fisher_ops(self, r: dict[str, int], G: int) -> list[PimInstr]:
        """``F = G*G`` on the first sample, else ``F = F + G*G`` (G may be overwritten: the
        gradient is not written back)."""
        one = self.s["one"]
        if self.first_step:
            return [pim_op("mul", r["fisher"], G, G)]
        return [pim_op("mul", G, G, G), pim_op("axpby", r["fisher"], G, one, one)]

    def _consolidate_ops(self, r: dict[str, int]) -> list[PimInstr]:
        """``omega = omega + (1/N)*F`` and ``theta_old = W`` (a raw copy)."""
        s = self.s
        return [pim_op("axpby", r["omega"], r["fisher"], s["one"], s["inv_samples"]),
                pim_op("mov", r["theta_old"], r["weight"])]
