"""What one training-iteration run is: every knob, validated, and serializable.

A :class:`RunConfig` names the workload, the memory system, the NPU, the optimizer, the
precision policy and whether the update runs in DRAM (GradPIM) or on the host.  ``to_dict``
records all of it in the results so a run can be reproduced from its JSON alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from gradpimsim.config import ConfigError, MemoryConfig, load_config, load_pim_config
from gradpimsim.config.pim import PimConfig, with_knobs
from gradpimsim.config.training import OptimizerConfig, PrecisionPolicy, precision
from gradpimsim.host.fusion import FUSION_POLICIES
from gradpimsim.host.npu import DEFAULT_NPU
from gradpimsim.host.placement import check_placement
from gradpimsim.host.training import BACKWARD_PASSES, TASK_ORDERS, Dataflow

PIM_POLICIES = ("host-first", "pim-first", "fair", "throttled")
LAYOUTS = ("colocated", "naive")
#: When an update may start: ``overlap`` as soon as its parameter's hazards allow,
#: ``after-backward`` once the whole backward pass is done; ``auto``: the host baseline
#: after backward (``optimizer.step()`` after ``loss.backward()``), GradPIM overlapped.
UPDATE_POLICIES = ("auto", "overlap", "after-backward")


@dataclass(frozen=True)
class RunConfig:
    """One training iteration to simulate (defaults: the README's quick-start comparison)."""

    workload: str = "mlp"
    batch: int | None = None  # None: the workload's default
    seq_len: int | None = None
    memory: str = "ddr4-2400"
    channels: int | None = None
    ranks: int | None = None
    optimizer: str = "momentum"
    precision: str = "mixed"
    npu: str = DEFAULT_NPU
    pim: bool = False
    #: Which layers the NPU fuses into one pass (``host.fusion``).
    fusion: str = "full"
    #: Task order: ``autograd`` or ``legacy`` (before 0.2; needs fusion none, split backward).
    task_order: str = "autograd"
    #: A pass's data and weight gradients in one pass (``fused``) or two (``split``).
    backward: str = "fused"
    #: When updates start (``UPDATE_POLICIES``).
    update_policy: str = "auto"
    #: Command-bus ties between host traffic and PIM streams (``arbiter.shared_channel``).
    pim_policy: str = "host-first"
    #: ``fair``: the most cycles either side waits for a bank the other keeps (None: 1000).
    pim_wait_bound: int | None = None
    #: Placement of each parameter's weight, gradient and state (the same in both runs).
    layout: str = "colocated"
    #: Where parameters live relative to activations (``host.placement``; both runs).
    placement: str = "auto"
    #: Banks per bank group for parameters under bank partitioning (None: what the update's
    #: operands need without sharing a bank's rows, at most all but one).
    param_banks: int | None = None
    #: Execute the update on real values (both runs) and verify the weights; small models only.
    functional: bool = False
    #: Optimizer step being simulated (1 = first step: momentum buffers are not read yet).
    step: int = 2
    seed: int = 0
    #: GradPIM unit knobs over the memory TOML's ``[pim]`` section (``config.pim.PimConfig``
    #: field names, e.g. ``{"vector_registers": 16, "has_sqrt_div": True}``).
    pim_knobs: dict[str, Any] = dataclasses.field(default_factory=dict, hash=False)
    #: Width of the bandwidth-over-time bins, in DRAM cycles.
    bin_cycles: int = 10_000
    #: Closed-form runs of row hits (False: one scheduler decision per command, for checks).
    batch_runs: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("batch", "seq_len", "channels", "ranks"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ConfigError(name, f"must be a positive integer, got {v!r}")
        wb = self.pim_wait_bound
        if wb is not None and (isinstance(wb, bool) or not isinstance(wb, int) or wb < 1):
            raise ConfigError("pim_wait_bound", f"must be a positive integer (cycles), got {wb!r}")
        if self.pim_policy not in PIM_POLICIES:
            raise ConfigError("pim_policy", f"unknown policy {self.pim_policy!r}; choose one "
                                            f"of {', '.join(PIM_POLICIES)}")
        for name, choices in (("fusion", FUSION_POLICIES), ("task_order", TASK_ORDERS),
                              ("backward", BACKWARD_PASSES),
                              ("update_policy", UPDATE_POLICIES)):
            if getattr(self, name) not in choices:
                raise ConfigError(name, f"unknown value {getattr(self, name)!r}; choose one "
                                        f"of {', '.join(choices)}")
        self.dataflow(0)  # the combination must be valid (legacy needs none + split)
        check_placement(self.placement)
        if self.param_banks is not None and (isinstance(self.param_banks, bool)
                                             or not isinstance(self.param_banks, int)
                                             or self.param_banks < 1):
            raise ConfigError("param_banks", f"must be a positive integer, got "
                                             f"{self.param_banks!r}")
        if self.layout == "naive" and self.placement not in ("auto", "shared"):
            raise ConfigError("placement", "the naive layout places parameters among the "
                                           "activations: use --placement shared (or auto)")
        if self.layout not in LAYOUTS:
            raise ConfigError("layout", f"unknown layout {self.layout!r}; choose one of "
                                        f"{', '.join(LAYOUTS)}")
        if self.step < 1:
            raise ConfigError("step", "optimizer steps count from 1")
        if self.bin_cycles < 1:
            raise ConfigError("bin_cycles", "must be >= 1")
        self.optimizer_config()  # validate names early: errors name the field
        if self.pim_knobs:
            self.pim_config()
        self.precision_policy()

    def dataflow(self, resident_bytes: int) -> Dataflow:
        """The NPU dataflow of this run, with the NPU's residency budget."""
        return Dataflow(self.fusion, self.task_order, self.backward,
                        resident_bytes if self.fusion == "full" else 0)

    def resolved_update_policy(self) -> str:
        """``update_policy`` with ``auto`` resolved for this run (host or PIM)."""
        if self.update_policy != "auto":
            return self.update_policy
        return "overlap" if self.pim else "after-backward"

    @classmethod
    def legacy(cls, **kw: Any) -> RunConfig:
        """The model of gradpimsim 0.1: no fusion, data gradients first, the large NPU,
        parameters sharing every bank with activations."""
        return cls(**{"fusion": "none", "task_order": "legacy", "backward": "split",
                      "npu": "large", "placement": "shared", **kw})

    def optimizer_config(self) -> OptimizerConfig:
        return OptimizerConfig(self.optimizer)

    def precision_policy(self) -> PrecisionPolicy:
        return precision(self.precision)

    def memory_config(self) -> MemoryConfig:
        return load_config(self.memory, channels=self.channels, ranks=self.ranks)

    def pim_config(self) -> PimConfig:
        """The GradPIM units: the memory TOML's ``[pim]`` section, then ``pim_knobs``."""
        return with_knobs(load_pim_config(self.memory), self.pim_knobs,
                          source="the run's PIM knobs")

    def with_pim(self, pim: bool) -> RunConfig:
        return dataclasses.replace(self, pim=pim)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        for key in values:
            if key not in known:
                raise ConfigError(key, f"unknown run option; known: {', '.join(sorted(known))}")
        return cls(**values)
