"""The ``iteration`` kind of ``gradpimsim sweep``: one training iteration per point.

A point's parameters are :class:`RunConfig` fields (workload, batch, optimizer, precision,
memory, channels, ranks, pim, layout, npu, ...); its metrics are the run's headline figures,
flat, so a sweep table has one row per point.
"""

from __future__ import annotations

from typing import Any

from gradpimsim.system.config import RunConfig


def run_point(params: dict[str, Any]) -> dict[str, Any]:
    """Simulate the iteration ``params`` describes; flat metrics for the sweep table."""
    from gradpimsim.system.simulate import simulate

    res = simulate(RunConfig.from_dict(dict(params)))
    out: dict[str, Any] = {
        "cycles": res.cycles, "time_us": round(res.time_us, 4),
        "read_bytes": res.dram["read_bytes"], "write_bytes": res.dram["write_bytes"],
        "bandwidth_gbs": res.dram["bandwidth_gbs"], "utilization": res.dram["utilization"],
        "row_hit_rate": res.dram["row_hit_rate"],
        "pim_utilization": res.pim_units["utilization"],
    }
    for phase, v in res.phases.items():
        out[f"{phase}_cycles"] = v["cycles"]
    for comp, v in res.energy_nj.items():
        out[f"energy_{comp}_nj"] = round(float(v), 3)
    return out


#: ``gradpimsim.sweep`` registers the function named ``run`` as the ``iteration`` runner.
run = run_point
