"""`gradpimsim trace`: output, side files, bad input (exit 2, file:line, nothing half-written)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gradpimsim.checker import check_trace
from gradpimsim.cli import main
from gradpimsim.config import preset


def _trace(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_sample_replay_prints_stats(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "--sample"]) == 0
    out = capsys.readouterr().out
    for word in ("completion cycle", "bandwidth", "p50", "row-buffer hit rate", "refresh"):
        assert word in out


def test_json_and_command_trace_are_written_and_legal(tmp_path: Path) -> None:
    lines = [f"{hex(i * 64)} {'WRITE' if i % 5 == 0 else 'READ'} {i * 3}" for i in range(3000)]
    trace = _trace(tmp_path / "t.trc", lines)
    out_json = tmp_path / "s.json"
    cmds = tmp_path / "c.trace.gz"
    rc = main(["trace", str(trace), "-c", "ddr4-3200-x16-2r", "--json", str(out_json),
               "--cmd-trace", str(cmds)])
    assert rc == 0
    stats = json.loads(out_json.read_text())
    assert stats["requests"] == 3000 and stats["writes"] == 600
    assert stats["commands"]["read"] + stats["commands"]["write"] == 3000
    report = check_trace(cmds, preset("ddr4-3200-x16-2r"))
    assert report.ok and report.commands == sum(stats["commands"].values())
    assert not list(tmp_path.glob(".partial.*"))


def test_malformed_line_reports_file_and_line_and_leaves_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = [f"{hex(i * 64)} READ {i}" for i in range(100)]
    lines[57] = "0x1000 FETCH 58"
    trace = _trace(tmp_path / "bad.trc", lines)
    cmds = tmp_path / "c.trace"
    out_json = tmp_path / "s.json"
    rc = main(["trace", str(trace), "--cmd-trace", str(cmds), "--json", str(out_json)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "bad.trc:58" in err and "Traceback" not in err
    assert not cmds.exists() and not out_json.exists()
    assert not list(tmp_path.glob(".partial.*"))


@pytest.mark.parametrize("argv,needle", [
    (["trace", "--sample", "-c", "ddr4-9999"], "unknown preset"),
    (["trace", "missing.trc"], "not found"),
    (["trace"], "--sample"),
])
def test_user_errors_exit_2_without_traceback(argv: list[str], needle: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_dramsim3_ini_config(shared_reference: Path, tmp_path: Path) -> None:
    ini = shared_reference / "dramsim3" / "DDR4_8Gb_x8_2400.ini"
    trace = _trace(tmp_path / "t.trc", [f"{hex(i * 4096)} READ {i}" for i in range(500)])
    out_json = tmp_path / "s.json"
    assert main(["trace", str(trace), "-c", str(ini), "--json", str(out_json), "--check"]) == 0
    assert json.loads(out_json.read_text())["violations"] == 0


def test_ctrl_c_keeps_what_finished(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An interrupted replay reports and writes the requests it completed, marked as partial."""
    import gradpimsim.trace.replay as replay

    real = replay.iter_request_chunks

    def interrupted_after_first_chunk(path, chunk_lines=65536):  # type: ignore[no-untyped-def]
        chunks = real(path, chunk_lines=1000)
        yield next(chunks)
        raise KeyboardInterrupt

    monkeypatch.setattr(replay, "iter_request_chunks", interrupted_after_first_chunk)
    trace = _trace(tmp_path / "t.trc", [f"{hex(i * 64)} READ {i}" for i in range(5000)])
    out_json = tmp_path / "s.json"
    cmds = tmp_path / "c.trace"
    rc = main(["trace", str(trace), "--json", str(out_json), "--cmd-trace", str(cmds)])
    assert rc == 130
    stats = json.loads(out_json.read_text())
    assert stats["interrupted"] is True
    assert 0 < stats["requests"] <= 1000
    assert check_trace(cmds, preset("ddr4-2400")).ok


def test_completion_callbacks_report_latency() -> None:
    from gradpimsim.controller.controller import ChannelController
    from gradpimsim.controller.request import Request

    cfg = preset("ddr4-2400")
    seen: list[tuple[int, int]] = []
    ctrl = ChannelController(cfg)
    for i in range(3):
        ctrl.submit(Request(i * 64, False, 10, 0, 0, i, 0,
                            callback=lambda r: seen.append((r.col, r.done - r.arrival))))
    ctrl.drain()
    # ACT at 10, reads at 27, 33, 39 (tCCD_L), data ends CL + BL/2 later
    assert seen == [(0, 17 + 17 + 4), (1, 23 + 17 + 4), (2, 29 + 17 + 4)]
