"""Sweeps: spec validation, durable table, kill and resume on a local Dask cluster."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gradpimsim.cli import main
from gradpimsim.sweep import (
    ResultStore,
    SpecError,
    load_results,
    load_spec,
    point_key,
    register_runner,
    run_sweep,
)
from tests.conftest import REPO

GRID = """
kind = "update-bench"
[fixed]
memory = "ddr4-2400"
[grid]
params = [4096, 8192, 16384, 32768]
optimizer = ["sgd", "momentum", "nesterov"]
"""
TOTAL = 12


def _rows(path: Path) -> int:
    if not path.exists():
        return 0
    return max(0, path.read_text().count("\n") - 1)


def _metrics(df):  # type: ignore[no-untyped-def]
    return df.drop(columns=["wall_s"]).sort_values("key").reset_index(drop=True)


def test_kill_resume_on_dask_then_serial_gives_identical_metrics(tmp_path: Path) -> None:
    spec = tmp_path / "grid.toml"
    spec.write_text(GRID)
    out = tmp_path / "results.csv"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gradpimsim.cli", "sweep", str(spec), "--out", str(out),
         "--workers", "2", "--quiet"],
        cwd=REPO, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while _rows(out) < 1 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _rows(out) >= 1, "no point recorded before the deadline"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its Dask workers
        proc.wait()
    before = load_results(out)
    assert 1 <= len(before) < TOTAL, "the sweep finished before it could be killed"
    assert (before["status"] == "ok").all()

    df = run_sweep(spec, out, workers=2, progress=False)
    assert len(df) == TOTAL and df["key"].is_unique and (df["status"] == "ok").all()
    assert set(df["key"]) == set(load_spec(spec).keys)
    # the rows recorded before the kill are kept as they were
    kept = df[df["key"].isin(before["key"])]
    assert _metrics(kept).equals(_metrics(before))
    # a second run has nothing to do
    again = run_sweep(spec, out, workers=2, progress=False)
    assert _metrics(again).equals(_metrics(df))

    serial = run_sweep(spec, tmp_path / "serial.csv", serial=True, progress=False)
    assert _metrics(serial).equals(_metrics(df))


def test_failed_point_is_recorded_and_retried_only_on_request(tmp_path: Path) -> None:
    spec = {"kind": "update-bench", "grid": {"params": [4096]},
            "points": [{"params": 4096, "optimizer": "adam"}]}
    out = tmp_path / "r.csv"
    df = run_sweep(spec, out, serial=True, progress=False)
    assert sorted(df["status"]) == ["failed", "ok"]
    failed = df[df["status"] == "failed"].iloc[0]
    assert "pim.has_sqrt_div" in failed["error"]
    size = out.stat().st_size
    run_sweep(spec, out, serial=True, progress=False)
    assert out.stat().st_size == size  # nothing rerun
    df = run_sweep(spec, out, serial=True, progress=False, retry_failed=True)
    assert len(df) == 2 and df["key"].is_unique


def test_custom_runner_and_table_survive_a_torn_last_line(tmp_path: Path) -> None:
    calls = []

    def runner(params):  # type: ignore[no-untyped-def]
        calls.append(params["x"])
        if params["x"] == 3:
            raise RuntimeError("bad\npoint")
        return {"y": params["x"] * 2, "name": f"p{params['x']}"}

    register_runner("toy", runner)
    out = tmp_path / "toy.csv"
    df = run_sweep({"kind": "toy", "grid": {"x": [1, 2, 3]}}, out, serial=True, progress=False)
    assert list(df["y"].dropna()) == [2, 4] and df["error"].iloc[2] == "RuntimeError: bad | point"
    with open(out, "a") as fh:
        fh.write("deadbeefdeadbeef,toy,0.1.0,ok,,0.1,4")  # a kill mid-line
    store = ResultStore(out)
    assert len(store.rows) == 3 and out.read_text().endswith("\n")
    run_sweep({"kind": "toy", "grid": {"x": [1, 2, 3, 4]}}, out, serial=True, progress=False)
    assert calls == [1, 2, 3, 4] and len(load_results(out)) == 4


def test_point_key_is_stable_and_order_independent() -> None:
    a = point_key("update-bench", {"params": 1, "optimizer": "sgd"})
    b = point_key("update-bench", {"optimizer": "sgd", "params": 1})
    assert a == b
    # the documented definition: the first 16 hex digits of the sha256 of the sorted, compact
    # JSON of kind, params and version
    blob = '{"kind":"update-bench","params":{"optimizer":"sgd","params":1},"version":"9.9"}'
    key = point_key("update-bench", {"params": 1, "optimizer": "sgd"}, "9.9")
    assert key == hashlib.sha256(blob.encode()).hexdigest()[:16] and key != a
    assert point_key("update-bench", {"params": 2, "optimizer": "sgd"}) != a
    assert point_key("iteration", {"params": 1, "optimizer": "sgd"}) != a
    spec = load_spec({"kind": "update-bench", "fixed": {"optimizer": "sgd"},
                      "grid": {"params": [1, 2]}, "points": [{"params": 1}]})
    assert len(spec.points) == 2  # the explicit point repeats a grid point


@pytest.mark.parametrize(("text", "field"), [
    ('kind = "nope"\n[grid]\nparams = [1]\n', "kind"),
    ('[grid]\nparams = [1]\n', "kind"),
    ('kind = "update-bench"\n', "grid"),
    ('kind = "update-bench"\n[grid]\nparams = []\n', "grid.params"),
    ('kind = "update-bench"\n[grid]\nparams = [1]\nwidth = [2]\n', "grid.width"),
    ('kind = "update-bench"\n[grid]\noptimizer = ["sgd"]\n', "grid.params"),
    ('kind = "update-bench"\n[fixed]\nchannels = 3\n[grid]\nparams = [1]\n', "fixed.channels"),
    ('kind = "update-bench"\n[fixed]\nmemory = "ddr9"\n[grid]\nparams = [1]\n', "memory"),
    ('kind = "update-bench"\n[[points]]\nparams = "many"\n', "points[0].params"),
    ('kind = "update-bench"\nextra = 1\n[grid]\nparams = [1]\n', "extra"),
    ('kind = "update-bench"\n[grid\n', "spec"),
])
def test_spec_errors_name_the_key_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             text: str, field: str) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text(text)
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    assert info.value.field == field
    assert main(["sweep", str(spec), "--serial", "--out", str(tmp_path / "o.csv")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"{field}:" in err and "Traceback" not in err
    assert not (tmp_path / "o.csv").exists()


def test_not_a_sweep_table_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text('kind = "update-bench"\n[grid]\nparams = [4096]\n')
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    assert main(["sweep", str(spec), "--serial", "--out", str(other)]) == 2
    assert "not a gradpimsim sweep table" in " ".join(capsys.readouterr().err.split())
