"""What the checker found: violations, the exception raised in strict mode, and the report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gradpimsim.dram.commands import TRACE_NAME, Cmd, Command


def describe(cmd: Command) -> str:
    """A command as a human reads it: name, address and clock."""
    parts = [TRACE_NAME.get(cmd.cmd, str(cmd.cmd)), f"ch{cmd.channel} ra{cmd.rank}"]
    if cmd.bankgroup >= 0:
        parts.append(f"bg{cmd.bankgroup}")
    if cmd.bank >= 0:
        parts.append(f"ba{cmd.bank}")
    if cmd.row >= 0 and cmd.cmd != Cmd.PRE:
        parts.append(f"row {cmd.row:#x}")
    if cmd.col >= 0 and cmd.cmd not in (Cmd.ACT, Cmd.PRE):
        parts.append(f"col {cmd.col:#x}")
    return f"{' '.join(parts)} @{cmd.clk}"


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule.

    ``required`` and ``actual`` are the minimum and the observed gap in cycles between ``prev``
    and ``cmd`` for timing rules.  State rules (``bank_closed``...) carry 0/0 and explain
    themselves in ``note``; ``refresh_postponed`` carries the limit and the observed value (REFs
    owed, or the REF-to-REF gap) and, when no REF came at all, a placeholder REF at the clock by
    which it was due as ``cmd``.
    """

    rule: str
    cmd: Command
    prev: Command | None
    required: int
    actual: int
    note: str = ""

    def __str__(self) -> str:
        text = f"{self.rule}: {describe(self.cmd)}"
        if self.note:
            text += f": {self.note}"
        elif self.prev is not None:
            text += (
                f" is {self.actual} cycles after {describe(self.prev)}; "
                f"needs >= {self.required}"
            )
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (commands as trace lines)."""
        return {
            "rule": self.rule,
            "clk": self.cmd.clk,
            "cmd": self.cmd.trace_line(),
            "prev": self.prev.trace_line() if self.prev is not None else None,
            "required": self.required,
            "actual": self.actual,
            "message": str(self),
        }


class ProtocolViolation(AssertionError):
    """Raised at the first violation when the checker runs with ``raise_on_violation``."""

    def __init__(self, violation: Violation) -> None:
        super().__init__(str(violation))
        self.violation = violation


@dataclass(frozen=True)
class RefreshGaps:
    """Cycles between consecutive REFs of one rank (``count`` gaps; zeros when fewer than 2)."""

    refreshes: int
    count: int
    min: int
    mean: float
    max: int

    def to_dict(self) -> dict[str, Any]:
        return {"refreshes": self.refreshes, "gaps": self.count, "min": self.min,
                "mean": self.mean, "max": self.max}


@dataclass
class CheckReport:
    """The verdict over a command stream."""

    config: str
    commands: int
    #: Commands seen, per command type (``Cmd`` names: ACT, RD, PIM_WR...).
    by_type: dict[str, int]
    #: Violations per rule name (every violation counts, not only the kept ones).
    by_rule: dict[str, int]
    #: The first ``keep`` violations, in the order found.
    violations: list[Violation]
    #: Refresh-gap statistics per (channel, rank).
    refresh_gaps: dict[tuple[int, int], RefreshGaps] = field(default_factory=dict)
    #: Last clock covered by the check (``finish(end_clk)`` or the last command).
    end_clk: int = 0
    pim: bool = False

    @property
    def total_violations(self) -> int:
        return sum(self.by_rule.values())

    @property
    def ok(self) -> bool:
        """True when the stream is legal."""
        return not self.by_rule

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "config": self.config,
            "pim": self.pim,
            "ok": self.ok,
            "commands": self.commands,
            "end_clk": self.end_clk,
            "by_type": dict(self.by_type),
            "violations_total": self.total_violations,
            "by_rule": dict(self.by_rule),
            "violations": [v.to_dict() for v in self.violations],
            "refresh_gaps": {
                f"ch{ch}.ra{rk}": g.to_dict() for (ch, rk), g in sorted(self.refresh_gaps.items())
            },
        }
