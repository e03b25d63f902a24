"""The program model: what a GradPIM update is, as the schedulers receive it.

A program holds, for every bank-group unit ``(channel, rank, bankgroup)``, an ordered list of
:class:`~gradpimsim.pim.unit.PimInstr` (a dependence order to keep) and a ``PIM_SET`` prologue
per ``(channel, rank)``.  :mod:`gradpimsim.pim.kernels` builds one; :class:`UnitCounts` is the
one counters type of a unit, from its program's counts to its scheduled statistics.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from gradpimsim.config.training import OptimizerConfig, PrecisionPolicy
from gradpimsim.dram.commands import Cmd
from gradpimsim.pim.unit import PimInstr

UnitKey = tuple[int, int, int]  # (channel, rank, bankgroup)
RankKey = tuple[int, int]  # (channel, rank)


class UnitCommands(Protocol):
    """A unit's commands: a list, or a lazy program generated again on each iteration."""

    def __iter__(self) -> Iterator[PimInstr]: ...

    def __len__(self) -> int: ...


@dataclass(frozen=True)
class UpdateTarget:
    """One parameter tensor to update: its size and where each role is placed."""

    name: str
    numel: int
    placements: dict[str, Any]  # role -> TensorPlacement (segments of byte addresses)

    def __reduce__(self) -> tuple[type[UpdateTarget], tuple[str, int, dict[str, Any]]]:
        """Pickle through the constructor: compiled (mypyc), a frozen dataclass cannot be
        rebuilt field by field (its fields refuse assignment), and a run's targets come back
        from its worker process."""
        return (UpdateTarget, (self.name, self.numel, self.placements))


@dataclass
class UnitCounts:
    """What one bank-group unit does: its program's command counts (what the closed-form bound
    needs, :meth:`PimProgram.stats`) and, once scheduled, its row commands, the end of its last
    command and its column-slot utilization (``PimChannel``, ``PimEngine``)."""

    reads: int = 0
    writes: int = 0
    ops: int = 0
    long_ops: int = 0  # sqrt/div (the extension's longer latency)
    turnarounds: int = 0  # PIM_WR followed later by a PIM_RD in the same bank group
    activations: int = 0
    precharges: int = 0
    last_cycle: int = 0
    utilization: float = 0.0
    #: Column operations per ``bin_width``-cycle window of issue time (0: not counted).
    bin_width: int = 0
    bins: list[int] = field(default_factory=list)

    @property
    def column_ops(self) -> int:
        return self.reads + self.writes

    def tally(self, t: int) -> None:
        """Count a column operation issued at cycle ``t`` in its window."""
        i = t // self.bin_width
        bins = self.bins
        if i >= len(bins):
            bins.extend([0] * (i + 1 - len(bins)))
        bins[i] += 1


@dataclass
class PimProgram:
    """A whole update step as per-unit command lists (see the module docstring)."""

    optimizer: OptimizerConfig
    precision: PrecisionPolicy
    step: int
    #: Scalar registers: name -> (register, fp32 value).
    scalars: dict[str, tuple[int, float]]
    #: (channel, rank) -> PIM_SET commands; each loads every unit of that rank.
    prologue: dict[RankKey, list[PimInstr]] = field(default_factory=dict)
    #: (channel, rank, bankgroup) -> the unit's ordered commands (a list, or with
    #: ``build_program(lazy=True)`` a re-iterable sequence generated on demand).
    units: dict[UnitKey, UnitCommands] = field(default_factory=dict)
    params: int = 0

    def stats(self) -> dict[UnitKey, UnitCounts]:
        out = {}
        for key, prog in self.units.items():
            st = UnitCounts()
            wrote = False
            for ins in prog:
                if ins.cmd == Cmd.PIM_RD:
                    st.reads += 1
                    if wrote:
                        st.turnarounds += 1
                        wrote = False
                elif ins.cmd == Cmd.PIM_WR:
                    st.writes += 1
                    wrote = True
                elif ins.cmd == Cmd.PIM_OP:
                    st.ops += 1
                    st.long_ops += int(ins.op in ("sqrt", "div", "divs"))
            out[key] = st
        return out

    def column_ops(self) -> int:
        """PIM_RD + PIM_WR over all units."""
        return sum(s.column_ops for s in self.stats().values())

    def commands(self) -> int:
        """Every command the controller must issue (prologue included, ACT/PRE excluded)."""
        return sum(len(p) for p in self.units.values()) + sum(
            len(p) for p in self.prologue.values())
