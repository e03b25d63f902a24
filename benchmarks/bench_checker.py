"""Offline checker throughput: commands per second over a long legal command trace.

    python benchmarks/bench_checker.py [--commands 1000000] [--config ddr4-2400] [--seed 1]

The stream comes from a deliberately simple, conservative generator (below), not from the
controller, so the benchmark needs nothing but the checker and the trace writer: each request
activates a random bank of a random rank, issues 1-8 reads or writes to the open row at tCCD_L,
and precharges; the next request waits until every same-bank and rank rule is met with room to
spare, and a REF is issued every tREFI with all banks closed.  The script asserts the stream is
legal (so it doubles as a smoke test) and prints the median of three timed runs and the peak
memory of one run.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

from gradpimsim.checker import check_trace
from gradpimsim.config import MemoryConfig, preset
from gradpimsim.dram.commands import Cmd, Command
from gradpimsim.trace.cmdtrace import CommandTraceWriter


def legal_stream(cfg: MemoryConfig, n: int, seed: int = 1) -> Iterator[Command]:
    """About ``n`` commands of a conservative, legal single-channel schedule."""
    rng = random.Random(seed)
    t_ = cfg.timing
    o = cfg.org
    bl2 = o.burst_length // 2
    wl = t_.AL + t_.CWL
    rl = t_.AL + t_.CL
    col_gap = max(t_.tCCD_L, bl2)
    cols = o.columns // o.burst_length
    t = 0
    next_ref = t_.tREFI
    emitted = 0
    while emitted < n:
        if t >= next_ref:
            for rk in range(o.ranks):
                yield Command(t, Cmd.REF, 0, rk, -1, -1, -1, -1)
                t += 1
                emitted += 1
            t += t_.tRFC
            next_ref += t_.tREFI
            continue
        rk = rng.randrange(o.ranks)
        bg = rng.randrange(o.bankgroups)
        bk = rng.randrange(o.banks_per_group)
        row = rng.randrange(o.rows)
        is_read = rng.random() < 0.6
        k = rng.randint(1, 8)
        t0 = t
        yield Command(t0, Cmd.ACT, 0, rk, bg, bk, row, -1)
        tc = t0 + t_.tRCD - t_.AL
        start = rng.randrange(cols)
        for i in range(k):
            kind = Cmd.RD if is_read else Cmd.WR
            yield Command(tc, kind, 0, rk, bg, bk, row, (start + i) % cols)
            last = tc
            tc += col_gap
        if is_read:
            t_pre = max(t0 + t_.tRAS, last + t_.AL + t_.tRTP)
        else:
            t_pre = max(t0 + t_.tRAS, last + wl + bl2 + t_.tWR)
        yield Command(t_pre, Cmd.PRE, 0, rk, bg, bk, -1, -1)
        emitted += k + 2
        # Next request: tRP/tRC for any bank, plus room for bus turnaround and rank switch.
        t = max(t_pre + t_.tRP, t0 + t_.tRC, last + rl + bl2 + 2)


def run(path: Path, cfg: MemoryConfig) -> float:
    start = time.perf_counter()
    report = check_trace(path, cfg)
    elapsed = time.perf_counter() - start
    if not report.ok:
        print("generated stream is not legal:", *map(str, report.violations[:5]), sep="\n  ")
        sys.exit(1)
    return report.commands / elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commands", type=int, default=1_000_000)
    ap.add_argument("--config", default="ddr4-2400")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    cfg = preset(args.config)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.trace"
        with CommandTraceWriter(path) as w:
            w.write_many(legal_stream(cfg, args.commands, args.seed))
        size_mb = path.stat().st_size / 1e6
        rates = [run(path, cfg) for _ in range(args.runs)]
        tracemalloc.start()
        check_trace(path, cfg)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    print(f"config {cfg.name}, {w.count:,} commands ({size_mb:.1f} MB trace)")
    print(f"check_trace: {statistics.median(rates):,.0f} commands/s "
          f"(median of {args.runs}: {', '.join(f'{r:,.0f}' for r in rates)})")
    print(f"peak traced memory: {peak / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
