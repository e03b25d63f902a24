"""GradPIM's with/without-PIM answer per arbitration and placement policy, against its bound.

For each network, batch, arbitration policy (``--pim-policy``) and placement, ``compare`` runs
the iteration with the host update and with GradPIM under the default dataflow, and prints the
speedup, the ideal speedup (the baseline's backward end plus whatever PIM work cannot overlap:
``system/overlap.py``), the gain captured ((base - PIM) / (base - backward end)), the share of
the ideal gain the run reached, and the host slowdown (backward with PIM over without).  Rows
are appended to a CSV as they finish (an interrupted run resumes).  Run by hand (minutes):

    python benchmarks/bench_policies.py --out policies.csv --nets resnet18 --batches 1 8
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

from gradpimsim.system import RunConfig, compare

POLICIES = ("host-first", "pim-first", "fair", "throttled")
FIELDS = ["net", "batch", "policy", "placement", "base_ms", "pim_ms", "speedup",
          "ideal_speedup", "gain_captured", "captured_of_ideal", "host_slowdown",
          "schedule_ok", "wall_s"]


def run_case(net: str, batch: int, policy: str, placement: str) -> dict[str, object]:
    t0 = time.perf_counter()
    res = compare(RunConfig(workload=net, batch=batch, pim_policy=policy, placement=placement),
                  jobs=2)
    base, pim = res.baseline, res.pim
    assert pim is not None
    ov = res.overlap or {}
    us = base.tCK_ns / 1000.0
    return {"net": net, "batch": batch, "policy": policy, "placement": placement,
            "base_ms": round(base.cycles * us / 1000, 3),
            "pim_ms": round(pim.cycles * us / 1000, 3),
            "speedup": round(base.cycles / pim.cycles, 4),
            "ideal_speedup": ov.get("ideal_speedup"),
            "gain_captured": ov.get("gain_captured"),
            "captured_of_ideal": ov.get("captured_of_ideal"),
            "host_slowdown": ov.get("host_slowdown"),
            "schedule_ok": not base.schedule_violations and not pim.schedule_violations,
            "wall_s": round(time.perf_counter() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench_policies.csv")
    ap.add_argument("--nets", nargs="+", default=["resnet18", "resnet50"])
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    ap.add_argument("--policies", nargs="+", default=list(POLICIES), choices=POLICIES)
    ap.add_argument("--placements", nargs="+", default=["auto"])
    a = ap.parse_args()
    out = Path(a.out)
    done: set[tuple[str, ...]] = set()
    if out.exists():
        with out.open(newline="") as f:
            done = {(r["net"], r["batch"], r["policy"], r["placement"])
                    for r in csv.DictReader(f)}
    for net in a.nets:
        for batch in a.batches:
            for placement in a.placements:
                for policy in a.policies:
                    if (net, str(batch), policy, placement) in done:
                        continue
                    row = run_case(net, batch, policy, placement)
                    new = not out.exists()
                    with out.open("a", newline="") as f:
                        w = csv.DictWriter(f, FIELDS)
                        if new:
                            w.writeheader()
                        w.writerow(row)
                    print(row, flush=True)
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    print(f"{'net':<10} {'b':>3} {'policy':<11} {'placement':<15} {'base ms':>9} {'pim ms':>9} "
          f"{'speedup':>8} {'ideal':>7} {'captured':>9} {'of ideal':>9} {'host x':>7}")
    for r in rows:
        print(f"{r['net']:<10} {r['batch']:>3} {r['policy']:<11} {r['placement']:<15} "
              f"{r['base_ms']:>9} {r['pim_ms']:>9} {r['speedup']:>8} {r['ideal_speedup']:>7} "
              f"{r['gain_captured']:>9} {r['captured_of_ideal']:>9} {r['host_slowdown']:>7}")


if __name__ == "__main__":
    main()
