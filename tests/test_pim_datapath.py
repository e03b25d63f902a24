"""Column datatypes and conversions, checked against independent slow definitions."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gradpimsim.pim import datapath


def _bf16_slow(x: float) -> int:
    """Round an fp32 value to bf16 by comparing the two neighbours exactly (float64)."""
    bits = struct.unpack("<I", struct.pack("<f", x))[0]
    if math.isnan(x):
        return (bits >> 16) | 0x40
    lo = bits >> 16
    hi = lo + 1
    val = lambda b: struct.unpack("<f", struct.pack("<I", (b & 0xFFFF) << 16))[0]  # noqa: E731
    vlo = val(lo)
    if (lo & 0x7F80) == 0x7F80:  # lo is inf: x is inf (NaN handled above)
        return lo
    vhi = val(hi) if (hi & 0x7F80) != 0x7F80 else math.copysign(2.0 ** 128, x)
    dlo, dhi = abs(x - vlo), abs(vhi - x)
    if dlo < dhi:
        return lo
    if dhi < dlo:
        return hi & 0xFFFF
    return lo if lo % 2 == 0 else hi & 0xFFFF


@given(st.floats(width=32, allow_nan=False))
def test_bf16_round_to_nearest_even(x: float) -> None:
    got = int(datapath.fp32_to_bf16_bits(np.array([x], dtype=np.float32))[0])
    assert got == _bf16_slow(x)


def test_bf16_ties_and_specials() -> None:
    # 1 + 2^-8 is exactly halfway between bf16 1.0 and 1 + 2^-7: ties to even (1.0)
    x = np.array([1 + 2.0 ** -8, 1 + 3 * 2.0 ** -8, np.inf, -np.inf, np.nan, -0.0,
                  np.finfo(np.float32).max], dtype=np.float32)
    b = datapath.fp32_to_bf16_bits(x)
    back = datapath.bf16_bits_to_fp32(b)
    assert back[0] == 1.0 and back[1] == 1 + 2.0 ** -6
    assert back[2] == np.inf and back[3] == -np.inf and np.isnan(back[4])
    assert np.signbit(back[5]) and back[6] == np.inf  # rounds up past the largest bf16


def test_bf16_roundtrip_exact_for_bf16_values() -> None:
    bits = np.arange(0, 1 << 16, dtype=np.uint16)
    vals = datapath.bf16_bits_to_fp32(bits)
    finite = np.isfinite(vals)
    assert np.array_equal(datapath.fp32_to_bf16_bits(vals)[finite], bits[finite])


def test_int8_quantize_half_even_and_saturation() -> None:
    inv = datapath.int8_inverse_scale(0.5)  # exactly 2.0
    x = np.array([0.25, 0.75, 1.25, -0.25, -0.75, 63.5, 64.0, -64.0, -70.0, np.inf, np.nan],
                 dtype=np.float32)
    q = datapath.quantize_int8(x, inv)
    assert q.tolist() == [0, 2, 2, 0, -2, 127, 127, -128, -128, 127, 0]
    assert datapath.dequantize_int8(q, 0.5).tolist()[:3] == [0.0, 1.0, 1.0]


def test_int8_scale_must_be_positive() -> None:
    with pytest.raises(ValueError):
        datapath.int8_inverse_scale(0.0)


def test_fp16_is_ieee_round_to_nearest_even() -> None:
    x = np.array([1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11, 70000.0], dtype=np.float32)
    with np.errstate(over="ignore"):
        h = datapath.from_fp32(x, "fp16")
    assert datapath.to_fp32(h, "fp16").tolist() == [1.0, 1 + 2.0 ** -9, np.inf]


def test_lanes_and_parts() -> None:
    assert [datapath.lanes(d) for d in ("fp32", "fp16", "bf16", "int8")] == [16, 32, 32, 64]
    assert [datapath.parts(d) for d in ("fp32", "fp16", "bf16", "int8")] == [1, 2, 2, 4]


@pytest.mark.parametrize("dtype", ["fp32", "fp16", "bf16", "int8"])
def test_bytes_roundtrip(dtype: str) -> None:
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(datapath.lanes(dtype)) * 3).astype(np.float32)
    stored = datapath.from_fp32(x, dtype, 0.25 if dtype == "int8" else None)
    raw = datapath.as_bytes(stored, dtype)
    assert raw.size == 64
    assert np.array_equal(datapath.from_bytes(raw, dtype), stored)


def test_conversion_scales() -> None:
    g = np.array([1.0, -2.0], dtype=np.float16)
    assert datapath.to_fp32(g, "fp16", 0.5).tolist() == [0.5, -1.0]
    with pytest.raises(ValueError):
        datapath.to_fp32(np.zeros(2, np.int8), "int8")
    with pytest.raises(ValueError):
        datapath.from_fp32(np.zeros(2, np.float32), "int8")
