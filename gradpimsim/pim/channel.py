"""One channel's GradPIM command scheduler, steppable: ``peek()`` the next command, ``issue()`` it.

Built in layers like the host controller: ``agents.py`` (the proposers), ``batches.py``
(state, programs, buffers), ``proposals.py`` (each agent's next command, shared-mode sync,
``peek``), and this module: issuing, one command or a span of them in one inlined loop.

The scheduling policy (agents, in-order units, row preparation running ahead, earliest first
with round-robin ties, refresh) is stated in :mod:`gradpimsim.pim.engine`, which drives one
:class:`PimChannel` per channel to completion.  Stepping matters because a PIM stream must also
share a channel with host traffic (:mod:`gradpimsim.arbiter.shared_channel`): there the host
controller and this scheduler take turns on one :class:`~gradpimsim.dram.device.ChannelDevice`.

Two modes:

- **standalone** (``refreshing=None``): this scheduler owns the device, so every open bank is
  its own and it keeps its own refresh agents (one per rank, ``RefreshManager`` rules).
- **shared** (``refreshing`` is the host controller's ``RefreshManager.refreshing``): another
  source issues on the same device.  It has no refresh agents and obeys the external flags (a
  refreshing rank's units only close their banks and do register work).  It counts as its own
  only the banks it activated, releases a bank (PRE) as soon as no buffered instruction needs
  its open row, and closes a bank the other source left open only if ``may_close(bank)`` says
  so.  Cached proposals are then lower bounds: whenever the device saw a foreign command,
  :meth:`peek` re-plans (lazily, only the agents that could win) before answering, so its answer
  is exact.  Foreign row changes and refresh flags are picked up by comparing snapshots, and
  agents waiting on ``may_close`` are re-planned at every peek (those with nothing to propose
  only once the other source's ``may_close_changes`` count moved, see :meth:`_replan_blocked`).

Speed: :meth:`PimChannel.run` (standalone) and :meth:`PimChannel.run_span` (shared, up to a
bound the arbiter guarantees is free of host commands) issue unit instructions in one inlined
loop, :meth:`PimChannel._drive`, making exactly the decisions of ``peek()``/``issue()``.

Programs are *batches*: :meth:`add_program` appends one at any time; each unit consumes its
batches in order.  A batch's PIM_OPs on a rank wait for that batch's prologue (PIM_SETs) on the
rank, and a prologue waits until every unit of the rank has finished the earlier batches (it
overwrites scalar registers they may still read).  ``on_done(cycle)`` fires once every
instruction of the batch has issued; ``cycle`` is the end of its last command.
"""

from __future__ import annotations

from gradpimsim.dram.codes import ACT, INF, NCMD, PIM_OP, PIM_RD, PIM_SET, PIM_WR, PRE, REF
from gradpimsim.dram.commands import Cmd, Command
from gradpimsim.pim.agents import (
    CMDS,
    HEAD,
    PROLOGUE,
    UNIT,
    Agent,
    pick,
)
from gradpimsim.pim.proposals import PimProposals
from gradpimsim.pim.unit import SQRT_DIV_OPS


class PimChannel(PimProposals):
    """Steppable GradPIM scheduler of one channel (see the module docstring).

    ``dev``: the device to issue on (a fresh one when ``None``); ``sink`` receives every issued
    :class:`Command`; ``array`` executes each instruction at its issue cycle (functional mode).
    ``refresh`` overrides ``cfg.controller.refresh`` (standalone mode only).  ``refreshing`` and
    ``may_close`` select shared mode (see the module docstring).
    """

    def run(self) -> int:
        """Issue until nothing can be proposed; returns the end cycle.

        Makes exactly the decisions of ``while peek() < INF: issue()`` (a test compares the
        command streams); standalone it goes through :meth:`_drive`, which inlines the common
        case.  Shared mode steps ``peek``/``issue``: the other source may act between commands.
        """
        if self.shared or not self.ready:
            while self.peek() < INF:
                self.issue()
            return self.end
        self._drive(INF, False)
        return self.end

    def run_span(self, bound: int, rows: bool = False) -> int:
        """Shared mode: issue the command the last :meth:`peek` chose and the commands after
        it, exactly as repeated ``peek()``/``issue()`` would, while each is a unit instruction
        (PIM_RD, PIM_WR, PIM_OP) at a cycle before ``bound``; returns how many issued.

        With ``rows`` the span also issues row preparation and PIM_SETs (each reported to
        ``on_row``): for an arbiter whose other source has no work, so that nothing PIM's row
        commands change there can move that source's next event before ``bound``.

        The caller (the arbiter) guarantees that no other source issues before ``bound`` and
        that its state (queues, refresh flags, hence ``may_close``) stays as it is while this
        runs.  Then the only things :meth:`peek` would do between two of these commands are
        re-validating stale proposals (done once here: nothing foreign happens, so re-planning
        now or later gives the same proposal) and re-planning agents waiting on ``may_close``
        (done per command, as peek does).  A completed batch (its callback may lower the
        caller's bound) ends the span; so do row preparation and PIM_SETs without ``rows``, so
        that the caller sees every ACT/PRE, and then it returns 0 without issuing if the chosen
        command is not a unit instruction.
        """
        i = self._sel
        if i < 0:
            return 0
        a = self.agents[i]
        if not rows and (a.kind != UNIT or a.sel != HEAD):
            return 0
        epoch = self.epoch
        stamp = self.stamp
        for j in range(len(stamp)):
            if stamp[j] != epoch:  # a lower bound above the chosen cycle: make it exact
                self._plan(j)
        return self._drive(bound, True, rows)

    def _drive(self, bound: int, span: bool, rows: bool = False) -> int:  # noqa: C901
        """The hot loop behind :meth:`run` (``span`` False: to the end) and :meth:`run_span`
        (``span`` True: starts with the peeked command, stops at anything but a unit
        instruction unless ``rows``, at ``bound`` or after a batch completes).  Returns the
        commands issued.

        It makes the decisions of ``peek()``/``issue()`` but inlines the common case, a unit's
        next instruction, with containers in locals: this is the per-command hot path.  Methods
        are called on their objects, not through bound methods kept in locals: compiled, such a
        call is a direct C call, while a bound method in a local is a generic Python call.
        Anything else (row preparation, PIM_SET, REF) goes through :meth:`issue` (``span``
        False).
        """
        ready = self.ready
        agents = self.agents
        dev = self.dev
        local_ok = dev.local_ok
        bank_next, bg_next, rank_next = dev.bank_next, dev.bg_next, dev.rank_next
        bpg, bpr = self.bpg, self.bpr
        own_row = self.own_row
        refreshing = self.refreshing
        counts = self.counts
        sink = self.sink
        store = self.store
        burst = self.burst
        low_water = self.low_water
        long_latency = self.long_latency
        ch = self.channel
        blocked = self.blocked
        end = self.end
        rr = self.rr
        next_check = self.next_check
        floor = self.floor
        done = self._done
        n = len(agents)
        issued = 0
        c = t = fb = -1
        if span:
            i = self._sel
            m = self._at
        while True:
            if not span or issued:
                if blocked:  # shared: agents waiting on may_close (as peek's _sync)
                    self._replan_blocked()
                m = INF
                for v in ready:  # (native compares; builtin min() compares objects)
                    if v < m:
                        m = v
                if m >= INF:
                    break
                bus = dev.cmd_bus_next
                if bus < floor:
                    bus = floor
                if m < bus:
                    m = bus
                if m >= bound:
                    break
                if m >= next_check:
                    self._refresh_tick()
                    next_check = self.next_check
                    continue
                i = pick(agents, ready, m, rr)
            a = agents[i]
            if a.kind != UNIT or a.sel != HEAD:
                if span and not rows:
                    break
                self.end = end
                self._sel = i
                self._at = m
                fired = self.fired
                self.issue()
                end = self.end
                rr = self.rr
                n = len(agents)  # a callback may have added a program
                if span:
                    issued += 1
                    t, c, fb = m, self.last_cmd, self.last_bank  # (the span's last command)
                    if self.on_row is not None:
                        self.on_row(c, fb)
                    if self.fired != fired:  # a callback may have lowered the bound
                        break
                continue
            rr = i + 1 if i + 1 < n else 0
            issued += 1
            # -- inlined issue() of a unit's head instruction
            t = m
            self._clock = t
            c = a.cmd
            rank = a.rank
            counts[c] = counts[c] + 1  # (an augmented list item is a generic add)
            fb = a.fb
            ur = a.res
            buf = a.buf
            head = a.head
            ins = buf[head]
            head += 1
            a.head = head
            if c == PIM_OP:
                if local_ok[c]:
                    dev.issue_local(c, fb, t)
                else:
                    dev.issue(c, fb, t)
                ur.ops += 1
                if ins.op in SQRT_DIV_OPS and t + long_latency > a.wr_floor:
                    a.wr_floor = t + long_latency
                if sink is not None:
                    sink(Command(t, Cmd.PIM_OP, ch, rank, a.bg, -1, -1, -1))
                e = t + 1
            else:
                b = ins.bank
                row = ins.row
                if local_ok[c]:
                    dev.issue_local(c, fb, t)
                else:
                    dev.issue(c, fb, t, row)
                if c == PIM_RD:
                    ur.reads += 1
                else:
                    ur.writes += 1
                if ur.bin_width:
                    ur.tally(t)
                if sink is not None:
                    sink(Command(t, CMDS[c], ch, rank, a.bg, b, row, ins.col))
                runs = a.runs[b]
                run = runs[0]
                left = run[1] - 1
                run[1] = left
                if not left:
                    runs.popleft()
                    self._check(a, b)
                e = t + burst
                a.part_end = e
            if a.pu is not None:
                a.pu.execute(ins, store, ch, rank, a.bg)
            if e > end:
                end = e
            ur.last_cycle = t
            if len(buf) - head < low_water and not a.exhausted:
                self._refill(a)
                head = 0
            if len(buf) - head == a.mark_len:
                self._marks_reached(a, e)
            stop = False
            if done:
                self.end = end
                self.rr = rr
                self._fire()
                stop = span  # a callback may have lowered the caller's bound
                n = len(agents)  # or added a program (and refilled this unit's buffer)
                floor = self.floor
                head = a.head
            # fast path of _plan(i): the next instruction is ready to propose and no bank
            # needs preparing (the common case; anything else takes _plan()).  The proposal's
            # cycle is dev.earliest(), inlined (not an ACT: no four-activate window)
            if len(buf) > head and not a.prep and not refreshing[rank]:
                ins = buf[head]
                c2: int = ins.cmd
                fb2 = -1
                if c2 == PIM_OP:
                    if a.ops_ok:
                        fb2 = a.fb0
                elif own_row[a.fb0 + ins.bank] == ins.row:
                    fb2 = a.fb0 + ins.bank
                if fb2 < 0:
                    self._plan(i)
                else:
                    e = bank_next[fb2 * NCMD + c2]
                    v = bg_next[(fb2 // bpg) * NCMD + c2]
                    if v > e:
                        e = v
                    v = rank_next[(fb2 // bpr) * NCMD + c2]
                    if v > e:
                        e = v
                    v = dev.cmd_bus_next
                    if v > e:
                        e = v
                    if c2 == PIM_WR and e < a.wr_floor:
                        e = a.wr_floor
                    a.cmd = c2
                    a.fb = fb2
                    ready[i] = e
            else:
                self._plan(i)
            if stop:
                break
        self.end = end
        self.rr = rr
        if issued and span:
            self._sel = -1
            self.last_cmd = c
            self.last_bank = fb
            self._own_last = t
        self._other_seen = dev.other_issues  # (our own commands: seen)
        return issued

    def issue(self) -> None:
        """Issue the command the last :meth:`peek` returned, at that cycle."""
        self._issue()
        self._other_seen = self.dev.other_issues  # (our own command: seen)

    def _issue(self) -> None:  # noqa: C901
        i = self._sel
        if i < 0:
            raise RuntimeError("issue() without a command: call peek() first")
        self._sel = -1
        t = self._at
        self._clock = t
        agents = self.agents
        a = agents[i]
        self.rr = i + 1 if i + 1 < len(agents) else 0
        c = a.cmd
        kind = a.kind
        rank = a.rank
        dev = self.dev
        sink = self.sink
        ch = self.channel
        self.counts[c] += 1
        self.last_cmd = c
        self.last_bank = a.fb
        self._own_last = t
        if kind == UNIT:
            fb = a.fb
            ur = a.res
            if a.sel == HEAD:
                ins = a.buf[a.head]
                a.head += 1
                if c == PIM_OP:
                    dev.issue(c, fb, t)
                    ur.ops += 1
                    if ins.op in SQRT_DIV_OPS and t + self.long_latency > a.wr_floor:
                        a.wr_floor = t + self.long_latency
                    if sink is not None:
                        sink(Command(t, Cmd.PIM_OP, ch, rank, a.bg, -1, -1, -1))
                    e = t + 1
                else:
                    b = ins.bank
                    row = ins.row
                    dev.issue(c, fb, t, row)
                    if c == PIM_RD:
                        ur.reads += 1
                    else:
                        ur.writes += 1
                    if ur.bin_width:
                        ur.tally(t)
                    if sink is not None:
                        sink(Command(t, CMDS[c], ch, rank, a.bg, b, row, ins.col))
                    runs = a.runs[b]
                    run = runs[0]
                    run[1] -= 1
                    if not run[1]:
                        runs.popleft()
                        self._check(a, b)
                    e = t + self.burst
                    a.part_end = e
                if a.pu is not None:
                    a.pu.execute(ins, self.store, ch, rank, a.bg)
                if e > self.end:
                    self.end = e
                ur.last_cycle = t
                if len(a.buf) - a.head < self.low_water and not a.exhausted:
                    self._refill(a)
                if len(a.buf) - a.head == a.mark_len:
                    self._marks_reached(a, e)
                if self._done:
                    self._fire()
                # fast path of _plan(i): the next instruction is ready to propose and no
                # bank needs preparing (the common case; anything else takes _plan())
                buf = a.buf
                if len(buf) > a.head and not a.prep and not self.refreshing[rank]:
                    ins = buf[a.head]
                    c = ins.cmd
                    if c == PIM_OP:
                        if a.ops_ok:
                            a.cmd = PIM_OP
                            a.fb = a.fb0
                            self.ready[i] = dev.earliest(PIM_OP, a.fb0)
                            self.stamp[i] = self.epoch
                            return
                    else:
                        fb = a.fb0 + ins.bank
                        if self.own_row[fb] == ins.row:
                            e = dev.earliest(c, fb)
                            if c == PIM_WR and e < a.wr_floor:
                                e = a.wr_floor
                            a.cmd = c
                            a.fb = fb
                            self.ready[i] = e
                            self.stamp[i] = self.epoch
                            return
                self._plan(i)
            else:
                self._issue_prep(i, a, c, t)
        elif kind == PROLOGUE:
            batch, sets = self.prologue_q[rank][0]
            ins = sets[a.pos]
            a.pos += 1
            dev.issue(PIM_SET, a.fb0, t)
            if sink is not None:
                sink(Command(t, Cmd.PIM_SET, ch, rank, -1, -1, -1, -1))
            if self.array is not None:
                self.array.issue(ch, rank, -1, ins)
            if t + 1 > self.end:
                self.end = t + 1
            if a.pos == len(sets):
                a.pos = 0
                self.prologue_q[rank].popleft()
                self.sets_gen[rank] = batch.seq
                self._part_done(batch, t + 1)
                self._advance_prologue(rank)
                for j in self.by_rank[rank]:
                    if agents[j].kind == UNIT:
                        self._ops_ok(agents[j])
                self._replan_rank(rank)
                self._fire()
            else:
                self._plan(i)
        else:  # REF (standalone only)
            refresher = self.refresher
            assert refresher is not None
            dev.issue(REF, a.fb0, t)
            if sink is not None:
                sink(Command(t, Cmd.REF, ch, rank, 0, 0, -1, -1))
            if t + 1 > self.end:
                self.end = t + 1
            refresher.refreshed(rank, t, False)
            for j in self.by_rank[rank]:
                a2 = agents[j]
                if a2.kind == UNIT:
                    for b in range(self.bpg):
                        self._check(a2, b)
            self._replan_rank(rank)

    def _issue_prep(self, i: int, a: Agent, c: int, t: int) -> None:
        """Issue a unit's row preparation (ACT or PRE) at ``t``."""
        dev = self.dev
        fb = a.fb
        b = a.sel
        rank = a.rank
        if c == ACT:
            row = a.row
            dev.issue(ACT, fb, t, row)
            a.res.activations += 1
            self.act_at[fb] = t
        else:
            row = dev.open_row[fb]
            dev.issue(PRE, fb, t)
            a.res.precharges += 1
        self.own_row[fb] = row if c == ACT else -1
        if self.shared:
            self._rows_seen[fb] = row if c == ACT else -1
        if self.sink is not None:
            self.sink(Command(t, CMDS[c], self.channel, rank, a.bg, b, row, -1))
        self._check(a, b)
        if t + 1 > self.end:
            self.end = t + 1
        if c == ACT:  # tRRD_S / tFAW move every ACT proposal of the rank
            agents = self.agents
            for j in self.by_rank[rank]:
                if j == i or agents[j].cmd == ACT:
                    self._plan(j)
        else:
            self._plan(i)
            j = self.refresh_of[rank]
            if self.refreshing[rank] and j >= 0:
                self._plan(j)

