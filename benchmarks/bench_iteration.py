"""Iteration benchmark: `gradpimsim compare` on ResNet-50 and BERT-base (run by hand).

Each case runs `gradpimsim compare --jobs N` in its own process and prints the wall time, peak
memory, the speedup, per-phase times and the traffic shares.  Targets on a 2-core machine:
ResNet-50 comparison under 2 minutes wall, BERT-base under 5, peak memory under 2 GB.

With ``--jobs 2`` (the default) the two simulations run in two worker processes, which the
case process's own peak RSS does not include.  Each worker reports its peak (``peak_rss_mb``
in results.json), so the script prints the case process's peak, each worker's, and their sum:
the figure to hold against the 2 GB target (an upper bound: the three peaks need not coincide;
multiprocessing's resource-tracker process, ~15 MB, is not counted).  With ``--jobs 1`` one
process simulates both runs and its peak is the figure.

    python benchmarks/bench_iteration.py                  # every case
    python benchmarks/bench_iteration.py resnet50-1ch
    python benchmarks/bench_iteration.py --batch 1 resnet50-1ch   # a smaller batch
    python benchmarks/bench_iteration.py --jobs 1 resnet50-1ch    # both runs in one process
    python benchmarks/bench_iteration.py --repeat 3 resnet50-1ch  # three runs and their median

On a shared machine the wall time of the same build varies by a quarter from hour to hour, so
each run is preceded by a *machine probe*: the seconds a fixed pure-Python loop takes in a fresh
process (a busier machine gives a higher figure), to read the wall times against.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = {
    "resnet50-1ch": ["resnet50", "--batch", "32", "--channels", "1"],
    "resnet50-4ch": ["resnet50", "--batch", "32", "--channels", "4"],
    "bert-base-1ch": ["bert-base", "--channels", "1"],
}
COMMON = ["--precision", "mixed", "--optimizer", "momentum", "--memory", "ddr4-2400",
          "--no-timeline"]


def child(args: list[str]) -> None:
    from gradpimsim.cli import main

    code = main(args)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"exit": code, "peak_rss_mb": rss}), file=sys.stderr)


PROBE = "import time\nt = time.perf_counter()\ns = 0\nfor i in range(20_000_000):\n    s += i\n" \
        "print(time.perf_counter() - t)"


def probe() -> float:
    """Seconds a fixed pure-Python loop takes in a fresh process: the machine's present speed."""
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    return float(out.stdout)


def run_case(name: str, argv: list[str], jobs: int) -> float | None:
    """One case in a child process; prints its figures and returns its wall time."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, __file__, "--child", "compare", *argv, *COMMON, "--out", out,
               "--jobs", str(jobs)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        tail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "{}"
        try:
            info = json.loads(tail)
        except json.JSONDecodeError:
            print(f"{name}: failed\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
            return None
        data = json.loads((Path(out) / "results.json").read_text())
    speedup = f"{data['speedup']:.3f}x" if data["speedup"] is not None else "-"
    print(f"== {name}: {wall:.1f} s wall, {jobs} job(s), speedup {speedup}")
    print(f"   peak RSS {_peak_memory(info['peak_rss_mb'], data['runs'], jobs)}")
    for run_name, r in data["runs"].items():
        total = r["dram"]["read_bytes"] + r["dram"]["write_bytes"]
        phases = ", ".join(f"{p} {v['cycles'] * r['tCK_ns'] / 1e3:,.0f} us"
                           for p, v in r["phases"].items())
        upd = sum(t for t in [r["phases"]["update"]["cycles"]])
        print(f"   {run_name:8s} iteration {r['time_us']:,.0f} us ({r['cycles']:,} cyc); "
              f"{phases}; update share {upd / max(r['cycles'], 1):.1%}; DRAM "
              f"{total / 2**30:.2f} GiB ({r['dram']['read_bytes'] / max(total, 1):.0%} read), "
              f"{r['dram']['bandwidth_gbs']:.1f} GB/s; energy "
              f"{r['energy_nj'].get('total', 0) / 1e6:.2f} mJ; sim wall {r['wall_s']:.1f} s")
    return wall


def _peak_memory(parent_mb: float, runs: dict[str, dict], jobs: int) -> str:
    """The case's peak memory: one process, or the parent plus each worker."""
    if jobs == 1:
        return f"{parent_mb:,.0f} MB (one process: both runs)"
    workers = {name: r.get("peak_rss_mb") or 0.0 for name, r in runs.items()}
    total = parent_mb + sum(workers.values())
    parts = ", ".join(f"{name} worker {mb:,.0f}" for name, mb in workers.items())
    return f"{total:,.0f} MB in all (parent {parent_mb:,.0f}, {parts}; sum of the peaks)"


def _option(args: list[str], flag: str) -> str | None:
    """Remove ``flag VALUE`` from ``args``; the value, or None if absent."""
    if flag not in args:
        return None
    i = args.index(flag)
    value = args[i + 1]
    del args[i:i + 2]
    return value


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    args = sys.argv[1:]
    batch = _option(args, "--batch")
    jobs = int(_option(args, "--jobs") or 2)
    repeat = int(_option(args, "--repeat") or 1)
    for name in args or list(CASES):
        argv = list(CASES[name])
        if batch is not None:
            if "--batch" in argv:
                argv[argv.index("--batch") + 1] = batch
            else:
                argv += ["--batch", batch]
            name = f"{name} (batch {batch})"
        walls = []
        for _ in range(repeat):
            print(f"-- machine probe {probe():.2f} s")
            wall = run_case(name, argv, jobs)
            if wall is not None:
                walls.append(wall)
        if repeat > 1 and walls:
            print(f"== {name}: median {statistics.median(walls):.1f} s wall over {len(walls)} "
                  f"runs ({', '.join(f'{w:.1f}' for w in walls)})")


if __name__ == "__main__":
    main()
