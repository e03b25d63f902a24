"""Physical address -> (channel, rank, bank group, bank, row, column) mapping.

DRAMsim3-style field strings name six two-letter fields from the most significant bit down, e.g.
``rochrababgco``; the low ``log2(burst bytes)`` bits are the offset inside a 64 B burst.  The column
field counts bursts within a row (``columns / BL`` values).  Optional XOR bank hashing permutes the
bank-group and bank bits with low row bits, the usual trick to spread row conflicts over banks.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gradpimsim.config import MemoryConfig


class Location(NamedTuple):
    channel: int
    rank: int
    bankgroup: int
    bank: int
    row: int
    col: int


def _log2(n: int) -> int:
    return n.bit_length() - 1


class AddressMap:
    """Decode and encode physical byte addresses for one memory configuration."""

    def __init__(self, cfg: MemoryConfig) -> None:
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

    def decode(self, addr: int) -> Location:
        s, m = self.shift, self.mask
        row = (addr >> s["ro"]) & m["ro"]
        bg = (addr >> s["bg"]) & m["bg"]
        ba = (addr >> s["ba"]) & m["ba"]
        if self.xor_hash:
            bg ^= row & m["bg"]
            ba ^= (row >> self.bg_bits) & m["ba"]
        return Location(
            (addr >> s["ch"]) & m["ch"], (addr >> s["ra"]) & m["ra"], bg, ba, row,
            (addr >> s["co"]) & m["co"],
        )

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

    def decode_array(self, addrs: np.ndarray) -> dict[str, np.ndarray]:
        """Vectorized :meth:`decode` of many addresses (uint64) -> arrays per field."""
        a = addrs.astype(np.uint64, copy=False)
        s, m = self.shift, self.mask
        out = {k: ((a >> np.uint64(s[k])) & np.uint64(m[k])).astype(np.int64) for k in s}
        if self.xor_hash:
            out["bg"] ^= out["ro"] & m["bg"]
            out["ba"] ^= (out["ro"] >> self.bg_bits) & m["ba"]
        return out
