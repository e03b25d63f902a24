"""Memory requests as the controller sees them."""

from __future__ import annotations

import itertools
from collections.abc import Callable

#: Age stamps: FR-FCFS breaks ties by age, and a C-level counter keeps stamping cheap.
_ages = itertools.count()


class Request:
    """One 64 B read or write, decoded to its bank and row.

    ``arrival`` is when the source offered it; ``admitted`` when it entered a controller queue
    (later than ``arrival`` under back-pressure); ``done`` when its last data beat transferred.
    """

    __slots__ = ("seq", "addr", "is_write", "arrival", "bank", "row", "col", "rank",
                 "admitted", "done", "callback", "tag")

    def __init__(self, addr: int, is_write: bool, arrival: int, bank: int, row: int, col: int,
                 rank: int, callback: Callable[[Request], None] | None = None,
                 tag: object = None) -> None:
        self.seq = next(_ages)
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

    def __repr__(self) -> str:
        kind = "W" if self.is_write else "R"
        return (f"Request({kind} {self.addr:#x} bank={self.bank} row={self.row} col={self.col} "
                f"arr={self.arrival} done={self.done})")
