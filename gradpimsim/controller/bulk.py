"""Cutting byte ranges into bulk requests: one per run of consecutive columns of one row.

Host traffic is DMA of contiguous tensors, and a controller's cost should grow with requests, not
64 B bursts.  :func:`split_range` cuts ``[addr, addr + nbytes)`` into maximal runs of consecutive
bursts (in address order) that stay in one (channel, bank, row) with consecutive columns, and
:func:`bulk_requests` turns them into :class:`~gradpimsim.controller.request.Request` objects with
``ncols`` bursts each, grouped per channel.  Partial bursts at either end round out to whole ones.

When the mapping puts the column bits lowest (``...co``, the default ``rochrababgco``), every
row's bursts are contiguous in the address space, so the runs are the range cut at row
boundaries: only the run starts are decoded (``nbytes / row`` of them).  Otherwise every burst is
decoded, chunk by chunk, with numpy, and neighbours are merged where they continue a run (with the
column field not lowest, consecutive bursts change bank or channel, so runs are single bursts).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from gradpimsim.config import MemoryConfig
from gradpimsim.controller.request import Request
from gradpimsim.dram.address_map import AddressMap

#: Bursts decoded per numpy chunk on the general path (bounds its memory).
_CHUNK = 1 << 20


class BulkRun(NamedTuple):
    """``ncols`` consecutive columns ``col ..`` of ``row`` in flat bank ``bank`` of ``channel``."""

    channel: int
    bank: int  # flat bank index within the channel (rank, bank group, bank)
    rank: int
    row: int
    col: int
    ncols: int
    addr: int  # byte address of the first burst


def _burst_span(amap: AddressMap, addr: int, nbytes: int) -> tuple[int, int]:
    """First burst index and the burst index past the last one touched by the byte range."""
    if addr < 0 or nbytes < 0:
        raise ValueError(f"negative address or size: addr={addr}, nbytes={nbytes}")
    if addr + nbytes > amap.capacity:
        raise ValueError(f"range {addr:#x} + {nbytes} exceeds the memory ({amap.capacity} bytes)")
    ob = amap.offset_bits
    if nbytes == 0:
        return addr >> ob, addr >> ob
    return addr >> ob, ((addr + nbytes - 1) >> ob) + 1


def split_arrays(amap: AddressMap, addr: int, nbytes: int) -> dict[str, np.ndarray]:
    """The runs of :func:`split_range` as int64 arrays (keys are :class:`BulkRun`'s fields)."""
    first, end = _burst_span(amap, addr, nbytes)
    ob = amap.offset_bits
    if end == first:
        empty = np.zeros(0, dtype=np.int64)
        return {name: empty for name in BulkRun._fields}
    if amap.shift["co"] == ob:
        # column bits lowest: a row's bursts are one aligned block of bursts_per_row
        per_row = amap.mask["co"] + 1
        starts = np.arange((first // per_row + 1) * per_row, end, per_row, dtype=np.int64)
        starts = np.concatenate((np.array([first], dtype=np.int64), starts))
        ncols = np.diff(np.append(starts, end))
        f = amap.decode_array(starts.astype(np.uint64) << np.uint64(ob))
        return {"channel": f["ch"], "bank": amap.flat_banks(f), "rank": f["ra"],
                "row": f["ro"], "col": f["co"], "ncols": ncols, "addr": starts << ob}
    parts: list[dict[str, np.ndarray]] = []
    for lo in range(first, end, _CHUNK):
        bursts = np.arange(lo, min(lo + _CHUNK, end), dtype=np.int64)
        f = amap.decode_array(bursts.astype(np.uint64) << np.uint64(ob))
        bank = amap.flat_banks(f)
        # a run continues where channel, bank and row stay and the column advances by one
        cont = ((f["ch"][1:] == f["ch"][:-1]) & (bank[1:] == bank[:-1])
                & (f["ro"][1:] == f["ro"][:-1]) & (f["co"][1:] == f["co"][:-1] + 1))
        heads = np.flatnonzero(np.concatenate(([True], ~cont)))
        ncols = np.diff(np.append(heads, bursts.size))
        part = {"channel": f["ch"][heads], "bank": bank[heads], "rank": f["ra"][heads],
                "row": f["ro"][heads], "col": f["co"][heads], "ncols": ncols,
                "addr": bursts[heads] << ob}
        if parts:  # the chunk's first run may continue the previous chunk's last one
            prev = parts[-1]
            if (prev["channel"][-1] == part["channel"][0] and prev["bank"][-1] == part["bank"][0]
                    and prev["row"][-1] == part["row"][0]
                    and prev["col"][-1] + prev["ncols"][-1] == part["col"][0]):
                prev["ncols"][-1] += part["ncols"][0]
                part = {k: v[1:] for k, v in part.items()}
        parts.append(part)
    return {k: np.concatenate([p[k] for p in parts]) for k in BulkRun._fields}


def split_range(amap: AddressMap, addr: int, nbytes: int) -> list[BulkRun]:
    """Cut ``[addr, addr + nbytes)`` into maximal runs of consecutive columns of one
    (channel, bank, row), in address order; partial bursts at the ends count as whole ones."""
    a = split_arrays(amap, addr, nbytes)
    return list(map(BulkRun._make, zip(*(a[k].tolist() for k in BulkRun._fields),
                                       strict=True)))


#: Below this many rows, :func:`bulk_requests` cuts a column-lowest range with plain integer
#: arithmetic: numpy's fixed cost per call dominates small DMA chunks.
_SMALL_ROWS = 64


_Piece = tuple[int, int, int, int, int, int, int]  # BulkRun's fields


def _row_pieces(amap: AddressMap, first: int, end: int) -> list[_Piece]:
    """The rows of bursts ``first .. end - 1`` (column bits lowest), as :class:`BulkRun` fields."""
    ob = amap.offset_bits
    per_row = amap.mask["co"] + 1
    nbg = amap.mask["bg"] + 1
    nba = amap.mask["ba"] + 1
    out: list[_Piece] = []
    start = first
    while start < end:
        stop = (start // per_row + 1) * per_row
        if stop > end:
            stop = end
        ch, ra, bg, ba, row, col = amap.fields(start << ob)
        out.append((ch, (ra * nbg + bg) * nba + ba, ra, row, col, stop - start, start << ob))
        start = stop
    return out


def bulk_requests(cfg: MemoryConfig, amap: AddressMap, addr: int, nbytes: int, is_write: bool,
                  arrival: int, callback: Callable[[Request], None] | None = None,
                  tag: object = None) -> list[list[Request]]:
    """Requests for a byte range, one per run of :func:`split_range`, grouped per channel
    (``result[channel]``, in address order, so age stamps follow the address order)."""
    first, end = _burst_span(amap, addr, nbytes)
    per_row = amap.mask["co"] + 1
    pieces: list[_Piece]
    if amap.shift["co"] == amap.offset_bits and end - first <= _SMALL_ROWS * per_row:
        pieces = _row_pieces(amap, first, end)
    else:
        a = split_arrays(amap, addr, nbytes)
        pieces = list(zip(*(a[k].tolist() for k in BulkRun._fields), strict=True))
    out: list[list[Request]] = [[] for _ in range(cfg.org.channels)]
    for ch, bank, rank, row, col, ncols, start in pieces:
        out[ch].append(Request(start, is_write, arrival, bank, row, col, rank, callback, tag,
                               ncols=ncols))
    return out
