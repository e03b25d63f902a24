"""Allocator: linear bump allocation, row reservations from the top, pluggable policies."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradpimsim.config import preset
from gradpimsim.host.allocator import (
    Allocator,
    OutOfMemory,
    PlacementPolicy,
    Segment,
    TensorPlacement,
    register_policy,
)


@pytest.fixture
def cfg():
    return preset("ddr4-2400")


def test_linear_bump_allocation_aligned(cfg) -> None:
    a = Allocator(cfg)
    p = a.place("x", 100)
    q = a.place("y", 64)
    assert p.segments == [Segment(0, 100)] and q.segments == [Segment(128, 64)]
    assert a.placements["y"] is q
    with pytest.raises(ValueError, match="already placed"):
        a.place("x", 8)


def test_linear_group_policy_names_members(cfg) -> None:
    a = Allocator(cfg)
    got = a.place_group("fc.weight", {"weight": 40, "grad": 20, "momentum": 40})
    assert [p.name for p in got.values()] == ["fc.weight/weight", "fc.weight/grad",
                                               "fc.weight/momentum"]
    assert got["grad"].segments[0].addr == 64
    assert set(a.placements) == {p.name for p in got.values()}


def test_reserve_rows_from_top(cfg) -> None:
    a = Allocator(cfg)
    rows = cfg.org.rows
    assert a.reserve_rows(0, 0, 1, 2, 3) == [rows - 1, rows - 2, rows - 3]
    assert a.reserve_rows(0, 0, 1, 2, 2) == [rows - 4, rows - 5]
    assert a.reserve_rows(0, 0, 0, 0, 1) == [rows - 1]
    assert a.reserved_rows(0, 0, 1, 2) == 5
    with pytest.raises(ValueError, match="bankgroup"):
        a.reserve_rows(0, 0, 9, 0, 1)


def test_linear_region_and_reserved_rows_must_not_meet(cfg) -> None:
    a = Allocator(cfg)
    row_bytes = 1 << a.amap.shift["ro"]  # one row in every bank (row field is the MSB field)
    a.reserve_rows(0, 0, 0, 0, cfg.org.rows - 10)  # leaves rows 0..9 of that bank
    a.place("fits", 10 * row_bytes)  # rows 0..9
    with pytest.raises(OutOfMemory, match="row 10"):
        a.place("too_big", 1)
    b = Allocator(cfg)
    b.place("big", 100 * row_bytes + 1)  # touches row 100
    assert b.linear_top_row() == 100
    with pytest.raises(OutOfMemory, match="row 100"):
        b.reserve_rows(0, 0, 3, 3, cfg.org.rows - 100)
    b.reserve_rows(0, 0, 3, 3, cfg.org.rows - 101)


def test_capacity_exhausted(cfg) -> None:
    a = Allocator(cfg)
    with pytest.raises(OutOfMemory, match="does not fit"):
        a.place("huge", a.capacity + 1)


def test_custom_policy_registration(cfg) -> None:
    class Spread:
        """Each member in its own reserved row of a different bank (a toy row-granular policy)."""

        name = "spread"

        def place_group(self, alloc: Allocator, prefix: str,
                        tensors: dict[str, int]) -> dict[str, TensorPlacement]:
            out = {}
            for bank, (role, nbytes) in enumerate(tensors.items()):
                row = alloc.reserve_rows(0, 0, 0, bank, 1)[0]
                addr = alloc.amap.encode(0, 0, 0, bank, row, 0)
                out[role] = TensorPlacement(f"{prefix}/{role}", nbytes, [Segment(addr, nbytes)])
            return out

    assert isinstance(Spread(), PlacementPolicy)
    register_policy("spread", Spread)
    a = Allocator(cfg, policy="spread")
    got = a.place_group("w", {"weight": 64, "grad": 64})
    locs = [a.amap.decode(p.segments[0].addr) for p in got.values()]
    assert [(loc.bank, loc.row) for loc in locs] == [(0, cfg.org.rows - 1), (1, cfg.org.rows - 1)]
    assert "w/grad" in a.placements
    assert a.segments_for("w/grad", 16, 32) == [Segment(got["grad"].segments[0].addr + 16, 32)]
    with pytest.raises(ValueError, match="unknown placement policy"):
        Allocator(cfg, policy="nope")


def test_place_schedule_covers_every_tensor(cfg) -> None:
    import workloads
    from gradpimsim.host.allocator import place_schedule
    from gradpimsim.host.training import expand_training

    s = expand_training(workloads.get_workload("mlp", batch=4), policy="mixed")
    a = Allocator(cfg)
    placed = place_schedule(s, a)
    assert set(placed) == set(s.tensors)
    # Every access of every task maps onto physical segments.
    for _, d in s.dag.nodes(data=True):
        for acc in d["reads"] + d["writes"]:
            segs = a.segments_for(acc.tensor, acc.offset, acc.nbytes)
            assert sum(seg.nbytes for seg in segs) == acc.nbytes


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(
    st.tuples(st.just("place"), st.integers(0, 3 << 17)),
    st.tuples(st.just("reserve"), st.integers(0, 15), st.integers(0, 40000)),
), max_size=25))
def test_regions_never_overlap(ops) -> None:
    cfg = preset("ddr4-2400")
    a = Allocator(cfg)
    taken: dict[int, set[int]] = {}
    for i, op in enumerate(ops):
        try:
            if op[0] == "place":
                a.place(f"t{i}", op[1])
            else:
                bank = op[1]
                rows = a.reserve_rows(0, 0, bank // 4, bank % 4, op[2])
                assert not taken.setdefault(bank, set()) & set(rows)
                taken[bank] |= set(rows)
        except OutOfMemory:
            pass
        assert a.linear_top_row() < a.lowest_reserved_row()
    spans = sorted((s.addr, s.addr + s.nbytes) for p in a.placements.values() for s in p.segments)
    assert all(x[1] <= y[0] for x, y in zip(spans, spans[1:], strict=False))
    for p in a.placements.values():
        for s in p.segments:
            if s.nbytes:
                assert a.amap.decode(s.addr + s.nbytes - 1).row <= a.linear_top_row()
