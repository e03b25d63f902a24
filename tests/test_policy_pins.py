"""Controller policies pinned by hand: exact command sequences written from the rules.

Each case is small enough to work out on paper from the DDR4-2400 x8 preset (CL 17, CWL 12,
tRCD 17, tRP 17, tRAS 39, tCCD_L 6, tWTR_L 9, tRTP 9, tRFC 420, BL/2 4, tRRD_L 6) and the
policy statements in ``gradpimsim/controller/controller.py``'s docstring and
``docs/memory-model.md``; the expected values never come from the code under test.  Each was
checked against a deliberate bug (``benchmarks/mutants.py``)."""

from __future__ import annotations

from gradpimsim.config import preset
from gradpimsim.dram.commands import Cmd
from tests.helpers import addr_of, simulate
from tests.test_arbitration import one_bank_contest

CFG = preset("ddr4-2400").with_overrides(refresh=False)


def test_opportunistic_drain_stops_when_a_read_arrives() -> None:
    """Writes are served while no read waits; a read arriving mid-drain is served next.

    Four writes to bank 1 (row 9) at cycle 0, well below the high watermark: no read waits, so
    the controller drains them opportunistically: ACT 0, WR 17 (tRCD), next WR 23 (tCCD_L).
    A read to bank 0 (same bank group) arrives at 20: the drain ends there.  ACT of bank 0 at 20
    (tRRD_L from 0 allows it); its RD waits for tWTR_L after the WR at 17:
    17 + CWL 12 + BL/2 4 + tWTR_L 9 = 42 (tRCD alone would allow 37).  Then the writes resume.
    """
    reqs = [(addr_of(CFG, bank=1, row=9, col=i), True, 0) for i in range(4)]
    reqs.append((addr_of(CFG, bank=0, row=1), False, 20))
    _, cmds, _ = simulate(CFG, reqs)
    seq = [(c.clk, c.cmd.name, c.bank) for c in cmds]
    assert seq[:4] == [(0, "ACT", 1), (17, "WR", 1), (20, "ACT", 0), (42, "RD", 0)]
    kinds = [c.cmd.name for c in cmds if c.cmd in (Cmd.RD, Cmd.WR)]
    assert kinds == ["WR", "RD", "WR", "WR", "WR"]


def test_closed_page_keeps_a_row_open_for_a_queued_write_hit() -> None:
    """Closed page: RDA only when no other queued request, read *or write*, hits the row.

    A read and a write to the same row, both at cycle 0: reads first (ACT 0, RD 17); the write
    still hits the row, so the RD must not auto-precharge.  With no read left the write drains
    as the row's last user: WRA.  Precisely ACT, RD, WRA: one ACT, no PRE.
    """
    cfg = CFG.with_overrides(page_policy="closed")
    rd = addr_of(cfg, bank=2, row=5, col=0)
    wr = addr_of(cfg, bank=2, row=5, col=1)
    _, cmds, _ = simulate(cfg, [(rd, False, 0), (wr, True, 0)])
    assert [(c.clk, c.cmd.name) for c in cmds][:2] == [(0, "ACT"), (17, "RD")]
    assert [c.cmd.name for c in cmds] == ["ACT", "RD", "WRA"]


def test_fr_fcfs_and_fcfs_exact_sequences() -> None:
    """Bank 0: a read of row 1 (cycle 0), a read of row 2 (cycle 1), two more reads of row 1
    (cycles 2 and 3).

    FR-FCFS serves the open row's hits first: ACT 0, RD 17 (tRCD), RD 23, RD 29 (tCCD_L 6),
    PRE at max(29 + tRTP 9, 0 + tRAS 39) = 39, ACT 56 (tRP), RD 73.
    FCFS serves strictly in age order: ACT 0, RD 17, PRE max(17 + 9, 39) = 39, ACT 56, RD 73
    (row 2), PRE max(73 + 9, 56 + 39) = 95, ACT 112, RD 129, RD 135.
    """
    reqs = [(addr_of(CFG, row=1, col=0), False, 0), (addr_of(CFG, row=2), False, 1),
            (addr_of(CFG, row=1, col=1), False, 2), (addr_of(CFG, row=1, col=2), False, 3)]
    _, frfcfs, _ = simulate(CFG, reqs)
    _, fcfs, _ = simulate(CFG.with_overrides(scheduler="fcfs"), reqs)
    assert [(c.clk, c.cmd.name, c.row) for c in frfcfs] == [
        (0, "ACT", 1), (17, "RD", 1), (23, "RD", 1), (29, "RD", 1),
        (39, "PRE", 1), (56, "ACT", 2), (73, "RD", 2)]
    assert [(c.clk, c.cmd.name, c.row) for c in fcfs] == [
        (0, "ACT", 1), (17, "RD", 1), (39, "PRE", 1), (56, "ACT", 2), (73, "RD", 2),
        (95, "PRE", 2), (112, "ACT", 1), (129, "RD", 1), (135, "RD", 1)]


def test_back_pressure_admits_when_a_slot_frees() -> None:
    """A read queue of 2 and four reads of one open row, all offered at cycle 0.

    Two are admitted at 0; a slot frees when a request's (last) column command issues, and the
    next request is admitted in that cycle: RDs at 17, 23, 29, 35 (tCCD_L), so admissions at
    0, 0, 17, 23.  Latency runs from admission to the last data beat (RD + CL 17 + BL/2 4):
    38, 44, 33, 33.
    """
    cfg = CFG.with_overrides(read_queue_depth=2)
    reqs = [(addr_of(cfg, row=1, col=i), False, 0) for i in range(4)]
    _, cmds, done = simulate(cfg, reqs)
    assert [c.clk for c in cmds if c.cmd == Cmd.RD] == [17, 23, 29, 35]
    assert [r.admitted for r in done] == [0, 0, 17, 23]
    assert [r.done - r.admitted for r in done] == [38, 44, 33, 33]


def test_busy_rank_postpones_refresh_to_the_limit_then_closes_its_row() -> None:
    """tREFI 1001 (so no tREFI boundary meets a RD slot), at most 2 postponed REFs, and a
    stream of reads to one row of bank 0 that keeps the rank busy.

    RDs at 17 + 6k.  At 1001 the rank owes 1 (< 2, busy: postponed); at 2002 it owes 2, which
    forces a refresh: no RD after the last one before 2002 (1997), PRE at max(2002, 1997 + tRTP
    9) = 2006, REF at 2006 + tRP 17 = 2023, ACT at 2023 + tRFC 420 = 2443, RDs again from 2460.
    At 3003 it owes 3 - 1 = 2 again: last RD 2460 + 6 * 90 = 3000, PRE 3009, REF 3026.
    """
    cfg = preset("ddr4-2400").with_overrides(tREFI=1001, max_postponed_refreshes=2)
    reqs = [(addr_of(cfg, row=1, col=i % 128), False, 0) for i in range(600)]
    _, cmds, _ = simulate(cfg, reqs)
    refs = [c.clk for c in cmds if c.cmd == Cmd.REF]
    pres = [c.clk for c in cmds if c.cmd == Cmd.PRE]
    reads = [c.clk for c in cmds if c.cmd == Cmd.RD]
    assert refs[:2] == [2023, 3026]
    assert pres[:2] == [2006, 3009]
    assert max(r for r in reads if r < 2023) == 1997
    assert min(r for r in reads if r > 2023) == 2460


def test_pim_first_takes_the_tie_and_holds_the_bank() -> None:
    """The one-bank contest of ``test_arbitration`` (the unit and the host both want bank 0 at
    cycle 0).  pim-first gives the bus tie at cycle 0 to PIM: its ACT at 0; the host never
    issues to a bank PIM holds, so its first commands to bank 0 come after PIM's PRE at ``p``:
    ACT at p + tRP 17, RD at p + 17 + tRCD 17.  host-first, the opposite: host ACT 0, RD 17.
    (fair, host-first and throttled are pinned by their rules in ``tests/test_arbitration.py``.)
    """
    events, _, _ = one_bank_contest("pim-first", 300)
    assert (events[0].clk, events[0].pim, events[0].cmd) == (0, True, Cmd.ACT)
    p = min(e.clk for e in events if e.pim and e.cmd == Cmd.PRE)
    host = [(e.clk, e.cmd) for e in events if not e.pim]
    assert host[:2] == [(p + 17, Cmd.ACT), (p + 34, Cmd.RD)]
    events, _, _ = one_bank_contest("host-first", 300)
    assert [(e.clk, e.pim, e.cmd) for e in events[:2]] == [(0, False, Cmd.ACT),
                                                            (17, False, Cmd.RD)]
