"""Seeded request-trace generator for benchmarks and DRAMsim3 side-by-side runs.

    python benchmarks/gen_traces.py OUTDIR [--n 1000000] [--seed 1] [--gap 1] [--gz]

Writes three DRAMsim3-style request traces (``0x<addr> READ|WRITE <cycle>``) and prints their
paths:

* ``seq_read_<n>.trace``: ``n`` reads of consecutive 64 B bursts from address 0, one every
  ``gap`` cycles: the open-page best case, bounded by tCCD and the data bus.
* ``random_rw80_<n>.trace``: ``n`` requests, 80 % reads / 20 % writes, uniformly random 64 B-aligned
  addresses over the 8 GiB of one rank of a DDR4-2400 x8 channel, one every ``gap`` cycles: the
  row-miss worst case, bounded by tRC/tFAW.
* ``mixed_<n>.trace``: ``n`` requests, half of them the next burst of one of four sequential
  streams (three reading, one writing, each in its own region) and half uniformly random 80/20
  ones, drawn in a seeded random order: DMA streams with random traffic cutting across them.

The same ``--seed`` always gives byte-identical files (gzip output has a fixed timestamp), so a
benchmark result can be reproduced from its command line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gradpimsim.config import preset
from gradpimsim.trace.requests import write_request_trace

#: The channel the random trace covers: one rank of 8Gb x8 DDR4-2400 (8 GiB).
RANDOM_CONFIG = "ddr4-2400-x8"


def sequential_reads(n: int, gap: int = 1, burst_bytes: int = 64) -> tuple[np.ndarray, ...]:
    """Addresses, is_write and cycles of ``n`` reads of consecutive bursts."""
    addrs = np.arange(n, dtype=np.uint64) * np.uint64(burst_bytes)
    return addrs, np.zeros(n, dtype=bool), np.arange(n, dtype=np.int64) * gap


def random_mix(
    n: int, seed: int, gap: int = 1, write_fraction: float = 0.2,
    capacity: int | None = None, burst_bytes: int = 64,
) -> tuple[np.ndarray, ...]:
    """Addresses, is_write and cycles of ``n`` uniformly random burst-aligned requests."""
    if capacity is None:
        capacity = preset(RANDOM_CONFIG).org.channel_bytes
    rng = np.random.default_rng(seed)
    bursts = rng.integers(0, capacity // burst_bytes, size=n, dtype=np.uint64)
    is_write = rng.random(n) < write_fraction
    return bursts * np.uint64(burst_bytes), is_write, np.arange(n, dtype=np.int64) * gap


def mixed(n: int, seed: int, gap: int = 1, capacity: int | None = None,
          burst_bytes: int = 64) -> tuple[np.ndarray, ...]:
    """Addresses, is_write and cycles of ``n`` requests: half stream bursts (four streams, the
    last one writing, each starting at its quarter of the capacity), half random 80/20."""
    if capacity is None:
        capacity = preset(RANDOM_CONFIG).org.channel_bytes
    rng = np.random.default_rng(seed)
    addrs, is_write, cycles = random_mix(n, seed + 1, gap, capacity=capacity,
                                         burst_bytes=burst_bytes)
    streamed = rng.random(n) < 0.5
    stream = rng.integers(0, 4, size=n)
    # each stream's k-th burst: its running count among the requests given to it
    for s in range(4):
        mine = streamed & (stream == s)
        k = np.cumsum(mine) - 1
        base = np.uint64(s * (capacity // 4))
        addrs = np.where(mine, base + k.astype(np.uint64) * np.uint64(burst_bytes), addrs)
        is_write = np.where(mine, s == 3, is_write)
    return addrs.astype(np.uint64), is_write.astype(bool), cycles


def generate(outdir: Path, n: int, seed: int, gap: int, gz: bool = False) -> list[Path]:
    """Write the three traces into ``outdir``; returns their paths."""
    outdir.mkdir(parents=True, exist_ok=True)
    suffix = ".trace.gz" if gz else ".trace"
    seq = write_request_trace(outdir / f"seq_read_{n}{suffix}", *sequential_reads(n, gap))
    rnd = write_request_trace(outdir / f"random_rw80_{n}{suffix}", *random_mix(n, seed, gap))
    mix = write_request_trace(outdir / f"mixed_{n}{suffix}", *mixed(n, seed, gap))
    return [seq, rnd, mix]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", type=Path, help="directory for the traces (created if needed)")
    parser.add_argument("--n", type=int, default=1_000_000, help="requests per trace")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random trace")
    parser.add_argument("--gap", type=int, default=1, help="cycles between request arrivals")
    parser.add_argument("--gz", action="store_true", help="write gzip-compressed traces")
    args = parser.parse_args(argv)
    if args.n < 0:
        parser.error("--n must be >= 0")
    if args.gap < 0:
        parser.error("--gap must be >= 0")
    for path in generate(args.outdir, args.n, args.seed, args.gap, args.gz):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
