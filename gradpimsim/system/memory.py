"""The memory side of a full-system run: one controller process per channel, and DMA transfers.

A transfer (a byte range of a placed tensor) is cut into requests per channel, bank and row
(``controller.bulk``: one request per run of consecutive columns in one row, so the cost grows
with rows touched, not with 64-byte bursts) and submitted at the current simulated cycle.  The
transfer's SimPy event fires at the cycle its last data beat is on the bus.

Every channel is the same machinery with or without PIM: a ``SharedChannel`` (host controller
plus PIM stream scheduler on one device, ``arbiter.shared_channel``).  Without PIM its PIM side
simply never has work, so the baseline and the PIM run differ only in what is offloaded.

**One process drives every channel, and decides ahead.**  No request can arrive before the next
event in SimPy's queue (an NPU compute step ending, a transfer completing), so the channels may
decide everything before that cycle, closed-form runs of row hits included, in one step.  A
transfer that completes earlier than that may make the NPU submit more at its completion cycle:
the completion callback then lowers every channel's cap to that cycle, stopping the channel
deciding it at once.  With one channel this is exactly the schedule of one decision per cycle
(tests compare the two).  With several, a channel processed earlier in the same step may
already have decided past a completion another channel reports later; what the NPU submits
then waits for that channel's next decision (documented in ``docs/iteration.md``, measured
against the lock-step, per-command reference schedule (``batch_runs=False``) in the tests).

Statistics kept here, because only the memory side sees them: bytes per channel per time bin
(completion time of each request), bytes read and written, and counter snapshots at chosen
cycles (phase boundaries) for per-phase energy.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from typing import Any

import simpy

from gradpimsim.arbiter.shared_channel import SharedChannel
from gradpimsim.config import MemoryConfig
from gradpimsim.config.pim import PimConfig
from gradpimsim.controller.bulk import bulk_requests
from gradpimsim.controller.controller import ChannelController
from gradpimsim.controller.request import Request
from gradpimsim.dram.address_map import AddressMap
from gradpimsim.dram.codes import INF
from gradpimsim.dram.commands import Cmd, CommandSink
from gradpimsim.pim.channel import PimChannel
from gradpimsim.pim.functional import PimArray
from gradpimsim.stats.energy import energy_breakdown


class _Group:
    """Requests of one transfer still in flight, and the latest completion among them."""

    __slots__ = ("left", "done", "event")

    def __init__(self, left: int, event: simpy.Event) -> None:
        self.left = left
        self.done = 0
        self.event = event


class MemorySystem:
    """Channels, their controllers and PIM schedulers, and the DMA front end."""

    def __init__(self, env: simpy.Environment, cfg: MemoryConfig, *, pim: PimConfig,
                 policy: str = "host-first", array: PimArray | None = None,
                 sink_factory: Callable[[int], CommandSink | None] | None = None,
                 batch_runs: bool = True, bin_cycles: int = 10_000,
                 util_bin: int = 0, wait_bound: int | None = None) -> None:
        self.env = env
        self.cfg = cfg
        self.pim = pim
        self.amap = AddressMap(cfg)
        self.burst = cfg.org.burst_bytes
        self.bin_cycles = bin_cycles
        #: The reference schedule: decide only the current cycle, every channel in step (slow;
        #: with ``batch_runs=False`` every command is its own scheduler decision too).
        self.lockstep = not batch_runs
        self.controllers: list[ChannelController] = []
        self.pims: list[PimChannel] = []
        self.channels: list[SharedChannel] = []
        for ch in range(cfg.org.channels):
            sink = sink_factory(ch) if sink_factory is not None else None
            shared = SharedChannel.build(cfg, pim, channel=ch, policy=policy, sink=sink,
                                         array=array, batch_runs=batch_runs,
                                         wait_bound=wait_bound)
            self.controllers.append(shared.ctrl)
            shared.pim.util_bin = util_bin
            self.pims.append(shared.pim)
            self.channels.append(shared)
        self.read_bytes = 0
        self.write_bytes = 0
        self.requests = 0
        #: bytes completed per channel per ``bin_cycles`` window
        self.bins: list[list[int]] = [[] for _ in range(cfg.org.channels)]
        self._wake = env.event()
        self.process = env.process(self._run())

    # ------------------------------------------------------------------ the process
    def _run(self) -> Generator[simpy.Event, Any, None]:
        env = self.env
        channels = self.channels
        while True:
            now = int(env.now)
            nxt = env.peek()
            horizon = INF if nxt == float("inf") else int(nxt)
            if horizon <= now or self.lockstep:
                horizon = now + 1
            for sh in channels:
                sh.cap = horizon
                sh.run_until(horizon)
            wake_at = min((sh.next_event() for sh in channels if sh.busy), default=INF)
            if self._wake.triggered:
                self._wake = env.event()
            if wake_at < INF:
                yield env.timeout(max(wake_at - now, 0)) | self._wake
            else:
                yield self._wake

    def flush(self, cycle: int) -> None:
        """Decide everything before ``cycle`` on every channel, idle ones included (an idle
        channel's refreshes are otherwise decided only when the process next runs it).  Only
        for a cycle no later than the simulated present: every arrival before it is known."""
        if self.lockstep:
            cycle = min(cycle, int(self.env.now) + 1)
        for sh in self.channels:
            if sh.cap < cycle:
                sh.cap = cycle
            sh.run_until(cycle)

    def _cap_all(self, cycle: int) -> None:
        for sh in self.channels:
            sh.lower_cap(cycle)

    def _wakeup(self) -> None:
        if not self._wake.triggered:
            self._wake.succeed()

    # ------------------------------------------------------------------ DMA
    def transfer(self, ranges: Iterable[tuple[int, int]], is_write: bool) -> simpy.Event:
        """Move the byte ranges ``(addr, nbytes)``; the event fires when the last beat is done."""
        env = self.env
        now = int(env.now)
        self.flush(now)  # decisions before ``now`` must not see these requests
        event = env.event()
        group = _Group(0, event)
        callback = self._completion(group)
        per_channel: list[list[Request]] = [[] for _ in self.channels]
        for addr, nbytes in ranges:
            if nbytes > 0:
                for ch, reqs in enumerate(bulk_requests(self.cfg, self.amap, addr, nbytes,
                                                        is_write, now, callback=callback,
                                                        tag=None)):
                    per_channel[ch].extend(reqs)
        count = bursts = 0
        for ch, reqs in enumerate(per_channel):
            for req in reqs:
                req.tag = ch
                bursts += req.ncols
            count += len(reqs)
        if not count:
            event.succeed(now)
            return event
        group.left = count
        if is_write:
            self.write_bytes += bursts * self.burst
        else:
            self.read_bytes += bursts * self.burst
        self.requests += count
        for ch, reqs in enumerate(per_channel):
            submit = self.channels[ch].submit
            for req in reqs:
                submit(req)
        self._wakeup()
        return event

    def _completion(self, group: _Group) -> Callable[[Request], None]:
        bins = self.bins
        width = self.bin_cycles
        burst = self.burst
        env = self.env
        cap = self._cap_all

        def done(req: Request) -> None:
            # called when the controller decides the last burst; req.done is in the future
            b = bins[req.tag]  # type: ignore[index]
            i = req.done // width
            if i >= len(b):
                b.extend([0] * (i + 1 - len(b)))
            b[i] += req.ncols * burst
            if req.done > group.done:
                group.done = req.done
            group.left -= 1
            if group.left == 0:
                cap(group.done)
                delay = group.done - int(env.now)
                timer = env.timeout(delay if delay > 0 else 0)
                timer.callbacks.append(lambda _e: group.event.succeed(group.done))

        return done

    # ------------------------------------------------------------------ PIM
    def run_program(self, units: dict[tuple[int, int, int], Any],
                    prologue: dict[tuple[int, int], list[Any]]) -> simpy.Event:
        """Hand a PIM program's per-unit streams to their channels; fires when all are done."""
        env = self.env
        event = env.event()
        per_channel: dict[int, tuple[dict, dict]] = {}
        for (ch, rank, bg), prog in units.items():
            per_channel.setdefault(ch, ({}, {}))[0][(rank, bg)] = prog
        for (ch, rank), sets in prologue.items():
            if ch in per_channel:
                per_channel[ch][1][rank] = sets
        if not per_channel:
            event.succeed(int(env.now))
            return event
        state = {"left": len(per_channel), "end": 0}

        def finished(cycle: int) -> None:
            self._cap_all(cycle)
            state["left"] -= 1
            state["end"] = max(state["end"], cycle)
            if state["left"] == 0:
                delay = state["end"] - int(env.now)
                timer = env.timeout(delay if delay > 0 else 0)
                timer.callbacks.append(lambda _e: event.succeed(state["end"]))

        now = int(env.now)
        self.flush(now)  # decisions before ``now`` (refresh postponement) must not see it
        for ch, (u, p) in per_channel.items():
            self.channels[ch].pim.advance(now)  # nothing of it issues before now
            self.channels[ch].add_program(u, p, on_done=finished)
        self._wakeup()
        return event

    # ------------------------------------------------------------------ statistics
    def snapshot(self, cycle: int) -> dict[str, Any]:
        """Counters at ``cycle``: commands per type (host and PIM) and rank-active cycles.

        Commands a closed-form run committed beyond ``cycle`` are already counted: windows
        split at phase boundaries are exact up to one run of row hits.
        """
        self.flush(cycle)
        counts: dict[str, int] = {}
        for source in [c.cmd_counts for c in self.controllers] + [p.counts for p in self.pims]:
            for i, n in enumerate(source):
                if n:
                    name = Cmd(i).name
                    counts[name] = counts.get(name, 0) + n
        active = sum(c.dev.active_cycles(r, cycle) for c in self.controllers
                     for r in range(self.cfg.org.ranks))
        return {"counts": counts, "active": active, "cycle": cycle}

    def pim_utilization(self, width: int, col_to_col: int) -> dict[str, list[float]]:
        """Per GradPIM unit (``"ch<c>.r<r>.bg<g>"``), the share of each ``width``-cycle window
        its column path was busy: column operations issued in it x ``col_to_col`` / ``width``
        (the units count them as they issue, ``PimBatches.util_bin``)."""
        out: dict[str, list[float]] = {}
        bgs = self.cfg.org.bankgroups
        for ch, pch in enumerate(self.pims):
            for key, i in pch.unit_of.items():
                res = pch.agents[i].res
                rank, bg = divmod(key, bgs)
                out[f"ch{ch}.r{rank}.bg{bg}"] = [round(n * col_to_col / width, 6)
                                                 for n in res.bins]
        return out

    @staticmethod
    def empty_snapshot() -> dict[str, Any]:
        return {"counts": {}, "active": 0, "cycle": 0}

    def energy(self, snap: dict[str, Any], prev: dict[str, Any] | None = None) -> dict[str, float]:
        """Energy (nJ) per component between two snapshots (from cycle 0 without ``prev``)."""
        prev = prev or self.empty_snapshot()
        counts = {k: v - prev["counts"].get(k, 0) for k, v in snap["counts"].items()}
        active = snap["active"] - prev["active"]
        rank_cycles = (snap["cycle"] - prev["cycle"]) * self.cfg.org.ranks * len(self.controllers)
        return energy_breakdown(self.cfg, counts, active, max(rank_cycles - active, 0),
                                pim=self.pim)
