"""Update bench at scale: 2^20 parameters, momentum SGD, mixed precision, DDR4-2400 and -3200.

    python benchmarks/bench_update.py [--params 1048576] [--configs ddr4-2400 ddr4-3200]
                                      [--functional] [--check]

Per configuration it prints the host (NPU over the bus) and GradPIM cycles, the speedup, the
closed-form bounds (host: bus bytes / peak bandwidth; GradPIM: column slots per bank group and
the command bus; plus the unit dependence-chain bound), the simulated/bound ratios, and the
engine's wall time and commands per second.  Timing only by default (the functional datapath
costs numpy work per command); ``--functional`` also executes and verifies the update and
``--check`` attaches the protocol checker to the GradPIM command stream.
"""

from __future__ import annotations

import argparse
import sys
import time

from gradpimsim.bench.update import run_update_bench
from gradpimsim.checker import ProtocolChecker
from gradpimsim.config import preset
from gradpimsim.config.pim import PimConfig
from gradpimsim.config.training import OptimizerConfig, precision


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=int, default=1 << 20)
    ap.add_argument("--configs", nargs="+", default=["ddr4-2400", "ddr4-3200"])
    ap.add_argument("--functional", action="store_true")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    opt = OptimizerConfig("momentum", lr=0.01, momentum=0.9)
    prec = precision("mixed")
    print(f"update bench: {args.params:,} params, momentum SGD, mixed precision, "
          f"{'functional' if args.functional else 'timing only'}"
          f"{', checker online' if args.check else ''}")
    for name in args.configs:
        cfg = preset(name)
        checker = ProtocolChecker(cfg, PimConfig(), raise_on_violation=True) if args.check \
            else None
        start = time.perf_counter()
        b = run_update_bench(cfg, args.params, opt, prec, functional=args.functional,
                             pim_sink=checker.observe if checker else None)
        total = time.perf_counter() - start
        if checker is not None and not checker.finish().ok:
            print("protocol violations!", file=sys.stderr)
            return 1
        pb = b.pim_bounds
        tck = cfg.timing.tCK_ns
        print(f"\n{cfg.name}")
        print(f"  host     {b.host.cycles:>10,} cycles {b.host.cycles * tck / 1e3:>9,.1f} us   "
              f"bound {b.host_bound:>10,}  ratio {b.host_ratio:.3f}   "
              f"{b.host.bus_bytes:,} B, {b.host.commands:,} commands")
        print(f"  GradPIM  {b.pim.cycles:>10,} cycles {b.pim.cycles * tck / 1e3:>9,.1f} us   "
              f"bound {pb['bound']:>10,}  ratio {b.pim_ratio:.3f}   "
              f"(bank group {pb['bank_group']:,}, command bus {pb['command_bus']:,}, "
              f"unit chain {pb['unit_chain']:,}; refined ratio "
              f"{b.pim.cycles / pb['refined']:.3f})")
        print(f"  GradPIM  {b.pim.commands:,} commands ({b.pim.column_ops:,} column ops, "
              f"{b.pim.pim_ops:,} PIM_OPs, {b.pim.activations:,} ACT, "
              f"{b.pim.counts.get('REF', 0)} REF), utilization {b.pim.mean_utilization:.1%}")
        print(f"  speedup  {b.speedup:.2f}x simulated, {b.bound_speedup:.2f}x closed form")
        print(f"  engine   {b.pim.wall_s:.2f} s wall, {b.pim.commands_per_s:,.0f} commands/s; "
              f"program generation {b.program_s:.2f} s; host controller {b.host.wall_s:.2f} s; "
              f"total {total:.2f} s")
        if b.verified is not None:
            print(f"  functional check: {'bit-exact' if b.verified else b.mismatches}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
