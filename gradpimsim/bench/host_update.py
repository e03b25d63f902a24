"""The baseline GradPIM is measured against: the NPU performs the update over the memory bus.

For every parameter tensor the NPU reads the gradient, the fp32 master weights and the optimizer
state, updates them on chip, and writes the master weights, the state and (mixed precision) the
low-precision weight copy back: ``PrecisionPolicy.update_bytes(optimizer)`` bytes per parameter,
every byte crossing the channel's data bus as 64 B bursts.

The requests are timed on the host memory controller (one :class:`ChannelController` per
channel, each request routed by the channel its address decodes to), with all arrivals at cycle
0: the update is bandwidth-bound and the controller's queues and FR-FCFS scheduler decide the
order.  The DMA order is *tiled*: the NPU walks the tensors in tiles of ``tile_bytes`` of the
widest role, and per tile issues the reads of every read role, interleaved burst by burst
(gradient, weight, state...), so the controller's queue holds several streams at once (as a
DMA engine with one channel per operand would); after all reads come all the writes, in the same
tiled order.  The placement is whatever the caller passes (the update bench uses the same
placement as the GradPIM run, so both sides touch the same addresses).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gradpimsim.config import MemoryConfig
from gradpimsim.config.training import DTYPE_BYTES, OptimizerConfig, PrecisionPolicy
from gradpimsim.controller.controller import ChannelController
from gradpimsim.controller.request import Request
from gradpimsim.dram.address_map import AddressMap
from gradpimsim.dram.commands import Cmd, Command
from gradpimsim.pim.kernels import UpdateTarget

SinkFactory = Callable[[int], Callable[[Command], None] | None]


@dataclass
class HostResult:
    """Totals of the host-side update."""

    cycles: int = 0
    tCK_ns: float = 0.0
    read_bytes: int = 0
    write_bytes: int = 0
    reads: int = 0
    writes: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    channel_cycles: dict[int, int] = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def bus_bytes(self) -> int:
        return self.read_bytes + self.write_bytes

    @property
    def commands(self) -> int:
        return sum(self.counts.values())

    @property
    def time_us(self) -> float:
        return self.cycles * self.tCK_ns / 1000.0

    def to_dict(self) -> dict:
        return {"cycles": self.cycles, "time_us": self.time_us, "bus_bytes": self.bus_bytes,
                "read_bytes": self.read_bytes, "write_bytes": self.write_bytes,
                "requests": self.reads + self.writes, "commands": self.commands,
                "counts": dict(self.counts),
                "channel_cycles": {str(k): v for k, v in self.channel_cycles.items()},
                "wall_s": self.wall_s}


def host_roles(optimizer: OptimizerConfig, precision: PrecisionPolicy) -> tuple[
        list[tuple[str, str]], list[tuple[str, str]]]:
    """(role, dtype) the host reads and writes, matching ``PrecisionPolicy.update_bytes``
    (a regularizer's ``omega`` and ``theta_old`` are read, never written)."""
    reads = [("grad", precision.grad_dtype), ("weight", precision.master_dtype)]
    reads += [(r, precision.state_dtype)
              for r in optimizer.state_roles + optimizer.const_roles]
    writes = [("weight", precision.master_dtype)]
    writes += [(r, precision.state_dtype) for r in optimizer.state_roles]
    if precision.has_weight_copy:
        writes.append(("weight_copy", precision.compute_dtype))
    return reads, writes


def _bursts(placement, nbytes: int, burst: int) -> list[int]:
    """Burst-aligned addresses covering the first ``nbytes`` of a placement, in tensor order."""
    out: list[int] = []
    left = nbytes
    for seg in placement.segments:
        if left <= 0:
            break
        take = min(seg.nbytes, left)
        first = seg.addr - seg.addr % burst
        last = seg.addr + take - 1
        out.extend(range(first, last - last % burst + 1, burst))
        left -= take
    return out


Roles = tuple[list[tuple[str, str]], list[tuple[str, str]]]


def update_requests(targets: Sequence[UpdateTarget], optimizer: OptimizerConfig,
                    precision: PrecisionPolicy, cfg: MemoryConfig,
                    tile_bytes: int = 32768, roles: Roles | None = None) -> list[tuple[int, bool]]:
    """The update's 64 B requests as ``(address, is_write)``, reads first (see the docstring).
    ``roles``: (role, dtype) read and written, if not the optimizer step's
    (:func:`host_roles`; e.g. an importance program's)."""
    burst = cfg.org.burst_bytes
    amap = AddressMap(cfg)
    o = cfg.org

    def unit_of(addr: int) -> int:
        loc = amap.decode(addr)
        return (loc.channel * o.ranks + loc.rank) * o.bankgroups + loc.bankgroup

    reads, writes = roles if roles is not None else host_roles(optimizer, precision)
    out: list[tuple[int, bool]] = []
    for is_write, roles in ((False, reads), (True, writes)):
        for t in targets:
            if t.numel <= 0:
                continue
            widest = max(DTYPE_BYTES[d] for _, d in roles)
            streams = []
            for role, dtype in roles:
                addrs = _bursts(t.placements[role], t.numel * DTYPE_BYTES[dtype], burst)
                per_tile = max(1, tile_bytes * DTYPE_BYTES[dtype] // widest // burst)
                streams.append((addrs, per_tile))
            tiles = max(-(-len(a) // k) for a, k in streams)
            for tile in range(tiles):
                buckets: dict[int, list[int]] = {}
                for a, k in streams:
                    for addr in a[tile * k:(tile + 1) * k]:
                        buckets.setdefault(unit_of(addr), []).append(addr)
                lists = list(buckets.values())
                longest = max(len(c) for c in lists)
                for j in range(longest):
                    for c in lists:
                        if j < len(c):
                            out.append((c[j], is_write))
    return out


def run_host_update(targets: Sequence[UpdateTarget], optimizer: OptimizerConfig,
                    precision: PrecisionPolicy, cfg: MemoryConfig, *,
                    sink_factory: SinkFactory | None = None,
                    tile_bytes: int = 32768, roles: Roles | None = None) -> HostResult:
    """Time the host update on the controllers; ``sink_factory(channel)`` may give a sink;
    ``roles`` as in :func:`update_requests`."""
    start = time.perf_counter()
    amap = AddressMap(cfg)
    burst = cfg.org.burst_bytes
    ctrls: dict[int, ChannelController] = {}
    queues: dict[int, list[Request]] = {}
    res = HostResult(tCK_ns=cfg.timing.tCK_ns)
    for addr, is_write in update_requests(targets, optimizer, precision, cfg, tile_bytes, roles):
        loc = amap.decode(addr)
        ctrl = ctrls.get(loc.channel)
        if ctrl is None:
            sink = sink_factory(loc.channel) if sink_factory is not None else None
            ctrl = ctrls[loc.channel] = ChannelController(cfg, loc.channel, sink=sink)
            queues[loc.channel] = []
        queues[loc.channel].append(Request(
            addr, is_write, 0, ctrl.dev.flat_bank(loc.rank, loc.bankgroup, loc.bank), loc.row,
            loc.col, loc.rank))
        if is_write:
            res.writes += 1
        else:
            res.reads += 1
    for ch, reqs in queues.items():
        ctrls[ch].submit_many(reqs)
    counts = [0] * len(Cmd)
    for ch, ctrl in sorted(ctrls.items()):
        res.channel_cycles[ch] = ctrl.drain()
        counts = [a + b for a, b in zip(counts, ctrl.cmd_counts, strict=True)]
    res.read_bytes = res.reads * burst
    res.write_bytes = res.writes * burst
    res.cycles = max(res.channel_cycles.values(), default=0)
    res.counts = {Cmd(i).name: n for i, n in enumerate(counts) if n}
    res.wall_s = time.perf_counter() - start
    return res


def host_bound_cycles(bus_bytes: int, cfg: MemoryConfig) -> int:
    """Closed form: every byte at the peak data rate of all channels (BL/2 cycles per burst)."""
    o = cfg.org
    bursts = -(-bus_bytes // o.burst_bytes)
    return -(-bursts * cfg.burst_cycles // o.channels)
