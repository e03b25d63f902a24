"""GradPIM scheduler cost per command: standalone, shared (no host), and a with-PIM iteration.

Run by hand; prints figures, asserts nothing.  Each case runs in a child process, so an A/B
comparison of two source trees can interleave them on a busy machine (the only fair way to
compare speed on shared cores): ``--tree`` names each tree (``PYTHONPATH``), the runs alternate
tree by tree, and the summary gives medians and the new/old ratio of wall time per command.

    python benchmarks/bench_pim_shared.py                        # every case, this tree, once
    python benchmarks/bench_pim_shared.py --cases iter --repeat 3 \\
        --tree old=/tmp/base --tree new=.                        # A/B, interleaved

Cases:

- ``update``: standalone :class:`~gradpimsim.pim.engine.PimEngine`, 2^20 parameters, momentum,
  mixed fp16, DDR4-2400, lazy program (instruction generation counts, as in an iteration).
- ``shared``: the same program on a shared-mode :class:`~gradpimsim.pim.channel.PimChannel`
  behind a :class:`~gradpimsim.arbiter.shared_channel.SharedChannel` with no host traffic.
- ``mixed``: the same, with 1 MiB of host reads and 1 MiB of host writes (bulk requests,
  submitted at cycle 0) through the same channel.
- ``iter``: ``simulate(RunConfig(workload="mlp-small", batch=128, channels=1, pim=True,
  precision="mixed", optimizer="momentum"))``: the update overlaps the backward pass, so PIM
  and host commands interleave (about 380k PIM and 100k host commands).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

CASES = ("update", "shared", "mixed", "iter")


def _program(params: int):  # noqa: ANN202 - child-only helper
    from gradpimsim.config import preset
    from gradpimsim.config.training import OptimizerConfig, precision
    from gradpimsim.host.allocator import Allocator
    from gradpimsim.pim.kernels import UpdateTarget, build_program
    from gradpimsim.pim.layout import ColocatedPolicy, update_tensors

    cfg = preset("ddr4-2400")
    opt = OptimizerConfig("momentum", lr=0.01, momentum=0.9)
    prec = precision("mixed")
    alloc = Allocator(cfg, ColocatedPolicy())
    placements = alloc.place_group("p", update_tensors(params, opt, prec))
    program = build_program([UpdateTarget("p", params, placements)], opt, prec, cfg, step=2,
                            amap=alloc.amap, lazy=True)
    return cfg, program, alloc


def _host_traffic(cfg, alloc, ctrl, nbytes: int) -> int:  # noqa: ANN001
    """Submit ``nbytes`` of reads then writes at cycle 0 on channel 0; returns requests."""
    from gradpimsim.controller.bulk import bulk_requests
    from gradpimsim.dram.address_map import AddressMap

    amap = AddressMap(cfg)
    base = alloc.amap.capacity // 2 if hasattr(alloc.amap, "capacity") else 1 << 30
    n = 0
    for is_write in (False, True):
        for ch, reqs in enumerate(bulk_requests(cfg, amap, base + (nbytes if is_write else 0),
                                                nbytes, is_write, 0, callback=None, tag=None)):
            if ch == 0:
                ctrl.submit_many(reqs)
                n += len(reqs)
    return n


def child(case: str, params: int) -> dict:
    """Run one case here; returns its figures."""
    if case == "update":
        from gradpimsim.pim.engine import PimEngine

        cfg, program, _ = _program(params)
        t0 = time.perf_counter()
        res = PimEngine(cfg).run(program)
        wall = time.perf_counter() - t0
        return {"wall_s": wall, "pim_cmds": res.commands, "host_cmds": 0, "cycles": res.cycles}
    if case in ("shared", "mixed"):
        from gradpimsim.arbiter.shared_channel import SharedChannel

        cfg, program, alloc = _program(params)
        units = {(r, bg): p for (c, r, bg), p in program.units.items() if c == 0}
        pro = {r: s for (c, r), s in program.prologue.items() if c == 0}
        t0 = time.perf_counter()
        sh = SharedChannel.build(cfg, channel=0)
        if case == "mixed":
            _host_traffic(cfg, alloc, sh.ctrl, 1 << 20)
        sh.add_program(units, pro)
        end = sh.drain()
        wall = time.perf_counter() - t0
        pim_cmds = sum(sh.pim.counts)
        host_cmds = sum(sh.ctrl.cmd_counts)
        return {"wall_s": wall, "pim_cmds": pim_cmds, "host_cmds": host_cmds, "cycles": end}
    if case == "iter":
        from gradpimsim.system.config import RunConfig
        from gradpimsim.system.simulate import simulate

        run = RunConfig(workload="mlp-small", batch=128, channels=1, pim=True,
                        precision="mixed", optimizer="momentum")
        t0 = time.perf_counter()
        r = simulate(run)
        wall = time.perf_counter() - t0
        counts = r.dram["commands"]
        pim = sum(v for k, v in counts.items() if k.startswith("PIM_"))
        return {"wall_s": wall, "pim_cmds": pim, "host_cmds": sum(counts.values()) - pim,
                "cycles": r.cycles}
    raise ValueError(case)


def run_child(tree: str, case: str, params: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(Path(tree).resolve()))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", case,
           "--params", str(params)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tree)
    if proc.returncode:
        raise RuntimeError(f"{tree} {case} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    ap.add_argument("--params", type=int, default=1 << 20)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--tree", action="append", default=[],
                    help="NAME=PATH of a source tree (repeatable; default: this tree)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.params)))
        return 0
    trees = [t.split("=", 1) for t in args.tree] or [["this", str(Path(__file__).parents[1])]]
    for case in args.cases:
        walls: dict[str, list[float]] = {name: [] for name, _ in trees}
        figs: dict[str, dict] = {}
        for rep in range(args.repeat):
            order = trees if rep % 2 == 0 else trees[::-1]  # alternate who goes first
            for name, path in order:
                f = run_child(path, case, args.params)
                walls[name].append(f["wall_s"])
                figs[name] = f
                print(f"  {case:7s} {name:6s} run {rep + 1}: {f['wall_s']:7.2f} s", flush=True)
        base = None
        for name, _ in trees:
            f = figs[name]
            med = statistics.median(walls[name])
            cmds = f["pim_cmds"] + f["host_cmds"]
            line = (f"{case:7s} {name:6s} median {med:7.2f} s  PIM {f['pim_cmds']:,}  host "
                    f"{f['host_cmds']:,}  cycles {f['cycles']:,}  "
                    f"{med / max(f['pim_cmds'], 1) * 1e6:6.2f} us/PIM cmd  "
                    f"{med / max(cmds, 1) * 1e6:6.2f} us/cmd")
            if base is None:
                base = (med, f)
            else:
                same = (f["pim_cmds"], f["host_cmds"], f["cycles"]) == (
                    base[1]["pim_cmds"], base[1]["host_cmds"], base[1]["cycles"])
                line += f"  ratio {med / base[0]:.3f}{'' if same else '  RESULTS DIFFER'}"
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
