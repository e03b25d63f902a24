"""Functional DRAM contents: real bytes behind the timing model.

The timing model never needs data, but GradPIM's claim is that the update computed *inside* the
DRAM equals the host's update, so the simulator must hold real values.  Memory is sparse: a row is
allocated (as ``row_bytes`` zeros) the first time anything writes it, keyed by
``(channel, rank, bankgroup, bank, row)``; unwritten memory reads as zeros, which is also how the
optimizer state starts (torch initializes momentum/Adam state to zero, or from the first gradient).

Tensors are written and read through their placement (a list of byte-address segments) and the
:class:`AddressMap`, so the bytes land exactly where the controller's column commands address them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol, cast

import numpy as np

from gradpimsim.config import MemoryConfig
from gradpimsim.dram.address_map import AddressMap
from gradpimsim.pim import datapath

RowKey = tuple[int, int, int, int, int]


class SegmentLike(Protocol):
    addr: int
    nbytes: int


class PlacementLike(Protocol):
    name: str
    nbytes: int
    segments: list


def _segments(placement: PlacementLike | Iterable[SegmentLike]) -> list[SegmentLike]:
    segs = getattr(placement, "segments", placement)  # a placement's, or already segments
    return list(cast(Iterable[SegmentLike], segs))


class DramStore:
    """Sparse byte store of a whole memory system (all channels and ranks)."""

    def __init__(self, cfg: MemoryConfig, amap: AddressMap | None = None) -> None:
        self.cfg = cfg
        self.amap = amap if amap is not None else AddressMap(cfg)
        self.row_bytes = cfg.org.row_bytes
        self.burst = cfg.org.burst_bytes
        self.rows: dict[RowKey, np.ndarray] = {}

    # --- rows and columns -----------------------------------------------------------------

    def _row(self, key: RowKey) -> np.ndarray:
        """The row's bytes, allocated on first use (for writing)."""
        data = self.row(key)
        assert data is not None  # created on demand
        return data

    def row(self, key: RowKey, create: bool = True) -> np.ndarray | None:
        """The row's bytes (allocated on first use when ``create``; else ``None`` if unwritten)."""
        data = self.rows.get(key)
        if data is None and create:
            data = np.zeros(self.row_bytes, dtype=np.uint8)
            self.rows[key] = data
        return data

    def read_column(self, channel: int, rank: int, bankgroup: int, bank: int, row: int,
                    col: int) -> np.ndarray:
        """One 64 B burst column (a copy; zeros if never written)."""
        data = self.rows.get((channel, rank, bankgroup, bank, row))
        if data is None:
            return np.zeros(self.burst, dtype=np.uint8)
        start = col * self.burst
        return data[start:start + self.burst].copy()

    def write_column(self, channel: int, rank: int, bankgroup: int, bank: int, row: int,
                     col: int, data: np.ndarray) -> None:
        """Store one 64 B burst column."""
        raw = np.asarray(data)
        if raw.dtype != np.uint8 or raw.size != self.burst:
            raw = np.ascontiguousarray(raw).view(np.uint8)
            if raw.size != self.burst:
                raise ValueError(f"a column is {self.burst} bytes, got {raw.size}")
        start = col * self.burst
        self._row((channel, rank, bankgroup, bank, row))[start:start + self.burst] = raw.ravel()

    # --- byte ranges ----------------------------------------------------------------------

    def _runs(self, addr: int, nbytes: int) -> Iterator[tuple[RowKey, int, int, int]]:
        """Split ``[addr, addr + nbytes)`` into runs contiguous inside one row.

        Yields ``(row key, byte offset in row, byte offset in the range, length)``.  Consecutive
        bursts are contiguous in a row only if the mapping puts them in consecutive columns of the
        same row, so the runs are found from the decoded burst addresses, vectorized.
        """
        if nbytes <= 0:
            return
        b = self.burst
        first, last = addr // b, (addr + nbytes - 1) // b
        bursts = np.arange(first, last + 1, dtype=np.uint64) * np.uint64(b)
        f = self.amap.decode_array(bursts)
        keys = np.stack([f["ch"], f["ra"], f["bg"], f["ba"], f["ro"]], axis=1)
        col = f["co"]
        brk = np.ones(len(col), dtype=bool)
        if len(col) > 1:
            brk[1:] = (np.any(keys[1:] != keys[:-1], axis=1)) | (col[1:] != col[:-1] + 1)
        starts = np.flatnonzero(brk)
        ends = np.append(starts[1:], len(col))
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            lo = max(addr, (first + s) * b)
            hi = min(addr + nbytes, (first + e) * b)
            key = tuple(int(v) for v in keys[s])
            row_off = int(col[s]) * b + (lo - (first + s) * b)
            yield key, row_off, lo - addr, hi - lo  # type: ignore[misc]

    def write_bytes(self, addr: int, data: np.ndarray) -> None:
        """Store raw bytes at a physical byte address (any alignment, any length)."""
        raw = np.ascontiguousarray(data).view(np.uint8).ravel()
        for key, row_off, off, n in self._runs(addr, raw.size):
            self._row(key)[row_off:row_off + n] = raw[off:off + n]

    def read_bytes(self, addr: int, nbytes: int) -> np.ndarray:
        """Raw bytes from a physical byte address (zeros where never written)."""
        out = np.zeros(nbytes, dtype=np.uint8)
        for key, row_off, off, n in self._runs(addr, nbytes):
            data = self.rows.get(key)
            if data is not None:
                out[off:off + n] = data[row_off:row_off + n]
        return out

    # --- tensors --------------------------------------------------------------------------

    def write_placed(self, placement: PlacementLike | Iterable[SegmentLike],
                     raw: np.ndarray) -> None:
        """Scatter raw bytes over a placement's segments, in order."""
        raw = np.ascontiguousarray(raw).view(np.uint8).ravel()
        pos = 0
        for seg in _segments(placement):
            n = min(seg.nbytes, raw.size - pos)
            if n <= 0:
                break
            self.write_bytes(seg.addr, raw[pos:pos + n])
            pos += n
        if pos != raw.size:
            raise ValueError(f"placement holds {pos} bytes, data has {raw.size}")

    def read_placed(self, placement: PlacementLike | Iterable[SegmentLike],
                    nbytes: int | None = None) -> np.ndarray:
        """Gather a placement's bytes (the first ``nbytes`` if given)."""
        segs = _segments(placement)
        total = sum(s.nbytes for s in segs) if nbytes is None else nbytes
        out = np.empty(total, dtype=np.uint8)
        pos = 0
        for seg in segs:
            n = min(seg.nbytes, total - pos)
            if n <= 0:
                break
            out[pos:pos + n] = self.read_bytes(seg.addr, n)
            pos += n
        if pos != total:
            raise ValueError(f"placement holds {pos} bytes, asked for {total}")
        return out

    def write_tensor(self, placement: PlacementLike | Iterable[SegmentLike], values: np.ndarray,
                     dtype: str) -> None:
        """Store already-typed values (fp32/fp16 arrays, bf16 bits as uint16, int8)."""
        self.write_placed(placement, datapath.as_bytes(np.ravel(values), dtype))

    def read_tensor(self, placement: PlacementLike | Iterable[SegmentLike], dtype: str,
                    count: int) -> np.ndarray:
        """``count`` stored values of ``dtype`` (bf16 as uint16 bits, int8 as int8)."""
        nbytes = count * datapath.STORAGE[dtype].itemsize
        return datapath.from_bytes(self.read_placed(placement, nbytes), dtype)

    def read_fp32(self, placement: PlacementLike | Iterable[SegmentLike], dtype: str,
                  count: int, scale: float | None = None) -> np.ndarray:
        """``count`` values of a tensor stored as ``dtype``, widened to fp32 (int8: times
        ``scale``), for comparisons and reports."""
        return datapath.to_fp32(self.read_tensor(placement, dtype, count), dtype, scale)

    def write_fp32(self, placement: PlacementLike | Iterable[SegmentLike], values: np.ndarray,
                   dtype: str, scale: float | None = None) -> None:
        """Round fp32 ``values`` to ``dtype`` (int8: quantized with ``scale``) and store them."""
        mult = datapath.int8_inverse_scale(scale) if dtype == "int8" and scale else None
        with np.errstate(all="ignore"):
            self.write_tensor(placement, datapath.from_fp32(values, dtype, mult), dtype)

    @property
    def allocated_bytes(self) -> int:
        """Host memory the sparse store uses (rows touched so far x row size)."""
        return len(self.rows) * self.row_bytes
