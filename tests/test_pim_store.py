"""The sparse functional DRAM store: columns, byte ranges through the address map, tensors."""

from __future__ import annotations

import numpy as np
import pytest

from gradpimsim.config import preset
from gradpimsim.dram.address_map import AddressMap
from gradpimsim.host.allocator import Segment
from gradpimsim.pim.store import DramStore

CFG = preset("ddr4-2400")


def test_unwritten_reads_zero_and_rows_are_lazy() -> None:
    s = DramStore(CFG)
    assert not s.read_column(0, 0, 1, 2, 3, 4).any()
    assert s.read_bytes(12345, 100).sum() == 0
    assert s.allocated_bytes == 0


def test_column_roundtrip_and_isolation() -> None:
    s = DramStore(CFG)
    data = np.arange(64, dtype=np.uint8)
    s.write_column(0, 0, 1, 2, 3, 4, data)
    assert np.array_equal(s.read_column(0, 0, 1, 2, 3, 4), data)
    assert not s.read_column(0, 0, 1, 2, 3, 5).any()
    assert not s.read_column(0, 0, 1, 3, 3, 4).any()
    assert s.allocated_bytes == CFG.org.row_bytes
    with pytest.raises(ValueError):
        s.write_column(0, 0, 0, 0, 0, 0, np.zeros(10, np.uint8))


def test_bytes_land_where_the_address_map_says() -> None:
    s = DramStore(CFG)
    amap = AddressMap(CFG)
    addr = amap.encode(0, 0, 2, 1, 77, 5) + 8
    s.write_bytes(addr, np.full(150, 7, np.uint8))  # unaligned: 56 + 64 + 30 bytes
    col5 = s.read_column(0, 0, 2, 1, 77, 5)
    col6 = s.read_column(0, 0, 2, 1, 77, 6)
    col7 = s.read_column(0, 0, 2, 1, 77, 7)
    assert col5[:8].sum() == 0 and (col5[8:] == 7).all()
    assert (col6 == 7).all() and (col7[:30] == 7).all() and col7[30:].sum() == 0


@pytest.mark.parametrize("mapping", ["rochrababgco", "rochrabacobg"])
def test_tensor_across_rows_and_banks(mapping: str) -> None:
    cfg = CFG.with_overrides(address_mapping=mapping, channels=2)
    s = DramStore(cfg)
    rng = np.random.default_rng(0)
    n = 50_001  # 200 KB: many rows, every bank group and bank
    x = rng.standard_normal(n).astype(np.float32)
    segs = [Segment(1000, 4 * 20_000), Segment(10_000_000 + 4, 4 * (n - 20_000))]
    s.write_tensor(segs, x, "fp32")
    assert np.array_equal(s.read_tensor(segs, "fp32", n), x)
    keys = set(s.rows)
    assert len({k[2] for k in keys}) == 4 and len({k[3] for k in keys}) == 4
    with pytest.raises(ValueError):
        s.write_tensor(segs[:1], x, "fp32")


@pytest.mark.parametrize("dtype", ["fp16", "bf16", "int8"])
def test_fp32_helpers_round_and_widen(dtype: str) -> None:
    s = DramStore(CFG)
    segs = [Segment(4096, 999)]
    x = np.linspace(-2, 2, 999 // {"fp16": 2, "bf16": 2, "int8": 1}[dtype], dtype=np.float32)
    scale = 0.05 if dtype == "int8" else None
    s.write_fp32(segs, x, dtype, scale)
    back = s.read_fp32(segs, dtype, x.size, scale)
    tol = {"fp16": 2e-3, "bf16": 1e-2, "int8": 0.025 + 1e-6}[dtype]
    assert np.all(np.abs(back - x) <= tol)
