"""Trace replay gives one answer however the trace is cut and however far the source reads ahead.

The source reads the trace a chunk at a time, offers requests a slice at a time and stops
reading while a controller holds more than ``MAX_PENDING`` offered requests.  None of that may
change a single command: a controller must never decide past an arrival it has not been offered
(closed-form runs are bounded by its ``horizon``), and a controller running ahead under
back-pressure must stop before it could run out of offered requests.  Both once failed:
a saturating stream cut into small chunks came out a few hundred cycles different, and on two
channels the quiet channel's requests were admitted up to 500,000 cycles late.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gradpimsim.config import preset
from gradpimsim.dram.address_map import AddressMap
from gradpimsim.dram.commands import Command
from gradpimsim.trace import replay
from gradpimsim.trace.requests import write_request_trace


def _run(trace: Path, cfg, *, chunk_lines: int = 65536, sink: bool = True):  # type: ignore[no-untyped-def]
    cmds: list[Command] = []
    res = replay.replay_trace(trace, cfg, sink=cmds.append if sink else None,
                              chunk_lines=chunk_lines)
    per_channel = [(c.last_done, c.read_latency.items(), c.write_latency.items(),
                    list(c.cmd_counts)) for c in res.controllers]
    return cmds, per_channel


@pytest.fixture
def saturating(tmp_path: Path) -> Path:
    """Sequential reads and, every 13th, a write elsewhere, one a cycle: five times faster
    than the channel serves them, so the source is always far ahead (back-pressure)."""
    n = 12_000
    addr = np.arange(n, dtype=np.uint64) * 64
    is_write = np.arange(n) % 13 == 0
    addr[is_write] = (addr[is_write] * 977) % (1 << 30) & ~np.uint64(63)
    return write_request_trace(tmp_path / "sat.trace", addr, is_write, np.arange(n))


@pytest.mark.parametrize("sink", [True, False])
def test_saturating_stream_whatever_the_cuts(saturating: Path, sink: bool,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = preset("ddr4-2400")
    whole = _run(saturating, cfg, sink=sink)
    for chunk_lines, slice_, pending in ((7, 7, 1 << 30), (64, 64, 1 << 30),
                                         (65536, 100, 64), (500, 4096, 300)):
        monkeypatch.setattr(replay, "REQUEST_SLICE", slice_)
        monkeypatch.setattr(replay, "MAX_PENDING", pending)
        assert _run(saturating, cfg, chunk_lines=chunk_lines, sink=sink) == whole, \
            (chunk_lines, slice_, pending)


def test_quiet_channel_is_not_admitted_late(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Channel 0 saturated, channel 1 offered a read every 1000 cycles: channel 1's reads are
    admitted on arrival, whatever the source holds back, and served like idle reads."""
    cfg = preset("ddr4-2400").with_overrides(channels=2)
    amap = AddressMap(cfg)
    on = {ch: [a for a in range(0, 1 << 24, 64) if amap.decode(a).channel == ch][:30_000]
          for ch in (0, 1)}
    addrs, cycles = [], []
    for i in range(30_000):
        addrs.append(on[0][i])
        cycles.append(i)
        if i % 1000 == 999:
            # a new row of channel 1 each time: an ACT, then the read
            addrs.append(on[1][0] + (i // 1000 + 1) * cfg.org.row_bytes * cfg.org.banks_per_rank
                         * cfg.org.ranks * cfg.org.channels)
            cycles.append(i)
    trace = write_request_trace(tmp_path / "two.trace", np.array(addrs, dtype=np.uint64),
                                np.zeros(len(addrs), bool), np.array(cycles))
    whole = _run(trace, cfg, sink=False)
    monkeypatch.setattr(replay, "MAX_PENDING", 64)
    monkeypatch.setattr(replay, "REQUEST_SLICE", 64)
    assert _run(trace, cfg, sink=False) == whole
    t = cfg.timing
    quiet = dict(whole[1][1][1])  # channel 1: read latency -> count
    # at worst a PRE, an ACT and the read, behind a refresh of its rank
    assert max(quiet) <= t.tRFC + t.tRP + t.tRCD + t.CL + 4
