"""PIM streams and host traffic on one channel: one device, one command bus, one refresh authority.

In a training iteration the optimizer update runs in DRAM (GradPIM) while the NPU still streams
backward-pass traffic through the same channel.  :class:`SharedChannel` lets the host
:class:`~gradpimsim.controller.controller.ChannelController` and a shared-mode
:class:`~gradpimsim.pim.channel.PimChannel` take turns on the controller's
:class:`~gradpimsim.dram.device.ChannelDevice`; every command of both goes to the controller's
sink, so one checker sees one command stream.

Rules (results depend on them, so they are stated exactly; also docs/gradpim.md section 9):

- **Command bus.**  The earlier legal command goes first.  On a tie the policy decides:
  ``host-first`` (the host issues, PIM re-peeks) or ``pim-first`` (the opposite).  PIM's next
  cycle ``tp`` is exact (:meth:`PimChannel.peek`); the host runs up to ``tp + 1`` (host-first) or
  ``tp`` (pim-first) and ``ctrl.horizon`` keeps its closed-form row-hit runs from passing that
  point, so no host command is ever decided past a PIM command it would have to follow.
- **Bank ownership.**  A bank PIM activated is held by PIM (``ctrl.hold``) until PIM
  precharges it; the host never issues to a held bank.  PIM precharges a bank as soon as none of
  its buffered instructions needs the open row, so the host gets the bank back.  PIM may close a
  bank the *host* left open only when no host request is queued for that bank (host-first) or
  whenever it needs the bank (pim-first); PIM only uses rows it opened itself.  "Queued" means
  in the queue the host is serving (reads, or writes while it drains them), see
  :meth:`SharedChannel._host_lets_go` for why.
- **Refresh.**  The controller's ``RefreshManager`` is the only authority and the controller
  issues every REF, once all banks of the rank are closed.  While a rank refreshes, PIM only
  closes the banks it holds and does register work (PIM_OPs); PIM's PREs are reported to the
  controller (``external_issued``), which re-evaluates its REF candidate.  A rank is idle for
  refresh only when neither side has work on it (``ctrl.external_busy``), so PIM work postpones
  REFs exactly like host work (up to ``max_postponed_refreshes``).
- **No deadlock.**  The host waits only for banks PIM holds, and PIM releases those on its own;
  PIM waits only for host-open banks with requests in the queue the host is serving
  (host-first), which the host can serve because those banks are not held.  Under host-first
  a host that never stops sending to a bank PIM needs starves PIM on that bank (and PIM column
  commands take bus ties from the host under pim-first): that is the policy, not a deadlock.
- **Approximation.**  Host state that *permits* PIM (a host queue draining, so PIM may close the
  bank) is seen when PIM next peeks, not at the exact cycle it changed; PIM then issues at the
  earliest legal cycle after the commands already issued.  PIM looks after every host cycle
  in which something it waits for could have changed (see ``run_until``: a watched bank's
  queue empties or the bank closes, a read/write switch, a refresh flag).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final

import simpy

from gradpimsim.arbiter.rules import DEFAULT_WAIT_BOUND, FairShare, Throttle
from gradpimsim.config import MemoryConfig
from gradpimsim.config.model import ConfigError
from gradpimsim.config.pim import PimConfig
from gradpimsim.controller.controller import ChannelController
from gradpimsim.controller.process import ControllerProcess
from gradpimsim.controller.request import Request
from gradpimsim.dram.codes import ACT, INF, PRE
from gradpimsim.dram.commands import CommandSink
from gradpimsim.pim.channel import PimChannel
from gradpimsim.pim.functional import PimArray
from gradpimsim.pim.unit import PimInstr

POLICIES: Final = ("host-first", "pim-first", "fair", "throttled")
#: How close PIM's next command must be (cycles past the host's clock) for the arbiter to
#: interleave burst by burst (:meth:`SharedChannel._interleave`) instead of letting the host
#: run up to it: a performance threshold only, the commands are the same either way.
_INTERLEAVE_WITHIN: Final = 32


class SharedChannel:
    """A host controller and a PIM scheduler arbitrated on one channel (rules: module docstring).

    ``pim`` must be a shared-mode :class:`PimChannel` on ``ctrl.dev`` that obeys
    ``ctrl.refresh.refreshing`` and writes to ``ctrl.sink``; :meth:`build` makes both.
    """

    #: Let PIM run stretches of unit instructions in its own loop (``PimChannel.run_span``);
    #: False steps every PIM command through ``peek``/``issue``: the reference the tests compare
    #: command streams against (set it on an instance, or on the class for a whole run).
    fast: bool = True

    def __init__(self, ctrl: ChannelController, pim: PimChannel,
                 policy: str = "host-first", wait_bound: int | None = None) -> None:
        if policy not in POLICIES:
            raise ConfigError("policy", f"unknown policy {policy!r}; choose one of "
                                        f"{', '.join(POLICIES)}")
        if pim.dev is not ctrl.dev:
            raise ValueError("pim: the PimChannel must issue on the controller's device")
        if pim.refreshing is not ctrl.refresh.refreshing:
            raise ValueError("pim: the PimChannel must obey the controller's refresh flags "
                             "(refreshing=ctrl.refresh.refreshing)")
        self.ctrl = ctrl
        self.pim = pim
        self.policy = policy
        #: Bus ties go to the host (every policy but pim-first; fair may give one to PIM).
        self.host_first = policy != "pim-first"
        pim.may_close = self._host_lets_go if self.host_first else None
        pim.may_close_changes = self._host_releases if self.host_first else None
        pim.on_row = self._pim_issued
        ctrl.external_busy = pim.rank_busy
        #: The bounded policies' rules (``arbiter/rules.py``); None for the other two.
        self.fair = (FairShare(ctrl, pim, wait_bound or DEFAULT_WAIT_BOUND)
                     if policy == "fair" else None)
        self.throttle = Throttle(ctrl, pim) if policy == "throttled" else None
        self._rule_next = INF
        #: Nothing is processed at or after ``cap`` (see :meth:`lower_cap`).
        self.cap = INF
        #: Host bursts issued burst by burst between PIM spans (:meth:`_interleave`).
        self.interleaved = 0
        self._looks = 0

    @classmethod
    def build(cls, cfg: MemoryConfig, pim: PimConfig | None = None, *, channel: int = 0,
              policy: str = "host-first", sink: CommandSink | None = None,
              array: PimArray | None = None, lookahead: int = 1024,
              batch_runs: bool = True, wait_bound: int | None = None) -> SharedChannel:
        """A controller with the PIM rules (so its sink and checkers know them) and a PIM
        scheduler on the same device and sink: the one place a shared channel is wired."""
        pim = pim or PimConfig()
        ctrl = ChannelController(cfg, channel, pim=pim, sink=sink, batch_runs=batch_runs)
        chan = PimChannel(cfg, pim, channel, dev=ctrl.dev, sink=ctrl.sink, array=array,
                          refreshing=ctrl.refresh.refreshing, lookahead=lookahead)
        return cls(ctrl, chan, policy, wait_bound)

    def lower_cap(self, cycle: int) -> None:
        """A requester may submit work at ``cycle``: decide nothing at or after it, even
        inside a closed-form run already under way (callbacks call this)."""
        if cycle < self.cap:
            self.cap = cycle
        if cycle < self.ctrl.horizon:
            self.ctrl.horizon = cycle

    def _host_lets_go(self, bank: int) -> bool:
        """Host-first: PIM may close a host-open bank only if no request the host is serving
        (reads, or writes while it drains them) waits for it.  Counting the other queue too
        could deadlock: a read queue full of requests for PIM-held banks never lets the host
        turn to a write for this bank, and PIM would keep its banks while waiting for it."""
        ctrl = self.ctrl
        if self.fair is not None:
            return self.fair.may_close(bank, ctrl.now)
        return not (ctrl.write_q if ctrl.draining else ctrl.read_q)[bank]

    def _host_releases(self) -> int:
        """A number that changes whenever a ``_host_lets_go`` answer may have turned True:
        the host's count of banks closed, queues emptied and read/write switches.  The
        reference (``fast`` False) answers a new number at every look, so PIM plans every
        unit waiting on the host again each time."""
        if not self.fast or self.fair is not None:
            self._looks += 1
            return -self._looks
        if self.fair is not None:
            return self.ctrl.releases + (self.fair.claims << 32)
        return self.ctrl.releases

    # ------------------------------------------------------------------ driving
    @property
    def busy(self) -> bool:
        return self.ctrl.busy or self.pim.busy

    def submit(self, req: Request) -> None:
        self.ctrl.submit(req)

    def add_program(self, units: Mapping[tuple[int, int], Iterable[PimInstr]],
                    prologue: Mapping[int, Sequence[PimInstr]] | None = None,
                    on_done: Callable[[int], None] | None = None) -> None:
        self.pim.add_program(units, prologue, on_done)

    def next_event(self) -> int:
        """Cycle of the next thing either side will do (INF when both are idle)."""
        t = self.pim.peek()
        if self.ctrl.busy or self.pim.busy:
            h = self.ctrl.next_event()
            if h < t:
                t = h
            if self.pim.busy and self._rule_next < t:
                t = self._rule_next  # a bounded policy's deadline
        return t

    def _apply_rules(self) -> int:
        """Apply the bounded policy's rules as of the host's clock; returns the next cycle at
        which one becomes due (INF: none or no such policy)."""
        now = self.ctrl.now
        if self.fair is not None:
            self._rule_next = self.fair.apply(now)
        elif self.throttle is not None:
            self._rule_next = self.throttle.apply(now)
        return self._rule_next

    def _rule_watch(self) -> list[int]:
        if self.fair is not None:
            return self.fair.watch_banks()
        if self.throttle is not None:
            return self.throttle.watch_banks()
        return []

    def _bump(self, tp: int) -> int:
        """1 when the host wins a tie at ``tp`` (host-first, and fair unless PIM's command has
        waited its bound), 0 when PIM does."""
        if not self.host_first:
            return 0
        if self.fair is not None and self.fair.tie_to_pim(tp):
            return 0
        return 1

    def run_until(self, limit: int) -> None:
        """Process every event at a cycle < ``limit``; with ``limit == INF``, until both idle.

        Under ``fair`` and ``throttled`` the loop also stops at each cycle one of their rules
        becomes due (``stop``), applies it there, and goes on (``arbiter/rules.py``)."""
        ctrl, pim = self.ctrl, self.pim
        ruled = self.fair is not None or self.throttle is not None
        # ``fair`` reads scheduler state that changes between events (which units wait, which
        # queues hold requests, when each began): it is decided where the reference decides,
        # stepping command by command, so its schedule is the reference's by construction
        fast = self.fast and self.fair is None
        # ctrl.next_at answers for the host's present state: it ran last, and nothing but
        # PIM's peek happened since (so asking it again would only repeat that answer)
        known = False
        while True:
            if self.cap < limit:
                limit = self.cap
            stop = limit
            if ruled:
                d = self._apply_rules()
                if d < stop:
                    stop = d
                known = False  # (a rule may have changed what the host holds)
            tp = pim.peek()
            if tp >= INF and ruled:
                # the peek may have found a unit newly waiting for the host: its deadline
                claims = self.fair.claims if self.fair is not None else 0
                d = self._apply_rules()
                if d < stop:
                    stop = d
                if self.fair is not None and self.fair.claims != claims:
                    continue  # a claim took effect: PIM may close the bank now
            if tp >= INF:
                known = False
                if not pim.busy:  # the host alone
                    if self.fair is not None:
                        self.fair.release_all()
                    ctrl.horizon = limit
                    ctrl.run_until(limit, until_idle=limit >= INF)
                    break
                # PIM waits for the host (a refresh, a host-open bank): step the host
                th = ctrl.next_event()
                if th >= stop or th >= INF:
                    if stop < limit and ctrl.now < stop:
                        ctrl.horizon = stop  # a rule becomes due before the host's next event
                        ctrl.run_until(stop)
                        continue
                    if th >= INF or (not ctrl.busy and not any(ctrl.refresh.refreshing)
                                     and self._rule_next >= INF):  # (a rule's wait is timed)
                        raise RuntimeError("; ".join(pim.stalled()) or "PIM stalled")
                    break
                if not fast:  # the reference: PIM looks again after every host cycle
                    ctrl.horizon = th + 1
                    ctrl.run_until(th + 1)
                    continue
                # The host runs (in closed form) until the first of its events after which
                # PIM might propose something: a watched bank released, a read/write switch,
                # a refresh flag change (ChannelController.watching).  PIM's answer at every
                # host cycle before that would be "nothing", as the reference finds.
                ctrl.horizon = stop
                ctrl.watch(pim.waiting_banks() + self._rule_watch() if ruled
                           else pim.waiting_banks())
                try:
                    ctrl.run_until(stop)
                finally:
                    ctrl.unwatch()
                continue
            bump = self._bump(tp)
            h = tp + bump
            if h > stop:
                h = stop
            if (bump and fast and not ruled and h - ctrl.now <= _INTERLEAVE_WITHIN
                    and ctrl.busy and self._interleave(limit)):
                known = False
                continue
            ctrl.horizon = h
            if known and ctrl.next_at >= h and fast:
                # what run_until(h) would do: nothing before h, and its clock moves to h
                if ctrl.now < h < INF:
                    ctrl.now = h
            else:
                # the host first does whatever falls before h (then the loop asks PIM
                # again); with nothing to do it only learns that nothing happens before h
                events = ctrl.events
                ctrl.run_until(h)
                known = True
                if ctrl.events != events:
                    continue
            th = ctrl.next_at  # (ctrl.next_event(), as run_until just found it)
            if tp >= stop:
                if stop < limit:
                    known = False
                    continue  # a rule is due at ``stop``: the loop applies it first
                break
            # PIM goes.  While PIM issues only unit instructions (no ACT/PRE: the host's
            # candidates stay put) and no callback runs, the host's next event can only move
            # later (device timing only rises), so every PIM command before ``th + 1 - bump``
            # (and ``limit``) would pass the test above too: run them in PIM's own loop.  When
            # the host has no request at all and no rank refreshes, PIM's row commands give it
            # no candidate either (a bank PIM closes or opens has nothing queued; a REF waits
            # for a refresh to start, at the host's next event): those go in the loop too.
            # Under the bounded policies a span also stops at ``stop`` and before the host's
            # next event (a tie there is decided command by command, below).
            known = False
            rows = not ctrl.busy and not any(ctrl.refresh.refreshing)
            bound = th + 1 - bump
            if ruled:
                bound = th if th < stop else stop
            elif th >= limit:
                bound = limit
            if not fast or pim.run_span(bound, rows) == 0:
                pim.issue()
                self._pim_issued(pim.last_cmd, pim.last_bank)
        if self.cap < limit:
            limit = self.cap
        if limit < INF:
            pim.advance(limit)

    def _interleave(self, limit: int) -> bool:
        """Host-first, PIM's next command close: alternate PIM spans and host stream bursts in
        one loop; returns whether anything issued.

        While the host has only bulk streams to serve (``ChannelController.stream_window``),
        its next event is its streams' next burst, and the general loop above would make one
        turn per burst: run the host up to PIM's next cycle, then PIM up to the host's next
        burst.  Here each turn asks only what it needs: the streams' next burst ``t``
        (``next_stream_burst``, exact after whatever PIM issued), then PIM's peek; PIM issues
        its unit instructions before ``t`` (``run_span(t)``, as the loop above would with the
        host's next event at ``t``) or the host issues at ``t`` (ties go to the host).  It
        stops where the window ends, where a stream reaches its last burst, at anything of
        PIM's but a unit instruction, and when a PIM batch completes (its callback may lower
        the cap); the loop above takes it from there, also when PIM's next command moves
        further away (or PIM waits for the host): the host then runs in closed form up to it.
        """
        ctrl, pim = self.ctrl, self.pim
        if self.cap < limit:
            limit = self.cap
        streams: list[int] = []
        end = ctrl.stream_window(limit, streams)
        if not streams:
            return False
        progress = False
        while True:
            t, b = ctrl.next_stream_burst(streams)
            if t >= end:
                break
            tp = pim.peek()
            if tp - t > _INTERLEAVE_WITHIN:
                break  # PIM waits or comes later: the loop above lets the host run in closed form
            if tp < t:
                fired = pim.fired
                if pim.run_span(t, False) == 0:
                    break
                progress = True
                if pim.fired != fired:
                    break
                continue
            ctrl.issue_stream_burst(b, t)
            self.interleaved += 1
            progress = True
        return progress

    def _pim_issued(self, cmd: int, bank: int) -> None:
        """Bank ownership and the controller's candidates after a PIM command."""
        if cmd == ACT:
            self.ctrl.hold(bank, True)
            if self.fair is not None:
                self.fair.pim_opened(bank)
        elif cmd == PRE and not (self.fair is not None and self.fair.claimed[bank]):
            self.ctrl.hold(bank, False)  # (a claimed bank stays PIM's until it opens it)
        self.ctrl.external_issued(cmd, bank)

    def drain(self) -> int:
        """Run until both sides are idle; returns the end of the last command or transfer."""
        self.run_until(INF)
        return max(self.ctrl.last_done, self.pim.end)


class SharedChannelProcess(ControllerProcess):
    """Runs a :class:`SharedChannel` inside a SimPy environment (a ``ControllerProcess`` that
    also takes PIM batches).

    The process sleeps until the next event of either side or a wake-up (a request or a
    program), and on waking processes everything before ``env.now + 1``.  ``follow=True`` (the
    default) wakes at every event, so request callbacks and ``on_done`` fire at their simulated
    issue cycle (``on_done`` gets the end cycle of the batch's last command, at most BL/2 later).
    """

    def __init__(self, env: simpy.Environment, shared: SharedChannel, *,
                 follow: bool = True) -> None:
        super().__init__(env, shared, follow=follow)
        self.shared = shared

    def add_program(self, units: Mapping[tuple[int, int], Iterable[PimInstr]],
                    prologue: Mapping[int, Sequence[PimInstr]] | None = None,
                    on_done: Callable[[int], None] | None = None) -> None:
        """Append a PIM batch now: none of its commands issues before ``env.now``."""
        self.shared.pim.advance(int(self.env.now))
        self.shared.add_program(units, prologue, on_done)
        self.wake()
