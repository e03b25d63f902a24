"""The DDR4 (+ GradPIM) timing rules as one declarative table.

Each row says: after ``prev`` is issued at cycle t, ``next`` may not issue before t + gap, for
commands related at ``level``:

- ``bank``: same bank;  ``bankgroup``: same bank group (any bank in it, the same bank included);
- ``rank``: same rank;  ``other_rank``: a different rank of the same channel.

Gaps are expressions over the :class:`~gradpimsim.config.Timing` fields plus ``BURST`` (BL/2 data
cycles), ``RL``/``WL`` and the resolved PIM knobs (``PIM_CCD`` ...).  The table is the only place
the controller learns timing: the device state compiles it once per configuration, and nothing
else in the controller hard-codes a timing constant.  Windowed rules (tFAW) carry a ``window``
count: at most ``window`` ``next`` commands in any rolling ``gap`` cycles.

Levels nest (bank in bank group in rank), and the device takes the max over levels, so a row at a
wider level (tCCD_S at ``rank``) is a floor that a narrower row (tCCD_L at ``bankgroup``) raises.
"""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass

from gradpimsim.config import MemoryConfig
from gradpimsim.config.pim import PimConfig
from gradpimsim.dram.commands import Cmd

LEVELS = ("bank", "bankgroup", "rank", "other_rank")

_RD = (Cmd.RD, Cmd.RDA)
_WR = (Cmd.WR, Cmd.WRA)
_HOST_COL = _RD + _WR
_PIM_COL = (Cmd.PIM_RD, Cmd.PIM_WR)
_ANY_COL = _HOST_COL + _PIM_COL
_ALL = tuple(Cmd)


@dataclass(frozen=True)
class Rule:
    """One row of the table: ``prev`` -> ``next`` at ``level`` needs ``gap`` cycles."""

    level: str
    prev: tuple[Cmd, ...]
    next: tuple[Cmd, ...]
    gap: str
    window: int = 1
    name: str = ""
    pim: bool = False  # only when a PIM configuration is present


def _r(level: str, prev: tuple[Cmd, ...] | Cmd, nxt: tuple[Cmd, ...] | Cmd, gap: str,
       name: str, window: int = 1, pim: bool = False) -> Rule:
    p = prev if isinstance(prev, tuple) else (prev,)
    n = nxt if isinstance(nxt, tuple) else (nxt,)
    return Rule(level, p, n, gap, window, name, pim)


#: The rules, from ../shared/ddr4-reference.md (JESD79-4) and docs/gradpim.md for PIM.
RULES: tuple[Rule, ...] = (
    # --- same bank ---
    _r("bank", Cmd.ACT, _ANY_COL, "tRCD - AL", "tRCD"),
    _r("bank", Cmd.ACT, Cmd.PRE, "tRAS", "tRAS"),
    _r("bank", Cmd.ACT, Cmd.ACT, "tRC", "tRC"),
    _r("bank", Cmd.PRE, Cmd.ACT, "tRP", "tRP"),
    _r("bank", Cmd.RD, Cmd.PRE, "AL + tRTP", "tRTP"),
    _r("bank", Cmd.WR, Cmd.PRE, "WL + BURST + tWR", "tWR"),
    _r("bank", Cmd.RDA, Cmd.ACT, "AL + tRTP + tRP", "tRTP+tRP"),
    _r("bank", Cmd.WRA, Cmd.ACT, "WL + BURST + tWR + tRP", "tWR+tRP"),
    _r("bank", Cmd.PIM_RD, Cmd.PRE, "PIM_RTP", "pim_rtp", pim=True),
    _r("bank", Cmd.PIM_WR, Cmd.PRE, "PIM_WR_RECOVERY", "pim_wr", pim=True),
    # --- same bank group ---
    _r("bankgroup", Cmd.ACT, Cmd.ACT, "tRRD_L", "tRRD_L"),
    _r("bankgroup", _RD, _RD, "tCCD_L", "tCCD_L"),
    _r("bankgroup", _WR, _WR, "tCCD_L", "tCCD_L"),
    _r("bankgroup", _WR, _RD, "WL + BURST + tWTR_L", "tWTR_L"),
    _r("bankgroup", _WR, Cmd.PIM_RD, "WL + BURST + tWTR_L", "tWTR_L", pim=True),
    _r("bankgroup", _PIM_COL, _ANY_COL, "PIM_CCD", "pim_ccd", pim=True),
    _r("bankgroup", _HOST_COL, _PIM_COL, "PIM_CCD", "pim_ccd", pim=True),
    _r("bankgroup", Cmd.PIM_WR, _RD + (Cmd.PIM_RD,), "PIM_WTR", "pim_wtr", pim=True),
    _r("bankgroup", Cmd.PIM_OP, Cmd.PIM_WR, "PIM_OP_LATENCY", "pim_op_latency", pim=True),
    _r("bankgroup", Cmd.PIM_RD, Cmd.PIM_OP, "PIM_READ_OP", "pim_read_op", pim=True),
    # --- same rank ---
    _r("rank", Cmd.ACT, Cmd.ACT, "tRRD_S", "tRRD_S"),
    _r("rank", Cmd.ACT, Cmd.ACT, "tFAW", "tFAW", window=4),
    _r("rank", _RD, _RD, "tCCD_S", "tCCD_S"),
    _r("rank", _WR, _WR, "tCCD_S", "tCCD_S"),
    _r("rank", _WR, _RD, "WL + BURST + tWTR_S", "tWTR_S"),
    _r("rank", _RD, _WR, "RL + BURST - WL + 1 + tWPRE", "RD_WR"),
    _r("rank", Cmd.ACT, (Cmd.REF, Cmd.SRE), "tRC", "tRC"),
    _r("rank", Cmd.PRE, (Cmd.REF, Cmd.SRE), "tRP", "tRP"),
    _r("rank", Cmd.RDA, (Cmd.REF, Cmd.SRE), "AL + tRTP + tRP", "tRTP+tRP"),
    _r("rank", Cmd.WRA, (Cmd.REF, Cmd.SRE), "WL + BURST + tWR + tRP", "tWR+tRP"),
    _r("rank", Cmd.REF, _ALL, "tRFC", "tRFC"),
    _r("rank", Cmd.SRE, Cmd.SRX, "tCKESR", "tCKESR"),
    _r("rank", Cmd.SRX, _ALL, "tXS", "tXS"),
    _r("rank", Cmd.PIM_SET, Cmd.PIM_SET, "PIM_SET_SET", "pim_set", pim=True),
    _r("rank", Cmd.PIM_SET, Cmd.PIM_OP, "PIM_SET_OP", "pim_set", pim=True),
    # --- other ranks of the channel (shared data bus) ---
    _r("other_rank", _RD, _RD, "BURST + tRTRS", "tRTRS"),
    _r("other_rank", _WR, _WR, "BURST + tRTRS", "tRTRS"),
    _r("other_rank", _RD, _WR, "RL + BURST + tRTRS - WL + tWPRE", "tRTRS"),
    _r("other_rank", _WR, _RD, "WL + BURST + tRTRS - RL + tRPRE", "tRTRS"),
)

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.FloorDiv: operator.floordiv}


def gap_symbols(cfg: MemoryConfig, pim: PimConfig | None = None) -> dict[str, int]:
    """The names a gap expression may use, resolved for one configuration."""
    t = cfg.timing
    burst = cfg.org.burst_length // 2
    sym = {name: getattr(t, name) for name in t.__dataclass_fields__ if name != "tCK_ns"}
    sym.update(BURST=burst, RL=t.AL + t.CL, WL=t.AL + t.CWL)
    p = (pim or PimConfig()).resolved(t, burst)
    sym.update(
        PIM_CCD=p.col_to_col,
        PIM_WTR=p.write_to_read,
        PIM_RTP=p.read_to_precharge,
        PIM_WR_RECOVERY=p.write_recovery,
        PIM_OP_LATENCY=p.op_latency,
        PIM_READ_OP=p.read_to_op,
        PIM_SET_SET=p.set_to_set,
        PIM_SET_OP=p.set_to_op,
    )
    return sym


def evaluate_gap(expr: str, symbols: dict[str, int]) -> int:
    """Evaluate a gap expression (names, integers, + - * //) without ``eval``."""

    def ev(node: ast.AST) -> int:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.Name):
            return symbols[node.id]
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        raise ValueError(f"unsupported gap expression {expr!r}")

    return ev(ast.parse(expr, mode="eval"))


@dataclass(frozen=True)
class ResolvedRule:
    level: str
    prev: Cmd
    next: Cmd
    gap: int
    window: int
    name: str


def resolve(cfg: MemoryConfig, pim: PimConfig | None = None) -> list[ResolvedRule]:
    """The table with every gap in cycles, one entry per (level, prev, next, window)."""
    symbols = gap_symbols(cfg, pim)
    out: list[ResolvedRule] = []
    for rule in RULES:
        if rule.pim and pim is None:
            continue
        gap = evaluate_gap(rule.gap, symbols)
        for p in rule.prev:
            for n in rule.next:
                out.append(ResolvedRule(rule.level, p, n, gap, rule.window, rule.name))
    return out
