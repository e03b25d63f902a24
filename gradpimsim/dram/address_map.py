"""Physical address -> (channel, rank, bank group, bank, row, column) mapping.

DRAMsim3-style field strings name six two-letter fields from the most significant bit down, e.g.
``rochrababgco``; the low ``log2(burst bytes)`` bits are the offset inside a 64 B burst.  The column
field counts bursts within a row (``columns / BL`` values).  Optional XOR bank hashing permutes the
bank-group and bank bits with low row bits, the usual trick to spread row conflicts over banks.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from gradpimsim.config import MemoryConfig


class Location(NamedTuple):
    channel: int
    rank: int
    bankgroup: int
    bank: int
    row: int
    col: int


def flat_bank_index(rank: Any, bankgroup: Any, bank: Any, bankgroups: int,
                    banks_per_group: int) -> Any:
    """The flat bank index within a channel (rank-major, then bank group, then bank): the one
    numbering the device, the controllers and the request builders share.  Works on ints and,
    element-wise, on numpy arrays of decoded fields."""
    return (rank * bankgroups + bankgroup) * banks_per_group + bank


def _log2(n: int) -> int:
    return n.bit_length() - 1


class AddressMap:
    """Decode and encode physical byte addresses for one memory configuration."""

    def __init__(self, cfg: MemoryConfig) -> None:
        self.cfg = cfg
        o = cfg.org
        self.offset_bits = _log2(o.burst_bytes)
        widths = {
            "ch": _log2(o.channels),
            "ra": _log2(o.ranks),
            "bg": _log2(o.bankgroups),
            "ba": _log2(o.banks_per_group),
            "ro": _log2(o.rows),
            "co": _log2(o.bursts_per_row),
        }
        mapping = cfg.controller.address_mapping
        fields = [mapping[i:i + 2] for i in range(0, 12, 2)]
        self.shift: dict[str, int] = {}
        self.mask: dict[str, int] = {}
        pos = self.offset_bits
        for name in reversed(fields):
            self.shift[name] = pos
            self.mask[name] = (1 << widths[name]) - 1
            pos += widths[name]
        self.address_bits = pos
        self.xor_hash = cfg.controller.xor_bank_hash
        self.bg_bits = widths["bg"]
        self.capacity = 1 << pos
        # the fields' shifts and masks as attributes, for fields() (called once per DMA row)
        self._ch = (self.shift["ch"], self.mask["ch"])
        self._ra = (self.shift["ra"], self.mask["ra"])
        self._bg = (self.shift["bg"], self.mask["bg"])
        self._ba = (self.shift["ba"], self.mask["ba"])
        self._ro = (self.shift["ro"], self.mask["ro"])
        self._co = (self.shift["co"], self.mask["co"])


    def __reduce__(self) -> tuple[type[AddressMap], tuple[MemoryConfig]]:
        """Pickle as the configuration it was built from: a compiled (mypyc) class cannot be
        rebuilt field by field, and a functional run's DRAM store, which holds its map, comes
        back from a worker process."""
        return (AddressMap, (self.cfg,))
    def fields(self, addr: int) -> tuple[int, int, int, int, int, int]:
        """:meth:`decode` as a plain tuple (channel, rank, bankgroup, bank, row, col): the DMA
        front end's per-row path, without building a named tuple."""
        s, m = self._ro
        row = (addr >> s) & m
        s, m = self._bg
        bg = (addr >> s) & m
        s, m = self._ba
        ba = (addr >> s) & m
        if self.xor_hash:
            bg ^= row & self._bg[1]
            ba ^= (row >> self.bg_bits) & self._ba[1]
        s, m = self._ch
        ch = (addr >> s) & m
        s, m = self._ra
        ra = (addr >> s) & m
        s, m = self._co
        return ch, ra, bg, ba, row, (addr >> s) & m

    def decode(self, addr: int) -> Location:
        return Location(*self.fields(addr))

    def encode(self, channel: int, rank: int, bankgroup: int, bank: int, row: int, col: int) -> int:
        """The byte address of burst ``col`` of ``row`` (inverse of :meth:`decode`)."""
        s, m = self.shift, self.mask
        if self.xor_hash:
            bankgroup ^= row & m["bg"]
            bank ^= (row >> self.bg_bits) & m["ba"]
        parts = {"ch": channel, "ra": rank, "bg": bankgroup, "ba": bank, "ro": row, "co": col}
        addr = 0
        for name, value in parts.items():
            if not 0 <= value <= m[name]:
                raise ValueError(f"{name}={value} out of range 0..{m[name]}")
            addr |= value << s[name]
        return addr

    def flat_banks(self, f: dict[str, np.ndarray]) -> np.ndarray:
        """The flat bank index of every address of a :meth:`decode_array` result."""
        return flat_bank_index(f["ra"], f["bg"], f["ba"], self.mask["bg"] + 1,
                               self.mask["ba"] + 1)

    def decode_array(self, addrs: np.ndarray) -> dict[str, np.ndarray]:
        """Vectorized :meth:`decode` of many addresses (uint64) -> arrays per field."""
        a = addrs.astype(np.uint64, copy=False)
        s, m = self.shift, self.mask
        out = {k: ((a >> np.uint64(s[k])) & np.uint64(m[k])).astype(np.int64) for k in s}
        if self.xor_hash:
            out["bg"] ^= out["ro"] & m["bg"]
            out["ba"] ^= (out["ro"] >> self.bg_bits) & m["ba"]
        return out
