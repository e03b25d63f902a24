"""Where a tensor's update operands live: the co-located GradPIM layout and a naive one.

A GradPIM unit only sees its own bank group, so one update's operands (weight, gradient,
optimizer state, low-precision weight copy) must sit in the same bank group.  The co-located
policy cuts each parameter tensor into *chunks* and, per chunk:

- puts every role (``weight``, ``grad``, ``momentum``, ``exp_avg``, ``exp_avg_sq``,
  ``weight_copy``) in ONE bank group (the unit that updates it);
- gives each role its own bank where the bank group has enough banks, so the rows of all roles
  can be open at once (no row conflicts between operands);
- aligns the roles by parameter: parameter ``i`` of the chunk sits at byte ``i * dtype_bytes``
  from its role's chunk base, and every chunk base is column aligned, so a fp32 column of the
  weight lines up with the same 16 parameters of the momentum (identical column offsets when the
  dtypes match) and with one half (fp16/bf16) or quarter (int8) of a gradient column;
- rotates consecutive chunks across bank groups, then ranks, then channels, so all units work.

A chunk is ``chunk_columns`` columns of the widest role (default: one whole row).  Narrower
roles need fewer columns per chunk: a low-precision role's chunk takes a half/quarter row, and
the free slots of that row take the next chunks of the same unit (or, when roles outnumber banks,
another narrow role of the same chunk: e.g. mixed-precision Adam packs ``grad`` and
``weight_copy`` into one row of one bank).  Roles are told apart only by byte size (the allocator
interface passes ``{role: nbytes}``); their sizes must be in ratios 1, 2 or 4.

The naive policy places each role linearly, independently of the others (as the allocator's own
``linear`` policy does), which is what a GradPIM-unaware allocator does;
:func:`colocation_report` measures how far that is from usable.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gradpimsim.config import MemoryConfig
from gradpimsim.dram.address_map import AddressMap
from gradpimsim.pim.datapath import COLUMN_BYTES
from gradpimsim.pim.errors import LayoutError


def allocator_module() -> Any:
    """``gradpimsim.host.allocator``, imported lazily so that it may import this module (to
    register the policies) without an import cycle."""
    return importlib.import_module("gradpimsim.host.allocator")


def _placement(name: str, nbytes: int, segments: list[tuple[int, int]]) -> Any:
    mod = allocator_module()
    return mod.TensorPlacement(name, nbytes, [mod.Segment(a, n) for a, n in segments])


def _name(prefix: str, role: str) -> str:
    """Member names as the training task DAG uses them (``host.training.group_tensor_name``)."""
    return f"{prefix}/{role}" if prefix else role


def _densities(tensors: dict[str, int]) -> dict[str, int]:
    """How many times denser than the widest role each role is (1, 2 or 4)."""
    widest = max(tensors.values())
    out = {}
    for role, n in tensors.items():
        d = widest // n
        if d * n != widest or d not in (1, 2, 4):
            raise LayoutError(f"role {role!r} has {n} bytes and the widest role {widest}: "
                              "co-located roles must be 1, 2 or 4 times narrower")
        out[role] = d
    return out


@dataclass
class _RowSet:
    """Roles of one chunk that share the rows of one bank (laid side by side in a slot)."""

    bank: int
    roles: list[str]
    width: int  # columns of one chunk's slot
    offsets: dict[str, int] = field(default_factory=dict)


@dataclass
class ColocatedPolicy:
    """GradPIM's layout (see the module docstring).

    ``chunk_columns``: columns of the widest role per chunk (``None``: a whole row), a power of
    two so chunks tile rows.  ``spread_banks``: give roles their own banks (``False`` puts all
    roles in one bank, in different rows: the layout that measures what bank parallelism buys).
    ``fit_banks`` (with ``chunk_columns=None``): when whole-row chunks would make two roles
    share a bank in different rows (more roles than banks: a regularized optimizer's six), take
    the widest smaller chunk with which every role has its own bank or a slot of a shared row.
    """

    chunk_columns: int | None = None
    spread_banks: bool = True
    name: str = "colocated"
    fit_banks: bool = False
    #: Next unit (bank group) to start at: consecutive tensors continue the rotation, so many
    #: small tensors do not all pile onto bank group 0.
    cursor: int = 0

    def place_group(self, alloc: Any, prefix: str, tensors: dict[str, int]) -> dict[str, Any]:
        cfg: MemoryConfig = alloc.cfg
        amap: AddressMap = alloc.amap
        o = cfg.org
        out: dict[str, Any] = {r: _placement(_name(prefix, r), 0, [])
                               for r, n in tensors.items() if n <= 0}
        live = {r: n for r, n in tensors.items() if n > 0}
        if not live:
            return out
        dens = _densities(live)
        chunk_cols = self.chunk_columns or o.bursts_per_row
        if chunk_cols & (chunk_cols - 1) or not 4 <= chunk_cols <= o.bursts_per_row:
            raise LayoutError(f"chunk_columns must be a power of two in 4..{o.bursts_per_row}")
        # the ranks and banks reserved for parameters (all of them unless partitioned)
        split = getattr(alloc, "split", None)
        ranks = list(split.param_ranks) if split is not None else list(range(o.ranks))
        banks = list(split.param_banks) if split is not None else list(range(o.banks_per_group))
        cols = {r: chunk_cols // dens[r] for r in live}
        sets = self._row_sets(cols, len(banks), o.bursts_per_row)
        if self.fit_banks and self.chunk_columns is None and len(sets) > len(banks):
            smaller = chunk_cols // 2
            while smaller >= 4:
                trial = {r: smaller // dens[r] for r in live}
                trial_sets = self._row_sets(trial, len(banks), o.bursts_per_row)
                if len(trial_sets) <= len(banks):
                    chunk_cols, cols, sets = smaller, trial, trial_sets
                    break
                smaller //= 2
        widest = max(live.values())
        n_chunks = -(-widest // (chunk_cols * COLUMN_BYTES))

        n_units = o.channels * len(ranks) * o.bankgroups
        unit_of = [(self.cursor + k) % n_units for k in range(n_chunks)]
        self.cursor = (self.cursor + n_chunks) % n_units
        per_unit: dict[int, int] = {}
        index_in_unit = []
        for u in unit_of:
            index_in_unit.append(per_unit.get(u, 0))
            per_unit[u] = per_unit.get(u, 0) + 1

        def unit_loc(u: int) -> tuple[int, int, int]:
            bg = u % o.bankgroups
            rank = ranks[(u // o.bankgroups) % len(ranks)]
            return u // (o.bankgroups * len(ranks)), rank, bg

        rows: dict[tuple[int, int], list[int]] = {}
        for u, count in per_unit.items():
            ch, rank, bg = unit_loc(u)
            for si, rs in enumerate(sets):
                need = -(-count // (o.bursts_per_row // rs.width))
                rows[(u, si)] = alloc.reserve_rows(ch, rank, bg, banks[rs.bank], need)

        contiguous = amap.shift["co"] == amap.offset_bits
        co_step = 1 << amap.shift["co"]
        segs: dict[str, list[tuple[int, int]]] = {r: [] for r in live}
        for si, rs in enumerate(sets):
            per_row = o.bursts_per_row // rs.width
            for k in range(n_chunks):
                u, j = unit_of[k], index_in_unit[k]
                ch, rank, bg = unit_loc(u)
                row = rows[(u, si)][j // per_row]
                slot_col = (j % per_row) * rs.width
                for role in rs.roles:
                    chunk_bytes = cols[role] * COLUMN_BYTES
                    start = k * chunk_bytes
                    n = min(chunk_bytes, live[role] - start)
                    if n <= 0:
                        continue
                    col0 = slot_col + rs.offsets[role]
                    base = amap.encode(ch, rank, bg, banks[rs.bank], row, col0)
                    if contiguous:
                        segs[role].append((base, n))
                    else:
                        for c in range(-(-n // COLUMN_BYTES)):
                            segs[role].append(
                                (base + c * co_step, min(COLUMN_BYTES, n - c * COLUMN_BYTES)))
        for role, n in live.items():
            out[role] = _placement(_name(prefix, role), n, _merge(segs[role]))
        return {r: out[r] for r in tensors}

    def _row_sets(self, cols: dict[str, int], banks: int, row_cols: int) -> list[_RowSet]:
        """Assign roles to banks: own banks when they suffice, else pack narrow roles together
        (worst fit: the least-loaded bank whose row still has room), else share rows of a bank."""
        order = sorted(cols, key=lambda r: -cols[r])
        if not self.spread_banks:
            return [self._mk(0, [r], cols) for r in order]
        if len(order) <= banks:
            return [self._mk(b, [r], cols) for b, r in enumerate(order)]
        groups: list[list[str]] = [[r] for r in order[:banks]]
        for r in order[banks:]:
            load = [sum(cols[x] for x in g) for g in groups]
            fits = [b for b in range(banks) if load[b] + cols[r] <= row_cols]
            if fits:
                groups[min(fits, key=lambda b: load[b])].append(r)
            else:
                groups.append([r])  # no room in any row: its own rows in a shared bank
        out = []
        for i, g in enumerate(groups):
            out.append(self._mk(i % banks, g, cols))
        return out

    @staticmethod
    def _mk(bank: int, roles: list[str], cols: dict[str, int]) -> _RowSet:
        offsets, pos = {}, 0
        for r in roles:
            offsets[r] = pos
            pos += cols[r]
        width = 1 << (pos - 1).bit_length()  # slots tile the row
        return _RowSet(bank, roles, width, offsets)


def _merge(segs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Merge segments that continue each other in address space."""
    out: list[list[int]] = []
    for a, n in segs:
        if out and out[-1][0] + out[-1][1] == a:
            out[-1][1] += n
        else:
            out.append([a, n])
    return [(a, n) for a, n in out]


@dataclass
class NaivePolicy:
    """Each role placed linearly and independently (a GradPIM-unaware allocator)."""

    name: str = "naive"

    def place_group(self, alloc: Any, prefix: str, tensors: dict[str, int]) -> dict[str, Any]:
        return {r: alloc.place(_name(prefix, r), n) for r, n in tensors.items()}


def update_roles(optimizer: Any, precision: Any) -> dict[str, str]:
    """The tensors one parameter tensor's update touches, role -> dtype (in a fixed order:
    weight, grad, optimizer state, the regularizer's read-only tensors, weight copy)."""
    roles = {"weight": precision.master_dtype, "grad": precision.grad_dtype}
    for r in optimizer.state_roles + optimizer.const_roles:
        roles[r] = precision.state_dtype
    if precision.has_weight_copy:
        roles["weight_copy"] = precision.compute_dtype
    return roles


def update_tensors(numel: int, optimizer: Any, precision: Any) -> dict[str, int]:
    """``{role: nbytes}`` for :meth:`place_group` of a parameter tensor with ``numel`` values."""
    from gradpimsim.config.training import DTYPE_BYTES

    return {r: numel * DTYPE_BYTES[d] for r, d in update_roles(optimizer, precision).items()}


def register_policies(register: Any = None) -> None:
    """Register ``colocated``, ``colocated-onebank`` and ``naive`` with the allocator."""
    register = register or allocator_module().register_policy
    register("colocated", ColocatedPolicy)
    register("colocated-onebank", lambda: ColocatedPolicy(spread_banks=False,
                                                          name="colocated-onebank"))
    register("naive", NaivePolicy)


# --- analysis: where does each column of a placed tensor live? ------------------------------

@dataclass(frozen=True)
class ColumnMap:
    """Per column of a placed role: its DRAM location, and whether it is column aligned."""

    channel: np.ndarray
    rank: np.ndarray
    bankgroup: np.ndarray
    bank: np.ndarray
    row: np.ndarray
    col: np.ndarray
    aligned: np.ndarray  # the column starts a burst and its bytes stay in one segment

    def unit(self, o: Any) -> np.ndarray:
        """A single integer per column naming its (channel, rank, bank group)."""
        return (self.channel * o.ranks + self.rank) * o.bankgroups + self.bankgroup


def column_map(placement: Any, amap: AddressMap, nbytes: int | None = None) -> ColumnMap:
    """Locations of the ``ceil(nbytes / 64)`` columns that hold a placement's bytes.

    Column ``c`` holds bytes ``[64c, 64c + 64)`` of the tensor.  It is *aligned* when its first
    byte starts a burst and its bytes (up to the tensor's end) lie in one segment, i.e. one
    column command reads exactly these bytes in this order.
    """
    segs = list(placement.segments)
    total = placement.nbytes if nbytes is None else nbytes
    ncols = -(-total // COLUMN_BYTES)
    starts = np.cumsum([0] + [s.nbytes for s in segs])
    offs = np.arange(ncols, dtype=np.int64) * COLUMN_BYTES
    idx = np.searchsorted(starts, offs, side="right") - 1
    idx = np.clip(idx, 0, max(len(segs) - 1, 0))
    seg_addr = np.array([s.addr for s in segs] or [0], dtype=np.int64)
    seg_len = np.array([s.nbytes for s in segs] or [0], dtype=np.int64)
    within = offs - starts[idx]
    addr = seg_addr[idx] + within
    need = np.minimum(COLUMN_BYTES, total - offs)
    aligned = (addr % COLUMN_BYTES == 0) & (within + need <= seg_len[idx])
    f = amap.decode_array(addr.astype(np.uint64))
    return ColumnMap(f["ch"], f["ra"], f["bg"], f["ba"], f["ro"], f["co"], aligned)


def colocation_report(placements: dict[str, Any], cfg: MemoryConfig,
                      amap: AddressMap | None = None) -> dict[str, float]:
    """How usable a layout is for GradPIM, per 16-parameter lane group of the widest role.

    ``colocated``: fraction whose roles all sit in one bank group (a unit can update them);
    ``aligned``: fraction whose columns are all burst aligned; ``bank_conflicts``: fraction where
    two roles share a bank but not a row (the update must close and reopen rows);
    ``usable``: colocated and aligned.
    """
    amap = amap or AddressMap(cfg)
    live = {r: p for r, p in placements.items() if p.nbytes > 0}
    if not live:
        return {"colocated": 1.0, "aligned": 1.0, "bank_conflicts": 0.0, "usable": 1.0}
    dens = _densities({r: p.nbytes for r, p in live.items()})
    widest = max(p.nbytes for p in live.values())
    groups = -(-widest // COLUMN_BYTES)  # lane groups = fp32-width columns of the widest role
    g = np.arange(groups)
    units, aligned, banks, rows = [], [], [], []
    for role, p in live.items():
        cm = column_map(p, amap)
        c = np.minimum(g // dens[role], len(cm.aligned) - 1)
        units.append(cm.unit(cfg.org)[c])
        aligned.append(cm.aligned[c])
        banks.append(cm.bank[c] + 1000 * cm.unit(cfg.org)[c])
        rows.append(cm.row[c])
    units_a = np.stack(units)
    colocated = np.all(units_a == units_a[0], axis=0)
    aligned_a = np.all(np.stack(aligned), axis=0)
    b, r = np.stack(banks), np.stack(rows)
    conflict = np.zeros(groups, dtype=bool)
    for i in range(len(b)):
        for j in range(i + 1, len(b)):
            conflict |= (b[i] == b[j]) & (r[i] != r[j])
    return {
        "colocated": float(colocated.mean()),
        "aligned": float(aligned_a.mean()),
        "bank_conflicts": float(conflict.mean()),
        "usable": float((colocated & aligned_a).mean()),
    }


def _auto_register() -> None:
    """Register the policies if the allocator is importable (tolerates a partial import)."""
    try:
        mod = allocator_module()
    except ImportError:  # pragma: no cover - the host package is part of the project
        return
    register = getattr(mod, "register_policy", None)
    if register is not None:
        register_policies(register)


_auto_register()
