"""Optimizers as GradPIM command programs.

A program is what the memory controller schedules: for every bank-group unit
``(channel, rank, bankgroup)`` an ordered list of :class:`~gradpimsim.pim.unit.PimInstr`
(``PIM_RD``/``PIM_WR`` carry bank, row and column; the controller adds ACT/PRE itself), plus a
``PIM_SET`` prologue per ``(channel, rank)`` that loads the hyperparameters into the scalar
registers of every unit of that rank (PIM_SET is a rank-wide command, like a mode-register write).
Within a unit the order is a dependence order and must be kept; different units are independent.

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

import math
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, Final, Protocol

import numpy as np

from gradpimsim.config import MemoryConfig
from gradpimsim.config.model import ConfigError
from gradpimsim.config.pim import PimConfig
from gradpimsim.config.training import DTYPE_BYTES, OptimizerConfig, PrecisionPolicy
from gradpimsim.dram.address_map import AddressMap
from gradpimsim.dram.commands import Cmd
from gradpimsim.pim import datapath
from gradpimsim.pim.errors import LayoutError, PimCapabilityError
from gradpimsim.pim.layout import column_map, update_roles
from gradpimsim.pim.unit import PimInstr, pim_op, set_scalar

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


@dataclass
class UnitStats:
    """Command counts of one unit's program (what the closed-form bound needs)."""

    reads: int = 0
    writes: int = 0
    ops: int = 0
    long_ops: int = 0  # sqrt/div (the extension's longer latency)
    turnarounds: int = 0  # PIM_WR followed later by a PIM_RD in the same bank group

    @property
    def column_ops(self) -> int:
        return self.reads + self.writes


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

    def stats(self) -> dict[UnitKey, UnitStats]:
        out = {}
        for key, prog in self.units.items():
            st = UnitStats()
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


# --- capability and closed forms ----------------------------------------------------------

def _uses_momentum(opt: OptimizerConfig) -> bool:
    return opt.name in ("momentum", "nesterov") and opt.momentum != 0


def check_supported(opt: OptimizerConfig, prec: PrecisionPolicy, pim: PimConfig) -> None:
    """Raise :class:`PimCapabilityError` unless the unit can run ``opt`` under ``prec``."""
    if prec.master_dtype != "fp32" or prec.state_dtype != "fp32":
        raise PimCapabilityError(
            "precision.master_dtype", "GradPIM keeps fp32 master weights and optimizer state "
            f"(got master {prec.master_dtype}, state {prec.state_dtype})")
    for role, dtype in (("grad", prec.grad_dtype), ("weight copy", prec.compute_dtype)):
        if dtype not in pim.dtypes:
            raise PimCapabilityError("pim.dtypes", f"{role} dtype {dtype!r} is not one the unit "
                                     f"converts (pim.dtypes = {list(pim.dtypes)})")
    if opt.needs_sqrt_div and not pim.has_sqrt_div:
        raise PimCapabilityError(
            "pim.has_sqrt_div", f"{opt.name} needs a square root and a division, which the "
            "paper's GradPIM unit lacks; enable the extension with pim.has_sqrt_div = true")
    if opt.name == "nesterov" and (opt.momentum <= 0 or opt.dampening != 0):
        raise ConfigError("optimizer.dampening",
                          "Nesterov momentum requires a momentum and zero dampening")


def column_ops_per_param(optimizer: OptimizerConfig, precision: PrecisionPolicy, *,
                         first_step: bool = False) -> float:
    """PIM column operations (PIM_RD + PIM_WR, all units) per parameter, in closed form.

    Every column is read or written once, so this is (bytes read + bytes written) / 64: the
    gradient, master weight and state are read, weight and state written, plus the weight copy.
    On the first step torch initializes the momentum buffer from the gradient, so it is not read.
    """
    b = DTYPE_BYTES
    state = len(optimizer.state_roles) * b[precision.state_dtype]
    if optimizer.name in ("momentum", "nesterov") and optimizer.momentum == 0:
        state = 0
    read_state = 0 if (first_step and optimizer.name in ("momentum", "nesterov")) else state
    read = b[precision.grad_dtype] + b[precision.master_dtype] + read_state
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


# --- scalars ------------------------------------------------------------------------------

def _scalar_values(opt: OptimizerConfig, prec: PrecisionPolicy, step: int, grad_scale: float,
                   copy_scale: float) -> dict[str, float]:
    """Every hyperparameter the program needs, as the fp32 value its register holds."""
    s: dict[str, float] = {"one": 1.0}
    if prec.grad_dtype == "int8" or grad_scale != 1.0:
        s["grad_scale"] = grad_scale
    if prec.has_weight_copy and prec.compute_dtype == "int8":
        s["copy_inv_scale"] = float(datapath.int8_inverse_scale(copy_scale))
    if opt.name in ("adam", "adamw"):
        if opt.weight_decay != 0:
            if opt.name == "adamw":
                s["decay"] = 1.0 - opt.lr * opt.weight_decay
            else:
                s["wd"] = opt.weight_decay
        s["beta1"], s["one_minus_beta1"] = opt.beta1, 1.0 - opt.beta1
        s["beta2"], s["one_minus_beta2"] = opt.beta2, 1.0 - opt.beta2
        s["bias_correction2_sqrt"] = math.sqrt(1.0 - opt.beta2 ** step)
        s["eps"] = opt.eps
        s["neg_step_size"] = -(opt.lr / (1.0 - opt.beta1 ** step))
    else:
        if opt.weight_decay != 0:
            s["wd"] = opt.weight_decay
        if _uses_momentum(opt):
            s["momentum"] = opt.momentum
            s["one_minus_dampening"] = 1.0 - opt.dampening
        s["neg_lr"] = -opt.lr
    return s


def _assign_scalars(values: dict[str, float], pim: PimConfig) -> dict[str, tuple[int, float]]:
    """Registers for the scalars, one per distinct fp32 value."""
    by_bits: dict[int, int] = {}
    out = {}
    for name, v in values.items():
        bits = int(np.float32(v).view(np.uint32))
        if bits not in by_bits:
            by_bits[bits] = len(by_bits)
        out[name] = (by_bits[bits], float(np.float32(v)))
    if len(by_bits) > pim.scalar_registers:
        raise PimCapabilityError(
            "pim.scalar_registers", f"the update needs {len(by_bits)} distinct scalars "
            f"({', '.join(values)}) but the unit has {pim.scalar_registers} scalar registers")
    return out


# --- the arithmetic of one lane group -----------------------------------------------------

@dataclass(frozen=True)
class _Recipe:
    """What the kernel computes, decided once per program."""

    opt: OptimizerConfig
    grad_dtype: str
    copy_dtype: str | None
    first_step: bool
    scale_grad: bool
    s: dict[str, int]  # scalar name -> register

    @property
    def adam(self) -> bool:
        return self.opt.name in ("adam", "adamw")

    @property
    def momentum(self) -> bool:
        return _uses_momentum(self.opt)

    @property
    def nesterov(self) -> bool:
        return self.opt.name == "nesterov"

    @property
    def state_roles(self) -> tuple[str, ...]:
        if self.adam:
            return ("exp_avg", "exp_avg_sq")
        return ("momentum",) if self.momentum else ()

    @property
    def read_state(self) -> bool:
        return self.adam or not self.first_step

    @property
    def temps(self) -> tuple[str, ...]:
        t = ("G",) if self.grad_dtype != "fp32" else ()
        return t + (("T",) if self.adam else ())

    def ops(self, r: dict[str, int], gpart: int, cpart: int) -> list[PimInstr]:
        """PIM_OPs of one lane group; ``r`` maps operand names to vector registers."""
        s, out = self.s, []
        gs = s.get("grad_scale", -1) if self.scale_grad else -1
        if self.grad_dtype != "fp32":
            G = r["G"]
            out.append(pim_op("cvt", G, r["grad"], self.grad_dtype, "fp32", gpart, gs))
        else:
            G = r["grad"]
            if gs >= 0:
                out.append(pim_op("scale", G, G, gs))
        W = r["weight"]
        one = s["one"]
        if self.adam:
            M, V, T = r["exp_avg"], r["exp_avg_sq"], r["T"]
            if "decay" in s:
                out.append(pim_op("scale", W, W, s["decay"]))
            elif "wd" in s:
                out.append(pim_op("axpby", G, W, one, s["wd"]))
            out.append(pim_op("axpby", M, G, s["beta1"], s["one_minus_beta1"]))
            out.append(pim_op("mul", T, G, G))
            out.append(pim_op("axpby", V, T, s["beta2"], s["one_minus_beta2"]))
            out.append(pim_op("sqrt", T, V))
            out.append(pim_op("divs", T, T, s["bias_correction2_sqrt"]))
            out.append(pim_op("adds", T, T, s["eps"]))
            out.append(pim_op("div", T, M, T))
            out.append(pim_op("axpby", W, T, one, s["neg_step_size"]))
        else:
            if "wd" in s:
                out.append(pim_op("axpby", G, W, one, s["wd"]))
            D = G
            if self.momentum:
                M = r["momentum"]
                if self.first_step:
                    out.append(pim_op("mov", M, G))
                else:
                    out.append(pim_op("axpby", M, G, s["momentum"], s["one_minus_dampening"]))
                if self.nesterov:
                    out.append(pim_op("axpby", G, M, one, s["momentum"]))
                else:
                    D = M
            out.append(pim_op("axpby", W, D, one, s["neg_lr"]))
        if self.copy_dtype is not None:
            out.append(pim_op("cvt", r["weight_copy"], W, "fp32", self.copy_dtype, cpart,
                              s.get("copy_inv_scale", -1)))
        return out


# --- program construction -----------------------------------------------------------------

@dataclass
class _Loc:
    """Per role of one target: dtype, parts per column, and per-column (bank, row, col)."""

    dtype: str
    parts: int  # lane groups per column (1 fp32, 2 fp16/bf16, 4 int8)
    bank: list[int]
    row: list[int]
    col: list[int]


def _locate(target: UpdateTarget, roles: dict[str, str], cfg: MemoryConfig,
            amap: AddressMap) -> tuple[list[UnitKey], dict[str, _Loc]]:
    """Check a target's layout and return each lane group's unit and each role's columns."""
    o = cfg.org
    n = target.numel
    groups = -(-n // datapath.FP32_LANES)
    g = np.arange(groups)
    unit_ref = None
    locs: dict[str, _Loc] = {}
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
        locs[role] = _Loc(dtype, parts, cm.bank.tolist(), cm.row.tolist(), cm.col.tolist())
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
    recipe_scalars = _assign_scalars(
        _scalar_values(optimizer, precision, step, grad_scale, copy_scale), pim)
    recipe = _Recipe(
        optimizer, precision.grad_dtype,
        precision.compute_dtype if precision.has_weight_copy else None,
        first_step=step == 1,
        scale_grad=precision.grad_dtype == "int8" or grad_scale != 1.0,
        s={k: v[0] for k, v in recipe_scalars.items()})
    used = ["grad", "weight", *recipe.state_roles]
    if recipe.copy_dtype is not None:
        used.append("weight_copy")
    roles = {r: roles[r] for r in used}

    # lane groups per unit, in order, as runs [target, first lane group, count]
    work: dict[UnitKey, list[list[int]]] = {}
    locs: list[dict[str, _Loc]] = []
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
        unit = _LazyUnitProgram(work[key], locs, recipe, pim)
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


class _LazyUnitProgram:
    """A unit's command list generated on every iteration instead of stored.

    A model's whole update is about 0.56 commands per parameter (mixed-precision momentum), some
    70 MB per million parameters as objects; the lazy form keeps only the column locations.
    """

    def __init__(self, runs: list[list[int]], locs: list[dict[str, _Loc]],
                 recipe: _Recipe, pim: PimConfig) -> None:
        self._args = (runs, locs, recipe, pim)
        self._len: int | None = None

    def __iter__(self) -> Iterator[PimInstr]:
        return chain.from_iterable(_schedule(*self._args))

    def __len__(self) -> int:
        if self._len is None:
            self._len = sum(1 for _ in self)
        return self._len


_RD, _OP, _WR = 0, 1, 2  # kinds of a phase entry (see _schedule)

#: ``tuple.__new__``: calling the class PimInstr runs its generated Python ``__new__`` (a Python
#: frame for each of a model's tens of millions of column commands); this builds the same tuple.
_TUPLE_NEW: Final = tuple.__new__


def _column_instr(cmd: Cmd, bank: int, row: int, col: int, reg: int) -> PimInstr:
    """``PimInstr(cmd, bank, row, col, reg)``, built directly (see ``_TUPLE_NEW``)."""
    return _TUPLE_NEW(PimInstr, (cmd, bank, row, col, reg, "", ()))  # type: ignore[no-any-return]


#: Fills a column entry's ``ops`` slot in a :class:`_Template` (never emitted).
_NO_OP: Final = PimInstr(Cmd.PIM_OP)


@dataclass
class _Template:
    """A cached phase relative to its first lane group ``a`` (see :func:`_schedule`), as
    parallel typed lists so that emitting it is native work: per entry its kind, the PIM_OP
    (kind ``_OP``) or the column's role (an index into ``roles``), column offset from ``a``'s
    column of that role, and register.  Then the registers held after it, as ``(role, column
    offset, register)``, and the free register list."""

    length: int  # lane groups
    roles: list[str]
    kinds: list[int]
    ops: list[PimInstr]
    role_of: list[int]
    offsets: list[int]
    regs: list[int]
    held_after: list[tuple[str, int, int]]
    free_after: tuple[int, ...]


def _template(length: int, entries: list[tuple], a: int, parts: dict[str, int],
              held: dict[tuple, int], free: list[int]) -> _Template:
    """A phase's entries (columns as ``(target, role, column)`` keys) and the registers it
    leaves held and free, made relative to ``a``."""
    roles: list[str] = []
    kinds: list[int] = []
    ops: list[PimInstr] = []
    role_of: list[int] = []
    offsets: list[int] = []
    regs: list[int] = []
    for kind, x, y in entries:
        kinds.append(kind)
        if kind == _OP:
            ops.append(x)
            role_of.append(-1)
            offsets.append(0)
            regs.append(0)
            continue
        role = x[1]
        if role not in roles:
            roles.append(role)
        ops.append(_NO_OP)
        role_of.append(roles.index(role))
        offsets.append(x[2] - a // parts[role])
        regs.append(y)
    held_after = [(role, c - a // parts[role], reg) for (_, role, c), reg in held.items()]
    return _Template(length, roles, kinds, ops, role_of, offsets, regs, held_after,
                     tuple(free))


def _emit_template(tpl: _Template, loc: dict[str, _Loc], a: int) -> list[PimInstr]:
    """A cached phase's instructions for a run whose lane group ``a`` begins the phase.

    A plain function, not part of :func:`_schedule`'s generator: a generator keeps its locals in
    an environment object, which makes every access in this per-instruction loop dearer."""
    rd, wr = Cmd.PIM_RD, Cmd.PIM_WR
    banks: list[list[int]] = []
    rows: list[list[int]] = []
    cols: list[list[int]] = []
    base: list[int] = []
    for role in tpl.roles:
        role_loc = loc[role]
        banks.append(role_loc.bank)
        rows.append(role_loc.row)
        cols.append(role_loc.col)
        base.append(a // role_loc.parts)
    kinds, ops, role_of, offsets, regs = tpl.kinds, tpl.ops, tpl.role_of, tpl.offsets, tpl.regs
    out: list[PimInstr] = []
    for j in range(len(kinds)):
        kind = kinds[j]
        if kind == _OP:
            out.append(ops[j])
        else:
            r = role_of[j]
            c = base[r] + offsets[j]
            out.append(_column_instr(rd if kind == _RD else wr, banks[r][c], rows[r][c],
                                     cols[r][c], regs[j]))
    return out


def _emit_phase(entries: list[tuple], locs: list[dict[str, _Loc]]) -> list[PimInstr]:
    """A phase's instructions; column entries hold their ``(target, role, column)`` key."""
    rd, wr = Cmd.PIM_RD, Cmd.PIM_WR
    out: list[PimInstr] = []
    for kind, x, y in entries:
        if kind == _OP:
            out.append(x)
        else:
            role_loc = locs[x[0]][x[1]]
            c = x[2]
            out.append(_column_instr(rd if kind == _RD else wr, role_loc.bank[c],
                                     role_loc.row[c], role_loc.col[c], y))
    return out


def _schedule(runs: list[list[int]], locs: list[dict[str, _Loc]], recipe: _Recipe,  # noqa: C901
              pim: PimConfig) -> Iterator[list[PimInstr]]:
    """One unit's commands, a phase per list: lane groups packed into register-limited
    read/op/write phases.

    ``runs`` lists the unit's lane groups in order as ``[target, first lane group, count]``.
    Each phase is worked out symbolically (:func:`phase`: column keys ``(target, role,
    column)`` and registers), then emitted with the columns' bank, row and column.

    Phases repeat: inside a long run of consecutive lane groups of one target, what a phase
    does depends only on the lane group's offset modulo the parts per column, on the columns
    still held in registers (relative to the first lane group) and on the free register list.
    Such a phase is worked out once and cached as a *template* relative to its first lane
    group, so the steady state costs only the emission.  A template is stored and used only
    when the run covers every lane group the phase looks at (its window, the lane group that
    did not fit, and the last users of its columns), so it gives exactly the instructions the
    phase would.
    """
    read_roles = ["grad", "weight"] + (list(recipe.state_roles) if recipe.read_state else [])
    write_roles = ["weight", *recipe.state_roles]
    copy = recipe.copy_dtype is not None
    out_roles = write_roles + (["weight_copy"] if copy else [])

    temps = recipe.temps
    n_vec = pim.vector_registers
    budget = n_vec - len(temps)
    temp_regs = {name: budget + i for i, name in enumerate(temps)}
    free = list(range(budget - 1, -1, -1))
    held: dict[tuple, int] = {}  # column key -> register (carried across phases)

    # where each lane group is: global index -> run; per target, its runs for last-use lookups
    starts: list[int] = []
    by_target: dict[int, tuple[list[int], list[int], list[int]]] = {}
    total = 0
    for ti, lg0, n in runs:
        starts.append(total)
        firsts, begins, counts = by_target.setdefault(ti, ([], [], []))
        firsts.append(lg0)
        begins.append(total)
        counts.append(n)
        total += n

    def lane(k: int) -> tuple[int, int]:
        r = bisect_right(starts, k) - 1
        return runs[r][0], runs[r][1] + k - starts[r]

    def needs(k: int) -> tuple[list[tuple], list[tuple]]:
        ti, lg = lane(k)
        loc = locs[ti]
        return ([(ti, r, lg // loc[r].parts) for r in read_roles],
                [(ti, r, lg // loc[r].parts) for r in out_roles])

    def last(key: tuple) -> int:
        """Index of the last lane group using column ``key``: every lane group uses every
        role, so it is the unit's last lane group of that target in the column's span."""
        ti, role, c = key
        p = locs[ti][role].parts
        hi = (c + 1) * p - 1
        firsts, begins, counts = by_target[ti]
        r = bisect_right(firsts, hi) - 1
        return begins[r] + min(hi - firsts[r], counts[r] - 1)

    def phase(i: int) -> tuple[int, list[tuple]]:
        """The phase starting at lane group ``i`` (updates ``held`` and ``free``): its end and
        its entries, ``(_RD, key, reg)``, ``(_OP, instr, 0)``, ``(_WR, key, reg)``."""
        keys: set[tuple] = set(held)
        window: list[tuple[list[tuple], list[tuple]]] = []
        j = i
        while j < total:
            ins, outs = needs(j)
            more = keys.union(ins, outs)
            if len(more) > budget:
                break
            keys = more
            window.append((ins, outs))
            j += 1
        if j == i:
            raise PimCapabilityError(
                "pim.vector_registers", f"one lane group needs {len(keys.union(*needs(i)))} "
                f"column registers plus {len(temps)} temporaries; the unit has {n_vec}")
        entries: list[tuple] = []
        # reads, in lane-group order
        for ins, _ in window:
            for key in ins:
                if key not in held:
                    reg = held[key] = free.pop()
                    entries.append((_RD, key, reg))
        # arithmetic
        for k, (ins, outs) in enumerate(window):
            ti, lg = lane(i + k)
            for key in outs:
                if key not in held:
                    held[key] = free.pop()
            r = {key[1]: held[key] for key in ins + outs}
            r.update(temp_regs)
            loc = locs[ti]
            cpart = lg % loc["weight_copy"].parts if copy else 0
            entries.extend((_OP, op, 0) for op in recipe.ops(r, lg % loc["grad"].parts, cpart))
        # writes of completed columns; release registers no later lane group needs
        ends = {key: last(key) for key in held}
        done = sorted((key for key in held if ends[key] < j), key=ends.__getitem__)
        written = set()
        for _, outs in window:
            for key in outs:
                if key in written or ends[key] >= j:
                    continue
                written.add(key)
                entries.append((_WR, key, held[key]))
        for key in done:
            free.append(held.pop(key))
        return j, entries

    parts = {role: p.parts for loc in locs for role, p in loc.items()}
    period = math.lcm(*parts.values()) if parts else 1
    cache: dict[tuple, _Template] = {}
    i = 0
    r = 0
    while i < total:
        while r + 1 < len(starts) and starts[r + 1] <= i:
            r += 1
        ti, lg0, n = runs[r]
        a = lg0 + i - starts[r]
        left = n - (i - starts[r])
        loc = locs[ti]
        sig = None
        if left > period:
            rel = []
            for (kti, role, c), reg in held.items():
                if kti != ti:
                    break
                rel.append((role, c - a // parts[role], reg))
            else:
                sig = (a % period, tuple(rel), tuple(free))
                tpl = cache.get(sig)
                if tpl is not None and left >= tpl.length + period:
                    yield _emit_template(tpl, loc, a)
                    held.clear()
                    for role, dc, reg in tpl.held_after:
                        held[(ti, role, a // parts[role] + dc)] = reg
                    free[:] = tpl.free_after
                    i += tpl.length
                    continue
        j, entries = phase(i)
        yield _emit_phase(entries, locs)
        if sig is not None and left >= j - i + period and all(k[0] == ti for k in held):
            cache[sig] = _template(j - i, entries, a, parts, held, free)
        i = j
