"""Full-system simulation of one training iteration: NPU, memory controllers, DRAM, GradPIM.

``simulate(RunConfig(...))`` times one iteration; ``compare(RunConfig(...))`` times it with the
optimizer update on the host and on GradPIM.  Both return result objects with ``to_dict()``,
``save()``/``load()`` and tidy pandas DataFrames (``summary_df()``, ``phases_df()``,
``energy_df()``, ``bandwidth_df()``, ``traffic_df()``, ``utilization_df()``, ``tasks_df()``).
``compare_many([...])`` compares several configurations into one table.
"""

from gradpimsim.system.compare import compare
from gradpimsim.system.config import RunConfig
from gradpimsim.system.many import compare_many
from gradpimsim.system.results import CompareResult, RunResult
from gradpimsim.system.simulate import simulate

__all__ = ["CompareResult", "RunConfig", "RunResult", "compare", "compare_many", "simulate"]
