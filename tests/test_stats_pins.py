"""Reported statistics pinned by hand on tiny runs (DDR4-2400 x8, tCK 0.833 ns, BL8: 64 B).

Every expected value is counted on paper from the DDR4 rules and the definitions in the docs
(a GB is 10^9 bytes; the row-hit rate is the share of column commands whose row was already
open); none is read from the code under test.  Each was checked against a deliberate bug
(``benchmarks/mutants.py``).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from gradpimsim.config import preset
from gradpimsim.dram.commands import Command
from gradpimsim.stats.energy import dram_energy
from gradpimsim.stats.memory import memory_stats
from gradpimsim.trace.replay import replay_trace
from tests.helpers import addr_of, simulate

CFG = preset("ddr4-2400").with_overrides(refresh=False)
TCK_NS = 0.833


def test_row_hit_rate_counts_auto_precharge_columns() -> None:
    """Closed page: two reads to row 1 of bank 0 (ACT, RD, RDA), one write to row 2 of bank 1
    (ACT, WRA).  Three column commands (RD, RDA, WRA), two of which opened their row: the hit
    rate is 1/3; the command counts are written out too."""
    cfg = CFG.with_overrides(page_policy="closed")
    reqs = [(addr_of(cfg, bank=0, row=1, col=0), False, 0),
            (addr_of(cfg, bank=0, row=1, col=1), False, 0),
            (addr_of(cfg, bank=1, row=2, col=0), True, 0)]
    ctrl, _, _ = simulate(cfg, reqs)
    s = memory_stats(cfg, [ctrl])
    assert s["commands"] == {"activate": 2, "read": 1, "read_p": 1, "write_p": 1}
    assert s["row_hit_rate"] == pytest.approx(1 / 3, abs=1e-6)


def test_bandwidth_of_one_read_in_decimal_gigabytes() -> None:
    """One read on an idle bank: ACT 0, RD 17 (tRCD), last data beat 17 + CL 17 + BL/2 4 = 38.
    64 bytes in 38 cycles of 0.833 ns: 64 / 31.654 ns = 2.0219 GB/s (10^9 bytes per second)."""
    ctrl, _, _ = simulate(CFG, [(addr_of(CFG, row=3), False, 0)])
    s = memory_stats(CFG, [ctrl])
    assert s["completion_cycle"] == 38
    assert s["bytes"] == 64
    assert s["bandwidth_gbs"] == pytest.approx(64 / (38 * TCK_NS), abs=1e-4)
    assert s["row_hit_rate"] == 0.0  # its only column command opened its row


def test_average_power_is_energy_over_time_in_milliwatts() -> None:
    """The one read above, over its 38 cycles (31.654 ns): average power = energy / time, and
    nJ / ns is W, so mW = 1000 * nJ / ns.  The total itself is pinned by hand in
    ``test_energy.test_one_read_by_hand``."""
    ctrl, _, _ = simulate(CFG, [(addr_of(CFG, row=3), False, 0)])
    e = dram_energy(CFG, [ctrl], 38)
    assert e["average_power_mw"] == pytest.approx(1000 * e["total"] / (38 * TCK_NS), rel=1e-9)
    assert 100 < e["average_power_mw"] < 10_000  # a rank of 8 devices: watts, not micro or kilo


def test_replay_latency_percentiles_and_bandwidth(tmp_path: Path) -> None:
    """A four-line trace, reads of one row of bank 0 at cycle 0: ACT 0, RDs at 17, 23, 29, 35
    (tRCD, then tCCD_L 6); each ends CL 17 + BL/2 4 later: 38, 44, 50, 56, which are also the
    latencies (all admitted at 0).  Nearest rank: p50 is the 2nd of 4 (44), p99 the 4th (56);
    mean 47, max 56.  256 bytes in 56 cycles of 0.833 ns: 256 / 46.648 ns = 5.488 GB/s."""
    trace = tmp_path / "four.trace"
    trace.write_text("".join(f"0x{addr_of(CFG, row=2, col=i):x} READ 0\n" for i in range(4)))
    s = replay_trace(trace, CFG).stats
    assert (s["reads"], s["bytes"], s["completion_cycle"]) == (4, 256, 56)
    assert (s["read_latency_p50"], s["read_latency_p99"], s["read_latency_max"]) == (44, 56, 56)
    assert s["read_latency_mean"] == 47
    assert s["bandwidth_gbs"] == pytest.approx(256 / (56 * TCK_NS), abs=1e-4)
    assert s["row_hit_rate"] == pytest.approx(3 / 4)


def test_replay_does_not_depend_on_how_the_trace_is_chunked(tmp_path: Path) -> None:
    """Requests sharing a cycle across a chunk boundary are admitted at that cycle, not one
    later: the commands and statistics are those of reading the trace whole."""
    rng = random.Random(3)
    lines, t = [], 0
    for _ in range(400):
        t += rng.choice([0, 0, 1, 5, 40])
        kind = rng.choice(["READ", "WRITE"])
        lines.append(f"0x{rng.randrange(1 << 30) & ~63:x} {kind} {t}\n")
    trace = tmp_path / "r.trace"
    trace.write_text("".join(lines))
    runs = []
    for chunk_lines in (1, 7, 10_000):
        cmds: list[Command] = []
        stats = replay_trace(trace, CFG, sink=cmds.append, chunk_lines=chunk_lines).stats
        runs.append(([(c.clk, c.cmd, c.bank, c.row) for c in cmds], stats["completion_cycle"]))
    assert runs[0] == runs[2] and runs[1] == runs[2]
