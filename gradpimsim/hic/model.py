"""Hybrid in-memory computing (HIC) training on phase-change memory: an event-count model.

What the model describes (after Joshi, He, Seo and Rajendran, "Hybrid in-memory computing
architecture for the training of deep neural networks", ISCAS 2021, and the mixed-precision
scheme of Nandakumar et al., Frontiers in Neuroscience 2020; sources and assumptions in
``docs/related-methods.md``): the weights of the GEMM layers live in PCM crossbars, each weight
as an unsigned code of ``binary_devices`` binary PCM devices (the high-order bits) and one
multi-level PCM device with ``mlc_levels`` levels (the low-order digit).  Weight updates are
not written to the devices directly: each weight has a low-precision digital *update
accumulator*, and a weight's devices are programmed only when its accumulated update has
reached one weight step.

Per weight and training iteration, in integers (``acc`` in units of ``step / 2**acc_frac_bits``):

1. ``acc = saturate(acc + round_half_even(-lr * g / acc_lsb))``, saturating to the signed
   ``acc_bits`` range (an update beyond it is lost);
2. ``n = trunc(acc / 2**acc_frac_bits)`` whole weight steps have accumulated (the threshold is
   one step, either sign); if ``n != 0`` the code becomes ``clip(code + n)`` (an update past the
   weight range is lost) and ``acc -= n * 2**acc_frac_bits``;
3. the multi-level device is programmed once if its level changed, each binary device once if
   its bit changed (a carry across the digit flips binary bits).

Counted per iteration: accumulator reads and writes (a read-modify-write per weight), threshold
crossings, programming events of the multi-level and binary devices; per device: its events
per iteration, so the projected lifetime is ``endurance / (events per iteration of the most
programmed device)`` iterations.  Energy is events x stated per-event figures (assumptions,
``HicConfig``).  Left out: device non-idealities (programming noise, drift, nonlinearity),
read-and-verify cycles, refresh of saturated devices, the forward/backward crossbar reads, and
all timing.  Gradients are seeded i.i.d. normal (:func:`seeded_gradients`), or any the caller
passes; the counts depend on them, so real gradients give real counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import networkx as nx
import numpy as np

from gradpimsim.config.model import ConfigError
from gradpimsim.graph.schema import parameters

#: Ops whose weights sit in the PCM crossbars (the GEMMs); the rest stay digital.
PCM_OPS = frozenset({"conv2d", "linear", "lstm"})


@dataclass(frozen=True)
class HicConfig:
    """The knobs of the HIC model (defaults are assumptions, see ``docs/related-methods.md``)."""

    #: Binary PCM devices per weight: the high-order bits of its code.
    binary_devices: int = 6
    #: Levels of the one multi-level PCM device per weight: the low-order digit.
    mlc_levels: int = 4
    #: Weights span [-weight_max, weight_max); one step = 2 * weight_max / codes.
    weight_max: float = 1.0
    #: The update accumulator: signed, saturating, ``acc_frac_bits`` below one weight step.
    acc_bits: int = 8
    acc_frac_bits: int = 4
    #: Learning rate applied to the gradient before accumulation (plain SGD).
    lr: float = 0.1
    #: Programming cycles a PCM device survives.
    endurance: float = 1e8
    #: Energy per event, pJ: accumulator read and write (one ``acc_bits`` word), programming a
    #: binary device (one pulse) and the multi-level device (a few pulses to reach a level).
    acc_read_pj: float = 0.5
    acc_write_pj: float = 0.5
    binary_program_pj: float = 10.0
    mlc_program_pj: float = 50.0
    #: Training iterations of one training run, for lifetime in runs (He et al.'s CIFAR
    #: schedule: 64k iterations at batch 128).
    iterations_per_run: int = 64_000

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                raise ConfigError(f"hic.{name}", f"{what}, got {getattr(self, name)!r}")

        need(isinstance(self.binary_devices, int) and 0 <= self.binary_devices <= 30,
             "binary_devices", "must be an integer in 0..30")
        need(isinstance(self.mlc_levels, int) and self.mlc_levels >= 2, "mlc_levels",
             "must be an integer >= 2")
        need(isinstance(self.acc_bits, int) and 2 <= self.acc_bits <= 31, "acc_bits",
             "must be an integer in 2..31")
        need(isinstance(self.acc_frac_bits, int) and 0 <= self.acc_frac_bits < self.acc_bits - 1,
             "acc_frac_bits", "must be an integer in 0..acc_bits-2 (room for one whole step)")
        for name in ("weight_max", "lr", "endurance"):
            need(math.isfinite(getattr(self, name)) and getattr(self, name) > 0, name,
                 "must be a finite number > 0")
        for name in ("acc_read_pj", "acc_write_pj", "binary_program_pj", "mlc_program_pj"):
            need(math.isfinite(getattr(self, name)) and getattr(self, name) >= 0, name,
                 "must be a finite number >= 0")
        need(isinstance(self.iterations_per_run, int) and self.iterations_per_run >= 1,
             "iterations_per_run", "must be a positive integer")

    @property
    def codes(self) -> int:
        """Distinct weight values: 2**binary_devices x mlc_levels."""
        return (1 << self.binary_devices) * self.mlc_levels

    @property
    def step(self) -> float:
        """The weight's resolution: one level of the multi-level device."""
        return 2 * self.weight_max / self.codes

    @property
    def threshold(self) -> int:
        """One weight step, in accumulator units."""
        return 1 << self.acc_frac_bits

    @property
    def acc_lsb(self) -> float:
        return self.step / self.threshold

    @property
    def devices_per_weight(self) -> int:
        return self.binary_devices + 1


@dataclass
class Counts:
    """Events over some iterations (totals; divide by ``iterations`` for rates)."""

    iterations: int = 0
    acc_reads: int = 0
    acc_writes: int = 0
    crossings: int = 0  # weight-iterations whose accumulator reached a whole step
    mlc_programs: int = 0
    binary_programs: int = 0
    lost_updates: int = 0  # weight-iterations whose update saturated the accumulator or range

    @property
    def programs(self) -> int:
        return self.mlc_programs + self.binary_programs

    def add(self, other: Counts) -> None:
        for f in ("iterations", "acc_reads", "acc_writes", "crossings", "mlc_programs",
                  "binary_programs", "lost_updates"):
            setattr(self, f, getattr(self, f) + getattr(other, f))

    def energy_pj(self, cfg: HicConfig) -> dict[str, float]:
        out = {"acc_read": self.acc_reads * cfg.acc_read_pj,
               "acc_write": self.acc_writes * cfg.acc_write_pj,
               "mlc_program": self.mlc_programs * cfg.mlc_program_pj,
               "binary_program": self.binary_programs * cfg.binary_program_pj}
        out["total"] = sum(out.values())
        return out


class HicArray:
    """One parameter tensor's weights in PCM with their update accumulators."""

    def __init__(self, weights: np.ndarray, cfg: HicConfig) -> None:
        self.cfg = cfg
        w = np.asarray(weights, dtype=np.float64).ravel()
        q = np.rint(w / cfg.step).astype(np.int64) + cfg.codes // 2
        #: kept narrow (4 bytes a value where the ranges allow): memory is per weight x
        #: (2 + devices), and a ResNet-50 has 25 million weights in PCM
        self._code_dtype = np.int32 if cfg.codes <= 2**31 else np.int64
        self.code = np.clip(q, 0, cfg.codes - 1).astype(self._code_dtype)
        self.acc = np.zeros(self.code.shape, np.int32)  # acc_bits <= 31
        #: per device, programming events so far: [binary device j (LSB first)..., mlc]
        self.device_events = np.zeros((cfg.devices_per_weight, self.code.size), np.int32)

    @property
    def size(self) -> int:
        return int(self.code.size)

    def weights(self) -> np.ndarray:
        """The weights the devices hold."""
        return (self.code - self.cfg.codes // 2) * self.cfg.step

    def step(self, grad: np.ndarray) -> Counts:
        """One training iteration with gradient ``grad`` (see the module docstring)."""
        cfg = self.cfg
        g = np.asarray(grad, dtype=np.float64).ravel()
        if g.shape != self.code.shape:
            raise ValueError(f"gradient of {g.size} values for {self.size} weights")
        lo, hi = -(1 << (cfg.acc_bits - 1)), (1 << (cfg.acc_bits - 1)) - 1
        with np.errstate(over="ignore", invalid="ignore"):
            upd = np.rint(-cfg.lr * g / cfg.acc_lsb)
        upd = np.nan_to_num(upd, nan=0.0, posinf=hi - lo, neginf=lo - hi)
        upd = np.clip(upd, lo - hi, hi - lo).astype(np.int64)
        raw = self.acc.astype(np.int64) + upd
        acc = np.clip(raw, lo, hi)
        lost = raw != acc
        t = cfg.threshold
        n = np.where(acc >= 0, acc // t, -((-acc) // t))  # toward zero
        cross = n != 0
        code = self.code.astype(np.int64)
        new = np.clip(code + n, 0, cfg.codes - 1)
        lost |= new != code + n
        self.acc = (acc - n * t).astype(np.int32)
        L = cfg.mlc_levels
        mlc = (new % L) != (code % L)
        flipped = (new // L) ^ (code // L)
        self.device_events[-1] += mlc
        binary = 0
        for j in range(cfg.binary_devices):
            bit = (flipped >> j) & 1
            self.device_events[j] += bit
            binary += int(bit.sum())
        self.code = new.astype(self._code_dtype)
        n_w = self.size
        return Counts(1, n_w, n_w, int(cross.sum()), int(mlc.sum()), binary, int(lost.sum()))


def pcm_parameters(graph: nx.DiGraph, which: str = "gemm") -> dict[str, dict[str, Any]]:
    """The trained parameters held in PCM: ``gemm`` (weights of conv2d, linear and lstm
    layers; biases and normalisation parameters stay digital) or ``all``.  A ``frozen`` node's
    parameters (a recasting teacher, a stored table) are never updated, so they cost no
    accumulator access and no programming: they are left out."""
    if which not in ("gemm", "all"):
        raise ConfigError("hic.params", f"choose gemm or all, got {which!r}")
    out = {}
    for pid, p in parameters(graph).items():
        node = graph.nodes[p["node"]]
        if node.get("frozen"):
            continue
        if which == "all" or (node["op"] in PCM_OPS and "weight" in p["name"]):
            out[pid] = p
    return out


def he_init(shape: list[int], rng: np.random.Generator) -> np.ndarray:
    """He (Kaiming) normal initialisation, std sqrt(2 / fan_in): the starting weights."""
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else int(shape[0])
    return rng.standard_normal(int(np.prod(shape))) * math.sqrt(2.0 / max(fan_in, 1))


GradientSource = Callable[[int, str, int], np.ndarray]


def seeded_gradients(seed: int = 0, std: float = 0.01) -> GradientSource:
    """Seeded i.i.d. normal gradients of std ``std``, of the kind the functional mode writes
    (its own stream, not the same values), a fresh draw per (iteration, parameter) so that
    any subset of layers or iterations sees the same values."""
    def source(iteration: int, pid: str, n: int) -> np.ndarray:
        key = int.from_bytes(pid.encode()[:16].ljust(16, b"\0"), "little")
        rng = np.random.default_rng([seed, iteration, key & 0xFFFFFFFF, key >> 32 & 0xFFFFFFFF])
        return rng.standard_normal(n) * std
    return source


@dataclass
class LayerReport:
    """One parameter tensor in PCM."""

    name: str
    weights: int
    counts: Counts
    max_device_events: int  # the most programmed device of this tensor, over the run
    mean_device_events: float

    def to_dict(self, iterations: int) -> dict[str, Any]:
        c = self.counts
        return {"name": self.name, "weights": self.weights,
                "programs_per_iteration": c.programs / iterations,
                "mlc_programs_per_iteration": c.mlc_programs / iterations,
                "binary_programs_per_iteration": c.binary_programs / iterations,
                "crossings_per_iteration": c.crossings / iterations,
                "max_device_events_per_iteration": self.max_device_events / iterations}


@dataclass
class HicReport:
    """The model's answer for one workload (see the module docstring)."""

    workload: str
    cfg: HicConfig
    iterations: int
    weights: int
    devices: int
    totals: Counts
    layers: list[LayerReport] = field(default_factory=list)
    max_device_events: int = 0
    mean_device_events: float = 0.0

    def per_iteration(self) -> dict[str, float]:
        t, it = self.totals, self.iterations
        return {"acc_reads": t.acc_reads / it, "acc_writes": t.acc_writes / it,
                "crossings": t.crossings / it, "mlc_programs": t.mlc_programs / it,
                "binary_programs": t.binary_programs / it, "programs": t.programs / it,
                "lost_updates": t.lost_updates / it}

    @property
    def worst_device_rate(self) -> float:
        """Programming events per iteration of the most programmed device."""
        return self.max_device_events / self.iterations

    @property
    def lifetime_iterations(self) -> float:
        """Iterations until the most programmed device reaches the endurance (inf: none
        programmed)."""
        r = self.worst_device_rate
        return self.cfg.endurance / r if r else math.inf

    @property
    def lifetime_runs(self) -> float:
        return self.lifetime_iterations / self.cfg.iterations_per_run

    def energy_per_iteration_pj(self) -> dict[str, float]:
        return {k: v / self.iterations for k, v in self.totals.energy_pj(self.cfg).items()}

    def to_dict(self) -> dict[str, Any]:
        def finite(x: float) -> float | None:
            return x if math.isfinite(x) else None

        return {"schema": "gradpimsim.hic/1", "workload": self.workload, "config": asdict(self.cfg),
                "iterations": self.iterations, "weights": self.weights, "devices": self.devices,
                "per_iteration": self.per_iteration(),
                "per_device": {"max_events_per_iteration": self.worst_device_rate,
                               "mean_events_per_iteration":
                                   self.mean_device_events / self.iterations},
                "lifetime": {"iterations": finite(self.lifetime_iterations),
                             "training_runs": finite(self.lifetime_runs)},
                "energy_per_iteration_pj": self.energy_per_iteration_pj(),
                "layers": [layer.to_dict(self.iterations) for layer in self.layers]}


def run_hic(graph: nx.DiGraph, cfg: HicConfig | None = None, iterations: int = 100, *,
            seed: int = 0, gradients: GradientSource | None = None, which: str = "gemm",
            init: Mapping[str, np.ndarray] | None = None,
            progress: Callable[[int], None] | None = None) -> HicReport:
    """Train ``graph``'s PCM-held weights for ``iterations`` iterations on ``gradients``
    (default :func:`seeded_gradients` with ``seed``) and count the events.  ``init`` may give
    starting weights per parameter (default: He initialisation, seeded)."""
    cfg = cfg or HicConfig()
    if iterations < 1:
        raise ConfigError("iterations", f"must be >= 1, got {iterations}")
    source = gradients or seeded_gradients(seed)
    params = pcm_parameters(graph, which)
    rng = np.random.default_rng(seed)
    arrays: dict[str, HicArray] = {}
    counts: dict[str, Counts] = {}
    for pid, p in params.items():
        w0 = init[pid] if init is not None and pid in init else he_init(p["shape"], rng)
        arrays[pid] = HicArray(w0, cfg)
        counts[pid] = Counts()
    for it in range(iterations):
        for pid, arr in arrays.items():
            counts[pid].add(arr.step(source(it, pid, arr.size)))
        if progress is not None:
            progress(it + 1)
    report = HicReport(graph.graph.get("name", "workload"), cfg, iterations,
                       sum(a.size for a in arrays.values()),
                       sum(a.size for a in arrays.values()) * cfg.devices_per_weight, Counts())
    total_events = 0
    for pid, arr in arrays.items():
        ev = arr.device_events
        report.totals.add(counts[pid])
        top = int(ev.max()) if ev.size else 0
        report.layers.append(LayerReport(pid, arr.size, counts[pid], top,
                                         float(ev.mean()) if ev.size else 0.0))
        report.max_device_events = max(report.max_device_events, top)
        total_events += int(ev.sum())
    report.mean_device_events = total_events / report.devices if report.devices else 0.0
    return report


def iterate_gradients(values: Iterable[Mapping[str, np.ndarray]]) -> GradientSource:
    """A gradient source from recorded gradients: one mapping parameter -> array per
    iteration (e.g. gradients saved from a real training run)."""
    recorded = list(values)

    def source(iteration: int, pid: str, n: int) -> np.ndarray:
        return np.asarray(recorded[iteration][pid]).ravel()
    return source


__all__ = ["Counts", "GradientSource", "HicArray", "HicConfig", "HicReport", "LayerReport",
           "PCM_OPS", "he_init", "iterate_gradients", "pcm_parameters", "run_hic",
           "seeded_gradients"]
