"""A recasting schedule: all blocks of a teacher in sequence, a given number of iterations each.

Block-wise recasting (``workloads.recast``) trains one student block at a time against the
teacher's activations.  A *schedule* recasts blocks ``0..K-1`` in order, ``iterations``
training iterations per block.  Each block's iteration is one workload
(``recast:TEACHER:k:STUDENT``) whose iterations are all alike in steady state, so the schedule
simulates one iteration per block, with and without GradPIM (``system.compare``), and
multiplies: total time = sum over blocks of ``iterations x`` the iteration's cycles.  What the
first iteration of a block does differently (torch's momentum buffer starts as the gradient)
is left out; every iteration is costed as the steady-state step (``RunConfig.step``).

:func:`run_schedule` returns a :class:`ScheduleResult`; ``to_dict`` is the JSON record
(schema ``gradpimsim.recast/1``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gradpimsim.config.model import ConfigError
from gradpimsim.graph.schema import numel
from gradpimsim.system.compare import compare
from gradpimsim.system.config import RunConfig
from gradpimsim.system.results import CompareResult

SCHEMA = "gradpimsim.recast/1"


@dataclass(frozen=True)
class BlockResult:
    """One block's recasting iteration, both ways."""

    block: int
    prefix: str
    teacher_params: int  # the teacher block's parameters (frozen, read in forward)
    student_params: int  # the student block's (trained and updated)
    baseline_cycles: int
    pim_cycles: int
    tCK_ns: float
    baseline_update_cycles: int
    pim_update_cycles: int
    verified: bool | None  # functional mode: both runs bit-exact and identical

    @property
    def speedup(self) -> float:
        return self.baseline_cycles / self.pim_cycles if self.pim_cycles else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "speedup": self.speedup}


@dataclass
class ScheduleResult:
    """Every block of the schedule and the totals."""

    teacher: str
    student: str
    iterations: int
    run: RunConfig
    blocks: list[BlockResult] = field(default_factory=list)

    def total_cycles(self, side: str) -> int:
        """``baseline`` or ``pim``: the whole schedule, in DRAM cycles."""
        return sum(self.iterations * getattr(b, f"{side}_cycles") for b in self.blocks)

    def total_us(self, side: str) -> float:
        tck = self.blocks[0].tCK_ns if self.blocks else 0.0
        return self.total_cycles(side) * tck / 1000.0

    @property
    def speedup(self) -> float:
        pim = self.total_cycles("pim")
        return self.total_cycles("baseline") / pim if pim else 0.0

    @property
    def verified(self) -> bool | None:
        marks = [b.verified for b in self.blocks]
        return None if any(m is None for m in marks) else all(marks)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "teacher": self.teacher, "student": self.student,
                "iterations": self.iterations, "config": self.run.to_dict(),
                "blocks": [b.to_dict() for b in self.blocks],
                "total_cycles": {s: self.total_cycles(s) for s in ("baseline", "pim")},
                "total_us": {s: self.total_us(s) for s in ("baseline", "pim")},
                "speedup": self.speedup, "verified": self.verified}


def _param_counts(g: Any, prefix: str) -> tuple[int, int]:
    """(teacher block, student block) parameters of a step's graph."""
    from gradpimsim.graph.schema import parameters

    teacher = student = 0
    for p in parameters(g).values():
        n = numel(p["shape"])
        if p["node"].startswith(f"student.{prefix}."):
            student += n
        elif p["node"].startswith(f"{prefix}."):
            teacher += n
    return teacher, student


def block_result(block: int, res: CompareResult) -> BlockResult:
    """Summarise one block's comparison."""
    if res.pim is None or res.interrupted:
        raise KeyboardInterrupt
    from gradpimsim.graph.loader import load_any

    g = load_any(res.config.workload, batch=1)
    prefix = g.graph["recast"]["prefix"]
    teacher, student = _param_counts(g, prefix)
    b, p = res.baseline, res.pim
    verified = None
    if res.config.functional:
        verified = bool(b.verified and p.verified and res.weights_match)
    return BlockResult(block, prefix, teacher, student, b.cycles, p.cycles, b.tCK_ns,
                       b.phases["update"]["cycles"], p.phases["update"]["cycles"], verified)


def run_schedule(teacher: str, student: str = "plain", iterations: int = 1,
                 blocks: Sequence[int] | None = None, run: RunConfig | None = None, *,
                 width: int | None = None, jobs: int = 1,
                 on_block: Callable[[BlockResult], None] | None = None) -> ScheduleResult:
    """Recast ``blocks`` (default: all) of ``teacher`` into ``student`` blocks in order,
    ``iterations`` iterations each; ``run`` gives every other setting (memory, batch,
    optimizer, precision, functional...).  ``on_block`` sees each block as it finishes."""
    from workloads.recast import blocks_of, parse_spec

    if iterations < 1:
        raise ConfigError("iterations", f"must be >= 1, got {iterations}")
    count = blocks_of(teacher)
    chosen = list(range(count)) if blocks is None else list(blocks)
    bad = [k for k in chosen if not 0 <= k < count]
    if bad or not chosen:
        raise ConfigError("blocks", f"{teacher} has blocks 0..{count - 1}, got "
                                    f"{bad or 'none'}")
    base = run or RunConfig()
    out = ScheduleResult(teacher, student, iterations, base)
    suffix = f":{width}" if width is not None else ""
    for k in chosen:
        name = f"recast:{teacher}:{k}:{student}{suffix}"
        parse_spec(name)  # a bad student or width fails here, before any simulation
        res = compare(dataclasses.replace(base, workload=name, pim=False), jobs=jobs)
        result = block_result(k, res)
        out.blocks.append(result)
        if on_block is not None:
            on_block(result)
    return out


__all__ = ["BlockResult", "SCHEMA", "ScheduleResult", "block_result", "run_schedule"]
