"""The PIM scheduler's proposals: each agent's next command and its earliest legal cycle.

:meth:`PimProposals.peek` answers with the exact next command of the channel.  In shared mode
another source issues on the same device, so cached proposals are lower bounds, re-planned
lazily (only agents that could win) whenever the device saw a foreign command; foreign row
changes and refresh flags are picked up by comparing snapshots.  Standalone, the scheduler's own
refresh agents ask the refresh authority (``dram/refresh.py``).
"""

from __future__ import annotations

from gradpimsim.dram.codes import ACT, INF, PIM_OP, PIM_SET, PIM_WR, PRE, REF
from gradpimsim.pim.agents import (
    HEAD,
    PROLOGUE,
    UNIT,
    pick,
)
from gradpimsim.pim.batches import PimBatches


class PimProposals(PimBatches):
    """Proposals and the shared-mode bookkeeping (see the module docstring)."""

    # ------------------------------------------------------------------ proposals
    def _plan(self, i: int) -> None:  # noqa: C901
        """Set agent ``i``'s proposal and its earliest legal cycle (bus excluded)."""
        a = self.agents[i]
        kind = a.kind
        rank = a.rank
        best = INF
        dev = self.dev
        own_row = self.own_row
        if kind == UNIT:
            buf = a.buf
            busy_ref = self.refreshing[rank]
            if len(buf) > a.head:
                ins = buf[a.head]
                c: int = ins.cmd
                if c == PIM_OP:
                    if a.ops_ok:
                        best = dev.earliest(PIM_OP, a.fb0)
                        a.cmd = PIM_OP
                        a.fb = a.fb0
                        a.sel = HEAD
                elif not busy_ref:
                    fb = a.fb0 + ins.bank
                    if own_row[fb] == ins.row:
                        e = dev.earliest(c, fb)
                        if c == PIM_WR and e < a.wr_floor:
                            e = a.wr_floor
                        if e < self.yield_from[fb]:  # (a yielded bank: before the yield only)
                            best = e
                            a.cmd = c
                            a.fb = fb
                            a.sel = HEAD
            if busy_ref:
                for b in range(self.bpg):
                    fb = a.fb0 + b
                    if own_row[fb] != -1:
                        e = dev.earliest(PRE, fb)
                        if e < best:
                            best, a.cmd, a.fb, a.sel = e, PRE, fb, b
            elif a.prep:
                open_row = dev.open_row
                yield_from = self.yield_from
                for b in a.prep:
                    fb = a.fb0 + b
                    if own_row[fb] != -1:
                        e = dev.earliest(PRE, fb)
                        y = yield_from[fb]
                        if y < INF and e < y and a.runs[b] and own_row[fb] == a.runs[b][0][0]:
                            e = y  # still needed: given back at the yield, not before
                        if e < best:
                            best, a.cmd, a.fb, a.sel = e, PRE, fb, b
                    elif yield_from[fb] < INF:
                        continue  # given back to the other source: not reopened
                    elif open_row[fb] != -1:  # shared: the other source's open row
                        if self.may_close is None or self.may_close(fb):
                            e = dev.earliest(PRE, fb)
                            if e < best:
                                best, a.cmd, a.fb, a.sel = e, PRE, fb, b
                        else:
                            self.blocked.add(i)
                    else:
                        e = dev.earliest(ACT, fb)
                        if e < best:
                            best, a.cmd, a.fb, a.sel = e, ACT, fb, b
                            a.row = a.runs[b][0][0]
        elif kind == PROLOGUE:
            q = self.prologue_q[rank]
            if q and q[0][1] and (a.pos or self._prologue_may_start(rank, q[0][0].seq)):
                best = dev.earliest(PIM_SET, a.fb0)
                a.cmd = PIM_SET
        elif self.refreshing[rank]:
            refresher = self.refresher  # (refresh agents exist only standalone)
            assert refresher is not None
            if refresher.propose(rank, a.fb0, dev.open_row) == REF:
                best = dev.earliest(REF, a.fb0)
                a.cmd = REF
        self.ready[i] = best
        self.stamp[i] = self.epoch

    def _replan_rank(self, rank: int) -> None:
        for j in self.by_rank[rank]:
            self._plan(j)

    # ------------------------------------------------------------------ shared mode
    def notify(self, cmd: int, bank: int) -> None:
        """Another source issued ``cmd`` on flat ``bank`` of this channel's device.

        Every cached proposal becomes a lower bound (re-validated lazily by :meth:`peek`); a
        row change re-checks the unit owning that bank group.
        """
        self.epoch += 1
        if cmd in (ACT, PRE, REF):
            rows = self.dev.open_row
            self._rows_seen[bank] = rows[bank]
            i = self.unit_of.get(bank // self.bpg)
            if i is not None:
                a = self.agents[i]
                self._check(a, bank - a.fb0)
                self._plan(i)

    def _sync(self) -> None:
        """Shared mode: take in what the other source did since our last look."""
        dev = self.dev
        if dev.last_issue != self._own_last:
            self._own_last = dev.last_issue
            cols, seen = dev.bg_col_issues, self._cols_seen
            if dev.other_issues != self._other_seen:
                # anything but RD/WR may have moved any proposal: plan everything again
                self._other_seen = dev.other_issues
                self.epoch += 1
                seen[:] = cols
            else:
                self._host_columns_seen(cols, seen)
        if dev.row_changes != self._row_changes:
            self._row_changes = dev.row_changes
            rows = dev.open_row
            seen = self._rows_seen
            for b in range(len(rows)):
                if rows[b] != seen[b]:
                    self.notify(ACT if rows[b] != -1 else PRE, b)
        if self.refreshing != self._ref_seen:
            for rank, flag in enumerate(self.refreshing):
                if flag != self._ref_seen[rank]:
                    self._replan_rank(rank)
            self._ref_seen = list(self.refreshing)
        if self.blocked:
            self._replan_blocked()

    def _replan_blocked(self) -> None:
        """Plan again the units that wait on ``may_close`` (``blocked``): its answers and,
        for a unit that proposes something else meanwhile, the timing may have moved.

        A unit that proposes nothing (``ready`` INF: every bank it must prepare is open for the
        other source, which may not let it go) is kept as it is while no ``may_close`` answer
        can have changed (``may_close_changes`` stands): with nothing proposable, timing cannot
        matter, and every other input of its plan (its instructions, its rows, the other
        source's rows, the refresh flags, ``ops_ok``) plans it again where it changes.  A test
        compares the command streams with the reference, which plans them all at every look.
        """
        waiting = list(self.blocked)
        blocked = self.blocked
        blocked.clear()
        changes = self.may_close_changes
        keep = False
        if changes is not None:
            v = changes()
            keep = v == self._may_close_seen
            self._may_close_seen = v
        ready = self.ready
        for i in waiting:
            if keep and ready[i] >= INF:
                blocked.add(i)
            else:
                self._plan(i)

    def _host_columns_seen(self, cols: list[int], seen: list[int]) -> None:
        """The other source issued only RD/WR since our last look: plan again exactly the
        proposals a fresh plan could change (the others stay as they are, which the reference
        of planning everything again would give too; a test checks it):

        - the units of the bank groups those commands went to (their group's timing moved);
        - a unit with a choice between banks to prepare (or to close for a refresh) whose
          proposal lies before the command bus: the bus moved, and options due before it now
          tie at it, which the order of the options decides (``peek`` puts every proposal
          at the bus, so this matters only inside a unit);
        - a unit proposing to close a bank the other source opened: that source's queue may
          no longer allow it (``may_close``).
        """
        unit_of = self.unit_of
        stamp = self.stamp
        for g in range(len(cols)):
            if cols[g] != seen[g]:
                seen[g] = cols[g]
                i = unit_of.get(g, -1)
                if i >= 0:
                    stamp[i] = -1  # (never an epoch)
        agents = self.agents
        ready = self.ready
        own_row = self.own_row
        refreshing = self.refreshing
        bus = self.dev.cmd_bus_next
        closing = self.may_close is not None
        for i in range(len(agents)):
            a = agents[i]
            if a.kind != UNIT:
                continue
            if ((ready[i] < bus and (a.prep or refreshing[a.rank]))
                    or (closing and a.cmd == PRE and own_row[a.fb] == -1)):
                stamp[i] = -1

    def set_yield(self, fb: int, at: int) -> None:
        """Shared mode: give flat bank ``fb`` back to the other source from cycle ``at`` on
        (nothing but its PRE from then, and no reopening), or lift it (``at`` INF); its unit
        plans again."""
        if self.yield_from[fb] == at:
            return
        self.yield_from[fb] = at
        i = self.unit_of.get(fb // self.bpg, -1)
        if i >= 0:
            a = self.agents[i]
            self._check(a, fb - a.fb0)
            if at < INF:
                self.need_since[fb] = at  # given back: needed again from then (after _check)
            self._plan(i)

    def advance(self, t: int) -> None:
        """Nothing of this scheduler issues before cycle ``t`` (time has moved on)."""
        if t > self.floor:
            self.floor = t

    # ------------------------------------------------------------------ stepping
    def peek(self) -> int:
        """The exact cycle of the next command (INF if none can be proposed now)."""
        if self.shared:
            self._sync()
        ready = self.ready
        agents = self.agents
        while True:
            m = INF
            for v in ready:  # (a loop of native compares; builtin min() compares objects)
                if v < m:
                    m = v
            if m >= INF:
                self._sel = -1
                return INF
            bus = self.dev.cmd_bus_next
            if bus < self.floor:
                bus = self.floor
            if m < bus:
                m = bus
            if m >= self.next_check:
                self._refresh_tick()
                continue
            if self.shared:
                epoch = self.epoch
                stamp = self.stamp
                stale = [j for j in range(len(ready)) if ready[j] <= m and stamp[j] != epoch]
                if stale:
                    for j in stale:
                        self._plan(j)
                    continue
            i = pick(agents, ready, m, self.rr)
            self._sel = i
            self._at = m
            return m

    def _refresh_tick(self) -> None:
        """Standalone refresh: a tREFI boundary passed; start refreshes that are due."""
        refresher = self.refresher
        assert refresher is not None
        now = self.next_check
        self.next_check = refresher.next_check(now)
        agents = self.agents
        for rank in range(self.ranks):
            if self.refresh_of[rank] < 0:
                continue
            idle = all(agents[j].kind != UNIT or len(agents[j].buf) == agents[j].head
                       for j in self.by_rank[rank])
            if refresher.start_due(rank, now, idle):
                self._replan_rank(rank)

