"""Optimizer and precision policies: shared by the host (baseline update) and the PIM kernels.

They live with the configuration because both sides of the comparison must read the very same
definition: the with-PIM and without-PIM runs differ only in where the update runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from gradpimsim.config.model import ConfigError

DTYPE_BYTES: dict[str, int] = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1}
#: The optimizers torch.optim defines, which every other name builds on.
BASE_OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw")
#: Prefix of a regularized (EWC/MAS-style) optimizer: ``ewc-momentum`` is momentum SGD on
#: ``g + reg_lambda * omega * (theta - theta_old)`` (``docs/related-methods.md``).
REGULARIZED_PREFIX = "ewc-"
#: Base optimizers that take the regularizer (the SGD family; the regularized gradient is an
#: ordinary gradient, Adam would take it too, but the unit then needs more scalar registers
#: than its default eight: not offered).
REGULARIZABLE = ("sgd", "momentum", "nesterov")
OPTIMIZERS = BASE_OPTIMIZERS + tuple(REGULARIZED_PREFIX + b for b in REGULARIZABLE)
#: Per-parameter tensors a regularized optimizer reads and never writes: the importance
#: ``omega`` and the weights at the last task boundary, ``theta_old`` (both fp32).
REGULARIZER_ROLES = ("omega", "theta_old")
_STATE_ROLES: dict[str, tuple[str, ...]] = {
    "sgd": (),
    "momentum": ("momentum",),
    "nesterov": ("momentum",),
    "adam": ("exp_avg", "exp_avg_sq"),
    "adamw": ("exp_avg", "exp_avg_sq"),
}


@dataclass(frozen=True)
class OptimizerConfig:
    """Hyperparameters with torch.optim's meaning (SGD: lr, momentum, dampening, weight_decay,
    nesterov; Adam/AdamW: lr, betas, eps, weight_decay, decoupled for AdamW).

    ``ewc-<base>`` names a regularized optimizer: ``base`` steps on the gradient
    ``g + reg_lambda * omega * (theta - theta_old)`` (``omega`` and ``theta_old`` are the
    :attr:`const_roles`, read-only per-parameter tensors).  ``reg_lambda`` is ignored otherwise.
    """

    name: str = "momentum"
    lr: float = 0.01
    momentum: float = 0.9
    dampening: float = 0.0
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    #: Strength of the regularizer of an ``ewc-*`` optimizer.
    reg_lambda: float = 1.0

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ConfigError(
                "optimizer.name",
                f"unknown optimizer {self.name!r}; choose one of {', '.join(OPTIMIZERS)}",
            )
        if not self.lr > 0:
            raise ConfigError("optimizer.lr", f"must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ConfigError("optimizer.weight_decay", f"must be >= 0, got {self.weight_decay}")
        if not 0 <= self.momentum < 1 or not 0 <= self.beta1 < 1 or not 0 <= self.beta2 < 1:
            raise ConfigError("optimizer.momentum", "momentum, beta1 and beta2 must be in [0, 1)")
        if not (self.reg_lambda >= 0 and self.reg_lambda != float("inf")):
            raise ConfigError("optimizer.reg_lambda", f"must be a finite number >= 0, got "
                                                      f"{self.reg_lambda}")

    @property
    def base(self) -> str:
        """The torch.optim optimizer underneath (``momentum`` for ``ewc-momentum``)."""
        return self.name.removeprefix(REGULARIZED_PREFIX)

    @property
    def regularized(self) -> bool:
        """``g + reg_lambda * omega * (theta - theta_old)`` replaces the gradient."""
        return self.name.startswith(REGULARIZED_PREFIX)

    @property
    def state_roles(self) -> tuple[str, ...]:
        """Optimizer-state tensors kept per parameter tensor, read and written by every step
        (each in the state dtype)."""
        return _STATE_ROLES[self.base]

    @property
    def const_roles(self) -> tuple[str, ...]:
        """Per-parameter tensors the step reads but never writes (state dtype): the
        regularizer's ``omega`` and ``theta_old``."""
        return REGULARIZER_ROLES if self.regularized else ()

    @property
    def needs_sqrt_div(self) -> bool:
        return self.base in ("adam", "adamw")


@dataclass(frozen=True)
class PrecisionPolicy:
    """Where each copy of a parameter lives and in which dtype.

    ``compute_dtype``: the weights forward/backward read (a low-precision copy under mixed
    precision); ``grad_dtype``: gradients written by backward; ``master_dtype``/``state_dtype``:
    the master weights and optimizer state the update reads and writes.
    """

    name: str = "fp32"
    compute_dtype: str = "fp32"
    grad_dtype: str = "fp32"
    master_dtype: str = "fp32"
    state_dtype: str = "fp32"

    def __post_init__(self) -> None:
        for f in ("compute_dtype", "grad_dtype", "master_dtype", "state_dtype"):
            if getattr(self, f) not in DTYPE_BYTES:
                raise ConfigError(
                    f"precision.{f}",
                    f"unknown dtype {getattr(self, f)!r}; known: {', '.join(DTYPE_BYTES)}",
                )

    @property
    def has_weight_copy(self) -> bool:
        """Mixed precision writes a low-precision weight copy back for the next forward."""
        return self.compute_dtype != self.master_dtype

    def update_bytes(self, optimizer: OptimizerConfig) -> tuple[int, int]:
        """Bytes per parameter the update reads and writes when the host performs it (the
        read-only ``const_roles`` are read, never written)."""
        state = len(optimizer.state_roles) * DTYPE_BYTES[self.state_dtype]
        const = len(optimizer.const_roles) * DTYPE_BYTES[self.state_dtype]
        master = DTYPE_BYTES[self.master_dtype]
        read = DTYPE_BYTES[self.grad_dtype] + master + state + const
        write = master + state + (DTYPE_BYTES[self.compute_dtype] if self.has_weight_copy else 0)
        return read, write


PRECISIONS: dict[str, PrecisionPolicy] = {
    "fp32": PrecisionPolicy("fp32"),
    "mixed": PrecisionPolicy("mixed", compute_dtype="fp16", grad_dtype="fp16"),
    "mixed-fp16": PrecisionPolicy("mixed-fp16", compute_dtype="fp16", grad_dtype="fp16"),
    "mixed-bf16": PrecisionPolicy("mixed-bf16", compute_dtype="bf16", grad_dtype="bf16"),
    "mixed-int8": PrecisionPolicy("mixed-int8", compute_dtype="fp16", grad_dtype="int8"),
}


def precision(name: str) -> PrecisionPolicy:
    """A precision policy by name (``fp32``, ``mixed``/``mixed-fp16``, ``mixed-bf16``,
    ``mixed-int8`` = fp16 compute with int8 gradients)."""
    try:
        return PRECISIONS[name]
    except KeyError:
        raise ConfigError(
            "precision", f"unknown precision policy {name!r}; choose one of {', '.join(PRECISIONS)}"
        ) from None
