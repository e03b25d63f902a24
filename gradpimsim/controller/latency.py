"""Exact latency statistics in bounded memory.

Latencies are integer cycles, so an integer histogram gives exact mean and percentiles without
keeping one number per request: memory stays bounded however long the run.
"""

from __future__ import annotations

from array import array
from typing import Final

import numpy as np

_FLUSH: Final = 1 << 16


class LatencyHistogram:
    """Counts of integer latencies; ``add`` is O(1) and cheap, flushed in numpy batches."""

    def __init__(self) -> None:
        self._buf = array("q")
        self._hist = np.zeros(0, dtype=np.int64)

    def add(self, latency: int) -> None:
        buf = self._buf
        buf.append(latency)
        if len(buf) >= _FLUSH:
            self._flush()

    def add_many(self, latencies: list[int]) -> None:
        self._buf.extend(latencies)
        if len(self._buf) >= _FLUSH:
            self._flush()

    def _flush(self) -> None:
        if not self._buf:
            return
        counts = np.bincount(np.frombuffer(self._buf, dtype=np.int64))
        if counts.size > self._hist.size:
            counts[: self._hist.size] += self._hist
            self._hist = counts
        else:
            self._hist[: counts.size] += counts
        self._buf = array("q")

    @property
    def histogram(self) -> np.ndarray:
        self._flush()
        return self._hist

    @property
    def count(self) -> int:
        return int(self.histogram.sum())

    def mean(self) -> float:
        h = self.histogram
        n = h.sum()
        return float((h * np.arange(h.size)).sum() / n) if n else 0.0

    def percentile(self, p: float) -> int:
        """Smallest latency L with at least p% of samples <= L (nearest-rank definition)."""
        h = self.histogram
        n = int(h.sum())
        if not n:
            return 0
        rank = max(1, int(np.ceil(p / 100.0 * n)))
        return int(np.searchsorted(np.cumsum(h), rank))

    def max(self) -> int:
        h = self.histogram
        nz = np.nonzero(h)[0]
        return int(nz[-1]) if nz.size else 0
