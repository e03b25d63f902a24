"""Bounds of the GradPIM update in closed form, and the lower bounds that explain the gap to
the timed run.

:func:`column_ops_per_param` counts the column operations a parameter costs;
:func:`closed_form_cycles` counts column slots (``column ops x tCCD_L``
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
from gradpimsim.config.training import DTYPE_BYTES, OptimizerConfig, PrecisionPolicy
from gradpimsim.dram.commands import Cmd
from gradpimsim.pim import datapath
from gradpimsim.pim.program import PimProgram
from gradpimsim.pim.unit import SQRT_DIV_OPS

_NEVER = -(1 << 40)


def column_ops_per_param(optimizer: OptimizerConfig, precision: PrecisionPolicy, *,
                         first_step: bool = False) -> float:
    """PIM column operations (PIM_RD + PIM_WR, all units) per parameter, in closed form.

    Every column is read or written once, so this is (bytes read + bytes written) / 64: the
    gradient, master weight and state are read, weight and state written, plus the weight copy.
    On the first step torch initializes the momentum buffer from the gradient, so it is not read.
    A regularized optimizer (``ewc-*``) also reads ``omega`` and ``theta_old`` (4 + 4 bytes),
    never writing them: 0.125 column ops more per parameter.
    """
    b = DTYPE_BYTES
    state = len(optimizer.state_roles) * b[precision.state_dtype]
    momentum = optimizer.base in ("momentum", "nesterov")
    if momentum and optimizer.momentum == 0:
        state = 0
    read_state = 0 if (first_step and momentum) else state
    const = len(optimizer.const_roles) * b[precision.state_dtype]
    read = b[precision.grad_dtype] + b[precision.master_dtype] + read_state + const
    write = b[precision.master_dtype] + state
    if precision.has_weight_copy:
        write += b[precision.compute_dtype]
    return (read + write) / datapath.COLUMN_BYTES


def closed_form_cycles(program: PimProgram, cfg: MemoryConfig,
                       pim: PimConfig | None = None) -> dict[str, int]:
    """The update's lower bound in DRAM cycles, from the program's command counts.

    ``bank_group``: the busiest unit's column ops x tCCD_L plus, per write-to-read turnaround,
    the extra ``BL/2 + tWTR_L - tCCD_L``; ``command_bus``: all commands of the busiest channel at
    one per clock (PIM_OPs share the command bus); ``bound`` is the larger.  Row activations,
    refresh and the prologue's spacing are left to the simulation.
    """
    p = (pim or PimConfig()).resolved(cfg.timing, cfg.burst_cycles)
    col = p.col_to_col
    extra = max(0, p.write_to_read - col)
    stats = program.stats()
    bg = max((s.column_ops * col + s.turnarounds * extra for s in stats.values()), default=0)
    per_channel: dict[int, int] = {}
    for (ch, _r, _b), prog in program.units.items():
        per_channel[ch] = per_channel.get(ch, 0) + len(prog)
    for (ch, _r), prog in program.prologue.items():
        per_channel[ch] = per_channel.get(ch, 0) + len(prog)
    bus = max(per_channel.values(), default=0)
    return {"bank_group": bg, "command_bus": bus, "bound": max(bg, bus)}


def unit_chain_cycles(program: PimProgram, cfg: MemoryConfig,
                      pim: PimConfig | None = None) -> int:
    """The busiest unit's dependence chain in cycles (one command per clock *per unit*,
    PIM column spacing, write-to-read turnaround, read-to-operation and PIM_OP latency; no
    rows, no refresh)."""
    p = (pim or PimConfig()).resolved(cfg.timing, cfg.burst_cycles)
    ccd, w2r, r2o = p.col_to_col, p.write_to_read, p.read_to_op
    lat, long_lat = p.op_latency, p.sqrt_div_latency
    rd, wr, op = Cmd.PIM_RD, Cmd.PIM_WR, Cmd.PIM_OP
    worst = 0
    for prog in program.units.values():
        now = -1
        col = wr_t = rd_t = op_ready = _NEVER
        for ins in prog:
            c = ins.cmd
            now += 1
            if c == rd:
                now = max(now, col + ccd, wr_t + w2r)
                col = rd_t = now
            elif c == wr:
                now = max(now, col + ccd, op_ready)
                col = wr_t = now
            elif c == op:
                now = max(now, rd_t + r2o)
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
