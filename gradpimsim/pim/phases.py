"""Phase scheduling: one unit's lane groups packed into register-limited read/op/write phases.

Lane groups are packed into *phases*, as many as the vector registers hold: all reads of a
phase, then its arithmetic, then its writes, so a bank group pays one write-to-read turnaround
(``BL/2 + tWTR_L``) per phase rather than per column.  A low-precision column stays in a
register until all its lane groups are done, so each column is read and written once per step.
This is the hot part of program construction (a model's update is tens of millions of
commands, generated again on every iteration of a lazy program): compiled, with templates.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from typing import Final

from gradpimsim.config.pim import PimConfig
from gradpimsim.dram.commands import Cmd
from gradpimsim.pim.errors import PimCapabilityError
from gradpimsim.pim.recipes import Recipe
from gradpimsim.pim.unit import PimInstr


@dataclass
class Loc:
    """Per role of one target: dtype, parts per column, and per-column (bank, row, col)."""

    dtype: str
    parts: int  # lane groups per column (1 fp32, 2 fp16/bf16, 4 int8)
    bank: list[int]
    row: list[int]
    col: list[int]


class LazyUnitProgram:
    """A unit's command list generated on every iteration instead of stored.

    A model's whole update is about 0.56 commands per parameter (mixed-precision momentum), some
    70 MB per million parameters as objects; the lazy form keeps only the column locations.
    """

    def __init__(self, runs: list[list[int]], locs: list[dict[str, Loc]],
                 recipe: Recipe, pim: PimConfig) -> None:
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


def _emit_template(tpl: _Template, loc: dict[str, Loc], a: int) -> list[PimInstr]:
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


def _emit_phase(entries: list[tuple], locs: list[dict[str, Loc]]) -> list[PimInstr]:
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


def _schedule(runs: list[list[int]], locs: list[dict[str, Loc]], recipe: Recipe,  # noqa: C901
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
    read_roles = list(recipe.read_roles)
    out_roles = list(recipe.out_roles)
    copy = recipe.copy_dtype is not None
    part_role = read_roles[0]  # the role whose lane-group part the recipe converts

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
            entries.extend((_OP, op, 0) for op in recipe.ops(r, lg % loc[part_role].parts,
                                                             cpart))
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
