"""Where parameters live relative to activations: placement policies and their address spaces.

GradPIM's update can overlap backward only if its units get at their banks while the NPU
streams activations.  Under ``shared`` placement (the layout before 0.2) every bank holds both:
parameter rows reserved from the top of every bank, activations growing from the bottom, so
the NPU's DMA keeps rows open in every bank a unit needs.  The partitions keep them apart:

``shared``
    Parameters (weights, gradients, optimizer state, weight copies) in reserved rows at the top
    of every bank; activations and their gradients everywhere below.  Capacity: all of it.
``bank-partition``
    Parameters in a subset of the banks of *every* bank group (so all bank-group units keep
    working), activations in the other banks.  ``param_banks`` banks per group (default: as
    many as the co-located layout gives the update's operands without two sharing a bank's
    rows, at most all but one).  Capacity: parameters get ``param_banks / banks_per_group`` of
    the memory, activations the rest.
``rank-partition``
    Parameters in some ranks, activations in the others (needs two ranks or more; half each by
    default).  The NPU still reads weight copies and writes gradients in the parameter ranks,
    but its activation streams never hold a bank there.
``auto`` (default)
    ``bank-partition`` with as many parameter banks as the update's operands need, then with
    fewer, then ``shared``: the first that fits the capacity.  Rank partitioning is not tried:
    it leaves the activation ranks' PIM units idle, so the update runs on half the units (or
    fewer), which costs more than the interference it avoids (``docs/gradpim.md``).

Activations are bump-allocated in an :class:`AddressSpace`: the physical addresses whose rank
and bank fields are allowed, enumerated in physical order.  A contiguous range of it is a run
of physical runs, one per step of the lowest restricted field (32 KiB for the bank field of
``rochrababgco`` on DDR4 x8), computed on demand so a placement stays one segment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gradpimsim.config import ConfigError, MemoryConfig
from gradpimsim.dram.address_map import AddressMap

PLACEMENTS = ("auto", "shared", "bank-partition", "rank-partition")


@dataclass(frozen=True)
class Partition:
    """Ranks and banks (index within a bank group) for parameters and for activations."""

    name: str
    param_ranks: tuple[int, ...]
    param_banks: tuple[int, ...]
    act_ranks: tuple[int, ...]
    act_banks: tuple[int, ...]

    def describe(self, cfg: MemoryConfig) -> str:
        o = cfg.org
        if self.name == "shared":
            return "parameters and activations share every bank"
        if self.name == "bank-partition":
            return (f"parameters in banks {list(self.param_banks)} of every bank group "
                    f"({len(self.param_banks)}/{o.banks_per_group} of the capacity), "
                    f"activations in banks {list(self.act_banks)}")
        return (f"parameters in ranks {list(self.param_ranks)}, activations in ranks "
                f"{list(self.act_ranks)} ({len(self.param_ranks)}/{o.ranks} of the capacity "
                "for parameters)")


def check_placement(name: str) -> str:
    if name not in PLACEMENTS:
        raise ConfigError("placement", f"unknown placement {name!r}; choose one of "
                                       f"{', '.join(PLACEMENTS)}")
    return name


def banks_for_update(roles: dict[str, int]) -> int:
    """Banks of a bank group the co-located layout needs so that no two of an update's
    operands share a bank's rows: one per widest role, narrower roles packed side by side in
    a row (``{role: bytes}`` of one parameter tensor)."""
    live = [n for n in roles.values() if n > 0]
    if not live:
        return 1
    widest = max(live)
    full = sum(1 for n in live if n == widest)
    narrow = sum(n / widest for n in live if n != widest)
    return full + int(-(-narrow // 1))


def partition(cfg: MemoryConfig, name: str, param_banks: int | None = None,
              param_ranks: int | None = None) -> Partition:
    """The :class:`Partition` of a concrete policy (not ``auto``) on ``cfg``."""
    o = cfg.org
    ranks, banks = tuple(range(o.ranks)), tuple(range(o.banks_per_group))
    if name == "shared":
        return Partition(name, ranks, banks, ranks, banks)
    if name == "bank-partition":
        k = 2 if param_banks is None else param_banks
        if not 1 <= k < o.banks_per_group:
            raise ConfigError("param_banks", f"bank partitioning gives parameters 1 to "
                                             f"{o.banks_per_group - 1} of the "
                                             f"{o.banks_per_group} banks of a bank group, "
                                             f"got {k}")
        return Partition(name, ranks, banks[o.banks_per_group - k:], ranks,
                         banks[:o.banks_per_group - k])
    if name == "rank-partition":
        if o.ranks < 2:
            raise ConfigError("placement", "rank partitioning needs two ranks or more; "
                                           "use --ranks 2, or --placement bank-partition")
        k = o.ranks // 2 if param_ranks is None else param_ranks
        if not 1 <= k < o.ranks:
            raise ConfigError("param_ranks", f"give parameters 1 to {o.ranks - 1} ranks, "
                                             f"got {k}")
        return Partition(name, ranks[o.ranks - k:], banks, ranks[:o.ranks - k], banks)
    raise ConfigError("placement", f"unknown placement {name!r}; choose one of "
                                   f"{', '.join(p for p in PLACEMENTS if p != 'auto')}")


class AddressSpace:
    """The physical addresses whose rank and bank fields take allowed values, enumerated in
    physical address order (the activations' region under a partition)."""

    def __init__(self, amap: AddressMap, ranks: Sequence[int] | None = None,
                 banks: Sequence[int] | None = None) -> None:
        self.amap = amap
        allowed: dict[str, tuple[int, ...]] = {}
        for field, values in (("ra", ranks), ("ba", banks)):
            full = amap.mask[field] + 1
            if values is not None and tuple(values) != tuple(range(full)):
                allowed[field] = tuple(sorted(values))
        self.allowed = allowed
        #: fields above the run unit, lowest first, with their radix in this space
        low = min(amap.shift[f] for f in allowed) if allowed else amap.address_bits
        self.unit = 1 << low
        self.fields = sorted((f for f in amap.shift if amap.shift[f] >= low),
                             key=lambda f: amap.shift[f])
        capacity = self.unit
        for f in self.fields:
            capacity *= self._radix(f)
        self.capacity = capacity

    def _radix(self, field: str) -> int:
        return len(self.allowed[field]) if field in self.allowed else self.amap.mask[field] + 1

    @property
    def restricted(self) -> bool:
        return bool(self.allowed)

    def physical(self, vaddr: int) -> int:
        """The physical address of virtual address ``vaddr``."""
        if not self.allowed:
            return vaddr
        low = vaddr % self.unit
        rest = vaddr // self.unit
        amap = self.amap
        digits: dict[str, int] = {}
        for f in self.fields:
            r = self._radix(f)
            rest, d = divmod(rest, r)
            digits[f] = self.allowed[f][d] if f in self.allowed else d
        if amap.xor_hash and "ba" in self.allowed:
            row = digits.get("ro", 0)
            digits["ba"] ^= (row >> amap.bg_bits) & amap.mask["ba"]
        paddr = low
        for f, v in digits.items():
            paddr |= v << amap.shift[f]
        return paddr

    def runs(self, vaddr: int, nbytes: int) -> list[tuple[int, int]]:
        """Physical ``(address, bytes)`` runs of the virtual range ``[vaddr, vaddr+nbytes)``."""
        if not self.allowed:
            return [(vaddr, nbytes)]
        out: list[list[int]] = []
        while nbytes > 0:
            low = vaddr % self.unit
            take = min(nbytes, self.unit - low)
            paddr = self.physical(vaddr)
            if out and out[-1][0] + out[-1][1] == paddr:
                out[-1][1] += take
            else:
                out.append([paddr, take])
            vaddr += take
            nbytes -= take
        return [(a, n) for a, n in out]

    def top_row(self, vtop: int) -> int:
        """The highest row the virtual region ``[0, vtop)`` touches in any bank it uses."""
        if vtop <= 0:
            return -1
        if not self.allowed:
            shift, width = self.amap.shift["ro"], self.amap.mask["ro"].bit_length()
            if vtop - 1 >= 1 << (shift + width):
                return self.amap.mask["ro"]
            return (vtop - 1) >> shift
        if self.fields[-1] != "ro":
            return self.amap.mask["ro"]  # a field above the row wraps: every row in use
        return self.amap.fields(self.physical(vtop - 1))[4]

    def touches(self, rank: int, bank: int) -> bool:
        """Whether the region ever uses that rank and bank (index within a bank group)."""
        return rank in self.allowed.get("ra", (rank,)) and bank in self.allowed.get("ba", (bank,))


#: ``auto`` tries these in order and takes the first that fits.
AUTO_ORDER = ("bank-partition", "shared")

__all__ = ["AUTO_ORDER", "AddressSpace", "PLACEMENTS", "Partition", "banks_for_update",
           "check_placement", "partition"]
