"""Full-system simulation of one training iteration: NPU, memory controllers, DRAM, GradPIM.

``simulate(RunConfig(...))`` times one iteration; ``compare(RunConfig(...))`` times it with the
optimizer update on the host and on GradPIM.  Both return result objects with ``to_dict()``
and pandas DataFrames (``phases_df()``, ``tasks_df()``).
"""

from gradpimsim.system.compare import compare
from gradpimsim.system.config import RunConfig
from gradpimsim.system.results import CompareResult, RunResult
from gradpimsim.system.simulate import simulate

__all__ = ["CompareResult", "RunConfig", "RunResult", "compare", "simulate"]
