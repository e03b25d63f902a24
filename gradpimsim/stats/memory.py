"""Memory-system statistics gathered from the channel controllers.

One flat dict of plain numbers, so the CLI table, ``--json`` and notebooks all show the same thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gradpimsim.config import MemoryConfig
from gradpimsim.controller.controller import ChannelController
from gradpimsim.controller.latency import LatencyHistogram
from gradpimsim.dram.commands import TRACE_NAME, Cmd
from gradpimsim.stats.energy import dram_energy


def _merge(hists: Sequence[LatencyHistogram]) -> LatencyHistogram:
    merged = LatencyHistogram()
    for h in hists:
        merged.merge(h)
    return merged


def bus_figures(cfg: MemoryConfig, nbytes: int, cycles: int, columns: int,
                misses: int) -> dict[str, float]:
    """The data-bus figures of ``nbytes`` moved in ``cycles`` over every channel, and the row
    hit rate of ``columns`` column commands of which ``misses`` opened their row: the one
    place these are computed for a memory summary."""
    seconds = cycles * cfg.timing.tCK_ns * 1e-9
    bandwidth = nbytes / seconds / 1e9 if seconds else 0.0
    peak = cfg.peak_bandwidth_gbs * cfg.org.channels
    return {
        "bandwidth_gbs": round(bandwidth, 4),
        "peak_bandwidth_gbs": round(peak, 4),
        "utilization": round(bandwidth / peak, 6) if peak else 0.0,
        "bandwidth_pct_of_peak": round(100.0 * bandwidth / peak, 3) if peak else 0.0,
        "row_hit_rate": round(1.0 - misses / columns, 6) if columns else 0.0,
    }


def memory_stats(cfg: MemoryConfig, controllers: Sequence[ChannelController],
                 *, start_cycle: int = 0) -> dict[str, Any]:
    """Summary statistics of a finished (or interrupted) run."""
    end = max((c.last_done for c in controllers), default=0)
    cycles = max(end - start_cycle, 1)
    counts = {name: 0 for name in TRACE_NAME.values()}
    for c in controllers:
        for cmd in Cmd:
            counts[TRACE_NAME[cmd]] += c.cmd_counts[cmd]
    reads = sum(c.reads_done for c in controllers)
    writes = sum(c.writes_done for c in controllers)
    columns = sum(counts[TRACE_NAME[k]] for k in (Cmd.RD, Cmd.RDA, Cmd.WR, Cmd.WRA))
    misses = sum(c.row_misses for c in controllers)
    # a bulk request moves many bursts: bytes come from bursts served, not requests
    nbytes = sum(c.read_bursts + c.write_bursts for c in controllers) * cfg.org.burst_bytes
    bus = bus_figures(cfg, nbytes, cycles, columns, misses)
    rl = _merge([c.read_latency for c in controllers])
    wl = _merge([c.write_latency for c in controllers])
    energy = dram_energy(cfg, controllers, end) if cfg.power else {}
    return {
        "config": cfg.name,
        "channels": cfg.org.channels,
        "requests": reads + writes,
        "reads": reads,
        "writes": writes,
        "completion_cycle": end,
        "simulated_ns": round(end * cfg.timing.tCK_ns, 3),
        "bytes": nbytes,
        "bandwidth_gbs": bus["bandwidth_gbs"],
        "peak_bandwidth_gbs": bus["peak_bandwidth_gbs"],
        "bandwidth_pct_of_peak": bus["bandwidth_pct_of_peak"],
        "read_latency_mean": round(rl.mean(), 3),
        "read_latency_p50": rl.percentile(50),
        "read_latency_p99": rl.percentile(99),
        "read_latency_max": rl.max(),
        "write_latency_mean": round(wl.mean(), 3),
        "row_hit_rate": bus["row_hit_rate"],
        "refreshes": counts[TRACE_NAME[Cmd.REF]],
        "commands": {k: v for k, v in counts.items() if v},
        "energy_nj": energy,
    }
