"""Streaming reader and writer of DRAMsim3-style request traces (``0x<addr> READ|WRITE <cycle>``).

The reader is on the simulator's hot path (millions of requests), so it never loops over lines in
Python: the file is read in binary blocks of ``chunk_lines`` lines and each block is tokenised and
parsed with whole-array numpy operations on its bytes.  Validation is vectorised the same way; only
when a block holds a bad line is that one line re-examined in Python, to explain what is wrong with
it.  Errors point at the first bad line exactly, as ``path:line: message``.

Accepted syntax, per line: ``0x<1-16 hex digits> <READ|WRITE, any case> <decimal cycle>``
separated by any spaces or tabs; blank lines and ``#`` comments (whole-line or trailing) are
skipped; ``\\r\\n`` line ends are fine.  Cycles must be non-negative and non-decreasing.  Files are
plain text or gzip (recognised by the magic bytes, so the suffix does not matter when reading;
when writing, a ``.gz`` suffix selects gzip).
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

import numpy as np
from numpy.typing import ArrayLike

from gradpimsim.errors import clip, clip_repr

__all__ = [
    "RequestChunk",
    "TraceError",
    "iter_request_chunks",
    "read_request_trace",
    "write_request_trace",
]

GZIP_MAGIC = b"\x1f\x8b"
MAX_HEX_DIGITS = 16  # a uint64 address
MAX_CYCLE_DIGITS = 18  # always fits an int64

# Word tricks below assume a little-endian host (x86-64, ARM64), as numpy does by default.
_ASCII_ZEROS = np.uint64(0x3030303030303030)
#: _KEEP[k]: mask of the k most significant bytes of a word (the token's bytes when right-aligned).
_KEEP = np.array([(~0 << (8 * (8 - k))) & (2**64 - 1) for k in range(9)], dtype=np.uint64)
_M1 = np.uint64(0x000000FF000000FF)
_C1 = np.uint64(100 + (1_000_000 << 32))
_C2 = np.uint64(1 + (10_000 << 32))
_ONES = np.uint64(0x0101010101010101)  # a word of eight True flags
_NIBBLES = np.uint64(0x0F0F0F0F0F0F0F0F)
_M4 = np.uint64(0x000F000F000F000F)
_M8 = np.uint64(0x000000FF000000FF)
_M16 = np.uint64(0xFFFF)
_LOWER = np.uint64(0x2020202020202020)  # OR-ing 0x20 lower-cases letters, makes no new letters
_READ_WORD = np.uint64(int.from_bytes(b"read", "little"))
_WRITE_WORD = np.uint64(int.from_bytes(b"write", "little"))
_PAD = 32  # zero bytes around a block, so fixed-width windows never leave the buffer
_ADDR_RE = re.compile(rb"0[xX][0-9a-fA-F]{1,%d}" % MAX_HEX_DIGITS)
_CYCLE_RE = re.compile(rb"\d{1,%d}" % MAX_CYCLE_DIGITS)
FORMAT_HINT = "expected `0x<hex address> READ|WRITE <cycle>`"


class TraceError(ValueError):
    """A trace line cannot be used; ``str()`` is ``path:line: message`` like a compiler error."""

    def __init__(self, path: str | Path, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}" if line > 0 else f"{path}: {message}")
        self.path = str(path)
        self.line = line
        self.message = message


@dataclass(frozen=True)
class RequestChunk:
    """Consecutive requests of a trace as parallel numpy arrays.

    ``first_line`` is the 1-based line number of the chunk's first line (blank and comment lines
    count), ``lines`` the line number of each request, so later stages can still point at the
    source line of a request they reject.
    """

    addr: np.ndarray  # uint64 byte addresses
    is_write: np.ndarray  # bool
    cycle: np.ndarray  # int64 arrival cycles, non-decreasing
    first_line: int
    lines: np.ndarray | None = None  # int64 line numbers

    def __len__(self) -> int:
        return len(self.addr)


def _open_binary(path: Path) -> IO[bytes]:
    """Open for binary reading, transparently decompressing gzip (by magic bytes, not suffix)."""
    raw = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    if raw.read(2) == GZIP_MAGIC:
        raw.close()
        return cast(IO[bytes], gzip.open(path, "rb"))
    raw.seek(0)
    return raw


def _whitespace(a: np.ndarray) -> np.ndarray:
    """Bytes that ``bytes.split()`` splits on (space, \\t \\n \\v \\f \\r), so diagnosis agrees."""
    return (a == 32) | ((a - np.uint8(9)) < 5)  # 9..13 by uint8 wrap-around


def _tokens(a: np.ndarray, has_hash: bool, nl_pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) byte offsets of every whitespace-separated token.

    ``a`` must end with a newline, so every token has an end.
    """
    ws = _whitespace(a)
    if has_hash:
        # Everything from a '#' to the end of its line is whitespace: count '#' per line so far.
        is_hash = a == 35
        hashes = np.cumsum(is_hash, dtype=np.int64)
        line_start = np.empty(len(nl_pos), dtype=np.int64)
        line_start[0] = 0
        line_start[1:] = nl_pos[:-1] + 1
        before_line = hashes[line_start] - is_hash[line_start]
        line_of_byte = np.repeat(np.arange(len(nl_pos)), np.diff(nl_pos, prepend=-1))
        ws |= hashes > before_line[line_of_byte]
    # every change between whitespace and token bytes: they alternate, a token's start then
    # its end (exclusive), since the block ends with whitespace
    edges = np.flatnonzero(ws[1:] != ws[:-1]) + 1
    if not ws[0]:
        edges = np.concatenate(([0], edges))
    return edges[0::2], edges[1::2]


def _words(padded: np.ndarray) -> np.ndarray:
    """Every 8 consecutive bytes of ``padded`` as a little-endian uint64 (overlapping view).

    Gathering words from this view moves 8 bytes per index, far cheaper than byte matrices.
    """
    return np.ndarray(shape=(len(padded) - 7,), dtype="<u8", buffer=padded, strides=(1,))


def _right_aligned(words: np.ndarray, ends: np.ndarray, lengths: np.ndarray, nwords: int
                   ) -> np.ndarray:
    """The last ``8 * nwords`` bytes of each token as ``(nwords, n)`` words, the token's first
    word first, bytes before the token replaced by ``'0'``: every byte then has a fixed place
    value, whatever the length.  (One row per word, so every operation runs along the tokens:
    numpy is slow on a short inner axis.)"""
    out = np.empty((nwords, len(ends)), dtype=np.uint64)
    for j in range(nwords):
        back = 8 * (nwords - j)  # word j holds the bytes [end - back, end - back + 8)
        inside = np.minimum(np.maximum(lengths - (back - 8), 0), 8)  # token bytes in it
        keep = _KEEP[inside]
        out[j] = (words[ends + (_PAD - back)] & keep) | (_ASCII_ZEROS & ~keep)
    return out


def _all_bytes(flags: np.ndarray) -> np.ndarray:
    """Per token, whether every byte flag of its ``(nwords, 8 n)`` bool rows is set (read eight
    at a time as a word: a reduction along a short axis is slow in numpy)."""
    w = flags.view(np.uint64)  # (nwords, n): one byte per flag
    every = w[0] == _ONES
    for j in range(1, len(w)):
        every &= w[j] == _ONES
    return every


def _nwords(max_len: int, limit: int) -> int:
    """Words needed for the longest token (capped: longer tokens are rejected anyway)."""
    return max(1, -(-min(max_len, limit) // 8))


def _parse_addresses(padded: np.ndarray, words: np.ndarray, s: np.ndarray, e: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Hex addresses ``0x...`` -> (uint64 values, bad mask)."""
    ndig = e - s - 2
    nw = _nwords(int(ndig.max(initial=1)), MAX_HEX_DIGITS)
    w = _right_aligned(words, e, ndig, nw)
    c = w.view(np.uint8)  # (nw, 8 n) characters
    hexdigit = ((c - np.uint8(48)) < 10) | (((c | 0x20) - np.uint8(97)) < 6)
    bad = ~_all_bytes(hexdigit) | (ndig < 1) | (ndig > MAX_HEX_DIGITS)
    bad |= (padded[s + _PAD] != ord("0")) | ((padded[s + _PAD + 1] | 0x20) != ord("x"))
    value = _eight_hex(w[0])
    for j in range(1, nw):
        value = (value << np.uint64(32)) | _eight_hex(w[j])
    return value, bad


def _parse_kinds(words: np.ndarray, s: np.ndarray, e: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """READ/WRITE in any case -> (is_write, bad mask), comparing 8-byte words."""
    length = e - s
    w = words[s + _PAD] | _LOWER
    is_read = (length == 4) & ((w & np.uint64(0xFFFFFFFF)) == _READ_WORD)
    is_write = (length == 5) & ((w & np.uint64(0xFFFFFFFFFF)) == _WRITE_WORD)
    return is_write, ~(is_read | is_write)


def _eight_digits(w: np.ndarray) -> np.ndarray:
    """SWAR: eight ASCII digits in a little-endian word (first digit lowest byte) -> value."""
    w = w - _ASCII_ZEROS
    w = w * np.uint64(10) + (w >> np.uint64(8))  # even bytes: two-digit values
    w = ((w & _M1) * _C1 + ((w >> np.uint64(16)) & _M1) * _C2) >> np.uint64(32)
    return w


def _eight_hex(w: np.ndarray) -> np.ndarray:
    """SWAR: eight ASCII hex digits in a little-endian word (first digit lowest byte) -> value."""
    # '0'-'9' -> 0-9; 'a'-'f' and 'A'-'F' (bit 6 set) -> 1-6, plus 9
    v = (w & _NIBBLES) + ((w >> np.uint64(6)) & _ONES) * np.uint64(9)
    v = ((v & _M4) << np.uint64(4)) | ((v >> np.uint64(8)) & _M4)  # digit pairs, in bytes
    v = ((v & _M8) << np.uint64(8)) | ((v >> np.uint64(16)) & _M8)  # quads, in 16 bits
    return ((v & _M16) << np.uint64(16)) | ((v >> np.uint64(32)) & _M16)


def _parse_cycles(words: np.ndarray, s: np.ndarray, e: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative decimal integers -> (int64 values, bad mask)."""
    length = e - s
    nw = _nwords(int(length.max(initial=1)), MAX_CYCLE_DIGITS)
    w = _right_aligned(words, e, length, nw)
    bad = ~_all_bytes((w.view(np.uint8) - np.uint8(48)) < 10) | (length > MAX_CYCLE_DIGITS)
    value = _eight_digits(w[0])
    for j in range(1, nw):
        value = value * np.uint64(100_000_000) + _eight_digits(w[j])
    return value.astype(np.int64), bad


def _diagnose(line: bytes, prev_cycle: int) -> str:
    """Why one line was rejected (the slow, readable twin of the vectorised checks)."""
    fields = line.split(b"#", 1)[0].split()
    text = line.rstrip(b"\r\n")
    shown = clip_repr(text[:1000].decode("ascii", "backslashreplace"), total=len(text))
    if len(fields) != 3:
        return f"{FORMAT_HINT}, got {len(fields)} field(s): {shown}"
    addr, kind, cycle = (f[:1000].decode("ascii", "backslashreplace") for f in fields)
    lens = [len(f) for f in fields]
    if not _ADDR_RE.fullmatch(fields[0]):
        return (f"bad address {clip_repr(addr, total=lens[0])}: expected 0x followed by "
                f"1-{MAX_HEX_DIGITS} hex digits")
    if kind.lower() not in ("read", "write"):
        return f"unknown request type {clip_repr(kind, total=lens[1])}: expected READ or WRITE"
    if re.fullmatch(r"-\d+", cycle) and lens[2] < 1000:
        return f"negative cycle {clip(cycle)}"
    if not _CYCLE_RE.fullmatch(fields[2]):
        return (f"bad cycle {clip_repr(cycle, total=lens[2])}: expected a non-negative decimal "
                f"integer of at most {MAX_CYCLE_DIGITS} digits")
    if int(cycle) < prev_cycle:
        return (f"cycle {cycle} is earlier than the previous request's cycle {prev_cycle}: "
                "requests must be in non-decreasing cycle order")
    return f"malformed line {shown}; {FORMAT_HINT}"


def _parse_block(
    a: np.ndarray, nl_pos: np.ndarray, has_hash: bool, first_line: int, prev_cycle: int,
    path: Path,
) -> RequestChunk:
    """Parse the complete lines in ``a`` (ending with a newline at ``nl_pos[-1]``)."""
    starts, ends = _tokens(a, has_hash, nl_pos)
    n = len(nl_pos)
    if (len(starts) == 3 * n and (ends[2::3] <= nl_pos).all()
            and (starts[3::3] > nl_pos[:-1]).all()):
        # the usual block, three tokens on every line: token 3i+2 ends by newline i and token
        # 3i+3 starts after it, so line i holds tokens 3i..3i+2 (no search needed)
        wrong_count = np.empty(0, dtype=np.int64)
        limit = n
        s = starts.reshape(-1, 3)
        e = ends.reshape(-1, 3)
        req_line = np.arange(n)
    else:
        tokens_before_eol = np.searchsorted(starts, nl_pos)
        per_line = np.diff(tokens_before_eol, prepend=0)
        wrong_count = np.flatnonzero((per_line != 0) & (per_line != 3))
        limit = int(wrong_count[0]) if len(wrong_count) else n
        ntok = int(tokens_before_eol[limit - 1]) if limit else 0  # lines before the first bad
        s = starts[:ntok].reshape(-1, 3)
        e = ends[:ntok].reshape(-1, 3)
        req_line = np.flatnonzero(per_line[:limit])
    padded = np.zeros(len(a) + 2 * _PAD, dtype=np.uint8)
    padded[_PAD:-_PAD] = a
    words = _words(padded)
    addr, bad = _parse_addresses(padded, words, s[:, 0], e[:, 0])
    is_write, bad_kind = _parse_kinds(words, s[:, 1], e[:, 1])
    cycle, bad_cycle = _parse_cycles(words, s[:, 2], e[:, 2])
    bad |= bad_kind | bad_cycle
    if len(cycle):
        bad[0] |= cycle[0] < prev_cycle
        bad[1:] |= cycle[1:] < cycle[:-1]
    bad_req = np.flatnonzero(bad)
    if len(bad_req) or len(wrong_count):
        if len(bad_req):
            i = int(bad_req[0])
            line_idx = int(req_line[i])
            before = int(cycle[i - 1]) if i else prev_cycle
        else:
            line_idx = limit
            before = int(cycle[-1]) if len(cycle) else prev_cycle
        start = int(nl_pos[line_idx - 1]) + 1 if line_idx else 0
        text = a[start:int(nl_pos[line_idx])].tobytes()
        raise TraceError(path, first_line + line_idx, _diagnose(text, before))
    lines = req_line.astype(np.int64) + first_line
    return RequestChunk(addr, is_write, cycle, first_line, lines)


def iter_request_chunks(path: str | Path, chunk_lines: int = 65536) -> Iterator[RequestChunk]:
    """Stream a request trace as chunks of at most ``chunk_lines`` lines each.

    Chunks holding only blank or comment lines are skipped.  Raises :class:`TraceError` at the
    first malformed line, unknown request type, negative or decreasing cycle.
    """
    if chunk_lines < 1:
        raise ValueError(f"chunk_lines must be >= 1, got {chunk_lines}")
    path = Path(path)
    try:
        f = _open_binary(path)
    except OSError as exc:
        raise TraceError(path, 0, f"cannot open trace: {exc.strerror or exc}") from None
    block_bytes = max(1 << 16, chunk_lines * 32)
    line_no, prev_cycle, pending = 1, 0, b""
    with f:
        while True:
            try:
                data = f.read(block_bytes)
            except (OSError, EOFError, zlib.error) as exc:
                raise TraceError(path, line_no + pending.count(b"\n"),
                                 f"corrupt or truncated gzip data: {exc}") from None
            pending += data
            if not data and pending and not pending.endswith(b"\n"):
                pending += b"\n"  # last line without a newline
            a = np.frombuffer(pending, dtype=np.uint8)
            nl = np.flatnonzero(a == 10)
            pos = k = 0
            while len(nl) - k >= chunk_lines or (not data and k < len(nl)):
                n = min(chunk_lines, len(nl) - k)
                cut = int(nl[k + n - 1]) + 1
                chunk = _parse_block(a[pos:cut], nl[k:k + n] - pos,
                                     pending.find(b"#", pos, cut) >= 0, line_no, prev_cycle, path)
                pos, k, line_no = cut, k + n, line_no + n
                if len(chunk):
                    prev_cycle = int(chunk.cycle[-1])
                    yield chunk
            pending = pending[pos:]
            if not data:
                break


def read_request_trace(path: str | Path) -> RequestChunk:
    """The whole trace as one chunk (convenient for small traces and tests)."""
    chunks = list(iter_request_chunks(path))
    if not chunks:
        empty = np.empty(0, dtype=np.int64)
        return RequestChunk(np.empty(0, np.uint64), np.empty(0, bool), empty, 1, empty)
    return RequestChunk(
        np.concatenate([c.addr for c in chunks]),
        np.concatenate([c.is_write for c in chunks]),
        np.concatenate([c.cycle for c in chunks]),
        1,
        np.concatenate([c.lines for c in chunks if c.lines is not None]),
    )


def write_request_trace(
    path: str | Path,
    addrs: ArrayLike,
    is_write: ArrayLike,
    cycles: ArrayLike,
    *,
    chunk_lines: int = 65536,
) -> Path:
    """Write a DRAMsim3-style request trace, gzip-compressed if ``path`` ends in ``.gz``.

    Written in chunks so memory stays flat; gzip output has a fixed timestamp so that a seeded
    generator produces byte-identical files.  Rejects input the reader would reject.
    """
    path = Path(path)
    a = np.asarray(addrs)
    w = np.asarray(is_write, dtype=bool)
    c = np.asarray(cycles)
    if not (a.ndim == w.ndim == c.ndim == 1 and len(a) == len(w) == len(c)):
        raise ValueError(f"addrs, is_write and cycles must be 1-D of equal length, got shapes "
                         f"{a.shape}, {w.shape}, {c.shape}")
    if len(a) and (a.dtype.kind not in "iu" or a.min() < 0):
        raise ValueError(f"addresses must be non-negative integers, got dtype {a.dtype}")
    if len(c) and c.dtype.kind not in "iu":
        raise ValueError(f"cycles must be integers, got dtype {c.dtype}")
    if len(c) and (c[0] < 0 or np.any(np.diff(c) < 0)):
        raise ValueError("cycles must be non-negative and non-decreasing")
    if len(c) and c[-1] >= 10**MAX_CYCLE_DIGITS:
        raise ValueError(f"cycles must have at most {MAX_CYCLE_DIGITS} digits, got {c[-1]}")
    a = a.astype(np.uint64)
    c = c.astype(np.int64)
    raw = open(path, "wb")  # noqa: SIM115 - closed below, also via the gzip wrapper
    out = cast(IO[bytes], gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=6,
                                        mtime=0)
               if path.suffix.lower() == ".gz" else raw)
    try:
        for lo in range(0, len(a), chunk_lines):
            hi = lo + chunk_lines
            kinds = np.where(w[lo:hi], "WRITE", "READ").tolist()
            lines = map("0x{:x} {} {}\n".format, a[lo:hi].tolist(), kinds, c[lo:hi].tolist())
            out.write("".join(lines).encode("ascii"))
    finally:
        out.close()
        raw.close()
    return path
