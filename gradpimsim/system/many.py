"""Several comparisons in one call, one tidy table: ``compare_many``.

Each configuration is compared without and with GradPIM (:func:`~gradpimsim.system.compare`),
and becomes one row of ``tables.comparison_row``: its configuration, ``speedup`` and the overlap
figures, and both runs' figures prefixed ``baseline_``/``pim_`` (units in the names).  The same
rows as a ``compare`` sweep or a study, so a notebook and ``gradpimsim study`` agree column for
column; ``tables.long_form`` turns them into one row per run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from gradpimsim.system.config import RunConfig

if TYPE_CHECKING:
    import pandas as pd

    from gradpimsim.system.results import CompareResult


def configurations(items: Iterable[str | RunConfig], base: RunConfig | None = None,
                   **fields: Any) -> list[RunConfig]:
    """A workload name becomes ``base`` (default ``RunConfig()``) with that workload; a
    ``RunConfig`` is taken as it is; ``fields`` override both (``batch=8``)."""
    base = base or RunConfig()
    out = []
    for item in items:
        run = item if isinstance(item, RunConfig) else dataclasses.replace(base, workload=item)
        out.append(dataclasses.replace(run, **fields) if fields else run)
    return out


def compare_many(items: Iterable[str | RunConfig], base: RunConfig | None = None, *,
                 jobs: int = 1, long: bool = False,
                 on_result: Callable[[CompareResult], None] | None = None,
                 **fields: Any) -> pd.DataFrame:
    """Compare each configuration (``configurations``); one row per configuration, or with
    ``long`` one row per run.  ``jobs`` is each comparison's (2: both runs at once);
    ``on_result`` sees each ``CompareResult`` as it finishes (to keep or save it)."""
    import pandas as pd

    from gradpimsim.system.compare import compare
    from gradpimsim.system.tables import comparison_row, long_form

    rows = []
    for run in configurations(items, base, **fields):
        result = compare(run, jobs=jobs)
        if on_result is not None:
            on_result(result)
        rows.append(comparison_row(result))
    table = pd.DataFrame(rows)
    return long_form(table) if long else table


__all__ = ["compare_many", "configurations"]
