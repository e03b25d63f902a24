"""The latency histogram: exact counts on both sides of its dense/sparse split, by hand."""

from __future__ import annotations

import pytest

from gradpimsim.controller.latency import DENSE_LIMIT, LatencyHistogram


def test_counts_mean_percentiles_max_by_hand():
    h = LatencyHistogram()
    h.add_many([30, 10, 20, 10])
    h.add(40)
    # sorted: 10 10 20 30 40
    assert h.count == 5
    assert h.mean() == 22.0
    assert h.percentile(0) == 10  # nearest rank 1
    assert h.percentile(40) == 10  # rank 2
    assert h.percentile(41) == 20  # rank ceil(2.05) = 3
    assert h.percentile(100) == 40
    assert h.max() == 40
    assert h.items() == [(10, 2), (20, 1), (30, 1), (40, 1)]
    assert h.histogram.tolist() == [0] * 10 + [2] + [0] * 9 + [1] + [0] * 9 + [1] + [0] * 9 + [1]


def test_latencies_beyond_the_dense_list_are_counted_exactly():
    h = LatencyHistogram()
    far = 10**12  # a counter per cycle would be 8 TB
    h.add_many([DENSE_LIMIT - 1, DENSE_LIMIT, far, far, 5])
    assert h.count == 5
    assert h.items() == [(5, 1), (DENSE_LIMIT - 1, 1), (DENSE_LIMIT, 1), (far, 2)]
    assert h.max() == far
    assert h.percentile(60) == DENSE_LIMIT  # rank 3
    assert h.percentile(61) == far  # rank ceil(3.05) = 4
    assert h.mean() == (5 + 2 * DENSE_LIMIT - 1 + 2 * far) / 5
    assert len(h._dense) == DENSE_LIMIT  # the list stopped at its limit


def test_merge_adds_counts_of_both_kinds():
    a, b = LatencyHistogram(), LatencyHistogram()
    a.add_many([3, 3, 10**9])
    b.add_many([3, 7, 10**9, 10**10])
    a.merge(b)
    assert a.items() == [(3, 3), (7, 1), (10**9, 2), (10**10, 1)]
    assert b.items() == [(3, 1), (7, 1), (10**9, 1), (10**10, 1)]  # left as it was


def test_empty_and_negative():
    h = LatencyHistogram()
    assert (h.count, h.mean(), h.percentile(50), h.max()) == (0, 0.0, 0, 0)
    assert h.histogram.size == 0
    h.add(0)
    with pytest.raises(ValueError, match="negative"):
        h.add(-1)  # would index the list from its end
    assert h.items() == [(0, 1)]
