"""Replay a DRAMsim3-style request trace through the memory system.

The trace is streamed in chunks (never loaded whole); each chunk's requests are decoded with numpy
and handed to the channel controllers ahead of their arrival cycles, and the SimPy clock moves a
chunk at a time.  Back-pressure is honoured: when controllers fall behind the trace, the source
waits before reading more, so memory stays bounded however long the trace is.

Idle time costs nothing: the controllers account the refreshes of an idle gap in closed form
(``ChannelController._skip_idle_refreshes``), so a request at cycle 10^17 is simulated as fast as
one at cycle 10.  That shortcut needs the refreshes not to be written one by one, so with a
command sink (``--cmd-trace``, ``--check``) a gap that would emit more than
:data:`MAX_SINK_IDLE_PERIODS` refresh periods is refused up front, naming the request.  An address
beyond the configuration's capacity is an error (it would silently alias) unless ``wrap``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import simpy

from gradpimsim.config import MemoryConfig
from gradpimsim.controller.controller import ChannelController
from gradpimsim.controller.process import ControllerProcess
from gradpimsim.controller.request import trace_requests
from gradpimsim.dram.address_map import AddressMap
from gradpimsim.dram.codes import INF
from gradpimsim.dram.commands import CommandSink
from gradpimsim.runtime import simulation_gc
from gradpimsim.stats.memory import memory_stats
from gradpimsim.trace.requests import RequestChunk, TraceError, iter_request_chunks

#: Requests a controller may hold waiting for admission before the source stops reading.
MAX_PENDING = 1 << 14
#: Requests built and offered at a time (a chunk's parsed arrays are sliced).
REQUEST_SLICE = 1 << 12
#: With a command sink, the most refresh periods one idle gap may write (about a million
#: REF lines per rank, half a minute): beyond it the trace is refused, not written for hours.
MAX_SINK_IDLE_PERIODS = 1 << 20


def check_chunk(chunk: RequestChunk, cfg: MemoryConfig, path: str | Path, *, wrap: bool,
                sink: bool, prev_cycle: int) -> RequestChunk:
    """Addresses within the capacity (or folded into it), idle gaps a sink can take."""
    cap = cfg.org.total_bytes
    lines = chunk.lines if chunk.lines is not None else None
    if len(chunk.addr) and int(chunk.addr.max()) >= cap:
        if not wrap:
            i = int((chunk.addr >= cap).argmax())
            line = int(lines[i]) if lines is not None else 0
            raise TraceError(path, line, f"address {int(chunk.addr[i]):#x} is beyond the "
                             f"{cap:,}-byte capacity of {cfg.name} (0x0-{cap - 1:#x}); use a "
                             "larger memory configuration, or --wrap to fold addresses into it")
        chunk = RequestChunk(chunk.addr & (cap - 1), chunk.is_write, chunk.cycle,
                             chunk.first_line, chunk.lines)
    if sink and len(chunk.cycle) and cfg.controller.refresh:
        gaps = np.diff(chunk.cycle, prepend=prev_cycle)
        i = int(gaps.argmax())
        periods = int(gaps[i]) // cfg.timing.tREFI
        if periods > MAX_SINK_IDLE_PERIODS:
            line = int(lines[i]) if lines is not None else 0
            raise TraceError(path, line, f"the request at cycle {int(chunk.cycle[i]):,} follows "
                             f"an idle gap of {int(gaps[i]):,} cycles: writing its "
                             f"{periods * cfg.org.ranks:,} refresh commands to the command "
                             "trace or checker would not end; drop --cmd-trace/--check for "
                             "this trace (without them idle time costs nothing)")
    return chunk


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
    wrap: bool = False,
) -> ReplayResult:
    """Simulate every request of the trace; Ctrl-C stops early and keeps what finished.

    Raises :class:`TraceError` for an address beyond the capacity (unless ``wrap``) and, with a
    ``sink``, for an idle gap too long to write out (see the module doc).
    """
    env = simpy.Environment()
    ctrls = make_controllers(cfg, sink, batch_runs=batch_runs)
    procs = [ControllerProcess(env, c, follow=False) for c in ctrls]
    amap = AddressMap(cfg)
    done = {"submitted": 0}
    has_sink = sink is not None or not ctrls[0].skip_idle

    def source() -> Generator[simpy.Event, Any, None]:
        prev = 0
        for chunk in iter_request_chunks(path, chunk_lines=chunk_lines):
            chunk = check_chunk(chunk, cfg, path, wrap=wrap, sink=has_sink, prev_cycle=prev)
            n = len(chunk.cycle)
            if n:
                prev = int(chunk.cycle[-1])
            # requests are built a slice at a time, as the controllers reach them: the ones alive
            # stay few (they fit the caches, and freed memory is reused, not returned and asked
            # for again); parsing stays whole-chunk
            for lo in range(0, n, REQUEST_SLICE):
                hi = min(lo + REQUEST_SLICE, n)
                yield from _offer(chunk, lo, hi)
            if on_progress is not None:
                on_progress(sum(c.reads_done + c.writes_done for c in ctrls))

    def _offer(chunk: RequestChunk, lo: int, hi: int) -> Generator[simpy.Event, Any, None]:
        """Submit requests ``lo:hi`` of ``chunk`` and run the controllers up to their arrivals."""
        cycles = chunk.cycle[lo:hi]
        per_channel = trace_requests(amap, chunk.addr[lo:hi].tolist(),
                                     chunk.is_write[lo:hi].tolist(), cycles.tolist(), len(ctrls))
        for ctrl, reqs in zip(ctrls, per_channel, strict=True):
            ctrl.submit_many(reqs)
        done["submitted"] += hi - lo
        last = int(cycles[-1])
        # commit decisions before ``last`` only: the next requests may arrive at ``last`` too.
        # A woken controller decides up to the cycle after ``env.now``, and its horizon keeps
        # closed-form runs from going further (a run knows the requests offered, not the ones
        # still in the file: without it, results depended on where the trace was cut)
        for c in ctrls:
            c.horizon = last
        if last - 1 > env.now:
            yield env.timeout(last - 1 - int(env.now))
        if env.now < last:
            for p in procs:
                p.wake()
            yield env.timeout(0)
        # back-pressure: before reading on, a controller holding more than MAX_PENDING offered
        # requests runs ahead on its own, but only so far that it cannot run out of them (it
        # admits at most one a cycle, as column commands free slots, plus its free slots):
        # every request not read yet arrives after these, so no decision it takes can depend
        # on one.  (Moving the shared clock instead would let a channel with few requests
        # decide past arrivals not read yet, admitting them late.)  Channels are independent.
        for c in ctrls:
            while len(c.pending) > MAX_PENDING:
                ahead = len(c.pending) - c.read_cap - c.write_cap - 1
                if ahead < 1:
                    break  # (queues deeper than MAX_PENDING: read on instead)
                c.horizon = c.now + ahead
                c.run_until(c.horizon)

    interrupted = False
    try:
        with simulation_gc():
            env.run(env.process(source()))
            for c in ctrls:
                c.horizon = INF  # every request is offered: nothing more can arrive
                c.drain()
    except KeyboardInterrupt:
        interrupted = True
    if on_progress is not None:
        on_progress(sum(c.reads_done + c.writes_done for c in ctrls))
    stats = memory_stats(cfg, ctrls)
    stats["interrupted"] = interrupted
    stats["submitted"] = done["submitted"]
    return ReplayResult(stats, ctrls, interrupted)
