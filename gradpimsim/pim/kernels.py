"""Optimizers as GradPIM command programs.

A program is what the memory controller schedules: for every bank-group unit
``(channel, rank, bankgroup)`` an ordered list of :class:`~gradpimsim.pim.unit.PimInstr`
(``PIM_RD``/``PIM_WR`` carry bank, row and column; the controller adds ACT/PRE itself), plus a
``PIM_SET`` prologue per ``(channel, rank)`` that loads the hyperparameters into the scalar
registers of every unit of that rank (PIM_SET is a rank-wide command, like a mode-register write).
Within a unit the order is a dependence order and must be kept; different units are independent.

This module builds programs (:func:`build_program`); the program model is ``program.py``, what
the unit computes ``recipes.py``, the phase packing ``phases.py`` and the closed-form bounds
``bounds.py``.

Work is cut into *lane groups* of 16 parameters (one fp32 column).  Per lane group the unit reads
the gradient (a whole column for fp32, a half/quarter of one for fp16/bf16/int8), the fp32 master
weight and fp32 state, computes in fp32, and writes weight, state and (mixed precision) one
half/quarter of the low-precision weight copy.  Column operations bound the time (about
``column ops per bank group x tCCD_L``), so each column is read and written exactly once per step:
a low-precision column stays in a register until all its lane groups are done.  Lane groups are
packed into *phases*, as many as the vector registers hold: all reads of a phase, then its
arithmetic, then its writes, so a bank group pays one write-to-read turnaround
(``BL/2 + tWTR_L``) per phase rather than per column.

Adam and AdamW are an extension beyond the paper's unit: they need ``PimConfig.has_sqrt_div``.
Anything the unit cannot do raises :class:`PimCapabilityError`; nothing falls back to the host.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gradpimsim.config import MemoryConfig
from gradpimsim.config.pim import PimConfig
from gradpimsim.config.training import DTYPE_BYTES, OptimizerConfig, PrecisionPolicy
from gradpimsim.dram.address_map import AddressMap
from gradpimsim.pim import datapath
from gradpimsim.pim.errors import LayoutError
from gradpimsim.pim.layout import column_map, update_roles
from gradpimsim.pim.phases import LazyUnitProgram, Loc
from gradpimsim.pim.program import PimProgram, UnitKey, UpdateTarget
from gradpimsim.pim.recipes import Recipe, assign_scalars, check_supported, scalar_values
from gradpimsim.pim.unit import set_scalar

#: What callers build programs with (the definitions live in program.py and recipes.py).
__all__ = ["PimProgram", "UnitKey", "UpdateTarget", "build_program", "check_supported"]


def _locate(target: UpdateTarget, roles: dict[str, str], cfg: MemoryConfig,
            amap: AddressMap) -> tuple[list[UnitKey], dict[str, Loc]]:
    """Check a target's layout and return each lane group's unit and each role's columns."""
    o = cfg.org
    n = target.numel
    groups = -(-n // datapath.FP32_LANES)
    g = np.arange(groups)
    unit_ref = None
    locs: dict[str, Loc] = {}
    for role, dtype in roles.items():
        p = target.placements.get(role)
        if p is None:
            raise LayoutError(f"{target.name}: no placement for role {role!r}")
        nbytes = n * DTYPE_BYTES[dtype]
        if p.nbytes < nbytes:
            raise LayoutError(f"{target.name}.{role}: placement holds {p.nbytes} bytes, "
                              f"{n} {dtype} values need {nbytes}")
        cm = column_map(p, amap, nbytes)
        parts = datapath.parts(dtype)
        c = g // parts
        bad = np.flatnonzero(~cm.aligned)
        if bad.size:
            raise LayoutError(f"{target.name}.{role}: column {int(bad[0])} is not burst aligned "
                              "in one segment; a PIM column command moves whole 64 B columns")
        unit = cm.unit(o)[c]
        if unit_ref is None:
            unit_ref = unit
        else:
            off = np.flatnonzero(unit != unit_ref)
            if off.size:
                i = int(off[0])
                raise LayoutError(
                    f"{target.name}: parameters {16 * i}..{16 * i + 15} have {role!r} in another "
                    "bank group than 'weight'; a GradPIM unit only reaches its own bank group "
                    "(use the co-located placement policy)")
        locs[role] = Loc(dtype, parts, cm.bank.tolist(), cm.row.tolist(), cm.col.tolist())
    assert unit_ref is not None
    nbg, nr = o.bankgroups, o.ranks
    keys = [(u // (nbg * nr), (u // nbg) % nr, u % nbg) for u in unit_ref.tolist()]
    return keys, locs


def build_program(targets: Sequence[UpdateTarget], optimizer: OptimizerConfig,
                  precision: PrecisionPolicy, cfg: MemoryConfig, pim: PimConfig | None = None, *,
                  step: int = 1, grad_scale: float = 1.0, copy_scale: float = 1.0,
                  amap: AddressMap | None = None, lazy: bool = False) -> PimProgram:
    """The command program for one optimizer step over ``targets``.

    ``step`` counts from 1 (Adam's bias corrections; torch's first momentum step copies the
    gradient instead of reading the buffer).  ``grad_scale`` multiplies the stored gradient when
    it is widened (int8: the quantization scale; fp16/bf16: 1/loss scale).  ``copy_scale`` is the
    quantization scale of an int8 weight copy.  ``lazy``: each unit's commands are generated
    anew on every iteration rather than stored (for whole models); iterate, do not index.
    """
    pim = pim or PimConfig()
    amap = amap or AddressMap(cfg)
    if step < 1:
        raise ValueError("steps count from 1")
    check_supported(optimizer, precision, pim)
    roles = update_roles(optimizer, precision)
    recipe_scalars = assign_scalars(
        scalar_values(optimizer, precision, step, grad_scale, copy_scale), pim)
    recipe = Recipe(
        optimizer, precision.grad_dtype,
        precision.compute_dtype if precision.has_weight_copy else None,
        first_step=step == 1,
        scale_grad=precision.grad_dtype == "int8" or grad_scale != 1.0,
        s={k: v[0] for k, v in recipe_scalars.items()})
    roles = {r: roles[r] for r in recipe.roles}
    return assemble(targets, recipe, recipe_scalars, roles, optimizer, precision, step, cfg,
                    pim, amap, lazy)


def assemble(targets: Sequence[UpdateTarget], recipe: Recipe,
             recipe_scalars: dict[str, tuple[int, float]], roles: dict[str, str],
             optimizer: OptimizerConfig, precision: PrecisionPolicy, step: int,
             cfg: MemoryConfig, pim: PimConfig, amap: AddressMap, lazy: bool) -> PimProgram:
    """The program of ``recipe`` over ``targets`` (``roles``: role -> dtype of every column
    the recipe touches): lane groups per unit, phases, and the PIM_SET prologue."""
    # lane groups per unit, in order, as runs [target, first lane group, count]
    work: dict[UnitKey, list[list[int]]] = {}
    locs: list[dict[str, Loc]] = []
    for ti, t in enumerate(targets):
        if t.numel <= 0:
            locs.append({})
            continue
        keys, loc = _locate(t, roles, cfg, amap)
        locs.append(loc)
        for lg, key in enumerate(keys):
            runs = work.get(key)
            if runs is None:
                work[key] = [[ti, lg, 1]]
                continue
            r = runs[-1]
            if r[0] == ti and r[1] + r[2] == lg:
                r[2] += 1
            else:
                runs.append([ti, lg, 1])

    program = PimProgram(optimizer, precision, step, recipe_scalars,
                         params=sum(max(t.numel, 0) for t in targets))
    for key in sorted(work):
        unit = LazyUnitProgram(work[key], locs, recipe, pim)
        if lazy:
            next(iter(unit), None)  # register shortages raise here, at build time
            program.units[key] = unit
        else:
            program.units[key] = list(unit)
    prologue = [ins for reg in sorted({v[0] for v in recipe_scalars.values()})
                for ins in set_scalar(reg, next(v[1] for v in recipe_scalars.values()
                                                if v[0] == reg))]
    for ch, rank, _bg in program.units:
        program.prologue.setdefault((ch, rank), list(prologue))
    return program
