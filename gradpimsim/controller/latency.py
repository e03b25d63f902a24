"""Exact latency statistics in bounded memory.

Latencies are integer cycles, so an integer histogram gives exact mean and percentiles without
keeping one number per request: memory stays bounded however long the run.  Counting is on the
hot path (one per request), so a latency below :data:`DENSE_LIMIT` cycles (nearly all of them) is
one native list increment; a longer one, rare (a request that waited out a long stall), goes to a
dict, which also keeps a latency of 10^12 cycles from allocating 10^12 counters.
"""

from __future__ import annotations

from typing import Final

import numpy as np

#: Latencies below this many cycles are counted in a list indexed by latency; longer ones in a
#: dict (so the list never grows beyond 512 KiB).
DENSE_LIMIT: Final = 1 << 16


class LatencyHistogram:
    """Counts of integer latencies; ``add`` is O(1) and allocates nothing once warm."""

    def __init__(self) -> None:
        self._dense: list[int] = []
        self._sparse: dict[int, int] = {}

    def add(self, latency: int) -> None:
        dense = self._dense
        if 0 <= latency < len(dense):
            dense[latency] += 1
        else:
            self._add_new(latency, 1)

    def add_many(self, latencies: list[int]) -> None:
        dense = self._dense
        for latency in latencies:
            if 0 <= latency < len(dense):
                dense[latency] += 1
            else:
                self._add_new(latency, 1)

    def _add_new(self, latency: int, n: int) -> None:
        """Count ``n`` of a latency the dense list does not cover yet."""
        if latency < 0:
            raise ValueError(f"a latency cannot be negative, got {latency}")
        dense = self._dense
        if latency < DENSE_LIMIT:
            dense.extend([0] * (latency + 1 - len(dense)))
            dense[latency] += n
        else:
            sparse = self._sparse
            sparse[latency] = sparse.get(latency, 0) + n

    def merge(self, other: LatencyHistogram) -> None:
        """Add every count of ``other`` (e.g. the channels of one memory system)."""
        for latency, n in other.items():
            dense = self._dense
            if latency < len(dense):
                dense[latency] += n
            else:
                self._add_new(latency, n)

    def items(self) -> list[tuple[int, int]]:
        """(latency, count) for every latency seen, shortest first."""
        out = [(latency, n) for latency, n in enumerate(self._dense) if n]
        out.extend(sorted(self._sparse.items()))
        return out

    @property
    def histogram(self) -> np.ndarray:
        """Counts indexed by latency, up to the longest seen (a dense array: for plotting)."""
        top = max(self._sparse, default=len(self._dense) - 1)
        h = np.zeros(max(top + 1, len(self._dense)), dtype=np.int64)
        h[: len(self._dense)] = self._dense
        for latency, n in self._sparse.items():
            h[latency] = n
        return h

    @property
    def count(self) -> int:
        return sum(self._dense) + sum(self._sparse.values())

    def mean(self) -> float:
        n = self.count
        if not n:
            return 0.0
        total = sum(latency * k for latency, k in self.items())
        return float(total) / float(n)  # (as numpy divided the two int64 sums)

    def percentile(self, p: float) -> int:
        """Smallest latency L with at least p% of samples <= L (nearest-rank definition)."""
        n = self.count
        if not n:
            return 0
        rank = max(1, int(np.ceil(p / 100.0 * n)))
        seen = 0
        for latency, k in self.items():
            seen += k
            if seen >= rank:
                return latency
        return self.max()

    def max(self) -> int:
        if self._sparse:
            return max(self._sparse)
        for latency in range(len(self._dense) - 1, -1, -1):
            if self._dense[latency]:
                return latency
        return 0
