"""Replay a DRAMsim3-style request trace through the memory system.

The trace is streamed in chunks (never loaded whole); each chunk's requests are decoded with numpy
and handed to the channel controllers ahead of their arrival cycles, and the SimPy clock moves a
chunk at a time.  Back-pressure is honoured: when controllers fall behind the trace, the source
waits before reading more, so memory stays bounded however long the trace is.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import simpy

from gradpimsim.config import MemoryConfig
from gradpimsim.controller.controller import ChannelController
from gradpimsim.controller.process import ControllerProcess
from gradpimsim.controller.request import Request
from gradpimsim.dram.address_map import AddressMap
from gradpimsim.dram.commands import CommandSink
from gradpimsim.runtime import simulation_gc
from gradpimsim.stats.memory import memory_stats
from gradpimsim.trace.requests import iter_request_chunks

#: Requests a controller may hold waiting for admission before the source stops reading.
MAX_PENDING = 1 << 16


@dataclass
class ReplayResult:
    stats: dict[str, Any]
    controllers: list[ChannelController] = field(repr=False)
    interrupted: bool = False


def make_controllers(cfg: MemoryConfig, sink: CommandSink | None = None,
                     **kwargs: Any) -> list[ChannelController]:
    return [ChannelController(cfg, ch, sink=sink, **kwargs) for ch in range(cfg.org.channels)]


def replay_trace(
    path: str | Path,
    cfg: MemoryConfig,
    *,
    sink: CommandSink | None = None,
    on_progress: Callable[[int], None] | None = None,
    batch_runs: bool = True,
    chunk_lines: int = 65536,
) -> ReplayResult:
    """Simulate every request of the trace; Ctrl-C stops early and keeps what finished."""
    env = simpy.Environment()
    ctrls = make_controllers(cfg, sink, batch_runs=batch_runs)
    procs = [ControllerProcess(env, c, follow=False) for c in ctrls]
    amap = AddressMap(cfg)
    done = {"submitted": 0}

    def source() -> Generator[simpy.Event, Any, None]:
        for chunk in iter_request_chunks(path, chunk_lines=chunk_lines):
            f = amap.decode_array(chunk.addr)
            bank = amap.flat_banks(f)
            for c, ctrl in enumerate(ctrls):
                sel = f["ch"] == c if len(ctrls) > 1 else slice(None)
                ctrl.submit_many(map(
                    Request, chunk.addr[sel].tolist(), chunk.is_write[sel].tolist(),
                    chunk.cycle[sel].tolist(), bank[sel].tolist(), f["ro"][sel].tolist(),
                    f["co"][sel].tolist(), f["ra"][sel].tolist()))
            done["submitted"] += len(chunk.addr)
            last = int(chunk.cycle[-1]) if len(chunk.cycle) else int(env.now)
            if last > env.now:
                yield env.timeout(last - int(env.now))
            for p in procs:
                p.wake()
            yield env.timeout(0)
            # back-pressure: let the controllers drain before reading on
            while any(len(c.pending) > MAX_PENDING for c in ctrls):
                behind = max(len(c.pending) for c in ctrls)
                yield env.timeout(behind)
                for p in procs:
                    p.wake()
                yield env.timeout(0)
            if on_progress is not None:
                on_progress(sum(c.reads_done + c.writes_done for c in ctrls))

    interrupted = False
    try:
        with simulation_gc():
            env.run(env.process(source()))
            for c in ctrls:
                c.drain()
    except KeyboardInterrupt:
        interrupted = True
    if on_progress is not None:
        on_progress(sum(c.reads_done + c.writes_done for c in ctrls))
    stats = memory_stats(cfg, ctrls)
    stats["interrupted"] = interrupted
    stats["submitted"] = done["submitted"]
    return ReplayResult(stats, ctrls, interrupted)
