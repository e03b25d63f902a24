"""Physical placement of tensors in DRAM, with pluggable policies for optimizer groups.

Two regions share the address space.  The *linear region* grows from address 0 upward by bump
allocation, 64 B (one burst) aligned: activations and, under the ``linear`` policy, everything.
Row-granular policies (GradPIM's co-located layout, implemented in ``gradpimsim.pim``) take
whole rows per bank with :meth:`Allocator.reserve_rows`, from the top row downward, so the two
regions grow towards each other.  They must not meet: the linear region touches rows
``0 .. top_row`` of the banks (from the address map's row field), and every reserved row must lie
above that; :class:`OutOfMemory` says so when either side would cross.

The group interface is ``place_group(prefix, {role: bytes})``: the tensors one optimizer update
touches (``weight``, ``grad``, optimizer state, ``weight_copy``), so a policy can place them
relative to each other.  Members are named ``group_tensor_name(prefix, role)`` =
``"<prefix>/<role>"``, the names the training task DAG uses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from gradpimsim.config import MemoryConfig
from gradpimsim.dram.address_map import AddressMap
from gradpimsim.host.placement import (
    AUTO_ORDER,
    AddressSpace,
    Partition,
    banks_for_update,
    partition,
)
from gradpimsim.host.training import TrainingSchedule, group_tensor_name


class OutOfMemory(MemoryError):
    """The requested placement does not fit in the configured memory."""


@dataclass(frozen=True)
class Segment:
    """A contiguous physical byte range."""

    addr: int
    nbytes: int


@dataclass
class TensorPlacement:
    """Where a tensor lives: one or more segments whose sizes add up to ``nbytes``.

    A tensor of the linear region under a partition (``host.placement``) has one segment in
    that region's ``space``, whose virtual addresses ``Allocator.segments_for`` maps to
    physical runs."""

    name: str
    nbytes: int
    segments: list[Segment]
    space: AddressSpace | None = None


@runtime_checkable
class PlacementPolicy(Protocol):
    """Places the tensors one optimizer update touches (role -> bytes)."""

    name: str

    def place_group(self, alloc: Allocator, prefix: str,
                    tensors: dict[str, int]) -> dict[str, TensorPlacement]: ...


_POLICIES: dict[str, Callable[[], PlacementPolicy]] = {}


def register_policy(name: str, factory: Callable[[], PlacementPolicy]) -> None:
    """Make ``Allocator(cfg, policy=name)`` build its policy with ``factory()``."""
    _POLICIES[name] = factory


def policy_names() -> list[str]:
    return sorted(_POLICIES)


class LinearPolicy:
    """Every tensor of the group bump-allocated in the linear region, in the given role order."""

    name = "linear"

    def place_group(self, alloc: Allocator, prefix: str,
                    tensors: dict[str, int]) -> dict[str, TensorPlacement]:
        return {role: alloc.place(group_tensor_name(prefix, role), nbytes)
                for role, nbytes in tensors.items()}


register_policy("linear", LinearPolicy)


class Allocator:
    """Bump allocation from address 0 plus per-bank row reservations from the top row down."""

    def __init__(self, cfg: MemoryConfig, policy: str | PlacementPolicy = "linear",
                 split: Partition | None = None) -> None:
        self.cfg = cfg
        self.amap = AddressMap(cfg)
        #: Which ranks/banks hold parameters and which activations (``host.placement``).
        self.split = split or partition(cfg, "shared")
        self.space = AddressSpace(self.amap, self.split.act_ranks, self.split.act_banks)
        if isinstance(policy, str):
            try:
                policy = _POLICIES[policy]()
            except KeyError:
                raise ValueError(f"unknown placement policy {policy!r}; "
                                 f"known: {', '.join(policy_names())}") from None
        self.policy: PlacementPolicy = policy
        self.align = cfg.org.burst_bytes
        #: Bytes of the linear region (activations; everything under the linear policy).
        self.capacity = self.space.capacity
        self.top = 0  # first free byte of the linear region
        self.placements: dict[str, TensorPlacement] = {}
        #: (channel, rank, bankgroup, bank) -> lowest reserved row (rows >= it are reserved).
        self._reserved_floor: dict[tuple[int, int, int, int], int] = {}
        self.rows = cfg.org.rows

    # -- geometry ------------------------------------------------------------------------------
    def linear_top_row(self, top: int | None = None) -> int:
        """The highest row the linear region ``[0, top)`` touches in any bank (-1 if empty).

        Addresses below ``top`` have row fields up to ``(top - 1) >> row_shift`` when every
        field above the row field is still zero; once ``top`` reaches past the row field the
        region covers every row.
        """
        top = self.top if top is None else top
        return self.space.top_row(top)

    def lowest_reserved_row(self) -> int:
        """The lowest row reserved in any bank the linear region uses (``rows`` if none)."""
        return min((f for (_, ra, _, ba), f in self._reserved_floor.items()
                    if self.space.touches(ra, ba)), default=self.rows)

    # -- allocation ----------------------------------------------------------------------------
    def _record(self, p: TensorPlacement) -> None:
        if p.name in self.placements:
            raise ValueError(f"tensor {p.name!r} is already placed")
        if sum(s.nbytes for s in p.segments) < p.nbytes:
            raise ValueError(f"placement of {p.name!r} covers fewer than its {p.nbytes} bytes")
        self.placements[p.name] = p

    def place(self, name: str, nbytes: int) -> TensorPlacement:
        """Bump-allocate ``nbytes`` (rounded up to whole bursts) in the linear region."""
        if nbytes < 0:
            raise ValueError(f"tensor {name!r}: negative size {nbytes}")
        if name in self.placements:
            raise ValueError(f"tensor {name!r} is already placed")
        size = -(-max(nbytes, 1) // self.align) * self.align
        new_top = self.top + size
        if new_top > self.capacity:
            raise OutOfMemory(f"tensor {name!r} ({nbytes} B) does not fit: linear region at "
                              f"{self.top} B of {self.capacity} B")
        if self.linear_top_row(new_top) >= self.lowest_reserved_row():
            raise OutOfMemory(
                f"tensor {name!r} ({nbytes} B) would grow the linear region to row "
                f"{self.linear_top_row(new_top)}, into rows reserved from "
                f"{self.lowest_reserved_row()} upward")
        space = self.space if self.space.restricted else None
        p = TensorPlacement(name, nbytes, [Segment(self.top, nbytes)], space)
        self.top = new_top
        self._record(p)
        return p

    def place_group(self, prefix: str, tensors: dict[str, int]) -> dict[str, TensorPlacement]:
        """Place one optimizer group through the policy; the results are recorded."""
        result = self.policy.place_group(self, prefix, dict(tensors))
        for p in result.values():
            if p.name not in self.placements:
                self._record(p)
            elif self.placements[p.name] is not p:
                raise ValueError(f"policy {self.policy.name!r} placed {p.name!r}, which is "
                                 "already placed")
        missing = set(tensors) - set(result)
        if missing:
            raise ValueError(f"policy {self.policy.name!r} did not place {sorted(missing)} of "
                             f"group {prefix!r}")
        return result

    def reserve_rows(self, channel: int, rank: int, bankgroup: int, bank: int,
                     count: int) -> list[int]:
        """Take ``count`` rows of one bank, from the top row downward; returns their numbers."""
        key = (channel, rank, bankgroup, bank)
        o = self.cfg.org
        limits = (o.channels, o.ranks, o.bankgroups, o.banks_per_group)
        for label, value, limit in zip(("channel", "rank", "bankgroup", "bank"), key, limits,
                                       strict=True):
            if not 0 <= value < limit:
                raise ValueError(f"{label}={value} out of range 0..{limit - 1}")
        if count < 0:
            raise ValueError(f"cannot reserve {count} rows")
        floor = self._reserved_floor.get(key, self.rows)
        new_floor = floor - count
        if new_floor < 0:
            raise OutOfMemory(f"reserving {count} rows in bank {key} needs more than its "
                              f"{self.rows} rows")
        if self.space.touches(rank, bank) and new_floor <= self.linear_top_row():
            raise OutOfMemory(
                f"reserving {count} rows in bank {key} would reach row {new_floor}, but the "
                f"linear region already uses rows up to {self.linear_top_row()}")
        self._reserved_floor[key] = new_floor
        return list(range(floor - 1, new_floor - 1, -1))

    def reserved_rows(self, channel: int, rank: int, bankgroup: int, bank: int) -> int:
        """How many rows of a bank are reserved."""
        return self.rows - self._reserved_floor.get((channel, rank, bankgroup, bank), self.rows)

    def lookup(self, name: str) -> TensorPlacement:
        try:
            return self.placements[name]
        except KeyError:
            raise KeyError(f"tensor {name!r} has not been placed") from None

    def address_of(self, name: str, offset: int) -> int:
        """Physical address of byte ``offset`` of a placed tensor (walking its segments)."""
        p = self.lookup(name)
        for seg in p.segments:
            if offset < seg.nbytes:
                addr = seg.addr + offset
                return p.space.physical(addr) if p.space is not None else addr
            offset -= seg.nbytes
        raise ValueError(f"offset beyond the end of tensor {name!r}")

    def segments_for(self, name: str, offset: int, nbytes: int) -> list[Segment]:
        """The physical segments holding bytes ``[offset, offset + nbytes)`` of a tensor.

        This is how a :class:`~gradpimsim.host.npu.Transfer` becomes DRAM addresses.
        """
        out: list[Segment] = []
        p = self.lookup(name)
        if offset < 0 or nbytes < 0 or offset + nbytes > max(p.nbytes, 1):
            raise ValueError(f"range {offset}+{nbytes} outside tensor {name!r} ({p.nbytes} B)")
        for seg in p.segments:
            if nbytes <= 0:
                break
            if offset >= seg.nbytes:
                offset -= seg.nbytes
                continue
            take = min(seg.nbytes - offset, nbytes)
            if p.space is not None:
                out += [Segment(a, n) for a, n in p.space.runs(seg.addr + offset, take)]
            else:
                out.append(Segment(seg.addr + offset, take))
            nbytes -= take
            offset = 0
        return out


def place_schedule(schedule: TrainingSchedule, alloc: Allocator) -> dict[str, TensorPlacement]:
    """Place every tensor of a training iteration: optimizer groups first, through the policy
    (so row-granular policies get the rows nearest the top), then inputs, activations and
    activation gradients in the linear region, in task order.  Nothing is freed: the result is
    the footprint of one iteration without buffer reuse."""
    out: dict[str, TensorPlacement] = {}
    for pid, roles in schedule.groups.items():
        for role, p in alloc.place_group(pid, roles).items():
            out[group_tensor_name(pid, role)] = p
    for name, spec in schedule.tensors.items():
        if name not in out and name not in alloc.placements:
            out[name] = alloc.place(name, spec.nbytes)
        elif name not in out:
            out[name] = alloc.placements[name]
    return out


def place_iteration(schedule: TrainingSchedule, cfg: MemoryConfig,
                    layout: Callable[[], PlacementPolicy | str], placement: str = "auto",
                    param_banks: int | None = None) -> Allocator:
    """Place an iteration under a placement policy (``host.placement``); ``auto`` takes the
    first of ``AUTO_ORDER`` that fits (bank partitioning with as many parameter banks as the
    update's operands need, then fewer).  ``layout()`` makes a fresh parameter layout
    policy.  :class:`OutOfMemory` names every policy tried and why it did not fit."""
    o = cfg.org
    if placement == "auto":
        names = [n for n in AUTO_ORDER if not (n == "rank-partition" and o.ranks < 2)]
    else:
        names = [placement]
    tries: list[tuple[str, int | None]] = []
    for name in names:
        if name != "bank-partition":
            tries.append((name, None))
        elif param_banks is not None:
            tries.append((name, param_banks))
        elif o.banks_per_group >= 2:
            # as many banks as the operands need, then fewer (more activation capacity;
            # operands then share a bank's rows) while nothing fits
            need = max((banks_for_update(r) for r in schedule.groups.values()), default=1)
            first = min(need, o.banks_per_group - 1)
            tries += [(name, k) for k in range(first, 0, -1)]
            if placement != "auto":
                tries = tries[:1]
    failures = []
    for name, k in tries:
        alloc = Allocator(cfg, layout(), partition(cfg, name, k))
        try:
            place_schedule(schedule, alloc)
        except OutOfMemory as exc:
            failures.append(f"{name}" + (f" ({k} parameter banks)" if k else "") + f": {exc}")
            continue
        return alloc
    if not tries:
        failures.append(f"{placement}: the device has one bank per bank group")
    raise OutOfMemory("no placement fits: " + "; ".join(failures) +
                      " (use more channels or ranks, or a smaller batch)")
