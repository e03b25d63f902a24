"""Trace-replay throughput and memory (issue 2's benchmark), run by hand.

    python benchmarks/bench_replay.py [--n 1000000] [--repeat 3] [--config ddr4-2400]

Generates (seeded, via gen_traces.py) a sequential read trace and a random 80% read / 20% write
trace of ``n`` requests each, replays each through the full path a user runs (streamed parsing,
address decoding, controllers, statistics; no command sink), and prints requests simulated per
wall-second (median of ``--repeat`` runs) and peak memory (tracemalloc peak of the replay plus
the process's maximum resident set size).  Targets on a 2-core machine: >= 500,000 requests/s
sequential, >= 120,000 random, < 500 MB.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_traces import generate  # noqa: E402

from gradpimsim.config import load_config  # noqa: E402
from gradpimsim.trace.replay import replay_trace  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--config", default="ddr4-2400")
    args = ap.parse_args()
    cfg = load_config(args.config)
    with tempfile.TemporaryDirectory() as tmp:
        paths = generate(Path(tmp), args.n, seed=1, gap=1)
        for path in paths:
            rates = []
            stats = {}
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                stats = replay_trace(path, cfg).stats
                rates.append(stats["requests"] / (time.perf_counter() - t0))
            tracemalloc.start()
            replay_trace(path, cfg)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"{path.name}: {statistics.median(rates):,.0f} requests/s "
                  f"(median of {args.repeat}: {', '.join(f'{r:,.0f}' for r in rates)}); "
                  f"tracemalloc peak {peak / 2**20:.1f} MiB, max RSS {rss:.0f} MiB; "
                  f"simulated {stats['completion_cycle']:,} cycles, "
                  f"{stats['bandwidth_gbs']:.2f} GB/s, row hits {100 * stats['row_hit_rate']:.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
