"""One GradPIM unit: registers, each instruction on real values, capability errors."""

from __future__ import annotations

import numpy as np
import pytest

from gradpimsim.config import preset
from gradpimsim.config.pim import PimConfig
from gradpimsim.dram.commands import Cmd
from gradpimsim.pim import datapath
from gradpimsim.pim.errors import PimCapabilityError
from gradpimsim.pim.functional import PimArray
from gradpimsim.pim.store import DramStore
from gradpimsim.pim.unit import (
    SET_PARTS,
    PimInstr,
    PimUnit,
    op_latency,
    pim_op,
    pim_rd,
    pim_wr,
    set_scalar,
)

CFG = preset("ddr4-2400")
f32 = np.float32


def _unit(pim: PimConfig | None = None) -> tuple[PimUnit, DramStore]:
    return PimUnit(pim), DramStore(CFG)


def _load(u: PimUnit, store: DramStore, reg: int, values: np.ndarray, dtype: str = "fp32",
          col: int = 0) -> None:
    store.write_column(0, 0, 1, 2, 9, col, datapath.as_bytes(values, dtype))
    u.execute(pim_rd(2, 9, col, reg), store, 0, 0, 1)


def _set(u: PimUnit, reg: int, value: float) -> None:
    for ins in set_scalar(reg, value):
        u.set(ins)


def test_set_scalar_slices_rebuild_fp32_bits() -> None:
    u = PimUnit()
    for v in (1.0, -0.01, 3.4e38, 1e-45, -0.0):
        _set(u, 3, v)
        assert u.scalar(3).view(np.uint32) == f32(v).view(np.uint32)
    ins = set_scalar(0, 1.5)
    assert len(ins) == SET_PARTS == 3
    assert all(i.cmd == Cmd.PIM_SET and 0 <= i.args[1] < 4096 for i in ins)


def test_read_write_columns() -> None:
    u, s = _unit()
    x = np.arange(16, dtype=np.float32)
    _load(u, s, 5, x)
    assert np.array_equal(u.vector(5), x)
    u.execute(pim_wr(3, 100, 7, 5), s, 0, 0, 1)
    assert np.array_equal(s.read_column(0, 0, 1, 3, 100, 7).view(np.float32), x)


def test_axpby_scale_mov_mul_adds_in_fp32() -> None:
    u, s = _unit()
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((2, 16)).astype(np.float32)
    _load(u, s, 0, x)
    _load(u, s, 1, y, col=1)
    _set(u, 0, 0.9)
    _set(u, 1, -0.01)
    u.execute(pim_op("axpby", 0, 1, 0, 1), s, 0, 0, 1)
    assert np.array_equal(u.vector(0), f32(0.9) * x + f32(-0.01) * y)
    u.execute(pim_op("scale", 2, 1, 0), s, 0, 0, 1)
    assert np.array_equal(u.vector(2), f32(0.9) * y)
    u.execute(pim_op("mov", 3, 2), s, 0, 0, 1)
    assert np.array_equal(u.vector(3), u.vector(2))
    u.execute(pim_op("mul", 4, 1, 1), s, 0, 0, 1)
    assert np.array_equal(u.vector(4), y * y)
    u.execute(pim_op("adds", 4, 4, 1), s, 0, 0, 1)
    assert np.array_equal(u.vector(4), y * y + f32(-0.01))


@pytest.mark.parametrize("dtype", ["fp16", "bf16", "int8"])
def test_cvt_parts_fill_and_select(dtype: str) -> None:
    u, s = _unit()
    parts = datapath.parts(dtype)
    rng = np.random.default_rng(1)
    vals = (rng.standard_normal(16 * parts) * 2).astype(np.float32)
    _set(u, 2, 0.05)  # int8 scale
    _set(u, 3, float(datapath.int8_inverse_scale(0.05)))
    sreg_in, sreg_out = (2, 3) if dtype == "int8" else (-1, -1)
    for p in range(parts):  # fp32 -> low precision, one lane group at a time
        _load(u, s, 0, vals[16 * p:16 * (p + 1)])
        u.execute(pim_op("cvt", 6, 0, "fp32", dtype, p, sreg_out), s, 0, 0, 1)
    mult = datapath.int8_inverse_scale(0.05) if dtype == "int8" else None
    expect = datapath.from_fp32(vals, dtype, mult)
    assert np.array_equal(u.vector(6, dtype), expect)
    for p in range(parts):  # and back
        u.execute(pim_op("cvt", 1, 6, dtype, "fp32", p, sreg_in), s, 0, 0, 1)
        back = datapath.to_fp32(expect[16 * p:16 * (p + 1)], dtype,
                                0.05 if dtype == "int8" else None)
        assert np.array_equal(u.vector(1), back)


def test_cvt_errors() -> None:
    u, s = _unit()
    with pytest.raises(ValueError):
        u.execute(pim_op("cvt", 1, 0, "int8", "fp32", 0, -1), s, 0, 0, 0)  # no scale
    with pytest.raises(ValueError):
        u.execute(pim_op("cvt", 1, 0, "fp16", "fp32", 2, -1), s, 0, 0, 0)  # part out of range
    with pytest.raises(ValueError):
        u.execute(pim_op("cvt", 1, 0, "fp16", "bf16", 0, -1), s, 0, 0, 0)
    u8, _ = _unit(PimConfig(dtypes=("fp32", "fp16")))
    with pytest.raises(PimCapabilityError) as e:
        u8.execute(pim_op("cvt", 1, 0, "bf16", "fp32", 0, -1), s, 0, 0, 0)
    assert e.value.capability == "pim.dtypes"


@pytest.mark.parametrize("op,args", [("sqrt", (0,)), ("div", (0, 1)), ("divs", (0, 0))])
def test_sqrt_div_need_the_extension(op: str, args: tuple) -> None:
    u, s = _unit()
    with pytest.raises(PimCapabilityError) as e:
        u.execute(pim_op(op, 2, *args), s, 0, 0, 0)
    assert e.value.capability == "pim.has_sqrt_div"
    ext = PimConfig(has_sqrt_div=True)
    u, s = _unit(ext)
    x = np.linspace(1, 4, 16, dtype=np.float32)
    _load(u, s, 0, x)
    _load(u, s, 1, x[::-1].copy(), col=1)
    _set(u, 0, 3.0)
    u.execute(pim_op(op, 2, *args), s, 0, 0, 0)
    expect = {"sqrt": np.sqrt(x), "div": x / x[::-1], "divs": x / f32(3.0)}[op]
    assert np.array_equal(u.vector(2), expect)
    assert op_latency(pim_op(op, 2, *args), ext) == ext.sqrt_div_latency
    assert op_latency(pim_op("axpby", 0, 1, 0, 0), ext) == ext.op_latency


def test_register_bounds_and_bad_commands() -> None:
    u, s = _unit(PimConfig(vector_registers=4, scalar_registers=2))
    with pytest.raises(PimCapabilityError):
        u.execute(pim_rd(0, 0, 0, 4), s, 0, 0, 0)
    with pytest.raises(PimCapabilityError):
        u.execute(pim_op("scale", 0, 1, 2), s, 0, 0, 0)
    with pytest.raises(ValueError):
        u.execute(pim_op("fma3", 0, 1), s, 0, 0, 0)
    with pytest.raises(ValueError):
        u.execute(PimInstr(Cmd.RD, 0, 0, 0), s, 0, 0, 0)


def test_pim_set_is_rank_wide() -> None:
    cfg = CFG.with_overrides(ranks=2)
    arr = PimArray(cfg, DramStore(cfg))
    for ins in set_scalar(4, 0.125):
        arr.issue(0, 1, -1, ins)
    assert all(arr.unit(0, 1, bg).scalar(4) == f32(0.125) for bg in range(4))
    assert all(arr.unit(0, 0, bg).scalar(4) == 0 for bg in range(4))
