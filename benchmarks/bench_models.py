"""Per-network iteration time, update share and GradPIM speedup, new model against 0.1's.

For each network and batch, ``compare`` runs the iteration with the host update and with
GradPIM, under the current default dataflow (``--model new``: fusion full, autograd order, the
``small`` NPU) and under gradpimsim 0.1's model (``--model legacy``: no fusion, legacy order,
the ``large`` NPU).  Rows are appended to a CSV as they finish, so an interrupted run resumes
where it stopped; the table is printed from the CSV.  Run by hand (minutes to hours):

    python benchmarks/bench_models.py --out models.csv
    python benchmarks/bench_models.py --out models.csv --nets resnet18 --batches 1 8

Columns: base_ms / pim_ms (iteration time), update_share (the baseline's update phase end
minus its backward end, over the iteration: the part of the iteration the update adds),
speedup, gain_captured ((base - pim) / (base - baseline backward end)), traffic (GiB moved by
the baseline), schedule_ok (both runs verified hazard-free).
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

from gradpimsim.system import RunConfig, compare

NETS = {"resnet18": None, "resnet50": None, "mobilenetv2": None, "bert-base": 128,
        "gpt2": 128}
FIELDS = ["model", "net", "batch", "seq_len", "base_ms", "pim_ms", "backward_end_ms",
          "update_share", "speedup", "gain_captured", "traffic_gib", "schedule_ok", "wall_s"]


def run_case(model: str, net: str, batch: int) -> dict[str, object]:
    seq = NETS[net]
    kw = {"workload": net, "batch": batch, "seq_len": seq}
    run = RunConfig.legacy(**kw) if model == "legacy" else RunConfig(**kw)
    t0 = time.perf_counter()
    res = compare(run, jobs=2)
    base, pim = res.baseline, res.pim
    assert pim is not None
    us = base.tCK_ns / 1000.0
    bwd_end = base.phases["backward"]["end"]
    return {"model": model, "net": net, "batch": batch, "seq_len": seq or "",
            "base_ms": round(base.cycles * us / 1000, 3),
            "pim_ms": round(pim.cycles * us / 1000, 3),
            "backward_end_ms": round(bwd_end * us / 1000, 3),
            "update_share": round((base.cycles - bwd_end) / base.cycles, 4),
            "speedup": round(base.cycles / pim.cycles, 4),
            "gain_captured": round((base.cycles - pim.cycles) / max(base.cycles - bwd_end, 1), 4),
            "traffic_gib": round((base.dram["read_bytes"] + base.dram["write_bytes"]) / 2**30, 3),
            "schedule_ok": not base.schedule_violations and not pim.schedule_violations,
            "wall_s": round(time.perf_counter() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench_models.csv")
    ap.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32])
    ap.add_argument("--models", nargs="+", default=["new", "legacy"], choices=["new", "legacy"])
    args = ap.parse_args()
    out = Path(args.out)
    done = set()
    if out.exists():
        with out.open() as fh:
            done = {(r["model"], r["net"], r["batch"]) for r in csv.DictReader(fh)}
    for net in args.nets:
        for batch in args.batches:
            for model in args.models:
                if (model, net, str(batch)) in done:
                    continue
                row = run_case(model, net, batch)
                new = not out.exists()
                with out.open("a", newline="") as fh:
                    w = csv.DictWriter(fh, fieldnames=FIELDS)
                    if new:
                        w.writeheader()
                    w.writerow(row)
                print(row, flush=True)
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    print(f"{'net':12s} {'batch':>5s} {'model':7s} {'base ms':>10s} {'PIM ms':>10s} "
          f"{'upd share':>9s} {'speedup':>8s} {'captured':>8s} {'GiB':>7s}")
    for r in rows:
        print(f"{r['net']:12s} {r['batch']:>5s} {r['model']:7s} {float(r['base_ms']):10.2f} "
              f"{float(r['pim_ms']):10.2f} {float(r['update_share']):9.1%} "
              f"{float(r['speedup']):7.3f}x {float(r['gain_captured']):8.1%} "
              f"{float(r['traffic_gib']):7.3f}")


if __name__ == "__main__":
    main()
