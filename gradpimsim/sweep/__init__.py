"""Design-space sweeps: a spec of points, a runner per kind, one durable result table.

``run_sweep(spec, out)`` runs (on Dask, or serially) every point not yet in ``out`` and returns
the table as a DataFrame; ``load_results(out)`` reads it.  See ``docs/sweeps.md``.
"""

from gradpimsim.sweep.runner import get_runner, known_kinds, register_runner, run_point, run_sweep
from gradpimsim.sweep.spec import KindSchema, SpecError, SweepSpec, load_spec, point_key
from gradpimsim.sweep.store import ResultStore, load_results

__all__ = [
    "KindSchema", "ResultStore", "SpecError", "SweepSpec", "get_runner", "known_kinds",
    "load_results", "load_spec", "point_key", "register_runner", "run_point", "run_sweep",
]
