"""ProtocolChecker / check_trace behaviour: reports, strict mode, channels, bad input."""

from __future__ import annotations

import heapq
import importlib.util
import json
from pathlib import Path

import pytest

from gradpimsim.checker import (
    CheckReport,
    ProtocolChecker,
    ProtocolViolation,
    Violation,
    check_trace,
)
from gradpimsim.checker.offline import check_commands
from gradpimsim.config import preset
from gradpimsim.config.pim import PimConfig
from gradpimsim.dram.commands import Cmd, Command
from gradpimsim.trace.cmdtrace import CommandTraceError, CommandTraceWriter

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_checker.py"


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_checker", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def act(t: int, bg: int = 0, bk: int = 0, rk: int = 0, ch: int = 0, row: int = 1) -> Command:
    return Command(t, Cmd.ACT, ch, rk, bg, bk, row, -1)


def rd(t: int, bg: int = 0, bk: int = 0, rk: int = 0, ch: int = 0, row: int = 1) -> Command:
    return Command(t, Cmd.RD, ch, rk, bg, bk, row, 0)


def test_violation_message_names_rule_commands_and_gaps() -> None:
    checker = ProtocolChecker(preset("ddr4-2400"))
    checker.observe_many([act(0), rd(16)])
    rep = checker.finish()
    (v,) = rep.violations
    assert (v.rule, v.required, v.actual) == ("tRCD", 17, 16)
    assert v.prev == act(0) and v.cmd == rd(16)
    text = str(v)
    for part in ("tRCD", "read ch0 ra0 bg0 ba0", "@16", "activate", "@0", "16 cycles",
                 ">= 17"):
        assert part in text
    assert json.loads(json.dumps(v.to_dict()))["rule"] == "tRCD"


def test_strict_mode_raises_at_first_violation() -> None:
    checker = ProtocolChecker(preset("ddr4-2400"), raise_on_violation=True)
    checker.observe(act(0))
    with pytest.raises(ProtocolViolation) as info:
        checker.observe(rd(10))
    assert isinstance(info.value, AssertionError)
    assert info.value.violation.rule == "tRCD"
    assert "tRCD" in str(info.value)


def test_keep_limits_the_stored_violations_but_not_the_counts() -> None:
    checker = ProtocolChecker(preset("ddr4-2400"), keep=3)
    checker.observe_many(rd(10 * i) for i in range(1, 11))  # ten reads to a closed bank
    rep = checker.finish()
    assert rep.by_rule == {"bank_closed": 10} and rep.total_violations == 10
    assert len(rep.violations) == 3 and not rep.ok
    assert rep.commands == 10 and rep.by_type == {"RD": 10}


def test_report_counts_types_and_serializes() -> None:
    checker = ProtocolChecker(preset("ddr4-2400"), PimConfig())
    checker.observe_many([act(0), rd(17), Command(30, Cmd.PIM_OP, 0, 0, -1, -1, -1, -1),
                          Command(60, Cmd.PRE, 0, 0, 0, 0, -1, -1)])
    rep = checker.finish(end_clk=1000)
    assert isinstance(rep, CheckReport) and rep.ok and rep.end_clk == 1000 and rep.pim
    assert rep.by_type == {"ACT": 1, "RD": 1, "PRE": 1, "PIM_OP": 1}
    data = json.loads(json.dumps(rep.to_dict()))
    assert data["ok"] and data["commands"] == 4 and "ch0.ra0" in data["refresh_gaps"]


def test_clock_must_not_go_backwards_within_a_channel() -> None:
    checker = ProtocolChecker(preset("ddr4-2400-x8-1r-2ch"))
    checker.observe(act(100, ch=0))
    checker.observe(act(50, ch=1))  # another channel keeps its own clock
    with pytest.raises(ValueError, match="clock went backwards on channel 0"):
        checker.observe(act(99, ch=0, bg=1))


def test_state_is_per_channel() -> None:
    cfg = preset("ddr4-2400-x8-2r-2ch")
    checker = ProtocolChecker(cfg)
    # Same clock on two channels is fine; a row open on channel 0 is not open on channel 1.
    checker.observe_many([act(0, ch=0), act(0, ch=1, row=7), rd(17, ch=0), rd(17, ch=1)])
    rep = checker.finish()
    assert rep.by_rule == {"wrong_row": 1}
    assert rep.violations[0].cmd.channel == 1


@pytest.mark.parametrize("bad", [
    act(0, bg=4), act(0, bk=4), act(0, rk=1), act(0, ch=1), act(0, row=65536),
    Command(20, Cmd.RD, 0, 0, 0, 0, 1, 128),
])
def test_addresses_outside_the_configuration_are_unusable(bad: Command) -> None:
    checker = ProtocolChecker(preset("ddr4-2400"))
    with pytest.raises(ValueError, match="outside"):
        checker.observe(bad)


def test_x16_has_two_bank_groups() -> None:
    checker = ProtocolChecker(preset("ddr4-3200-x16"))
    with pytest.raises(ValueError, match="bank group 2"):
        checker.observe(act(0, bg=2))


@pytest.mark.parametrize("name", ["ddr4-2400", "ddr4-3200-x16", "ddr4-2400-x8-2r",
                                  "ddr4-3200-x16-2r"])
def test_longer_generated_legal_stream_passes(name: str) -> None:
    cfg = preset(name)
    cmds = list(_bench_module().legal_stream(cfg, 20000, seed=7))
    assert sum(c.cmd == Cmd.REF for c in cmds) > 10
    rep = check_commands(cmds, cfg)
    assert rep.ok, [str(v) for v in rep.violations[:3]]
    gaps = rep.refresh_gaps[(0, 0)]
    assert gaps.count > 5 and gaps.max <= 2 * cfg.timing.tREFI


def test_two_channels_interleaved_pass() -> None:
    cfg = preset("ddr4-2400-x8-1r-2ch")
    bench = _bench_module()
    ch0 = list(bench.legal_stream(cfg, 5000, seed=1))
    ch1 = [c._replace(channel=1) for c in bench.legal_stream(cfg, 5000, seed=2)]
    merged = list(heapq.merge(ch0, ch1, key=lambda c: c.clk))
    assert check_commands(merged, cfg).ok


# ---- offline ---------------------------------------------------------------------------------
def _write(path: Path, cmds: list[Command]) -> Path:
    with CommandTraceWriter(path) as w:
        w.write_many(cmds)
    return path


@pytest.mark.parametrize("name", ["t.trace", "t.trace.gz"])
def test_check_trace_legal_and_illegal(tmp_path: Path, name: str) -> None:
    cfg = preset("ddr4-2400")
    good = _write(tmp_path / name, [act(0), rd(17)])
    assert check_trace(good, cfg).ok
    bad = _write(tmp_path / ("bad-" + name), [act(0), rd(16)])
    rep = check_trace(bad, cfg)
    assert rep.by_rule == {"tRCD": 1}


def test_check_trace_unusable_input_names_the_line(tmp_path: Path) -> None:
    cfg = preset("ddr4-2400")
    path = _write(tmp_path / "back.trace", [act(0), rd(17), act(5, bg=1)])
    with pytest.raises(CommandTraceError, match=r"back.trace:3: clock went backwards"):
        check_trace(path, cfg)
    path = _write(tmp_path / "range.trace", [act(0), act(9, bg=5)])
    with pytest.raises(CommandTraceError, match=r"range.trace:2: .*bank group 5"):
        check_trace(path, cfg)


def test_check_trace_line_numbers_with_comments(tmp_path: Path) -> None:
    path = tmp_path / "c.trace"
    path.write_text("# header\n0 activate 0 0 0 0 0x1 -1\n\n# note\n9 activate 0 0 9 0 0x1 -1\n")
    with pytest.raises(CommandTraceError, match=r"c.trace:5:"):
        check_trace(path, preset("ddr4-2400"))


def test_violation_is_a_frozen_record() -> None:
    v = Violation("tRP", act(5), None, 17, 3)
    with pytest.raises(AttributeError):
        v.rule = "x"  # type: ignore[misc]
    assert str(v).startswith("tRP: activate ch0 ra0 bg0 ba0 row 0x1 @5")
