"""Tight tests of every GradPIM timing rule, through the device and through the timed engine.

Each rule: the ``next`` command is legal *exactly* at the reference gap after ``prev`` (the device
answers that cycle, and the independent checker accepts it there) and illegal one cycle earlier
(the device answers later, and the checker reports the rule).  Gaps are literal DDR4-2400 numbers
from ../shared/ddr4-reference.md and docs/gradpim.md (tRCD 17, tCCD_L 6, tWTR_L 9, tRTP 9, tWR 18,
tMRD 8, tMOD 24, tRRD_S 4, tRRD_L 6, tFAW 26, BL/2 4, op_latency 4), never values read back from
the rule table, so a wrong table entry cannot hide.
"""

from __future__ import annotations

import pytest

from gradpimsim.checker import ProtocolChecker
from gradpimsim.config import preset
from gradpimsim.config.pim import PimConfig
from gradpimsim.config.training import OptimizerConfig, precision
from gradpimsim.dram.commands import Cmd, Command
from gradpimsim.dram.device import ChannelDevice
from gradpimsim.pim.engine import PimEngine
from gradpimsim.pim.kernels import PimProgram
from gradpimsim.pim.unit import PimInstr, pim_op, pim_rd, pim_wr, set_scalar

CFG = preset("ddr4-2400")
PIM = PimConfig()
T0 = 1000

A, P, RD, WR, OP, SET = Cmd.ACT, Cmd.PRE, Cmd.PIM_RD, Cmd.PIM_WR, Cmd.PIM_OP, Cmd.PIM_SET
# (cmd, rank, bankgroup, bank); row 7 for ACT and column commands
Step = tuple[Cmd, int, int, int]

# (name, setup issued at T0 - 200 + 10*i, prev at T0, next, literal gap, checker rule)
CASES: list[tuple[str, list[Step], Step, Step, int, str]] = [
    ("ACT -> PIM_RD = tRCD", [], (A, 0, 0, 0), (RD, 0, 0, 0), 17, "tRCD"),
    ("ACT -> PIM_WR = tRCD", [], (A, 0, 0, 0), (WR, 0, 0, 0), 17, "tRCD"),
    ("PIM_RD -> PIM_RD same bank group = tCCD_L", [(A, 0, 0, 0), (A, 0, 0, 1)],
     (RD, 0, 0, 0), (RD, 0, 0, 1), 6, "pim_ccd"),
    ("PIM_RD -> PIM_RD same bank = tCCD_L", [(A, 0, 0, 0)], (RD, 0, 0, 0), (RD, 0, 0, 0), 6,
     "pim_ccd"),
    ("PIM_WR -> PIM_WR same bank group = tCCD_L", [(A, 0, 0, 0), (A, 0, 0, 1)],
     (WR, 0, 0, 0), (WR, 0, 0, 1), 6, "pim_ccd"),
    ("PIM_RD -> PIM_WR same bank group = tCCD_L", [(A, 0, 0, 0), (A, 0, 0, 1)],
     (RD, 0, 0, 0), (WR, 0, 0, 1), 6, "pim_ccd"),
    ("PIM_RD -> PIM_RD other bank group = 1 (command bus only)", [(A, 0, 0, 0), (A, 0, 1, 0)],
     (RD, 0, 0, 0), (RD, 0, 1, 0), 1, "cmd_bus"),
    ("PIM_WR -> PIM_WR other bank group = 1 (command bus only)", [(A, 0, 0, 0), (A, 0, 1, 0)],
     (WR, 0, 0, 0), (WR, 0, 1, 0), 1, "cmd_bus"),
    ("PIM_WR -> PIM_RD other bank group = 1 (no tWTR_S)", [(A, 0, 0, 0), (A, 0, 1, 0)],
     (WR, 0, 0, 0), (RD, 0, 1, 0), 1, "cmd_bus"),
    ("PIM_WR -> PIM_RD same bank group = BL/2 + tWTR_L", [(A, 0, 0, 0), (A, 0, 0, 1)],
     (WR, 0, 0, 0), (RD, 0, 0, 1), 4 + 9, "pim_wtr"),
    ("PIM_RD -> PRE = tRTP", [(A, 0, 0, 0)], (RD, 0, 0, 0), (P, 0, 0, 0), 9, "pim_rtp"),
    ("PIM_WR -> PRE = BL/2 + tWR", [(A, 0, 0, 0)], (WR, 0, 0, 0), (P, 0, 0, 0), 4 + 18,
     "pim_wr"),
    ("PIM_OP -> PIM_WR = op_latency", [(A, 0, 0, 0)], (OP, 0, 0, -1), (WR, 0, 0, 0), 4,
     "pim_op_latency"),
    ("PIM_SET -> PIM_SET = tMRD", [], (SET, 0, -1, -1), (SET, 0, -1, -1), 8, "pim_set"),
    ("PIM_SET -> PIM_OP = tMOD", [], (SET, 0, -1, -1), (OP, 0, 2, -1), 24, "pim_set"),
    ("ACT -> ACT same bank group = tRRD_L", [], (A, 0, 0, 0), (A, 0, 0, 1), 6, "tRRD_L"),
    ("ACT -> ACT other bank group = tRRD_S", [], (A, 0, 0, 0), (A, 0, 1, 0), 4, "tRRD_S"),
]


def _command(step: Step, t: int) -> Command:
    cmd, rank, bg, bank = step
    row = 7 if cmd in (A, RD, WR) else -1
    col = 3 if cmd in (RD, WR) else -1
    if cmd in (OP, SET):
        bank = -1
    return Command(t, cmd, 0, rank, bg, bank, row, col)


class Rig:
    """A channel device with the independent checker observing every issued command."""

    def __init__(self, cfg=CFG, pim=PIM, raising: bool = True) -> None:
        self.dev = ChannelDevice(cfg, pim)
        self.checker = ProtocolChecker(cfg, pim, raise_on_violation=raising)

    def fb(self, step: Step) -> int:
        _, rank, bg, bank = step
        return self.dev.flat_bank(rank, max(bg, 0), max(bank, 0))

    def earliest(self, step: Step) -> int:
        return self.dev.earliest(int(step[0]), self.fb(step))

    def issue(self, step: Step, t: int) -> None:
        c = _command(step, t)
        self.dev.issue(int(step[0]), self.fb(step), t, c.row)
        self.checker.observe(c)


def _prepare(setup: list[Step], prev: Step, raising: bool = True) -> Rig:
    rig = Rig(raising=raising)
    for i, s in enumerate(setup):
        rig.issue(s, T0 - 200 + 10 * i)
    rig.issue(prev, T0)
    return rig


@pytest.mark.parametrize(("name", "setup", "prev", "nxt", "gap", "rule"), CASES,
                         ids=[c[0] for c in CASES])
def test_rule_is_tight(name: str, setup: list[Step], prev: Step, nxt: Step, gap: int,
                       rule: str) -> None:
    rig = _prepare(setup, prev)
    assert rig.earliest(nxt) == T0 + gap  # equality: legal exactly here ...
    rig.issue(nxt, T0 + gap)
    assert rig.checker.finish().ok
    # ... and one cycle earlier the checker catches it
    early = _prepare(setup, prev, raising=False)
    assert early.earliest(nxt) > T0 + gap - 1
    early.checker.observe(_command(nxt, T0 + gap - 1))  # the device would refuse the bus
    report = early.checker.finish()
    assert not report.ok
    assert rule in report.by_rule, report.by_rule


def test_tfaw_fifth_activate() -> None:
    """Four ACTs at tRRD_S spacing, the fifth waits for tFAW = 26 after the first."""
    acts = [(A, 0, 0, 0), (A, 0, 1, 0), (A, 0, 2, 0), (A, 0, 3, 0)]
    fifth = (A, 0, 0, 1)

    def four(raising: bool) -> Rig:
        rig = Rig(raising=raising)
        for i, s in enumerate(acts):
            assert i == 0 or rig.earliest(s) == T0 + 4 * i  # tRRD_S = 4
            rig.issue(s, T0 + 4 * i)
        return rig

    rig = four(True)
    assert rig.earliest(fifth) == T0 + 26
    rig.issue(fifth, T0 + 26)
    assert rig.checker.finish().ok
    early = four(False)
    assert early.earliest(fifth) > T0 + 25
    early.issue(fifth, T0 + 25)
    report = early.checker.finish()
    assert "tFAW" in report.by_rule


def test_pim_column_commands_use_no_data_bus() -> None:
    """PIM_RD right after a host RD in another bank group: only the command bus (1 cycle)."""
    rig = _prepare([(A, 0, 0, 0), (A, 0, 1, 0)], (Cmd.RD, 0, 0, 0))
    assert rig.earliest((RD, 0, 1, 0)) == T0 + 1
    rig.issue((RD, 0, 1, 0), T0 + 1)
    assert rig.checker.finish().ok


# --- the same rules, as the engine schedules them ------------------------------------------

def _program(units: dict[tuple[int, int, int], list[PimInstr]],
             prologue: dict[tuple[int, int], list[PimInstr]] | None = None) -> PimProgram:
    return PimProgram(OptimizerConfig("momentum"), precision("fp32"), 2, {},
                      prologue=prologue or {}, units=units)


def _run(units, prologue=None, cfg=CFG) -> list[Command]:
    cmds: list[Command] = []
    checker = ProtocolChecker(cfg, PIM, raise_on_violation=True)

    def sink(c: Command) -> None:
        checker.observe(c)
        cmds.append(c)

    PimEngine(cfg, PIM, sink=sink).run(_program(units, prologue))
    assert checker.finish().ok
    return cmds


def _times(cmds: list[Command], cmd: Cmd, bg: int | None = None) -> list[int]:
    return [c.clk for c in cmds if c.cmd == cmd and (bg is None or c.bankgroup == bg)]


def test_engine_act_to_read_and_read_spacing() -> None:
    cmds = _run({(0, 0, 0): [pim_rd(0, 5, c, c % 8) for c in range(6)]})
    (act,) = _times(cmds, A)
    reads = _times(cmds, RD)
    assert reads[0] - act == 17  # tRCD
    assert [b - a for a, b in zip(reads, reads[1:], strict=False)] == [6] * 5  # tCCD_L


def test_engine_bank_groups_one_cycle_apart() -> None:
    units = {(0, 0, bg): [pim_rd(0, 5, c, c) for c in range(4)] for bg in range(4)}
    cmds = _run(units)
    acts = _times(cmds, A)
    assert [b - a for a, b in zip(acts, acts[1:], strict=False)] == [4, 4, 4]  # tRRD_S
    firsts = [min(_times(cmds, RD, bg)) for bg in range(4)]
    assert [f - a for f, a in zip(firsts, acts, strict=True)] == [17, 17, 17, 17]  # tRCD
    reads = sorted((c.clk, c.bankgroup) for c in cmds if c.cmd == RD)
    assert len(reads) == 16
    gaps = {b[0] - a[0] for a, b in zip(reads, reads[1:], strict=False) if a[1] != b[1]}
    assert min(gaps) == 1  # different bank groups: one command per clock, nothing more
    for bg in range(4):
        ts = _times(cmds, RD, bg)
        assert all(b - a >= 6 for a, b in zip(ts, ts[1:], strict=False))
    # 16 reads in 4 bank groups take about a quarter of the 15 x 6 one bank group would need
    assert reads[-1][0] - reads[0][0] <= 12 + 3 * 6 + 3


def test_engine_write_to_read_turnaround_and_op_latency() -> None:
    prog = [pim_rd(0, 5, 0, 0), pim_op("mov", 1, 0), pim_wr(1, 9, 0, 1), pim_rd(0, 5, 1, 2)]
    cmds = _run({(0, 0, 0): prog})
    (rd0, rd1) = _times(cmds, RD)
    (op,) = _times(cmds, OP)
    (wr,) = _times(cmds, WR)
    assert op == rd0 + 1
    assert wr - op == 4 or wr - rd0 == 6  # op latency, unless tCCD_L binds
    assert wr == max(op + 4, rd0 + 6)
    assert rd1 - wr == 4 + 9  # BL/2 + tWTR_L


def test_engine_prologue_spacing() -> None:
    sets = set_scalar(0, 0.5) + set_scalar(1, -0.25)
    cmds = _run({(0, 0, 2): [pim_op("mov", 1, 0)]}, {(0, 0): sets})
    ts = _times(cmds, SET)
    assert len(ts) == 6
    assert [b - a for a, b in zip(ts, ts[1:], strict=False)] == [8] * 5  # tMRD
    (op,) = _times(cmds, OP)
    assert op - ts[-1] == 24  # tMOD


def test_engine_precharge_after_write_and_read() -> None:
    """Row change in one bank: PRE exactly BL/2 + tWR after the last PIM_WR (tRAS long past),
    and exactly tRTP after a last PIM_RD; the next ACT tRP = 17 later."""
    filler = [pim_rd(1, 3, c % 128, 0) for c in range(10)]  # keeps tRAS out of the way
    prog = [pim_rd(0, 5, 0, 0), *filler, pim_wr(0, 5, 1, 0), pim_rd(0, 6, 0, 1)]
    cmds = _run({(0, 0, 0): prog})
    (wr,) = _times(cmds, WR)
    pres = [c for c in cmds if c.cmd == P]
    assert pres[0].clk - wr == 4 + 18
    acts = [c.clk for c in cmds if c.cmd == A and c.row == 6]
    assert acts[0] - pres[0].clk == 17  # tRP
    prog = [pim_rd(0, 5, 0, 0), *filler, pim_rd(0, 5, 1, 1), pim_rd(0, 6, 0, 2)]
    cmds = _run({(0, 0, 0): prog})
    last_rd = [c.clk for c in cmds if c.cmd == RD and c.bank == 0 and c.row == 5][-1]
    pre = [c.clk for c in cmds if c.cmd == P][0]
    assert pre - last_rd == 9  # tRTP


def test_engine_activations_obey_tfaw() -> None:
    units = {(0, 0, bg): [pim_rd(b, 5, 0, b) for b in range(2)] for bg in range(4)}
    cmds = _run(units)
    acts = _times(cmds, A)
    assert len(acts) == 8
    for i in range(4, len(acts)):
        assert acts[i] - acts[i - 4] >= 26
    assert acts[4] - acts[0] == 26  # the fifth ACT waits exactly tFAW


def test_ddr4_3200_spacings_through_the_engine() -> None:
    cfg = preset("ddr4-3200")
    prog = [pim_rd(0, 5, c, c % 4) for c in range(4)] + [pim_op("mov", 5, 0),
                                                         pim_wr(1, 2, 0, 5), pim_rd(0, 5, 9, 6)]
    cmds: list[Command] = []
    checker = ProtocolChecker(cfg, PIM, raise_on_violation=True)
    PimEngine(cfg, PIM, sink=lambda c: (checker.observe(c), cmds.append(c))).run(
        _program({(0, 0, 0): prog}))
    assert checker.finish().ok
    reads = _times(cmds, RD)
    (act,) = [c.clk for c in cmds if c.cmd == A and c.bank == 0]
    assert reads[0] - act == 22  # tRCD
    assert [b - a for a, b in zip(reads[:4], reads[1:4], strict=False)] == [8, 8, 8]  # tCCD_L
    (wr,) = _times(cmds, WR)
    assert reads[-1] - wr == 4 + 12  # BL/2 + tWTR_L
