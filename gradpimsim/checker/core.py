"""The online protocol checker: feed it commands in clock order, ask it for a report.

Each rule is written out as plain code, one handler per command type, from
``shared/ddr4-reference.md`` and the GradPIM rules (see :mod:`gradpimsim.checker.rules` for the
list).  It shares no code with the controller's timing table on purpose: it is the independent
judge of the controller.

The rules live in factories, one per concern, over one state (``state.py``): refresh
(``refresh_rules.py``), host commands (``host_rules.py``) and GradPIM commands
(``pim_rules.py``).  This module is the dispatch core: the checks every command goes through
first (address range, clock order, command bus, rank availability, refresh deadlines) and one
observer per command type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from gradpimsim.checker.host_rules import host_rules
from gradpimsim.checker.pim_rules import Body, pim_disabled, pim_rules
from gradpimsim.checker.refresh_rules import refresh_rules
from gradpimsim.checker.report import CheckReport, Violation
from gradpimsim.checker.rules import Limits
from gradpimsim.checker.state import CheckState
from gradpimsim.config import MemoryConfig
from gradpimsim.config.pim import PimConfig
from gradpimsim.dram.commands import Cmd, Command


class ProtocolChecker:
    """Checks a DDR4 (+ GradPIM) command stream against the protocol rules as it arrives.

    ``observe`` raises ``ValueError`` for input no rule can judge (clock going backwards within
    a channel, addresses outside the configuration); every broken rule becomes a
    :class:`Violation` (or a :class:`ProtocolViolation` at once with ``raise_on_violation``).
    """

    def __init__(
        self,
        cfg: MemoryConfig,
        pim: PimConfig | None = None,
        *,
        raise_on_violation: bool = False,
        keep: int = 1000,
    ) -> None:
        if keep < 0:
            raise ValueError(f"keep must be >= 0, got {keep}")
        self.cfg = cfg
        self.pim = pim
        self.limits = Limits.from_config(cfg, pim)
        self.raise_on_violation = raise_on_violation
        self.keep = keep
        self.violations: list[Violation] = []
        self.by_rule: dict[str, int] = {}
        self._machine = _Machine(self)
        #: The per-command entry point as a plain function (what ``observe`` calls).
        self.observe_fn: Callable[[Command], None] = self._machine.observe
        # Shadow the method with the plain function: one call less per command for sinks that
        # hold ``checker.observe`` (the method below stays as the documented interface).
        self.observe = self.observe_fn  # type: ignore[method-assign]

    def observe(self, cmd: Command) -> None:
        """Check one command (commands of one channel must come in clock order)."""
        self.observe_fn(cmd)

    def observe_many(self, cmds: Iterable[Command]) -> None:
        """Check many commands."""
        dispatch = self._machine.dispatch
        for cmd in cmds:
            dispatch[cmd[1]](cmd)

    @property
    def commands(self) -> int:
        """Commands observed so far."""
        return sum(self._machine.state.counts)

    def finish(self, end_clk: int | None = None) -> CheckReport:
        """Close the check at ``end_clk`` (default: the last command's clock) and report.

        Refresh obligations are checked up to ``end_clk``: a trace that ends owing more REFs
        than the controller may postpone is a violation.
        """
        m = self._machine
        m.finish(end_clk)
        counts = m.state.counts
        by_type = {Cmd(i).name: n for i, n in enumerate(counts) if n}
        return CheckReport(
            config=self.cfg.name,
            commands=sum(counts),
            by_type=by_type,
            by_rule=dict(self.by_rule),
            violations=list(self.violations),
            refresh_gaps=m.refresh.gaps(),
            end_clk=m.state.end_clk,
            pim=self.pim is not None,
        )


class _Machine:
    """The dispatch core: the shared entry checks and one observer per command type."""

    def __init__(self, owner: ProtocolChecker) -> None:
        st = self.state = CheckState(owner)
        NCH, NR = st.NCH, st.NR
        viol, bad_rank = st.viol, st.bad_rank
        counts, c_last, c_deadline = st.counts, st.c_last, st.c_deadline
        r_ready_t, r_ready_rule, r_ready = st.r_ready_t, st.r_ready_rule, st.r_ready
        r_sr, r_sre = st.r_sr, st.r_sre
        SRX = Cmd.SRX
        self.refresh = refresh = refresh_rules(st)
        refresh_scan = refresh.scan

        def same_clock(cmd: Command, prev: Command) -> None:
            """Slow path: the clock did not advance on this channel."""
            if cmd[0] < prev[0]:
                raise ValueError(
                    f"clock went backwards on channel {cmd[2]}: {cmd.trace_line()!r} after "
                    f"{prev.trace_line()!r}"
                )
            viol("cmd_bus", cmd, prev, 1, 0)

        def rank_busy(cmd: Command, t: int, c: int, rid: int) -> None:
            """Slow path: the rank is in self refresh, or inside tRFC / tXS."""
            if r_sr[rid]:
                if c != SRX:
                    viol("self_refresh", cmd, r_sre[rid], 0, 0, "rank is in self refresh")
                return
            p = r_ready[rid]
            viol(r_ready_rule[rid], cmd, p, r_ready_t[rid] - p[0], t - p[0])

        def enter(cmd: Command, t: int, c: int, ch: int, rk: int) -> int:
            """Address range, clock order, command bus, rank availability, refresh deadline;
            returns the rank id."""
            if not (0 <= ch < NCH and 0 <= rk < NR):
                bad_rank(cmd)
            prev = c_last[ch]
            if t <= prev[0]:
                same_clock(cmd, prev)
            c_last[ch] = cmd
            counts[c] += 1
            rid = ch * NR + rk
            if t < r_ready_t[rid]:
                rank_busy(cmd, t, c, rid)
            if t >= c_deadline[ch]:
                refresh_scan(ch, t, cmd)
            return rid

        def cold(body: Body) -> Callable[[Command], None]:
            """An observer for a rare command type: the shared checks, then its rules."""
            def observer(cmd: Command) -> None:
                t, c, ch, rk, bg, bk, row, _ = cmd
                body(cmd, t, ch, enter(cmd, t, c, ch, rk), bg, bk, row)
            return observer

        dispatch: list[Callable[[Command], None]] = [cold(pim_disabled(st))] * len(Cmd)
        for cmd, handler in host_rules(st, enter).items():
            dispatch[cmd] = handler
        dispatch[Cmd.REF] = cold(refresh.ref)
        dispatch[Cmd.SRE] = cold(refresh.sre)
        dispatch[Cmd.SRX] = cold(refresh.srx)
        if st.pim_on:
            for cmd, body in pim_rules(st).items():
                dispatch[cmd] = cold(body)
        #: One observer per command type: ``dispatch[cmd.cmd](cmd)`` checks ``cmd``.
        self.dispatch = dispatch

        def observe(cmd: Command) -> None:
            dispatch[cmd[1]](cmd)

        self.observe = observe

    def finish(self, end_clk: int | None) -> None:
        st = self.state
        end = max([c[0] for c in st.c_last] + [0]) if end_clk is None else end_clk
        st.end_clk = end
        self.refresh.finish(end)
