"""Request-trace reader/writer: exact values, exact error lines, chunking, gzip.

The vectorised reader is checked against a deliberately naive line-by-line reference parser on
randomly mutated traces, so any disagreement about what is valid or where the first error is shows
up as a failing seed.
"""

from __future__ import annotations

import gzip
import importlib.util
import re
import time
import types
from pathlib import Path

import numpy as np
import pytest

from gradpimsim.trace.requests import (
    RequestChunk,
    TraceError,
    iter_request_chunks,
    read_request_trace,
    write_request_trace,
)


def _write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def _reference(data: bytes) -> tuple[list[tuple[int, bool, int]], int | None]:
    """Naive parser: (requests, 1-based line of the first bad line or None)."""
    out: list[tuple[int, bool, int]] = []
    prev = 0
    for no, line in enumerate(data.split(b"\n"), start=1):
        fields = line.split(b"#", 1)[0].split()
        if not fields:
            continue
        if len(fields) != 3 or not re.fullmatch(rb"0[xX][0-9a-fA-F]{1,16}", fields[0]):
            return out, no
        if fields[1].lower() not in (b"read", b"write"):
            return out, no
        if not re.fullmatch(rb"\d{1,18}", fields[2]):
            return out, no
        cycle = int(fields[2])
        if cycle < prev:
            return out, no
        prev = cycle
        out.append((int(fields[0], 16), fields[1].lower() == b"write", cycle))
    return out, None


def _lines(n: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    addrs = rng.integers(0, 2**40, n) * 64
    cycles = np.cumsum(rng.integers(0, 3, n))
    kinds = rng.choice([b"READ", b"WRITE", b"read", b"write", b"Read"], n)
    rows = zip(addrs.tolist(), kinds, cycles.tolist(), strict=True)
    return [b"0x%x %s %d" % (a, k, c) for a, k, c in rows]


# ---------------------------------------------------------------- valid input


def test_basic_values_and_formats(tmp_path: Path) -> None:
    text = (
        "# header comment\n"
        "0x1000 READ 0\n"
        "\n"
        "0X1F40\tWRITE\t\t5   \n"
        "   0xdeadBEEF read 5  # trailing comment\n"
        "0xffffffffffffffff write 123456789012345678\r\n"
        "0x40   READ   123456789012345679"  # no final newline
    )
    r = read_request_trace(_write(tmp_path / "t.trace", text))
    assert r.addr.dtype == np.uint64 and r.cycle.dtype == np.int64 and r.is_write.dtype == bool
    assert r.addr.tolist() == [0x1000, 0x1F40, 0xDEADBEEF, 2**64 - 1, 0x40]
    assert r.is_write.tolist() == [False, True, False, True, False]
    assert r.cycle.tolist() == [0, 5, 5, 123456789012345678, 123456789012345679]
    assert r.lines.tolist() == [2, 4, 5, 6, 7]


def test_empty_and_comment_only(tmp_path: Path) -> None:
    assert len(read_request_trace(_write(tmp_path / "e.trace", ""))) == 0
    assert list(iter_request_chunks(_write(tmp_path / "c.trace", "# x\n\n  # y\n"))) == []


def test_chunks_respect_line_count_and_first_line(tmp_path: Path) -> None:
    lines = _lines(1000, 1)
    lines[10:10] = [b"# comment", b""]
    p = _write(tmp_path / "t.trace", b"\n".join(lines) + b"\n")
    chunks = list(iter_request_chunks(p, chunk_lines=100))
    assert [c.first_line for c in chunks] == list(range(1, 1002, 100))
    assert len(chunks[0]) == 98 and all(len(c) == 100 for c in chunks[1:-1])
    expected, bad = _reference(b"\n".join(lines))
    assert bad is None
    got = np.concatenate([c.addr for c in chunks])
    assert got.tolist() == [a for a, _, _ in expected]
    assert chunks[0].lines[:12].tolist() == [*range(1, 11), *range(13, 15)]


@pytest.mark.parametrize("chunk_lines", [1, 2, 3, 7, 65536])
def test_chunk_size_does_not_change_result(tmp_path: Path, chunk_lines: int) -> None:
    lines = _lines(50, 2)
    p = _write(tmp_path / "t.trace", b"\n".join(lines))
    chunks = list(iter_request_chunks(p, chunk_lines=chunk_lines))
    assert all(len(c) <= chunk_lines for c in chunks)
    cyc = np.concatenate([c.cycle for c in chunks])
    assert cyc.tolist() == [c for _, _, c in _reference(b"\n".join(lines))[0]]


def test_round_trip_plain_and_gz(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 200_003  # several chunks, last one partial
    addrs = rng.integers(0, 2**33, n, dtype=np.uint64) * np.uint64(64)
    is_write = rng.random(n) < 0.2
    cycles = np.cumsum(rng.integers(0, 4, n))
    for name in ("rt.trace", "rt.trace.gz"):
        path = write_request_trace(tmp_path / name, addrs, is_write, cycles)
        r = read_request_trace(path)
        np.testing.assert_array_equal(r.addr, addrs)
        np.testing.assert_array_equal(r.is_write, is_write)
        np.testing.assert_array_equal(r.cycle, cycles)
    assert (tmp_path / "rt.trace.gz").read_bytes()[:2] == b"\x1f\x8b"
    assert gzip.decompress((tmp_path / "rt.trace.gz").read_bytes()) == (
        tmp_path / "rt.trace").read_bytes()


def test_gzip_detected_by_magic_not_suffix(tmp_path: Path) -> None:
    p = tmp_path / "compressed.txt"
    p.write_bytes(gzip.compress(b"0x40 READ 1\n0x80 WRITE 2\n"))
    assert read_request_trace(p).addr.tolist() == [0x40, 0x80]


def test_gz_writer_is_reproducible(tmp_path: Path) -> None:
    args = (np.arange(10) * 64, np.zeros(10, bool), np.arange(10))
    a = write_request_trace(tmp_path / "a.gz", *args).read_bytes()
    b = write_request_trace(tmp_path / "b.gz", *args).read_bytes()
    assert a == b


def test_writer_rejects_what_reader_would(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="non-decreasing"):
        write_request_trace(tmp_path / "x", [0, 64], [False, False], [5, 4])
    with pytest.raises(ValueError, match="non-negative"):
        write_request_trace(tmp_path / "x", [-64], [False], [0])
    with pytest.raises(ValueError, match="at most 18 digits"):
        write_request_trace(tmp_path / "x", [0], [False], [10**18])
    with pytest.raises(ValueError, match="equal length"):
        write_request_trace(tmp_path / "x", [0, 64], [False], [0, 1])


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("0x40 READ", "got 2 field(s)"),
        ("0x40 READ 5 6", "got 4 field(s)"),
        ("0x4g READ 5", "bad address '0x4g'"),
        ("40 READ 5", "bad address '40'"),
        ("0x READ 5", "bad address '0x'"),
        ("0x11112222333344445 READ 5", "bad address"),
        ("0x40 FETCH 5", "unknown request type 'FETCH'"),
        ("0x40 READS 5", "unknown request type 'READS'"),
        ("0x40 REA 5", "unknown request type 'REA'"),
        ("0x40 READ -5", "negative cycle -5"),
        ("0x40 READ 5.5", "bad cycle '5.5'"),
        ("0x40 READ 0x5", "bad cycle '0x5'"),
        ("0x40 READ 1234567890123456789", "bad cycle"),
        ("0x40 READ 3", "cycle 3 is earlier than the previous request's cycle 4"),
    ],
)
def test_error_points_at_first_bad_line_mid_chunk(tmp_path: Path, bad: str, message: str) -> None:
    good = [f"0x{64 * i:x} READ {4 if i >= 40 else i // 10}" for i in range(5000)]
    lines = good[:3000] + [bad] + good[3000:3100] + ["garbage"]
    p = _write(tmp_path / "bad.trace", "\n".join(lines) + "\n")
    with pytest.raises(TraceError) as info:
        list(iter_request_chunks(p, chunk_lines=65536))
    assert info.value.line == 3001
    assert message in info.value.message
    assert str(info.value).startswith(f"{p}:3001: ")


@pytest.mark.parametrize("where", [99, 100, 101, 200, 201])
def test_error_line_across_chunk_boundaries(tmp_path: Path, where: int) -> None:
    lines = [f"0x40 READ {i}" for i in range(300)]
    lines[where - 1] = f"0x40 READ {where - 3}"  # goes back in time
    p = _write(tmp_path / "b.trace", "\n".join(lines))
    with pytest.raises(TraceError) as info:
        for _ in iter_request_chunks(p, chunk_lines=100):
            pass
    assert info.value.line == where
    assert "earlier than the previous" in info.value.message


def test_decreasing_cycle_at_chunk_start_uses_previous_chunk(tmp_path: Path) -> None:
    p = _write(tmp_path / "b.trace", "0x0 READ 10\n0x0 READ 9\n")
    with pytest.raises(TraceError, match=r":2: cycle 9 is earlier .* cycle 10"):
        list(iter_request_chunks(p, chunk_lines=1))


def test_malformed_gz(tmp_path: Path) -> None:
    data = gzip.compress(b"0x40 READ 1\n" * 100_000)
    p = _write(tmp_path / "t.trace.gz", data[: len(data) // 2])
    with pytest.raises(TraceError, match="corrupt or truncated"):
        list(iter_request_chunks(p))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="cannot open"):
        list(iter_request_chunks(tmp_path / "nope.trace"))


_MUTATIONS = [
    b"", b"# c", b"0x40 READ", b"0x40 READ 1 2", b"0xZZ READ 1", b"0x40 WRIT 1",
    b"0x40 READ -1", b"0x40 READ 0", b"  \t ", b"0x40 write 99999999999", b"0x40 READ 1e3",
    b"\x00\x01", b"0x40\x0bREAD\x0c7", b"0x40 READ\x01 7", b"0x40 R\xffAD 7",
    b"0x123456789abcdef0 READ 7",
]


@pytest.mark.parametrize("seed", range(12))
def test_matches_reference_parser_on_mutated_traces(tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    lines = _lines(3000, seed)
    for _ in range(int(rng.integers(0, 4))):
        pos = int(rng.integers(0, len(lines)))
        lines[pos] = _MUTATIONS[int(rng.integers(0, len(_MUTATIONS)))]
    data = b"\n".join(lines)
    p = _write(tmp_path / "m.trace", data)
    expected, bad_line = _reference(data)
    chunk_lines = int(rng.choice([1, 5, 64, 1000, 65536]))
    got: list[RequestChunk] = []
    if bad_line is None:
        got = list(iter_request_chunks(p, chunk_lines=chunk_lines))
    else:
        with pytest.raises(TraceError) as info:
            for chunk in iter_request_chunks(p, chunk_lines=chunk_lines):
                got.append(chunk)
        assert info.value.line == bad_line, info.value
    n = sum(len(c) for c in got)
    flat = [(int(a), bool(w), int(c)) for ch in got
            for a, w, c in zip(ch.addr, ch.is_write, ch.cycle, strict=True)]
    assert flat == expected[:n]


# ---------------------------------------------------------------- speed (reported, not asserted)


def test_speed_sanity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    n = 300_000
    path = write_request_trace(tmp_path / "s.trace", np.arange(n) * 64, np.zeros(n, bool),
                               np.arange(n))
    start = time.perf_counter()
    total = sum(len(c) for c in iter_request_chunks(path))
    elapsed = time.perf_counter() - start
    assert total == n
    with capsys.disabled():
        print(f"\n[request trace parse: {n / elapsed:,.0f} lines/s]")


# ---------------------------------------------------------------- benchmarks/gen_traces.py


def _gen_traces_module() -> types.ModuleType:
    """``benchmarks/gen_traces.py`` loaded by path (``benchmarks`` is not a package)."""

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gen_traces.py"
    spec = importlib.util.spec_from_file_location("gen_traces", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gen_traces_seeded_and_readable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gen = _gen_traces_module()
    assert gen.main([str(tmp_path / "a"), "--n", "5000", "--seed", "7", "--gap", "2"]) == 0
    printed = capsys.readouterr().out.split()
    names = ["seq_read_5000.trace", "random_rw80_5000.trace", "mixed_5000.trace"]
    assert [Path(p).name for p in printed] == names
    gen.main([str(tmp_path / "b"), "--n", "5000", "--seed", "7", "--gap", "2"])
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    seq = read_request_trace(tmp_path / "a" / "seq_read_5000.trace")
    assert seq.addr.tolist() == list(range(0, 5000 * 64, 64)) and not seq.is_write.any()
    assert seq.cycle.tolist() == list(range(0, 10000, 2))
    rnd = read_request_trace(tmp_path / "a" / "random_rw80_5000.trace")
    assert 0.17 < rnd.is_write.mean() < 0.23
    assert (rnd.addr % 64 == 0).all() and int(rnd.addr.max()) < 8 * 2**30
    assert int(rnd.addr.max()) > 7 * 2**30  # covers the whole rank
    # mixed: about half the requests walk four streams (the fourth writing) in order
    mix = read_request_trace(tmp_path / "a" / "mixed_5000.trace")
    assert mix.cycle.tolist() == list(range(0, 10000, 2))
    streamed = 0
    for s, base in enumerate(range(0, 8 * 2**30, 2 * 2**30)):
        nxt = base  # the stream's next burst; a random request may land in its region too
        for addr, w in zip(mix.addr.tolist(), mix.is_write.tolist(), strict=True):
            if addr == nxt:
                assert w == (s == 3)
                nxt += 64
        streamed += (nxt - base) // 64
    assert 0.45 < streamed / 5000 < 0.55


@pytest.mark.parametrize("pair", [("0x40 READ 20 6", "0x80 READ"),
                                  ("0x40 READ", "0x80 READ 21 6"),
                                  ("0x40 READ 20 21 22", "")])
def test_token_count_that_only_adds_up_is_still_an_error(tmp_path: Path,
                                                          pair: tuple[str, str]) -> None:
    """Three tokens a line on average (4 + 2, 5 + 0) is not three on every line (the values
    are in order, so the only error is the count)."""
    lines = [f"0x{64 * i:x} READ {i}" for i in range(50)]
    lines[20:22] = pair
    p = _write(tmp_path / "t.trace", "\n".join(lines) + "\n")
    with pytest.raises(TraceError) as info:
        list(iter_request_chunks(p, chunk_lines=65536))
    assert info.value.line == 21
    assert "field(s)" in info.value.message
