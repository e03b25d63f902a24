"""The PIM read-to-operation latency knob (``pim.read_to_op``, issue 19 item 5).

A PIM_OP on a unit may issue no earlier than ``read_to_op`` cycles after that unit's latest
PIM_RD (0, the default, is the model before the knob).  The controller learns it from one row of
the timing table, the checker from its own rule; both are pinned here by hand-derived cycles
(DDR4-2400 literals from ../shared/ddr4-reference.md: tRCD 17, tRRD_L 6, tCCD_L 6, tWTR_L 9,
tMRD 8, tMOD 24, BL/2 4; op_latency 4), never by values read back from the configuration.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gradpimsim.bench.update import run_update_bench
from gradpimsim.checker import ProtocolChecker
from gradpimsim.cli import main
from gradpimsim.config import ConfigError, load_config, load_pim_config, preset
from gradpimsim.config.pim import PimConfig
from gradpimsim.config.training import OptimizerConfig, precision
from gradpimsim.dram.commands import Cmd, Command
from gradpimsim.dram.device import ChannelDevice
from gradpimsim.graph.io import save_graph
from gradpimsim.pim.bounds import unit_chain_cycles
from gradpimsim.pim.engine import PimEngine
from gradpimsim.pim.kernels import PimProgram
from gradpimsim.pim.unit import PimInstr, pim_op, pim_rd, pim_wr
from gradpimsim.system.compare import compare
from gradpimsim.system.config import RunConfig
from workloads.mlp import mlp

CFG = preset("ddr4-2400")
R2O = PimConfig(read_to_op=7)
SGD = OptimizerConfig("sgd")
MOMENTUM = OptimizerConfig("momentum", momentum=0.9)
A, RD, WR, OP = Cmd.ACT, Cmd.PIM_RD, Cmd.PIM_WR, Cmd.PIM_OP


# ---- the knob ------------------------------------------------------------------------------------
def test_knob_is_validated_and_read_from_the_memory_toml(tmp_path: Path) -> None:
    assert PimConfig().read_to_op == 0
    assert PimConfig(read_to_op=0).resolved(CFG.timing, 4).read_to_op == 0
    for bad in (-1, 1.5, True, "7"):
        with pytest.raises(ConfigError) as err:
            PimConfig(read_to_op=bad)  # type: ignore[arg-type]
        assert err.value.field == "pim.read_to_op"
        assert "integer >= 0" in str(err.value) and "read_to_op = " in str(err.value)
    spec = tmp_path / "mem.toml"
    spec.write_text('base = "ddr4-2400"\n[pim]\nread_to_op = 7\n')
    assert load_pim_config(str(spec)) == R2O
    spec.write_text('base = "ddr4-2400"\n[pim]\nread_to_op = -2\n')
    with pytest.raises(ConfigError) as err:
        load_config(str(spec))
    assert err.value.field == "pim.read_to_op"


# ---- device and checker, one rule ----------------------------------------------------------------
def _rig(pim: PimConfig) -> tuple[ChannelDevice, ProtocolChecker]:
    dev = ChannelDevice(CFG, pim)
    checker = ProtocolChecker(CFG, pim)
    for t, c in ((0, Command(0, A, 0, 0, 0, 0, 7, -1)), (6, Command(6, A, 0, 0, 1, 0, 7, -1))):
        dev.issue(int(A), dev.flat_bank(0, c.bankgroup, 0), t, 7)
        checker.observe(c)
    t = 100  # long after tRCD
    dev.issue(int(RD), dev.flat_bank(0, 0, 0), t, 7)
    checker.observe(Command(t, RD, 0, 0, 0, 0, 7, 3))
    return dev, checker


@pytest.mark.parametrize("gap", [7, 12])
def test_pim_op_waits_read_to_op_after_its_units_pim_rd(gap: int) -> None:
    """PIM_RD at 100 in bank group 0: that unit's PIM_OP is legal exactly at 100 + read_to_op
    (device answer and checker agree), one cycle earlier the checker reports ``pim_read_op``;
    another unit's PIM_OP is held only by the command bus (101)."""
    pim = PimConfig(read_to_op=gap)
    dev, checker = _rig(pim)
    assert dev.earliest(int(OP), dev.flat_bank(0, 0, 0)) == 100 + gap
    assert dev.earliest(int(OP), dev.flat_bank(0, 1, 0)) == 101
    checker.observe(Command(101, OP, 0, 0, 1, -1, -1, -1))
    checker.observe(Command(100 + gap, OP, 0, 0, 0, -1, -1, -1))
    assert checker.finish().ok
    _, early = _rig(pim)
    early.observe(Command(100 + gap - 1, OP, 0, 0, 0, -1, -1, -1))
    assert early.finish().by_rule == {"pim_read_op": 1}
    # a broadcast PIM_OP (bank group -1) waits for every unit's latest PIM_RD
    _, bcast = _rig(pim)
    bcast.observe(Command(100 + gap - 1, OP, 0, 0, -1, -1, -1, -1))
    assert bcast.finish().by_rule == {"pim_read_op": 1}


def test_default_is_no_rule() -> None:
    dev, checker = _rig(PimConfig())
    assert dev.earliest(int(OP), dev.flat_bank(0, 0, 0)) == 101  # the command bus only
    checker.observe(Command(101, OP, 0, 0, 0, -1, -1, -1))
    assert checker.finish().ok


# ---- the scheduler -------------------------------------------------------------------------------
def _run(units: dict[tuple[int, int, int], list[PimInstr]], pim: PimConfig) -> list[Command]:
    cmds: list[Command] = []
    checker = ProtocolChecker(CFG, pim, raise_on_violation=True)

    def sink(c: Command) -> None:
        checker.observe(c)
        cmds.append(c)

    program = PimProgram(OptimizerConfig("momentum"), precision("fp32"), 2, {}, prologue={},
                         units=units)
    PimEngine(CFG, pim, sink=sink).run(program)
    assert checker.finish().ok
    return cmds


def _at(cmds: list[Command], kind: Cmd) -> list[int]:
    return [c.clk for c in cmds if c.cmd == kind]


@pytest.mark.parametrize(("r2o", "op", "wr"), [
    # ACT bank 0 at 0, ACT bank 1 at tRRD_L = 6; PIM_RD bank 0 at tRCD = 17.
    (0, 18, 23),  # PIM_OP on the next clock; PIM_WR at max(op + 4, 17 + tCCD_L 6, 6 + 17) = 23
    (7, 24, 28),  # PIM_OP at 17 + 7; PIM_WR at op + op_latency = 28
    (20, 37, 41),
])
def test_engine_puts_the_op_exactly_read_to_op_after_the_read(r2o: int, op: int,
                                                              wr: int) -> None:
    prog = [pim_rd(0, 5, 0, 0), pim_op("mov", 1, 0), pim_wr(1, 9, 0, 1), pim_rd(0, 5, 1, 2)]
    cmds = _run({(0, 0, 0): prog}, PimConfig(read_to_op=r2o))
    assert _at(cmds, A) == [0, 6]
    assert _at(cmds, RD) == [17, wr + 4 + 9]  # the second read: BL/2 + tWTR_L after the write
    assert _at(cmds, OP) == [op]
    assert _at(cmds, WR) == [wr]


def test_unit_chain_bound_includes_read_to_op() -> None:
    """Dependence chain of [PIM_RD, PIM_OP, PIM_WR] (no rows): read at 0, op at max(1, 0 + r),
    write at max(2, 0 + tCCD_L, op + op_latency); the chain ends one cycle after the write."""
    units = {(0, 0, 0): [pim_rd(0, 5, 0, 0), pim_op("mov", 1, 0), pim_wr(1, 5, 1, 0)]}
    program = PimProgram(SGD, precision("fp32"), 2, {}, prologue={}, units=units)
    assert unit_chain_cycles(program, CFG, PimConfig()) == 6 + 1  # tCCD_L binds
    assert unit_chain_cycles(program, CFG, R2O) == 7 + 4 + 1


def _bench(params: int, opt: OptimizerConfig, prec: str, pim: PimConfig,
           functional: bool = True) -> tuple[int, list[Command]]:
    """Cycles of the update bench's GradPIM side with the checker online; its stream."""
    cmds: list[Command] = []
    checker = ProtocolChecker(CFG, pim, raise_on_violation=True)

    def sink(c: Command) -> None:
        checker.observe(c)
        cmds.append(c)

    bench = run_update_bench(CFG, params, opt, precision(prec), pim=pim, functional=functional,
                             pim_sink=sink)
    assert checker.finish().ok
    if functional:
        assert bench.verified, bench.mismatches  # bit-exact with the reference optimizer
    return bench.pim.cycles, cmds


@pytest.mark.parametrize("r2o", [0, 7, 36, 37, 40])
def test_one_column_sgd_update_by_hand(r2o: int) -> None:
    """SGD, fp32, one column (16 parameters), one unit.  By hand: ACT (gradient's bank) at 0,
    ACT (weight's bank) at tRRD_L = 6; PIM_RDs at 6 + tRCD = 23 and 23 + tCCD_L = 29.  The
    prologue's six PIM_SETs (two scalars of three slices) go at 1, 9, ..., 41 (tMRD), so the
    PIM_OP waits for 41 + tMOD = 65 and for 29 + read_to_op; the PIM_WR follows op_latency 4
    later and ends BL/2 = 4 after that: cycles = max(65, 29 + r) + 8 = max(73, 37 + r)."""
    cycles, cmds = _bench(16, SGD, "fp32", PimConfig(read_to_op=r2o))
    assert _at(cmds, RD) == [23, 29]
    assert _at(cmds, Cmd.PIM_SET) == [1, 9, 17, 25, 33, 41]
    assert _at(cmds, OP) == [max(65, 29 + r2o)]
    assert cycles == max(73, 37 + r2o)


def _op_gaps(cmds: list[Command]) -> list[int]:
    """Per PIM_OP, cycles since its unit's latest PIM_RD (PIM_OPs before any read skipped)."""
    last: dict[tuple[int, int, int], int] = {}
    gaps = []
    for c in cmds:
        key = (c.channel, c.rank, c.bankgroup)
        if c.cmd == RD:
            last[key] = c.clk
        elif c.cmd == OP and key in last:
            gaps.append(c.clk - last[key])
    return gaps


def test_scheduled_update_holds_every_op_to_read_to_op() -> None:
    """Momentum, mixed precision, 6000 parameters, four units: checker-clean, bit-exact, and
    every PIM_OP >= 7 after its unit's latest PIM_RD.  It binds: each phase's first PIM_OP
    follows the phase's last PIM_RD, which without the knob is the next clock (gap 1, as
    below), so with read_to_op = 7 the earliest legal cycle is exactly 7 after that read."""
    base_cycles, base = _bench(6000, MOMENTUM, "mixed", PimConfig())
    cycles, cmds = _bench(6000, MOMENTUM, "mixed", R2O)
    assert min(_op_gaps(base)) == 1
    gaps = _op_gaps(cmds)
    assert min(gaps) == 7 and gaps.count(7) > 10
    assert cycles > base_cycles


def test_update_bench_cycles_today_and_growing() -> None:
    """65,536 parameters, momentum, mixed precision: read_to_op = 0 gives exactly the cycles
    of the model before the knob (41,454, measured on main); the count grows with the knob."""
    c0, _ = _bench(65536, MOMENTUM, "mixed", PimConfig(), functional=False)
    c4, _ = _bench(65536, MOMENTUM, "mixed", PimConfig(read_to_op=4), functional=False)
    c16, _ = _bench(65536, MOMENTUM, "mixed", PimConfig(read_to_op=16), functional=False)
    assert c0 == 41454
    assert c0 < c4 < c16


# ---- reachable from the CLI and recorded ---------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("wl") / "tiny.json"
    save_graph(mlp(batch=8, in_features=96, hidden=(160,), classes=24), path)
    return str(path)


def test_training_run_is_exact_and_slower_with_the_knob(tiny: str) -> None:
    """A whole functional compare with read_to_op = 16 (online checker on the PIM run): the
    final weights equal the reference optimizer's, and the update phase takes longer."""
    def run(knobs: dict) -> tuple[int, bool]:
        res = compare(RunConfig(workload=tiny, functional=True, update_policy="after-backward",
                                pim_knobs=knobs))
        ph = res.pim.phases["update"]
        return ph["end"] - ph["start"], bool(res.weights_match)

    base, ok0 = run({})
    slow, ok16 = run({"read_to_op": 16})
    assert ok0 and ok16
    assert slow > base


def test_cli_knob_and_memory_toml_are_recorded(tmp_path: Path, tiny: str) -> None:
    out = tmp_path / "cli"
    assert main(["compare", tiny, "--pim-knob", "read_to_op=7", "--out", str(out)]) == 0
    units = json.loads((out / "results.json").read_text())["runs"]["pim"]["memory"]["pim_units"]
    assert units["read_to_op"] == 7
    spec = tmp_path / "mem.toml"
    spec.write_text('base = "ddr4-2400"\n[pim]\nread_to_op = 5\n')
    out = tmp_path / "toml"
    assert main(["compare", tiny, "--memory", str(spec), "--out", str(out)]) == 0
    units = json.loads((out / "results.json").read_text())["runs"]["pim"]["memory"]["pim_units"]
    assert units["read_to_op"] == 5
    assert main(["compare", tiny, "--pim-knob", "read_to_op=-1"]) == 2


def test_update_bench_cli_takes_the_knob_from_the_memory_file_and_the_option(
        tmp_path: Path) -> None:
    """``update-bench`` honours the memory file's ``[pim]`` section and ``--pim-knob`` over it
    (the same cycles as the Python bench above), and records the knobs in its JSON."""
    def bench(*extra: str) -> dict:
        out = tmp_path / "b.json"
        assert main(["update-bench", "--params", "65536", "--no-functional", "--force",
                     "--json", str(out), *extra]) == 0
        return json.loads(out.read_text())

    spec = tmp_path / "mem.toml"
    spec.write_text('base = "ddr4-2400"\n[pim]\nread_to_op = 4\n')
    data = bench("--config", str(spec))
    assert (data["pim"]["cycles"], data["pim_units"]["read_to_op"]) == (43326, 4)
    data = bench("--config", str(spec), "--pim-knob", "read_to_op=16")
    assert (data["pim"]["cycles"], data["pim_units"]["read_to_op"]) == (48530, 16)
    assert bench()["pim"]["cycles"] == 41454
    assert main(["update-bench", "--params", "64", "--pim-knob", "read_to_op=x"]) == 2


def test_sweep_update_bench_points_take_the_memory_files_knobs(tmp_path: Path) -> None:
    from gradpimsim.sweep.runner import update_bench_runner

    spec = tmp_path / "mem.toml"
    spec.write_text('base = "ddr4-2400"\n[pim]\nread_to_op = 16\n')
    point = {"memory": str(spec), "params": 65536, "functional": False}
    assert update_bench_runner(point)["pim_cycles"] == 48530
