"""Process-level settings that a long simulation wants, applied for its duration only.

A simulation allocates many small objects that live for a while (queued requests, heap entries,
SimPy events): exactly what makes CPython's cyclic garbage collector expensive.  Its youngest
generation is collected every 700 net allocations by default, and every such pass walks all
young objects; older generations are walked again and again as requests age through them.  The
model's objects are almost all freed by reference counting (few cycles: SimPy processes and
their events), so collecting rarely loses nothing but time: measured on the replay benchmark,
the default thresholds cost a third of the run.  Cycles are still collected, just in larger
batches, so memory stays bounded.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: Net allocations between collections of the youngest generation while simulating.
SIM_GC_THRESHOLD = 100_000


@contextmanager
def simulation_gc(threshold: int = SIM_GC_THRESHOLD) -> Iterator[None]:
    """Collect garbage less often inside the block; the caller's settings come back after."""
    old = gc.get_threshold()
    gc.set_threshold(max(threshold, old[0]), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)
