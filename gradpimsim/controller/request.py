"""Memory requests as the controller sees them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from gradpimsim.dram.address_map import AddressMap


class _Ages:
    """The age-stamp counter: FR-FCFS breaks ties by age.  A native object behind a ``Final``
    name, so that compiled, a stamp is one field read and write (``next()`` of an
    ``itertools.count`` global is a globals lookup, a builtins lookup and a Python call)."""

    __slots__ = ("next_seq",)

    def __init__(self) -> None:
        self.next_seq = 0


_ages: Final = _Ages()


class Request:
    """A read or write of ``ncols`` consecutive 64 B columns of one row of one bank.

    ``ncols == 1`` (the default) is one burst.  A *bulk* request (``ncols > 1``) covers columns
    ``col .. col + ncols - 1`` of ``row``, one burst each; it takes one queue slot and keeps its
    place in the queue until ``served`` reaches ``ncols``.

    ``arrival`` is when the source offered it; ``admitted`` when it entered a controller queue
    (later than ``arrival`` under back-pressure); ``done`` when its last burst's last data beat
    transferred (the callback fires then, once).
    """

    __slots__ = ("seq", "addr", "is_write", "arrival", "bank", "row", "col", "rank",
                 "admitted", "done", "callback", "tag", "ncols", "served")

    def __init__(self, addr: int, is_write: bool, arrival: int, bank: int, row: int, col: int,
                 rank: int, callback: Callable[[Request], None] | None = None,
                 tag: object = None, *, ncols: int = 1) -> None:
        if ncols < 1:
            raise ValueError(f"ncols must be >= 1, got {ncols}")
        ages = _ages
        self.seq = ages.next_seq
        ages.next_seq += 1
        self.addr = addr
        self.is_write = is_write
        self.arrival = arrival
        self.bank = bank  # flat bank index within the channel
        self.row = row
        self.col = col
        self.rank = rank
        self.admitted = -1
        self.done = -1
        self.callback = callback
        self.tag = tag
        self.ncols = ncols
        #: Bursts already issued; the next column command goes to column ``col + served``.
        self.served = 0

    def __repr__(self) -> str:
        kind = "W" if self.is_write else "R"
        cols = f" ncols={self.ncols} served={self.served}" if self.ncols > 1 else ""
        return (f"Request({kind} {self.addr:#x} bank={self.bank} row={self.row} col={self.col}"
                f"{cols} arr={self.arrival} done={self.done})")


def trace_requests(amap: AddressMap, addrs: list[int], is_write: list[bool],
                   arrivals: list[int], channels: int) -> list[list[Request]]:
    """Single-burst requests for a decoded trace chunk, per channel, in order.

    Each address is decoded here (:meth:`AddressMap.fields`, shifts and masks) and the request
    built at once: compiled, both are native calls, where numpy decoding, one ``tolist`` per
    field and building each request from interpreted code (``map``) cost most of a sequential
    replay.
    """
    out: list[list[Request]] = [[] for _ in range(channels)]
    bpg = amap.mask["ba"] + 1
    bgs = amap.mask["bg"] + 1
    for i in range(len(addrs)):
        addr = addrs[i]
        ch, ra, bg, ba, row, col = amap.fields(addr)
        out[ch].append(Request(addr, is_write[i], arrivals[i], (ra * bgs + bg) * bpg + ba, row,
                               col, ra))
    return out
