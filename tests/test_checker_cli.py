"""``gradpimsim check``: exit codes 0 / 1 / 2, summary, JSON, and clear errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gradpimsim.cli import main
from gradpimsim.dram.commands import Cmd, Command
from gradpimsim.trace.cmdtrace import CommandTraceWriter


def _trace(path: Path, cmds: list[Command]) -> str:
    with CommandTraceWriter(path) as w:
        w.write_many(cmds)
    return str(path)


LEGAL = [Command(0, Cmd.ACT, 0, 0, 0, 0, 1, -1), Command(17, Cmd.RD, 0, 0, 0, 0, 1, 0),
         Command(39, Cmd.PRE, 0, 0, 0, 0, -1, -1), Command(56, Cmd.REF, 0, 0, -1, -1, -1, -1),
         Command(9400, Cmd.REF, 0, 0, -1, -1, -1, -1)]
ILLEGAL = [Command(0, Cmd.ACT, 0, 0, 0, 0, 1, -1), Command(16, Cmd.RD, 0, 0, 0, 0, 1, 0),
           Command(30, Cmd.PRE, 0, 0, 0, 0, -1, -1)]


def test_legal_trace_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    deep = tmp_path / ("d" * 90)  # a path longer than a line: the header must not wrap
    deep.mkdir()
    path = _trace(deep / "ok.trace", LEGAL)
    assert main(["check", path, "--config", "ddr4-2400"]) == 0
    out = capsys.readouterr().out
    assert f"{path}: 5 commands up to clk 9,400, config ddr4-2400" in out.splitlines()[0]
    assert "LEGAL" in out and "ACT" in out
    assert "Refresh" in out and "9,344" in out  # the one REF-to-REF gap


def test_violations_exit_1_with_details(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    path = _trace(tmp_path / "bad.trace", ILLEGAL)
    assert main(["check", path, "--config", "ddr4-2400", "--show", "1"]) == 1
    out = capsys.readouterr().out
    assert "tRCD" in out and "tRAS" in out and "ILLEGAL" in out
    assert "First 1 violation" in out
    assert "needs >= 17" in out


def test_json_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _trace(tmp_path / "bad.trace", ILLEGAL)
    out_json = tmp_path / "r.json"
    assert main(["check", path, "-c", "ddr4-2400", "--json", str(out_json)]) == 1
    data = json.loads(out_json.read_text())
    assert data["by_rule"] == {"tRCD": 1, "tRAS": 1} and not data["ok"]
    assert data["violations"][0]["required"] == 17 and data["trace"] == path
    capsys.readouterr()
    assert main(["check", path, "-c", "ddr4-2400", "--json", "-"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["violations_total"] == 2  # stdout is pure JSON
    assert "ILLEGAL" in captured.err


def test_pim_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pim.trace"
    path.write_text("0 activate 0 0 1 0 0x1 -1\n17 PIM_RD 0 0 1 0 0x1 0x0\n"
                    "20 PIM_OP 0 0 1 -1 -1 -1\n24 PIM_WR 0 0 1 0 0x1 0x1\n")
    assert main(["check", str(path), "--config", "ddr4-2400"]) == 1
    assert "pim_disabled" in capsys.readouterr().out
    assert main(["check", str(path), "--config", "ddr4-2400", "--pim"]) == 0
    assert "GradPIM" in capsys.readouterr().out


def test_toml_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "slow.toml"
    cfg.write_text('base = "ddr4-2400"\n[timing]\ntRCD = 18\ntRAS = 40\ntRC = 57\n')
    path = _trace(tmp_path / "ok.trace", LEGAL[:2])
    assert main(["check", path, "--config", str(cfg)]) == 1
    assert "tRCD" in capsys.readouterr().out


@pytest.mark.parametrize(("text", "line", "words"), [
    ("0 activate 0 0 0 0 0x1 -1\n17 read 0 0 0 0\n", 2, "expected 8 fields"),
    ("0 activate 0 0 0 0 0x1 -1\n\n17 fly 0 0 0 0 0x1 0x0\n", 3, "unknown command 'fly'"),
    ("0 activate 0 0 0 0 0x1 -1\n17 read 0 0 0 0 0x1 0x0\n5 read 0 0 0 0 0x1 0x1\n", 3,
     "clock went backwards"),
    ("0 activate 0 0 7 0 0x1 -1\n", 1, "bank group 7"),
])
def test_unusable_trace_exits_2_with_file_and_line(tmp_path: Path, text: str, line: int,
                                                   words: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.trace"
    path.write_text(text)
    assert main(["check", str(path), "--config", "ddr4-2400"]) == 2
    err = capsys.readouterr().err
    assert f"bad.trace:{line}:" in err and words in err
    assert "Traceback" not in err


def test_bad_arguments_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _trace(tmp_path / "ok.trace", LEGAL)
    assert main(["check", str(tmp_path / "missing.trace"), "-c", "ddr4-2400"]) == 2
    assert "file not found" in capsys.readouterr().err
    assert main(["check", path, "-c", "ddr5-9999"]) == 2
    assert "unknown preset" in capsys.readouterr().err
    assert main(["check", path, "-c", str(tmp_path / "nope.toml")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["check", path, "-c", "ddr4-2400", "--show", "-1"]) == 2
    assert main(["check", path, "-c", "ddr4-2400", "--json", str(tmp_path / "no/dir.json")]) == 2
    assert "cannot write" in capsys.readouterr().err
