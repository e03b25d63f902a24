"""Iteration benchmark: `gradpimsim compare` on ResNet-50 and BERT-base (run by hand).

Each case runs in its own process (so peak memory is that case's alone) and prints the wall
time, peak RSS, the speedup, per-phase times and the traffic shares.  Targets on a 2-core
machine: ResNet-50 comparison under 2 minutes wall, BERT-base under 5, peak memory under 2 GB.

    python benchmarks/bench_iteration.py                  # every case
    python benchmarks/bench_iteration.py resnet50-1ch
    python benchmarks/bench_iteration.py --batch 1 resnet50-1ch   # a smaller batch
"""

from __future__ import annotations

import json
import resource
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


def run_case(name: str, argv: list[str]) -> None:
    """One case in a child process; prints its figures."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, __file__, "--child", "compare", *argv, *COMMON, "--out", out]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        tail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "{}"
        try:
            info = json.loads(tail)
        except json.JSONDecodeError:
            print(f"{name}: failed\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
            return
        data = json.loads((Path(out) / "results.json").read_text())
    print(f"== {name}: {wall:.1f} s wall, peak RSS {info['peak_rss_mb']:.0f} MB, "
          f"speedup {data['speedup']:.3f}x")
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


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    args = sys.argv[1:]
    batch = None
    if "--batch" in args:
        i = args.index("--batch")
        batch = args[i + 1]
        del args[i:i + 2]
    for name in args or list(CASES):
        argv = list(CASES[name])
        if batch is not None:
            if "--batch" in argv:
                argv[argv.index("--batch") + 1] = batch
            else:
                argv += ["--batch", batch]
            name = f"{name} (batch {batch})"
        run_case(name, argv)


if __name__ == "__main__":
    main()
