"""The channel controller as a SimPy process.

The controller engine needs no clock: given its queues it knows the cycle of its next decision.
So the process sleeps until either that cycle or a wake-up from a requester, and on waking commits
every decision that lies before ``env.now``.  Decisions before a new arrival's cycle cannot depend
on it, so committing lazily like this is exact.  Requesters that know future arrivals (a trace)
may submit them ahead of time and wake the process rarely; the engine admits each at its cycle.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Protocol

import simpy

from gradpimsim.controller.controller import ChannelController
from gradpimsim.controller.request import Request
from gradpimsim.dram.codes import INF


class Drivable(Protocol):
    """What a process can drive: a controller, or a controller sharing its channel with PIM."""

    @property
    def busy(self) -> bool: ...

    def submit(self, req: Request) -> None: ...

    def next_event(self) -> int: ...

    def run_until(self, limit: int) -> None: ...


class ControllerProcess:
    """Runs a :class:`ChannelController` (or any :class:`Drivable`) inside a SimPy environment.

    ``follow=True`` makes the process also wake at its own next event, so callbacks fire at
    their simulated time for requesters that wait on them (the full-system model).  With
    ``follow=False`` it advances only when woken, which is how trace replay keeps the event count
    proportional to chunks rather than commands.
    """

    def __init__(self, env: simpy.Environment, ctrl: Drivable | ChannelController, *,
                 follow: bool = True):
        self.env = env
        self.ctrl = ctrl
        self.follow = follow
        self._wake = env.event()
        self.process = env.process(self._run())

    def submit(self, req: Request) -> None:
        if req.arrival < self.env.now:
            req.arrival = int(self.env.now)
        self.ctrl.submit(req)
        self.wake()

    def wake(self) -> None:
        if not self._wake.triggered:
            self._wake.succeed()

    def _run(self) -> Generator[simpy.Event, Any, None]:
        env = self.env
        ctrl = self.ctrl
        if not self.follow:
            # advance only when woken: a first step at creation would move an idle controller
            # to cycle 1 before the requester submits its cycle-0 requests
            yield self._wake
        while True:
            ctrl.run_until(int(env.now) + 1)
            nxt = ctrl.next_event() if self.follow and ctrl.busy else INF
            if self._wake.triggered:
                self._wake = env.event()
            if nxt < INF:
                yield env.timeout(max(nxt - int(env.now), 0)) | self._wake
            else:
                yield self._wake
