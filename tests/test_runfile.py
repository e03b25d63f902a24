"""Reproducible runs: run files, --config/--seed, options over the file, provenance, and
compare --config results.json giving the same cycles."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from gradpimsim.cli import main
from gradpimsim.config import ConfigError
from gradpimsim.system.config import RunConfig
from gradpimsim.system.runfile import load_run_file, merge, to_toml

#: A valid value other than the default for every RunConfig field (a new field must be added
#: here: the test below fails until it is, so every field is known to load from a file).
NON_DEFAULT = {
    "workload": "mlp-tiny", "batch": 3, "seq_len": 16, "memory": "ddr4-3200",
    "channels": 2, "ranks": 2, "optimizer": "sgd", "precision": "fp32", "npu": "mid",
    "pim": True, "fusion": "none", "task_order": "legacy", "backward": "split",
    "update_policy": "after-backward", "pim_policy": "fair", "pim_wait_bound": 500,
    "pim_knobs": {"vector_registers": 16}, "layout": "naive",
    "placement": "shared", "param_banks": 2, "functional": True, "step": 3, "seed": 11,
    "bin_cycles": 5000, "batch_runs": False, "extra": {"note": "x"},
}


def test_every_field_loads_from_a_run_file(tmp_path: Path) -> None:
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    assert fields == set(NON_DEFAULT), "a RunConfig field is missing from NON_DEFAULT"
    run = RunConfig(**NON_DEFAULT)
    path = tmp_path / "run.toml"
    path.write_text(to_toml(run))
    loaded = merge({}, load_run_file(path))
    assert loaded == run
    for f in dataclasses.fields(RunConfig):
        assert getattr(loaded, f.name) != getattr(RunConfig(), f.name), f.name


def test_options_override_the_file_even_at_their_default(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    path = tmp_path / "run.toml"
    path.write_text('schema = "gradpimsim.run/1"\nworkload = "mlp-tiny"\nbatch = 2\n'
                    'optimizer = "sgd"\nseed = 5\nnpu = "mid"\n')
    out = tmp_path / "out"
    # --optimizer momentum is the option's default, typed: it wins over the file's sgd
    assert main(["run", "--config", str(path), "--optimizer", "momentum", "--seed", "9",
                 "--out", str(out)]) == 0
    cfg = json.loads((out / "results.json").read_text())["config"]
    assert (cfg["optimizer"], cfg["seed"], cfg["batch"], cfg["npu"]) == ("momentum", 9, 2, "mid")
    assert main(["run", "--config", str(path), "--out", str(out)]) == 0
    cfg = json.loads((out / "results.json").read_text())["config"]
    assert (cfg["optimizer"], cfg["seed"]) == ("sgd", 5)  # untyped options leave the file be


def test_compare_config_of_results_json_reproduces_it(tmp_path: Path) -> None:
    first, again = tmp_path / "first", tmp_path / "again"
    assert main(["compare", "mlp-tiny", "--batch", "3", "--optimizer", "nesterov",
                 "--placement", "shared", "--npu", "edge", "--out", str(first)]) == 0
    data = json.loads((first / "results.json").read_text())
    meta = data["gradpimsim"]
    assert meta["version"] and meta["build"] and meta["started"] <= meta["finished"]
    assert meta["finished"].endswith("+00:00")
    assert main(["compare", "--config", str(first / "results.json"), "--out", str(again)]) == 0
    redo = json.loads((again / "results.json").read_text())
    assert redo["config"] == data["config"]
    for name in ("baseline", "pim"):
        assert redo["runs"][name]["cycles"] == data["runs"][name]["cycles"]
        assert redo["runs"][name]["dram"] == data["runs"][name]["dram"]
    # and an option still overrides the file
    assert main(["compare", "--config", str(first / "results.json"), "--batch", "1",
                 "--out", str(again)]) == 0
    assert json.loads((again / "results.json").read_text())["config"]["batch"] == 1


def test_relative_paths_are_taken_from_the_file(tmp_path: Path) -> None:
    (tmp_path / "mem.toml").write_text('base = "ddr4-2400"\n[org]\nchannels = 2\n')
    (tmp_path / "run.toml").write_text('workload = "mlp-tiny"\nmemory = "mem.toml"\n')
    values = load_run_file(tmp_path / "run.toml")
    assert values["memory"] == str(tmp_path / "mem.toml")
    assert merge({}, values).memory_config().org.channels == 2


@pytest.mark.parametrize(("text", "message"), [
    ('workload = "mlp-tiny"\nbatchsize = 4\n', "batchsize: unknown run option"),
    ('workload = "mlp-tiny"\n[pim]\nvector_registers = 4\n', "[pim_knobs] table"),
    ('workload = "mlp-tiny"\n[pim_knobs]\nvector_registrs = 4\n', "vector_registrs"),
    ('workload = "mlp-tiny"\nbatch = 0\n', "batch: must be a positive integer"),
    ('workload = "mlp-tiny"\npim_policy = "loudest"\n', "pim_policy: unknown policy"),
    ('schema = "other/2"\nworkload = "mlp-tiny"\n', "schema"),
    ('batch = 2\n', "no workload"),
    ('workload = "mlp-tiny"\nbatch = \n', "not valid TOML"),
    ('{"schema": "gradpimsim.timeline/1"}', "results.json"),
])
def test_bad_run_files_are_one_line_errors(tmp_path: Path, text: str, message: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "run.toml"
    path.write_text(text)
    assert main(["compare", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split()) and "Traceback" not in err
    assert err.count("\n") == 1


def test_no_workload_and_no_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare"]) == 2
    assert "no workload" in capsys.readouterr().err


def test_merge_precedence() -> None:
    from gradpimsim.system.runfile import Default

    got = merge({"workload": Default(None), "batch": Default(None), "optimizer": "adam"},
                {"workload": "mlp-tiny", "batch": 4, "optimizer": "sgd"})
    assert (got.workload, got.batch, got.optimizer) == ("mlp-tiny", 4, "adam")
    with pytest.raises(ConfigError, match="unknown run option"):
        merge({}, {"workload": "mlp-tiny", "nope": 1})


def test_typed_pim_knobs_go_over_the_files_knob_by_knob(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('workload = "mlp-tiny"\nbatch = 2\n[pim_knobs]\nvector_registers = 16\n'
                    'op_latency = 6\n')
    out = tmp_path / "out"
    assert main(["run", "--config", str(path), "--pim", "--pim-knob", "op_latency=8",
                 "--out", str(out)]) == 0
    cfg = json.loads((out / "results.json").read_text())["config"]
    assert cfg["pim_knobs"] == {"vector_registers": 16, "op_latency": 8}
