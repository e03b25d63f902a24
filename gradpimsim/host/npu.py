"""Host NPU model: compute cycles of a training task and the DRAM transfers it needs.

The NPU is a systolic array of ``rows x cols`` MACs (the default preset, ``presets/small.toml``:
32 x 32 at 1 GHz) beside a vector unit for elementwise work, with one on-chip buffer (8 MiB by
default); ``edge``, ``mid`` and ``large`` (the default before 0.2) span the space, each preset
file stating its FLOP-per-byte ratio against DDR4 channels.  It is analytical, not
cycle-accurate: one number per task, so the full-system simulation spends its events on DRAM,
where the question is.

Compute (SCALE-Sim's first-order model, Samajdar et al., ISPASS 2020)
    A GEMM ``C[M,N] = A[M,K] @ B[K,N]`` maps its dimensions onto the array by dataflow:
    weight-stationary (default) holds ``B``: spatial rows ``Sr = K``, spatial columns
    ``Sc = N``, temporal ``T = M``; output-stationary: ``Sr = M, Sc = N, T = K``;
    input-stationary: ``Sr = K, Sc = M, T = N``.  Each fold of the array costs
    ``2*rows + cols + T - 2`` cycles (fill, stream, drain) and there are
    ``ceil(Sr/rows) * ceil(Sc/cols)`` folds; a task's ``G`` independent GEMMs run one after
    another.  Convolutions arrive as their im2col GEMMs (``M = B*Ho*Wo, K = Cin/g*kh*kw,
    N = Cout/g``, ``G = groups``).  Elementwise FLOPs (and any FLOPs of a task beyond its GEMMs)
    take ``ceil(flops / vector_lanes)`` cycles.

DRAM transfers (buffer tiling)
    Each task lists the tensor ranges it reads and writes once (``reads``/``writes``, see
    ``gradpimsim.host.training``).  If they all fit in the buffer, each is moved once.  Otherwise
    a GEMM is tiled with half the buffer holding a resident block, the other half streaming
    (double-buffered), and the cheapest of three loop orders is chosen:
    ``b_resident``: blocks of the stationary operand ``B`` stay, ``A`` is re-read once per block;
    ``a_resident``: blocks of ``A`` stay, ``B`` is re-read per block; ``c_resident``: output
    blocks accumulate in the buffer, ``A`` and ``B`` re-read ``ceil(sqrt(blocks))`` times.
    Outputs are written once in every order.  Non-GEMM tasks stream their operands once.
    Transfers come in ``dma_chunk_bytes`` pieces (on 64-byte boundaries of the tensor, except in
    the legacy order), interleaved across the concurrently streamed tensors in the order the NPU
    would issue them.  Which layers a task fuses and what stays on chip between tasks is the
    training schedule's business (``host/fusion.py``, ``host/residency.py``): a task lists only
    the DRAM accesses it makes.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from gradpimsim.config.model import ConfigError
from gradpimsim.host.training import Access, TrainingSchedule

DATAFLOWS = ("ws", "os", "is")
#: DMA chunk alignment of the current model: one DDR4 burst.
DMA_ALIGN = 64


@dataclass(frozen=True)
class Transfer:
    """One DMA transfer: ``nbytes`` of tensor ``tensor_name`` from byte ``offset``."""

    tensor_name: str
    offset: int
    nbytes: int
    is_write: bool


@dataclass(frozen=True)
class NPUConfig:
    """Systolic-array NPU parameters (defaults are the default preset, ``presets/small.toml``)."""

    name: str = "small"
    rows: int = 32
    cols: int = 32
    freq_ghz: float = 1.0
    buffer_bytes: int = 8 * 2**20
    vector_lanes: int = 32
    dataflow: str = "ws"
    dma_chunk_bytes: int = 65536
    #: On-chip residency budget of ``fusion="full"`` (``host.residency``); None: half the
    #: buffer (the other half streams the consuming pass's operands).
    resident_bytes: int | None = None
    #: What the preset says about itself (shown by ``gradpimsim workloads npus``).
    description: str = ""

    def __post_init__(self) -> None:
        for f in ("rows", "cols", "buffer_bytes", "vector_lanes", "dma_chunk_bytes"):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"npu.{f}", f"must be a positive integer, got {v!r}")
        if not self.freq_ghz > 0:
            raise ConfigError("npu.freq_ghz", f"must be > 0, got {self.freq_ghz!r}")
        rb = self.resident_bytes
        if rb is not None and (isinstance(rb, bool) or not isinstance(rb, int) or rb < 0
                               or rb > self.buffer_bytes):
            raise ConfigError("npu.resident_bytes", f"must be an integer from 0 to buffer_bytes "
                                                    f"({self.buffer_bytes}), got {rb!r}")
        if not isinstance(self.description, str):
            raise ConfigError("npu.description", "must be a string")
        if self.dataflow not in DATAFLOWS:
            raise ConfigError("npu.dataflow", f"unknown dataflow {self.dataflow!r}; "
                                              f"choose one of {', '.join(DATAFLOWS)}")


    @property
    def residency_budget(self) -> int:
        """Bytes a pass may leave in the buffer for the next (``resident_bytes`` resolved)."""
        return self.buffer_bytes // 2 if self.resident_bytes is None else self.resident_bytes

    @property
    def peak_flops(self) -> float:
        """Peak MAC throughput of the array in FLOP/s (2 FLOPs per MAC)."""
        return 2.0 * self.rows * self.cols * self.freq_ghz * 1e9

    def flop_per_byte(self, bandwidth_gbs: float) -> float:
        """Peak FLOPs per byte of a memory of ``bandwidth_gbs`` GB/s: the ridge point."""
        return self.peak_flops / (bandwidth_gbs * 1e9)


#: Preset names that were renamed (results written under the old name reproduce).
PRESET_ALIASES = {"default": "large"}
#: The preset a run uses unless told otherwise (see ``presets/small.toml`` for why).
DEFAULT_NPU = "small"


def npu_preset_names() -> list[str]:
    files = resources.files("gradpimsim.host").joinpath("presets").iterdir()
    return sorted(f.name.removesuffix(".toml") for f in files if f.name.endswith(".toml"))


def npu_from_dict(values: Mapping[str, Any]) -> NPUConfig:
    known = {f.name for f in dataclasses.fields(NPUConfig)}
    for key in values:
        if key not in known:
            raise ConfigError(f"npu.{key}", f"unknown key; known keys: {', '.join(sorted(known))}")
    return NPUConfig(**values)


def load_npu_config(name_or_path: str | Path = DEFAULT_NPU) -> NPUConfig:
    """An NPU configuration from a preset name or a TOML file (same keys as the preset)."""
    path = Path(name_or_path)
    name_or_path = PRESET_ALIASES.get(str(name_or_path), name_or_path)
    if path.suffix == ".toml" and path.exists():
        text = path.read_text()
    elif str(name_or_path) in npu_preset_names():
        text = (resources.files("gradpimsim.host").joinpath("presets", f"{name_or_path}.toml")
                .read_text())
    else:
        raise ConfigError("npu", f"unknown NPU preset or file {str(name_or_path)!r}; presets: "
                                 f"{', '.join(npu_preset_names())}")
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("npu", f"{name_or_path}: invalid TOML: {exc}") from None
    return npu_from_dict(values)


@dataclass
class TaskCost:
    """What one task costs the NPU: compute time and the DRAM transfers, plus the tiling plan."""

    cycles: int
    ns: float
    transfers: list[Transfer]
    plan: str  # "fits", "b_resident", "a_resident", "c_resident", "stream" or "none"
    read_bytes: int = 0
    write_bytes: int = 0
    passes: int = 1
    notes: dict[str, Any] = field(default_factory=dict)


class NPUModel:
    """Analytical systolic-array NPU; feed it task attribute dicts of a training task DAG."""

    def __init__(self, config: NPUConfig | str | Path = DEFAULT_NPU, *, align: int = 1) -> None:
        self.cfg = config if isinstance(config, NPUConfig) else load_npu_config(config)
        #: DMA chunk boundaries fall on multiples of ``align`` bytes of a tensor (a DDR4 burst
        #: in the current model, so every chunk moves whole bursts and bytes can be counted by
        #: hand; 1 in the legacy model, which split chunks at any byte).
        self.align = align

    # -- compute ------------------------------------------------------------------------------
    def gemm_cycles(self, m: int, n: int, k: int, groups: int = 1) -> int:
        """Cycles of ``groups`` GEMMs ``[m,k] @ [k,n]`` under the configured dataflow."""
        r, c = self.cfg.rows, self.cfg.cols
        sr, sc, t = {"ws": (k, n, m), "os": (m, n, k), "is": (k, m, n)}[self.cfg.dataflow]
        folds = math.ceil(sr / r) * math.ceil(sc / c)
        return groups * folds * (2 * r + c + t - 2)

    def compute_cycles(self, task: Mapping[str, Any]) -> int:
        gemm = task.get("gemm") or []
        cycles = sum(self.gemm_cycles(*g) for g in gemm)
        gemm_flops = sum(2 * m * n * k * grp for m, n, k, grp in gemm)
        rest = int(task.get("flops", 0)) - gemm_flops
        if rest > 0:
            cycles += math.ceil(rest / self.cfg.vector_lanes)
        return cycles

    # -- transfers ----------------------------------------------------------------------------
    def cost(self, task: Mapping[str, Any]) -> TaskCost:
        """Compute cycles and transfers of one task (``schedule.dag.nodes[task_id]``)."""
        cycles = self.compute_cycles(task)
        reads: list[Access] = [Access(*a) for a in task.get("reads", [])]
        writes: list[Access] = [Access(*a) for a in task.get("writes", [])]
        roles = task.get("gemm_roles") or {}
        plan, passes, transfers = self._plan(reads, writes, roles)
        rb = sum(t.nbytes for t in transfers if not t.is_write)
        wb = sum(t.nbytes for t in transfers if t.is_write)
        return TaskCost(cycles, cycles / self.cfg.freq_ghz, transfers, plan, rb, wb, passes)

    def transfers(self, task: Mapping[str, Any]) -> list[Transfer]:
        return self.cost(task).transfers

    def schedule_costs(self, schedule: TrainingSchedule) -> dict[str, TaskCost]:
        """Costs of every task of an iteration, keyed by task id (DMA chunks burst aligned
        unless the schedule is in the legacy order)."""
        align = self.align
        self.align = 1 if schedule.dataflow.order == "legacy" else DMA_ALIGN
        try:
            return {t: self.cost(schedule.dag.nodes[t]) for t in schedule.order()}
        finally:
            self.align = align

    def _plan(self, reads: list[Access], writes: list[Access],
              roles: Mapping[str, Sequence[str]]) -> tuple[str, int, list[Transfer]]:
        total = sum(a.nbytes for a in reads) + sum(a.nbytes for a in writes)
        if total == 0:
            return "none", 0, []
        if not roles or total <= self.cfg.buffer_bytes:
            return ("fits" if roles else "stream"), 1, self._stream(reads, writes)
        a = [x for x in reads if x.tensor in roles.get("a", ())]
        b = [x for x in reads if x.tensor in roles.get("b", ()) and x not in a]
        other = [x for x in reads if x not in a and x not in b]
        c = writes
        na, nb, nc = (sum(x.nbytes for x in grp) for grp in (a, b, c))
        half = self.cfg.buffer_bytes // 2
        blocks_b, blocks_a = max(1, -(-nb // half)), max(1, -(-na // half))
        blocks_c = max(1, -(-nc // half))
        side = math.isqrt(blocks_c - 1) + 1 if blocks_c > 1 else 1
        options = {
            "b_resident": na * blocks_b + nb,
            "a_resident": na + nb * blocks_a,
            "c_resident": (na + nb) * side,
        }
        plan = min(options, key=lambda k: options[k])
        out: list[Transfer] = self._stream(other, [])
        if plan == "b_resident":
            for p in range(blocks_b):
                out += self._stream(_part(b, p, blocks_b, self.align), [])
                out += self._stream(a, _part(c, p, blocks_b, self.align))
            return plan, blocks_b, out
        if plan == "a_resident":
            for p in range(blocks_a):
                out += self._stream(_part(a, p, blocks_a, self.align), [])
                out += self._stream(b, _part(c, p, blocks_a, self.align))
            return plan, blocks_a, out
        for i in range(side):
            for j in range(side):
                ab = _part(a, i, side, self.align) + _part(b, j, side, self.align)
                out += self._stream(ab, [])
                out += self._stream([], _part(c, i * side + j, side * side, self.align))
        return plan, side * side, out

    def _stream(self, reads: Iterable[Access], writes: Iterable[Access]) -> list[Transfer]:
        """Chunked transfers of concurrently streamed ranges, round-robin so they end together."""
        streams = [(x, False) for x in reads if x.nbytes > 0]
        streams += [(x, True) for x in writes if x.nbytes > 0]
        if not streams:
            return []
        chunk = self.cfg.dma_chunk_bytes
        pieces = max(-(-x.nbytes // chunk) for x, _ in streams)
        out = []
        align = self.align
        for k in range(pieces):
            for x, w in streams:
                lo, hi = x.nbytes * k // pieces, x.nbytes * (k + 1) // pieces
                if align > 1:
                    lo = lo // align * align
                    hi = x.nbytes if k + 1 == pieces else hi // align * align
                if hi > lo:
                    out.append(Transfer(x.tensor, x.offset + lo, hi - lo, w))
        return out


def _part(group: Sequence[Access], p: int, parts: int, align: int = 1) -> list[Access]:
    """Block ``p`` of ``parts`` equal blocks of every range in ``group`` (block boundaries on
    multiples of ``align`` bytes)."""
    out = []
    for x in group:
        lo, hi = x.nbytes * p // parts, x.nbytes * (p + 1) // parts
        if align > 1:
            lo = lo // align * align
            hi = x.nbytes if p + 1 == parts else hi // align * align
        if hi > lo:
            out.append(Access(x.tensor, x.offset + lo, hi - lo))
    return out


__all__ = ["DATAFLOWS", "DEFAULT_NPU", "DMA_ALIGN", "NPUConfig", "NPUModel", "PRESET_ALIASES",
           "TaskCost", "Transfer", "load_npu_config", "npu_from_dict", "npu_preset_names"]
