"""The ``iteration`` and ``compare`` kinds of ``gradpimsim sweep`` (and of ``gradpimsim study``).

A point's parameters are :class:`RunConfig` fields, every one of them (``sweep/run_keys.py``).
``iteration`` simulates one run a point (``pim`` chooses where the update runs) and records
``tables.run_row``: the run's headline figures, flat, units in the names.  ``compare``
simulates the configuration without and with GradPIM, one after the other in the worker, and
records ``tables.comparison_row``: ``speedup``, the overlap figures and both runs' columns
prefixed ``baseline_``/``pim_``, so a study's table has one row per configuration.
"""

from __future__ import annotations

from typing import Any

from gradpimsim.system.config import RunConfig


def run_point(params: dict[str, Any]) -> dict[str, Any]:
    """Simulate the iteration ``params`` describes; flat metrics for the sweep table."""
    from gradpimsim.system.simulate import simulate
    from gradpimsim.system.tables import run_row

    res = simulate(RunConfig.from_dict(dict(params)))
    return run_row(res)


def compare_point(params: dict[str, Any]) -> dict[str, Any]:
    """Simulate ``params`` without and with GradPIM; one flat comparison row."""
    from gradpimsim.system.compare import compare
    from gradpimsim.system.tables import comparison_row

    if "pim" in params:
        raise ValueError("a compare point runs both pim = false and pim = true; drop pim")
    result = compare(RunConfig.from_dict(dict(params)), jobs=1)
    return comparison_row(result, config=False)


#: ``gradpimsim.sweep`` registers the function named ``run`` as the ``iteration`` runner,
#: and each of ``RUNNERS``.
run = run_point
RUNNERS = {"iteration": run_point, "compare": compare_point}
