"""GradPIM unit knobs as data: the memory TOML's ``[pim]`` section, ``--pim-knob`` on the CLI,
and what a run records (issue 19 item 5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gradpimsim.cli import main
from gradpimsim.config import ConfigError, load_config, load_pim_config
from gradpimsim.config.pim import PimConfig
from gradpimsim.graph.io import save_graph
from gradpimsim.system.compare import compare
from gradpimsim.system.config import RunConfig
from gradpimsim.system.simulate import simulate
from workloads.mlp import mlp


def toml(tmp_path: Path, body: str) -> str:
    path = tmp_path / "mem.toml"
    path.write_text('base = "ddr4-2400"\n' + body)
    return str(path)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("wl") / "tiny.json"
    save_graph(mlp(batch=8, in_features=96, hidden=(160,), classes=24), path)
    return str(path)


def test_pim_section_is_read_and_validated(tmp_path: Path) -> None:
    spec = toml(tmp_path, "[pim]\nvector_registers = 16\nhas_sqrt_div = true\n"
                          "dtypes = [\"fp32\", \"fp16\"]\n[pim.energy_pj]\nop = 500.0\n")
    pim = load_pim_config(spec)
    assert (pim.vector_registers, pim.has_sqrt_div, pim.dtypes) == (16, True, ("fp32", "fp16"))
    assert pim.energy_pj == {"column_access": 2750.0, "op": 500.0, "set": 50.0}
    assert load_config(spec).org == load_config("ddr4-2400").org  # the DRAM is unchanged
    assert load_pim_config("ddr4-2400") == PimConfig()
    for body, field in (("[pim]\nregisters = 4\n", "pim.registers"),
                        ("[pim]\nop_latency = 0\n", "pim.op_latency"),
                        ("[pim]\nhas_sqrt_div = 1\n", "pim.has_sqrt_div"),
                        ("[pim]\ndtypes = \"fp32\"\n", "pim.dtypes"),
                        ("pim = 3\n", "pim")):
        with pytest.raises(ConfigError) as err:
            load_config(toml(tmp_path, body))  # a typo stops every command reading the file
        assert err.value.field == field, body


def test_run_knobs_override_the_file(tmp_path: Path) -> None:
    spec = toml(tmp_path, "[pim]\nvector_registers = 16\nop_latency = 6\n")
    run = RunConfig(memory=spec, pim_knobs={"op_latency": 9})
    assert (run.pim_config().vector_registers, run.pim_config().op_latency) == (16, 9)
    with pytest.raises(ConfigError) as err:
        RunConfig(pim_knobs={"op_latncy": 9})
    assert err.value.field == "pim.op_latncy"


def test_a_knob_changes_the_timed_update(tiny: str) -> None:
    """PIM_OP -> PIM_WR waits op_latency: a longer latency makes the update phase longer (the
    online checker holds the run to the new value), the baseline is untouched."""
    def update_cycles(knobs: dict) -> int:
        res = simulate(RunConfig(workload=tiny, pim=True, update_policy="after-backward",
                                 pim_knobs=knobs))
        ph = res.phases["update"]
        return ph["end"] - ph["start"]

    assert update_cycles({"op_latency": 40}) > update_cycles({"op_latency": 4})


def test_adam_is_reachable_from_a_memory_toml(tmp_path: Path, tiny: str) -> None:
    """Adam needs the sqrt/div extension: refused without it (naming the knob and both ways
    to set it), bit-exact against the reference optimizer with it."""
    with pytest.raises(Exception, match="has_sqrt_div") as err:
        compare(RunConfig(workload=tiny, optimizer="adam"))
    assert "--pim-knob" in str(err.value) and "[pim]" in str(err.value)
    spec = toml(tmp_path, "[pim]\nhas_sqrt_div = true\n")
    res = compare(RunConfig(workload=tiny, optimizer="adam", memory=spec, functional=True))
    assert res.weights_match


def test_cli_pim_knob_and_results_record(tmp_path: Path, tiny: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["compare", tiny, "--pim-knob", "vector_registers=12",
                 "--pim-knob", "has_sqrt_div=true", "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    units = data["runs"]["pim"]["memory"]["pim_units"]
    assert units["vector_registers"] == 12 and units["has_sqrt_div"] is True
    assert "pim_units" not in data["runs"]["baseline"]["memory"]
    for bad, field in (("vector_registers", "pim_knobs"), ("vector_registers=x",
                                                           "pim.vector_registers"),
                       ("nope=1", "pim.nope")):
        assert main(["compare", tiny, "--pim-knob", bad]) == 2
        assert field in capsys.readouterr().err
