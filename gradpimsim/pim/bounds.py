"""Lower bounds for the timed GradPIM run, to explain the gap between it and the closed form.

:func:`~gradpimsim.pim.kernels.closed_form_cycles` counts column slots (``column ops x tCCD_L``
plus the write-to-read turnarounds) and command-bus slots.  A unit's program also has a
*dependence chain* the column count does not see: its PIM_OPs issue one per clock after the
phase's last read, and the phase's first write waits ``op_latency`` after the last PIM_OP.  With
mixed-precision momentum (5 reads, 8 PIM_OPs, 5 writes per phase) that costs
``8 + op_latency - tCCD_L`` extra cycles per phase (6 at DDR4-2400, 4 at DDR4-3200).
:func:`unit_chain_cycles` replays each unit's program with unlimited command bus and rows always
open, so it is the time no scheduler can beat even for one unit alone.
"""

from __future__ import annotations

from gradpimsim.config import MemoryConfig
from gradpimsim.config.pim import PimConfig
from gradpimsim.dram.commands import Cmd
from gradpimsim.pim.kernels import PimProgram, closed_form_cycles
from gradpimsim.pim.unit import SQRT_DIV_OPS

_NEVER = -(1 << 40)


def unit_chain_cycles(program: PimProgram, cfg: MemoryConfig,
                      pim: PimConfig | None = None) -> int:
    """The busiest unit's dependence chain in cycles (one command per clock *per unit*,
    PIM column spacing, write-to-read turnaround and PIM_OP latency; no rows, no refresh)."""
    p = (pim or PimConfig()).resolved(cfg.timing, cfg.burst_cycles)
    ccd, w2r = p.col_to_col, p.write_to_read
    lat, long_lat = p.op_latency, p.sqrt_div_latency
    rd, wr, op = Cmd.PIM_RD, Cmd.PIM_WR, Cmd.PIM_OP
    worst = 0
    for prog in program.units.values():
        now = -1
        col = wr_t = op_ready = _NEVER
        for ins in prog:
            c = ins.cmd
            now += 1
            if c == rd:
                now = max(now, col + ccd, wr_t + w2r)
                col = now
            elif c == wr:
                now = max(now, col + ccd, op_ready)
                col = wr_t = now
            elif c == op:
                op_ready = max(op_ready, now + (long_lat if ins.op in SQRT_DIV_OPS else lat))
        worst = max(worst, now + 1)
    return worst


def pim_bounds(program: PimProgram, cfg: MemoryConfig,
               pim: PimConfig | None = None) -> dict[str, int]:
    """The closed form (``bank_group``, ``command_bus``, ``bound``) plus ``unit_chain`` and
    ``refined`` = max(closed-form bound, unit chain)."""
    out = dict(closed_form_cycles(program, cfg, pim))
    out["unit_chain"] = unit_chain_cycles(program, cfg, pim)
    out["refined"] = max(out["bound"], out["unit_chain"])
    return out
