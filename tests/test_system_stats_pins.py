"""Full-system statistics pinned from their definitions (docs/iteration.md, docs/gradpim.md).

- Energy per phase is each phase's own share: the phases add up to the run's total, component
  by component (a phase reported from cycle 0 would count the earlier phases again).
- PIM unit utilization is column ops x the PIM column spacing / (cycles x units), the spacing
  being tCCD_L by default (docs/gradpim.md: ``col_to_col`` defaults to tCCD_L; 6 cycles at
  DDR4-2400) and the units one per bank group of every rank and channel (4 on one x8 rank).

Each was checked against a deliberate bug (``benchmarks/mutants.py``).
"""

from __future__ import annotations

import pytest

from gradpimsim.graph.io import save_graph
from gradpimsim.system.config import RunConfig
from gradpimsim.system.simulate import simulate
from workloads.mlp import mlp

TCCD_L_2400 = 6
UNITS_ONE_RANK = 4  # DDR4 x8: 4 bank groups, one PIM unit each


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("wl") / "tiny.json"
    save_graph(mlp(batch=8, in_features=96, hidden=(160,), classes=24), path)
    return str(path)


@pytest.mark.parametrize("pim", [False, True])
def test_energy_by_phase_adds_up_to_the_total(tiny: str, pim: bool) -> None:
    res = simulate(RunConfig(workload=tiny, pim=pim))
    phases = res.energy_by_phase_nj
    assert set(phases) >= {"forward", "backward", "update"}
    for comp, total in res.energy_nj.items():
        if comp == "average_power_mw" or not isinstance(total, float | int):
            continue
        parts = sum(p.get(comp, 0.0) for p in phases.values())
        assert parts == pytest.approx(total, rel=1e-9, abs=1e-9), comp
    # every phase did work: its own energy is positive and below the whole run's
    for name in ("forward", "backward", "update"):
        assert 0 < phases[name]["total"] < res.energy_nj["total"]


def test_pim_utilization_uses_the_column_spacing_per_unit(tiny: str) -> None:
    res = simulate(RunConfig(workload=tiny, pim=True))
    cmds = res.dram["commands"]
    col_ops = cmds.get("PIM_RD", 0) + cmds.get("PIM_WR", 0)
    assert col_ops > 0
    assert res.pim_units["units"] == UNITS_ONE_RANK
    expected = col_ops * TCCD_L_2400 / (res.cycles * UNITS_ONE_RANK)
    assert res.pim_units["utilization"] == pytest.approx(expected, abs=1e-6)
