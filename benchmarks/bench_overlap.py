"""Arbitration policies side by side: a GradPIM update beside a host read stream on one channel.

For each host placement (PIM alone, host on the other rank, host on PIM's rank) and each policy,
prints when PIM finished and when the host's last read finished, as ratios to each running
alone, and whether every host completion is exactly the one without PIM.  The bound each figure
is read against: PIM alone (1.00x) and the host alone (1.00x); ``throttled`` promises the host
exactly 1.00x, ``fair`` bounds each side's wait for a bank by ``--wait-bound`` cycles.

    python benchmarks/bench_overlap.py [--params 65536] [--reads 4000] [--wait-bound 1000 4000]
"""

from __future__ import annotations

import argparse
import time

from gradpimsim.bench.arbitration import run_case
from gradpimsim.config import load_config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=int, default=65536)
    ap.add_argument("--reads", type=int, default=4000)
    ap.add_argument("--ncols", type=int, default=16)
    ap.add_argument("--wait-bound", type=int, nargs="+", default=[1000, 4000, 16000])
    a = ap.parse_args()
    cfg = load_config("ddr4-2400", ranks=2)
    kw = {"params": a.params, "reads": a.reads, "ncols": a.ncols, "cfg": cfg}
    pim_alone = run_case("none", **kw).pim_end
    print(f"PIM alone: {pim_alone:,} cycles ({a.params:,} params, momentum, mixed)")
    policies = [("host-first", None), ("pim-first", None), ("throttled", None)]
    policies += [("fair", n) for n in a.wait_bound]
    print(f"{'host':<11} {'policy':<12} {'PIM end':>10} {'PIM x':>7} {'host end':>10} "
          f"{'host x':>7} {'host same':>9} {'wall s':>7}")
    for host in ("other-rank", "same-rank"):
        alone = run_case(host, pim=False, **kw)
        print(f"{host:<11} {'(host alone)':<12} {'':>10} {'':>7} {alone.host_end:>10,} "
              f"{1.0:>7.3f}")
        for policy, bound in policies:
            t0 = time.perf_counter()
            r = run_case(host, policy, wait_bound=bound, **kw)
            wall = time.perf_counter() - t0
            name = policy if bound is None else f"fair:{bound}"
            print(f"{host:<11} {name:<12} {r.pim_end:>10,} {r.pim_end / pim_alone:>7.3f} "
                  f"{r.host_end:>10,} {r.host_end / alone.host_end:>7.3f} "
                  f"{str(r.host_dones == alone.host_dones):>9} {wall:>7.2f}")


if __name__ == "__main__":
    main()
