"""Bulk (multi-burst) requests: simulation cost of DMA traffic, run by hand.

    python benchmarks/bench_bulk.py [--gib 1] [--chunk-kib 64] [--slice-mib 16] [--config ddr4-2400]

Traffic: ``--gib`` GiB of sequential DMA, alternating a ``--chunk-kib`` KiB read from one region
and a write of the same size to another, all offered at cycle 0 (the controller's back-pressure
paces them).  Each chunk is cut with :func:`bulk_requests` (one request per row piece) and
replayed through one :class:`ChannelController` (submit_many + drain, no command sink).

Prints wall time, bursts and requests simulated per second, scheduler events, and the same
traffic as single-burst requests on a ``--slice-mib`` MiB slice (extrapolated to the full size),
plus peak memory: tracemalloc peak of a bulk replay of the slice and the process's max RSS.
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

from gradpimsim.config import MemoryConfig, load_config
from gradpimsim.controller.bulk import bulk_requests
from gradpimsim.controller.controller import ChannelController
from gradpimsim.controller.request import Request
from gradpimsim.dram.address_map import AddressMap


def dma_requests(cfg: MemoryConfig, nbytes: int, chunk: int, reads_only: bool = False,
                 ) -> list[Request]:
    """Alternating read and write chunks (the write region starts half-way up the memory), or
    only reads."""
    amap = AddressMap(cfg)
    write_base = amap.capacity // 2
    reqs: list[Request] = []
    if reads_only:
        for i in range(nbytes // chunk):
            reqs += bulk_requests(cfg, amap, i * chunk, chunk, False, 0)[0]
        return reqs
    for i in range(nbytes // (2 * chunk)):
        reqs += bulk_requests(cfg, amap, i * chunk, chunk, False, 0)[0]
        reqs += bulk_requests(cfg, amap, write_base + i * chunk, chunk, True, 0)[0]
    return reqs


def singles(reqs: list[Request]) -> list[Request]:
    """The same bursts as one single-burst request each, in the same order."""
    return [Request(r.addr + 64 * i, r.is_write, r.arrival, r.bank, r.row, r.col + i, r.rank)
            for r in reqs for i in range(r.ncols)]


def replay(cfg: MemoryConfig, reqs: list[Request]) -> tuple[ChannelController, float]:
    t0 = time.perf_counter()
    ctrl = ChannelController(cfg)
    ctrl.submit_many(reqs)
    ctrl.drain()
    return ctrl, time.perf_counter() - t0


def report(label: str, ctrl: ChannelController, wall: float, nreq: int) -> None:
    bursts = ctrl.read_bursts + ctrl.write_bursts
    gbs = bursts * ctrl.cfg.org.burst_bytes / (ctrl.last_done * ctrl.cfg.timing.tCK_ns)
    print(f"{label}: {wall:.2f} s wall; {bursts:,} bursts ({bursts / wall:,.0f}/s), "
          f"{nreq:,} requests ({nreq / wall:,.0f}/s), {ctrl.events:,} events; "
          f"simulated {ctrl.last_done:,} cycles ({gbs:.2f} GB/s), "
          f"ACT {ctrl.cmd_counts[0]:,}, REF {ctrl.cmd_counts[6]:,}; "
          f"jumps: {ctrl.bulk_jumps:,} single-stream, {ctrl.periodic_jumps:,} periodic")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gib", type=float, default=1.0)
    ap.add_argument("--chunk-kib", type=int, default=64)
    ap.add_argument("--slice-mib", type=int, default=16)
    ap.add_argument("--config", default="ddr4-2400")
    ap.add_argument("--reads-only", action="store_true", help="sequential reads, no writes")
    args = ap.parse_args()
    cfg = load_config(args.config)
    chunk = args.chunk_kib << 10
    total = int(args.gib * (1 << 30))
    part = args.slice_mib << 20

    t0 = time.perf_counter()
    reqs = dma_requests(cfg, total, chunk, args.reads_only)
    split = time.perf_counter() - t0
    what = "reads" if args.reads_only else "reads + writes"
    print(f"{cfg.name}, {total / 2**30:g} GiB of {args.chunk_kib} KiB DMA {what}: "
          f"split into {len(reqs):,} bulk requests in {split:.2f} s")
    ctrl, wall = replay(cfg, reqs)
    report("bulk", ctrl, wall, len(reqs))
    del reqs

    small = dma_requests(cfg, part, chunk, args.reads_only)
    one_by_one = singles(small)
    ctrl_s, wall_s = replay(cfg, one_by_one)
    report(f"single bursts, {args.slice_mib} MiB slice", ctrl_s, wall_s, len(one_by_one))
    scale = total / part
    print(f"single bursts extrapolated to the full size: {wall_s * scale:,.1f} s "
          f"({wall_s * scale / wall:.1f}x the bulk replay)")
    ctrl_b, wall_b = replay(cfg, dma_requests(cfg, part, chunk, args.reads_only))
    report(f"bulk, {args.slice_mib} MiB slice", ctrl_b, wall_b, len(small))

    tracemalloc.start()
    replay(cfg, dma_requests(cfg, part, chunk, args.reads_only))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"memory: tracemalloc peak {peak / 2**20:.1f} MiB (bulk, {args.slice_mib} MiB slice), "
          f"max RSS {rss:.0f} MiB (whole run)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
