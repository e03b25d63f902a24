"""The task boundary of a regularized optimizer (``ewc-*``) as GradPIM programs.

Regularized incremental learning (EWC: Kirkpatrick et al., PNAS 2017; MAS: Aljundi et al.,
ECCV 2018) keeps two more tensors per parameter: the importance ``omega`` and the weights
``theta_old`` at the last task boundary.  At that boundary the importance of the task just
learned is estimated and added in, here as the empirical Fisher diagonal (EWC), the mean of
squared per-sample gradients:

``fisher``
    one program per sample, after its backward pass: ``F = F + G*G`` (the first sample
    writes ``F = G*G`` and does not read ``F``), ``G`` the widened gradient;
``consolidate``
    once: ``omega = omega + (1/N) * F`` and ``theta_old = W``.

Each role is read and written at most once per lane group, like the optimizer step; the
recipes are in ``recipes.py`` (kinds ``fisher`` and ``consolidate``), the reference is
``reference.fisher_step`` and ``reference.consolidate``.  The host performs the same
arithmetic over the bus (:func:`importance_traffic` bytes per parameter).  MAS's importance
(the mean absolute gradient of the output's squared norm) needs an absolute value the unit
does not have; it is left out.
"""

from __future__ import annotations

from collections.abc import Sequence

from gradpimsim.config import MemoryConfig
from gradpimsim.config.model import ConfigError
from gradpimsim.config.pim import PimConfig
from gradpimsim.config.training import DTYPE_BYTES, OptimizerConfig, PrecisionPolicy
from gradpimsim.dram.address_map import AddressMap
from gradpimsim.pim import datapath
from gradpimsim.pim.kernels import UpdateTarget, assemble
from gradpimsim.pim.program import PimProgram
from gradpimsim.pim.recipes import Recipe, assign_scalars, check_supported

#: The two programs of the task boundary, in the order they run.
STAGES = ("fisher", "consolidate")


def importance_roles(precision: PrecisionPolicy) -> dict[str, str]:
    """Role -> dtype of the tensors the boundary programs touch (the optimizer step's
    other roles, momentum and the weight copy, are not read)."""
    st = precision.state_dtype
    return {"weight": precision.master_dtype, "grad": precision.grad_dtype, "fisher": st,
            "omega": st, "theta_old": st}


def importance_tensors(numel: int, precision: PrecisionPolicy) -> dict[str, int]:
    """``{role: nbytes}`` to place with ``Allocator.place_group`` (co-located policy)."""
    return {r: numel * DTYPE_BYTES[d] for r, d in importance_roles(precision).items()}


def stage_roles(stage: str, first: bool = False) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(roles read, roles written) per parameter by ``stage``."""
    _check_stage(stage)
    if stage == "fisher":
        return (("grad",) if first else ("grad", "fisher")), ("fisher",)
    return ("fisher", "omega", "weight"), ("omega", "theta_old")


def importance_traffic(stage: str, precision: PrecisionPolicy,
                       first: bool = False) -> tuple[int, int]:
    """(bytes read, bytes written) per parameter when the host runs ``stage`` over the bus."""
    dtypes = importance_roles(precision)
    reads, writes = stage_roles(stage, first)
    return (sum(DTYPE_BYTES[dtypes[r]] for r in reads),
            sum(DTYPE_BYTES[dtypes[r]] for r in writes))


def importance_column_ops_per_param(stage: str, precision: PrecisionPolicy,
                                    first: bool = False) -> float:
    """Closed form: every byte the host would move is one internal column access instead."""
    read, write = importance_traffic(stage, precision, first)
    return (read + write) / datapath.COLUMN_BYTES


def importance_scalars(stage: str, precision: PrecisionPolicy, samples: int,
                       grad_scale: float) -> dict[str, float]:
    """The fp32 scalars the stage's recipe reads."""
    s: dict[str, float] = {"one": 1.0}
    if stage == "fisher":
        if precision.grad_dtype == "int8" or grad_scale != 1.0:
            s["grad_scale"] = grad_scale
    else:
        s["inv_samples"] = 1.0 / samples
    return s


def build_importance_program(targets: Sequence[UpdateTarget], stage: str,
                             optimizer: OptimizerConfig, precision: PrecisionPolicy,
                             cfg: MemoryConfig, pim: PimConfig | None = None, *,
                             samples: int = 1, first: bool = False, grad_scale: float = 1.0,
                             amap: AddressMap | None = None,
                             lazy: bool = False) -> PimProgram:
    """The ``stage`` program over ``targets`` (placed with :func:`importance_tensors`).

    ``fisher``: ``first`` marks the task's first sample (``F = G*G``); ``grad_scale`` as in
    :func:`~gradpimsim.pim.kernels.build_program`.  ``consolidate``: ``samples`` is the number
    of squared gradients in ``F``.
    """
    _check_stage(stage)
    if not optimizer.regularized:
        raise ConfigError("optimizer.name", f"the importance programs serve a regularized "
                                            f"optimizer (ewc-*), not {optimizer.name!r}")
    if samples < 1:
        raise ConfigError("samples", f"the importance needs at least one sample, got {samples}")
    pim = pim or PimConfig()
    amap = amap or AddressMap(cfg)
    check_supported(optimizer, precision, pim)
    scalars = assign_scalars(importance_scalars(stage, precision, samples, grad_scale), pim)
    recipe = Recipe(optimizer, precision.grad_dtype, None, first_step=first,
                    scale_grad=precision.grad_dtype == "int8" or grad_scale != 1.0,
                    s={k: v[0] for k, v in scalars.items()}, kind=stage)
    dtypes = importance_roles(precision)
    roles = {r: dtypes[r] for r in recipe.roles}
    return assemble(targets, recipe, scalars, roles, optimizer, precision, 1, cfg, pim, amap,
                    lazy)


def _check_stage(stage: str) -> None:
    if stage not in STAGES:
        raise ConfigError("stage", f"unknown importance stage {stage!r}; choose one of "
                                   f"{', '.join(STAGES)}")


__all__ = ["STAGES", "build_importance_program", "importance_column_ops_per_param",
           "importance_roles", "importance_scalars", "importance_tensors",
           "importance_traffic", "stage_roles"]
