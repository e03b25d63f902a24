"""Regression tests of issue 20: every bad input gets one clear line and exit 2; nothing is
overwritten, lost or unbounded.  One group per class of the issue; every test fails on the code
before the hardening (they drive the command line only, so they run against any version).

Expected values come from rules: exit codes and messages from the documented CLI contract,
refresh counts from one REF per tREFI while idle, point counts from the grid's sizes.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gradpimsim.cli import main
from gradpimsim.config import preset

REPO = Path(__file__).resolve().parents[1]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def _one_clear_line(err: str) -> str:
    """The error output is exactly one line starting with 'error:' and has no traceback."""
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error:"), err
    return lines[0]


def _cli(args: list[str], timeout: float, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The command line in a fresh process (for hangs: a timeout is a failure, not a hang)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "80"}
    return subprocess.run([sys.executable, "-c", "import sys; from gradpimsim.cli import main; "
                           "sys.exit(main())", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _trace(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{ln}\n" for ln in lines))
    return path


@pytest.fixture
def small_trace(tmp_path: Path) -> Path:
    return _trace(tmp_path / "t.trace", [f"{hex(i * 64)} READ {i * 4}" for i in range(50)])


# ------------------------------------------------------------------ 1. tracebacks, lost results
def test_run_out_naming_a_file_fails_before_simulating(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    existing = tmp_path / "existing.txt"
    existing.write_text("mine\n")
    t0 = time.perf_counter()
    rc, out, err = _run(["run", "mlp-small", "--out", str(existing)], capsys)
    assert rc == 2 and "not a directory" in _one_clear_line(err)
    assert out == "" and time.perf_counter() - t0 < 10  # no table: nothing was simulated
    assert existing.read_text() == "mine\n"


@pytest.mark.parametrize("option", ["--json", "--cmd-trace"])
def test_output_into_missing_directory_is_refused_up_front(
        small_trace: Path, tmp_path: Path, option: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _run(["trace", str(small_trace), option, str(tmp_path / "no" / "x.out")],
                        capsys)
    assert rc == 2 and "does not exist" in _one_clear_line(err)
    assert out == ""  # refused before the replay: no statistics table was printed


@pytest.mark.parametrize("make", ["toml", "json", "ini", "spec"])
def test_non_utf8_inputs_are_one_line(tmp_path: Path, make: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    bad = b"\xff\xfe not utf-8 \xc3\x28\n"
    if make == "toml":
        (tmp_path / "c.toml").write_bytes(bad)
        argv = ["trace", "--sample", "-c", str(tmp_path / "c.toml")]
    elif make == "ini":
        (tmp_path / "c.ini").write_bytes(bad)
        argv = ["presets", str(tmp_path / "c.ini")]
    elif make == "json":
        (tmp_path / "g.json").write_bytes(bad)
        argv = ["workloads", "show", str(tmp_path / "g.json")]
    else:
        (tmp_path / "s.toml").write_bytes(bad)
        argv = ["sweep", str(tmp_path / "s.toml"), "--serial"]
    rc, _, err = _run(argv, capsys)
    assert rc == 2 and "UTF-8" in _one_clear_line(err)


@pytest.mark.parametrize(("make", "needle"), [("dir", "Is a directory"), ("bytes", "UTF-8")])
def test_unreadable_npu_preset_is_one_line_through_the_boundary(
        tmp_path: Path, make: str, needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    npu = tmp_path / "npu.toml"
    if make == "dir":
        npu.mkdir()
    else:
        npu.write_bytes(b"\xff\xfe[npu]\n")
    rc, _, err = _run(["run", "mlp-small", "--npu", str(npu)], capsys)
    assert rc == 2 and needle in _one_clear_line(err)


@pytest.mark.parametrize(("body", "field"), [
    ('base = "ddr4-2400"\n[controller]\naddress_mapping = 5\n', "controller.address_mapping"),
    ('base = "ddr4-2400"\n[controller]\nscheduler = ["fr-fcfs"]\n', "controller.scheduler"),
    ('base = "ddr4-2400"\n[org]\nrows = 65536.0\n', "org.rows"),
    ('base = "ddr4-2400"\n[power]\nIDD0 = "high"\n', "power.IDD0"),
])
def test_wrongly_typed_config_values_name_the_field(tmp_path: Path, body: str, field: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "c.toml").write_text(body)
    rc, _, err = _run(["presets", str(tmp_path / "c.toml")], capsys)
    assert rc == 2 and field in _one_clear_line(err)


@pytest.mark.parametrize("graph", [
    {"directed": True, "graph": [1, 2], "nodes": [], "links": []},
    {"directed": True, "graph": {}, "nodes": [{"id": {"a": 1}}], "links": []},
    {"directed": True, "graph": {}, "nodes": [{"id": None}], "links": []},
])
def test_graph_json_with_wrong_types_is_one_line(tmp_path: Path, graph: object,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "g.json").write_text(json.dumps(graph))
    rc, _, err = _run(["workloads", "show", str(tmp_path / "g.json")], capsys)
    assert rc == 2
    _one_clear_line(err)


def test_deeply_nested_json_is_one_line(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "g.json").write_text("[" * 200_000 + "]" * 200_000)
    rc, _, err = _run(["workloads", "show", str(tmp_path / "g.json")], capsys)
    assert rc == 2 and "nested" in _one_clear_line(err)


def test_silent_scheduler_is_a_quick_clear_error(tmp_path: Path) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text('kind = "update-bench"\n[grid]\nparams = [64]\n')
    t0 = time.perf_counter()
    proc = _cli(["sweep", str(spec), "--scheduler", "tcp://127.0.0.1:9", "--quiet"], 60,
                tmp_path)
    assert time.perf_counter() - t0 < 25
    assert proc.returncode == 2 and "no Dask scheduler answered" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_internal_error_says_so_and_asks_for_a_report(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import gradpimsim.config.cli as presets_cli

    def broken(args: object) -> int:
        raise KeyError("a bug")

    monkeypatch.setattr(presets_cli, "run", broken)
    monkeypatch.delenv("GRADPIMSIM_DEBUG", raising=False)
    rc, _, err = _run(["presets"], capsys)
    assert rc == 3 and "Traceback" not in err
    line = err.strip()
    assert line.startswith("internal error:") and "please report" in line and "\n" not in line


# ------------------------------------------------------------------ 2. hangs, unbounded memory
def test_far_future_request_finishes_fast_with_every_refresh_counted(tmp_path: Path) -> None:
    arrival = 999_999_999_999_999_999  # the largest cycle a trace may hold (18 digits)
    tREFI = preset("ddr4-2400").timing.tREFI
    assert tREFI - 100 > arrival % tREFI  # no refresh boundary right after the arrival
    _trace(tmp_path / "far.trace", ["0x0 READ 0", f"0x40 READ {arrival}"])
    proc = _cli(["trace", "far.trace", "--json", "far.json"], 60, tmp_path)
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((tmp_path / "far.json").read_text())
    # idle: one REF at every tREFI boundary before the request (one rank), none after
    assert stats["refreshes"] == arrival // tREFI
    assert stats["completion_cycle"] > arrival


def test_far_future_request_with_command_trace_is_refused(tmp_path: Path) -> None:
    _trace(tmp_path / "far.trace", ["0x0 READ 0", "0x40 READ 999999999999999999"])
    proc = _cli(["trace", "far.trace", "--cmd-trace", "c.trace"], 60, tmp_path)
    assert proc.returncode == 2 and "far.trace:2" in proc.stderr and "idle gap" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["far.trace"]


@pytest.mark.parametrize(("argv", "needle"), [
    (["trace", "--sample", "--channels", "16384"], "org.channels"),
    (["run", "mlp-small", "--batch", "1000000000"], "needs at least"),
    (["update-bench", "--params", "1000000000000", "--no-functional"], "needs at least"),
    (["update-bench", "--params", "1000000000", "-c", "ddr4-2400-4r-8ch"], "host memory"),
])
def test_oversized_requests_are_refused_with_an_estimate(argv: list[str], needle: str,
                                                         tmp_path: Path) -> None:
    t0 = time.perf_counter()
    proc = _cli(argv, 60, tmp_path)
    assert proc.returncode == 2 and needle in proc.stderr, proc.stderr
    assert time.perf_counter() - t0 < 30 and "Traceback" not in proc.stderr


def test_huge_sweep_grid_is_counted_before_expanding(tmp_path: Path) -> None:
    spec = tmp_path / "g.toml"
    spec.write_text('kind = "update-bench"\n[grid]\n'
                    f"params = {list(range(1, 1001))}\nstep = {list(range(1, 1001))}\n")
    t0 = time.perf_counter()
    proc = _cli(["sweep", str(spec), "--serial", "--quiet"], 60, tmp_path)
    assert proc.returncode == 2 and "1,000,000 points" in proc.stderr, proc.stderr
    assert time.perf_counter() - t0 < 20
    assert not (tmp_path / "g.csv").exists()


# ------------------------------------------------------------------ 3. silent overwrites
def test_output_naming_the_input_is_refused(small_trace: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    before = small_trace.read_bytes()
    rc, _, err = _run(["trace", str(small_trace), "--json", str(small_trace)], capsys)
    assert rc == 2 and "input" in _one_clear_line(err)
    assert small_trace.read_bytes() == before


def test_foreign_file_is_kept_unless_force(small_trace: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    notes = tmp_path / "notes.json"
    notes.write_text('{"my": "notes"}\n')
    rc, _, err = _run(["trace", str(small_trace), "--json", str(notes)], capsys)
    assert rc == 2 and "--force" in _one_clear_line(err)
    assert notes.read_text() == '{"my": "notes"}\n'
    assert main(["trace", str(small_trace), "--json", str(notes), "--force"]) == 0
    assert json.loads(notes.read_text())["requests"] == 50
    # now it is ours: a second run replaces it without --force
    assert main(["trace", str(small_trace), "--json", str(notes)]) == 0


def test_out_dir_with_someone_elses_results_is_refused(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "shared"
    d.mkdir()
    (d / "results.json").write_text('{"experiment": 7}\n')
    rc, _, err = _run(["run", "mlp-small", "--out", str(d)], capsys)
    assert rc == 2 and "results.json" in _one_clear_line(err)
    assert (d / "results.json").read_text() == '{"experiment": 7}\n'
    assert sorted(p.name for p in d.iterdir()) == ["results.json"]


def test_planted_symlink_at_the_old_temporary_name_redirects_nothing(
        small_trace: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    for name in ("s.json", "c.trace"):  # the names the old code wrote through
        (tmp_path / f".partial.{name}").symlink_to(victim)
    assert main(["trace", str(small_trace), "--json", str(tmp_path / "s.json"),
                 "--cmd-trace", str(tmp_path / "c.trace")]) == 0
    assert victim.read_text() == "precious\n"
    assert json.loads((tmp_path / "s.json").read_text())["requests"] == 50


def test_gzip_outputs_are_ours_to_replace(small_trace: Path, tmp_path: Path) -> None:
    cmds = tmp_path / "c.trace.gz"
    for _ in range(2):  # the second run replaces the first's file without --force
        assert main(["trace", str(small_trace), "--cmd-trace", str(cmds)]) == 0
    assert gzip.decompress(cmds.read_bytes()).startswith(b"# gradpimsim")


# ------------------------------------------------------------------ 4. unclear messages
def test_bracketed_text_survives(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ini = tmp_path / "x.ini"
    ini.write_text("[dram_structure]\nprotocol = DDR4\n[bogus]\na = 1\n")
    rc, _, err = _run(["presets", str(ini)], capsys)
    line = _one_clear_line(err)
    assert rc == 2 and "[bogus]" in line and "[dram_structure], [timing]" in line
    ini.write_text("[dram_structure]\nprotocol = DDR4\n")
    rc, _, err = _run(["presets", str(ini)], capsys)
    assert rc == 2 and "missing section [timing]" in _one_clear_line(err)


@pytest.mark.parametrize("name", ["[/]", "[bold]mine[/bold]", "a[b"])
def test_names_with_brackets_print_as_written(tmp_path: Path, name: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "c.toml").write_text(f'base = "ddr4-2400"\nname = {json.dumps(name)}\n')
    rc, out, err = _run(["presets", str(tmp_path / "c.toml")], capsys)
    assert rc == 0 and name in out and "Traceback" not in err


def test_long_message_is_not_wrapped_off_a_terminal(tmp_path: Path) -> None:
    deep = tmp_path / ("a-directory-with-a-long-name-" * 4)
    deep.mkdir()
    proc = _cli(["trace", "--sample", "--json", str(deep / "missing" / "s.json")], 60, tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and len(lines[0]) > 100 and "missing" in lines[0]


def test_huge_bad_line_is_echoed_short_and_fast(tmp_path: Path) -> None:
    (tmp_path / "big.trace").write_text("0x0 READ 0\n0x40 READ " + "9" * 10_000_000 + "\n")
    t0 = time.perf_counter()
    proc = _cli(["trace", "big.trace"], 60, tmp_path)
    assert proc.returncode == 2 and "big.trace:2" in proc.stderr
    assert len(proc.stderr) < 2000 and time.perf_counter() - t0 < 20


def test_a_directory_is_not_reported_as_not_found(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = _run(["trace", str(tmp_path)], capsys)
    assert rc == 2 and "is a directory" in _one_clear_line(err)


# ------------------------------------------------------------------ 5. bad values accepted
@pytest.mark.parametrize("value", ["inf", "1e400", "nan", "-inf"])
def test_infinite_clock_period_is_refused(tmp_path: Path, value: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "c.toml").write_text(f'base = "ddr4-2400"\n[timing]\ntCK_ns = {value}\n')
    rc, _, err = _run(["trace", "--sample", "-c", str(tmp_path / "c.toml")], capsys)
    assert rc == 2 and "timing.tCK_ns" in _one_clear_line(err)


@pytest.mark.parametrize("value", ["1e400", "inf"])
def test_infinite_clock_period_in_ini_is_refused(tmp_path: Path, value: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from tests.test_dramsim3_ini import TEMPLATE

    (tmp_path / "c.ini").write_text(TEMPLATE.replace("tCK = 0.83", f"tCK = {value}"))
    rc, _, err = _run(["presets", str(tmp_path / "c.ini")], capsys)
    assert rc == 2 and "timing.tCK" in _one_clear_line(err)


@pytest.mark.parametrize(("line", "field"), [
    ('refresh = "no"', "controller.refresh"),
    ("refresh = 0", "controller.refresh"),
    ('xor_bank_hash = "false"', "controller.xor_bank_hash"),
])
def test_booleans_are_type_checked(tmp_path: Path, line: str, field: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "c.toml").write_text(f'base = "ddr4-2400"\n[controller]\n{line}\n')
    rc, _, err = _run(["presets", str(tmp_path / "c.toml")], capsys)
    assert rc == 2 and field in _one_clear_line(err)


def test_address_beyond_capacity_is_an_error_unless_wrap(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    cap = preset("ddr4-2400").org.total_bytes
    t = _trace(tmp_path / "t.trace", ["0x0 READ 0", f"{hex(cap + 64)} READ 10"])
    rc, _, err = _run(["trace", str(t)], capsys)
    assert rc == 2 and "t.trace:2" in _one_clear_line(err) and "capacity" in err
    assert main(["trace", str(t), "--wrap"]) == 0


def test_negative_end_clock_is_refused(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    cmds = tmp_path / "c.trace"
    cmds.write_text("10 activate 0 0 0 0 0x1 0x0\n")
    rc, _, err = _run(["check", str(cmds), "-c", "ddr4-2400", "--end-clk", "-5"], capsys)
    assert rc == 2 and "--end-clk" in err and "Traceback" not in err


# ------------------------------------------------------------------ 6. sweep tables
SPEC = 'kind = "toyh"\n[grid]\nx = [1, 2, 3, 4]\n'


@pytest.fixture
def toy_kind() -> None:
    from gradpimsim.sweep import register_runner

    register_runner("toyh", lambda p: {"y": p["x"] * 10})


def test_corrupt_row_is_named_and_repair_quarantines_it(tmp_path: Path, toy_kind: None,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC)
    out = tmp_path / "s.csv"
    assert main(["sweep", str(spec), "--serial", "--quiet", "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 5
    lines[2] = lines[2].replace(",toyh,", ',"toyh,', 1)  # a stray quote in the second row
    out.write_text("\n".join(lines) + "\n")
    damaged = out.read_bytes()
    rc, _, err = _run(["sweep", str(spec), "--serial", "--quiet", "--out", str(out)], capsys)
    assert rc == 2 and f"{out.name}:3" in _one_clear_line(err)
    assert out.read_bytes() == damaged  # nothing changed without --repair
    assert main(["sweep", str(spec), "--serial", "--quiet", "--out", str(out),
                 "--repair"]) == 0
    rows = out.read_text().splitlines()[1:]
    keys = [r.split(",")[0] for r in rows]
    assert len(rows) == 4 and len(set(keys)) == 4  # the bad point re-run once, no duplicate
    assert rows[:1] == lines[1:2] and rows[1:3] == lines[3:5]  # the good rows kept as written
    side = (tmp_path / "s.csv.rejected").read_text()
    assert lines[2] in side and "s.csv:3" in side


def test_truncated_middle_row_does_not_swallow_later_rows(tmp_path: Path, toy_kind: None,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC)
    out = tmp_path / "s.csv"
    assert main(["sweep", str(spec), "--serial", "--quiet", "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    lines[2] = lines[2][:20]
    out.write_text("\n".join(lines) + "\n")
    rc, _, err = _run(["sweep", str(spec), "--serial", "--quiet", "--out", str(out)], capsys)
    assert rc == 2 and f"{out.name}:3" in _one_clear_line(err)


# ------------------------------------------------------------------ 7. interop with DRAMsim3
def _dramsim3_line(clk: int, name: str, ch: int, rk: int, bg: int, bk: int, row: int,
                   col: int) -> str:
    """One line as DRAMsim3 writes it (clock left-aligned in 18, fields right-aligned, hex with
    0x, -1 as -0x1): the layout of its controller's command trace."""
    return f"{clk:<18} {name:<20} {ch:>3} {rk:>3} {bg:>3} {bk:>3} {row:>#8x} {col:>#8x}"


def test_check_accepts_dramsim3_refresh_commands(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    t = _trace(tmp_path / "t.trace", [f"{hex(i * 8192)} READ {i * 2000}" for i in range(40)])
    ours = tmp_path / "ours.trace"
    assert main(["trace", str(t), "--cmd-trace", str(ours)]) == 0
    out = []
    for ln in ours.read_text().splitlines():
        if ln.startswith("#"):
            continue
        clk, name, ch, rk, bg, bk, row, col = ln.split()
        fields = [int(clk), name, int(ch), int(rk), int(bg), int(bk), int(row, 16), int(col, 16)]
        if name == "refresh":  # DRAMsim3: a rank command of no channel, group, bank, row, col
            fields = [int(clk), name, -1, int(rk), -1, -1, -1, -1]
        elif name == "precharge":  # as its refresh precharges: no channel, row or column
            fields = [int(clk), name, -1, int(rk), int(bg), int(bk), -1, -1]
        out.append(_dramsim3_line(*fields))  # type: ignore[arg-type]
    assert any(" refresh " in ln for ln in out) and any(" -1 " in ln for ln in out)
    d3 = tmp_path / "ch_0cmd.trace"
    d3.write_text("\n".join(out) + "\n")
    capsys.readouterr()
    rc, _, err = _run(["check", str(d3), "-c", "ddr4-2400"], capsys)
    assert rc == 0, err


# ------------------------------------------------------------------ 8. trust
def test_remote_scheduler_without_tls_is_warned_about(tmp_path: Path) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text('kind = "update-bench"\n[grid]\nparams = [64]\n')
    proc = _cli(["sweep", str(spec), "--scheduler", "tcp://192.0.2.1:8786",
                 "--connect-timeout", "1", "--quiet"], 60, tmp_path)
    assert proc.returncode == 2 and "without TLS" in proc.stderr
    assert proc.stderr.index("without TLS") < proc.stderr.index("error:")


def test_tls_options_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text('kind = "update-bench"\n[grid]\nparams = [64]\n')
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    rc, _, err = _run(["sweep", str(spec), "--scheduler", "tls://10.0.0.1:8786",
                       "--tls-cert", str(cert)], capsys)
    assert rc == 2 and "--tls-key" in _one_clear_line(err)
    rc, _, err = _run(["sweep", str(spec), "--scheduler", "tls://10.0.0.1:8786"], capsys)
    assert rc == 2 and "--tls-ca-file" in _one_clear_line(err)
