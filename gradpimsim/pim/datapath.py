"""Datatypes of a 64 B PIM column and the conversions the unit's datapath performs.

A column is raw bytes; its meaning depends on the datatype the instruction names: 16 fp32 lanes,
32 fp16 or bf16 lanes, or 64 int8 lanes.  All arithmetic happens in fp32, so every other dtype
only ever meets the datapath through a conversion.  The conversions are written out bit by bit
(bf16, int8) because they must be *identical* in the PIM unit and in the reference optimizer:
a one-ulp disagreement would make the bit-exact tests meaningless.
"""

from __future__ import annotations

import numpy as np

from gradpimsim.config.training import DTYPE_BYTES

#: Bytes of one column across the rank (DDR4 x64 bus, BL8).
COLUMN_BYTES = 64
#: Lanes of a column per datatype.
LANES: dict[str, int] = {d: COLUMN_BYTES // b for d, b in DTYPE_BYTES.items()}
#: fp32 lanes in one column: the width of every arithmetic operation.
FP32_LANES = LANES["fp32"]
#: numpy storage dtype per datatype (bf16 is kept as its raw uint16 bit pattern).
STORAGE: dict[str, np.dtype] = {
    "fp32": np.dtype(np.float32),
    "fp16": np.dtype(np.float16),
    "bf16": np.dtype(np.uint16),
    "int8": np.dtype(np.int8),
}
INT8_MIN, INT8_MAX = -128, 127


def lanes(dtype: str) -> int:
    """Values of ``dtype`` in one 64 B column."""
    return LANES[dtype]


def parts(dtype: str) -> int:
    """How many 16-lane fp32 groups one column of ``dtype`` expands to (1, 2 or 4)."""
    return LANES[dtype] // FP32_LANES


# --- bf16 ---------------------------------------------------------------------------------

def fp32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """fp32 -> bf16 bit patterns (uint16), round to nearest, ties to even.

    Adding ``0x7FFF + lsb`` to the fp32 bits and truncating rounds the 16 dropped bits to nearest
    with ties going to the even kept pattern; the carry runs into the exponent exactly as
    rounding should (so the largest finite values round to infinity).  NaNs are kept quiet NaNs
    with their sign rather than being rounded (which could turn them into infinities).
    """
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    lsb = (bits >> np.uint32(16)) & np.uint32(1)
    rounded = ((bits + np.uint32(0x7FFF) + lsb) >> np.uint32(16)).astype(np.uint16)
    nan = np.isnan(x.astype(np.float32, copy=False))
    if nan.any():
        quiet = ((bits >> np.uint32(16)) | np.uint32(0x0040)).astype(np.uint16)
        rounded = np.where(nan, quiet, rounded)
    return rounded


def bf16_bits_to_fp32(bits: np.ndarray) -> np.ndarray:
    """bf16 bit patterns -> fp32 (exact: bf16 is the top half of an fp32)."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)


# --- int8 with a scale --------------------------------------------------------------------

def int8_inverse_scale(scale: float) -> np.float32:
    """The multiplier quantization uses: fp32(1/scale).

    The unit has no divider (in the paper's design), so quantization multiplies by a reciprocal
    the host computes once and loads into a scalar register; the reference does the same.
    """
    if not scale > 0:
        raise ValueError(f"int8 scale must be > 0, got {scale}")
    return np.float32(1.0 / float(scale))


def quantize_int8(x: np.ndarray, inv_scale: np.float32 | float) -> np.ndarray:
    """fp32 -> int8: ``q = saturate(round_half_even(x * inv_scale))`` to [-128, 127].

    NaN quantizes to 0 (the datapath has no NaN encoding in int8); infinities saturate.
    """
    y = np.asarray(x, dtype=np.float32) * np.float32(inv_scale)
    y = np.rint(y)  # round half to even, in fp32
    y = np.where(np.isnan(y), np.float32(0), y)
    return np.clip(y, INT8_MIN, INT8_MAX).astype(np.int8)


def dequantize_int8(q: np.ndarray, scale: np.float32 | float) -> np.ndarray:
    """int8 -> fp32: ``value = fp32(q) * fp32(scale)``."""
    return np.asarray(q, dtype=np.int8).astype(np.float32) * np.float32(scale)


# --- generic conversions ------------------------------------------------------------------

def to_fp32(values: np.ndarray, dtype: str, scale: float | np.floating | None = None,
            ) -> np.ndarray:
    """Stored values of ``dtype`` -> fp32, then times ``scale`` if given (int8 requires one)."""
    if dtype == "fp32":
        out = np.asarray(values, dtype=np.float32).copy()
    elif dtype == "fp16":
        out = np.asarray(values, dtype=np.float16).astype(np.float32)
    elif dtype == "bf16":
        out = bf16_bits_to_fp32(values)
    elif dtype == "int8":
        if scale is None:
            raise ValueError("int8 -> fp32 needs a scale")
        return dequantize_int8(values, scale)
    else:
        raise ValueError(f"unknown dtype {dtype!r}")
    if scale is not None:
        out = out * np.float32(scale)
    return out


def from_fp32(values: np.ndarray, dtype: str, multiplier: float | np.floating | None = None,
              ) -> np.ndarray:
    """fp32 -> stored values of ``dtype``: first times ``multiplier`` if given, then round.

    For int8 the multiplier is the *inverse* scale (see :func:`int8_inverse_scale`) and required.
    fp16 conversion is IEEE round to nearest even with overflow to infinity (numpy's cast).
    """
    x = np.asarray(values, dtype=np.float32)
    if multiplier is not None and dtype != "int8":
        x = x * np.float32(multiplier)
    if dtype == "fp32":
        return x.copy()
    if dtype == "fp16":
        return x.astype(np.float16)
    if dtype == "bf16":
        return fp32_to_bf16_bits(x)
    if dtype == "int8":
        if multiplier is None:
            raise ValueError("fp32 -> int8 needs an inverse scale")
        return quantize_int8(x, multiplier)
    raise ValueError(f"unknown dtype {dtype!r}")


def as_bytes(values: np.ndarray, dtype: str) -> np.ndarray:
    """Stored values -> their little-endian bytes (uint8)."""
    return np.ascontiguousarray(values, dtype=STORAGE[dtype]).view(np.uint8)


def from_bytes(raw: np.ndarray, dtype: str) -> np.ndarray:
    """Little-endian bytes -> stored values of ``dtype`` (a copy)."""
    return np.ascontiguousarray(raw, dtype=np.uint8).view(STORAGE[dtype]).copy()
