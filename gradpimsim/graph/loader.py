"""Load a workload graph by name: a zoo workload, or a graph file (JSON, SCALE-Sim CSV, ONNX).

One place the simulator (``system/simulate.py``) and the ``workloads`` command both take a
workload from, so neither depends on the other's front end.
"""

from __future__ import annotations

from pathlib import Path

import networkx as nx

from gradpimsim.graph.schema import GraphError


def load_any(name: str, batch: int | None = None, seq_len: int | None = None) -> nx.DiGraph:
    """A zoo workload by name, a graph file by path (JSON, SCALE-Sim CSV, ONNX), or a
    ``python:MODULE:FUNCTION`` entry point (allowed by ``--allow-python`` only)."""
    from gradpimsim.graph.importers.python_entry import is_python_spec, load_python

    if is_python_spec(name):
        return load_python(name, batch=batch, seq_len=seq_len)
    path = Path(name)
    if path.suffix.lower() in (".json", ".csv", ".onnx"):
        if not path.exists():
            raise GraphError(str(path), "no such file")
        if path.suffix.lower() == ".json":
            from gradpimsim.graph.io import load_graph
            return load_graph(path)
        if path.suffix.lower() == ".csv":
            from gradpimsim.graph.importers.scalesim import import_scalesim
            return import_scalesim(path, batch=batch or 1)
        from gradpimsim.graph.importers.onnx import import_onnx
        return import_onnx(path, batch=batch)
    import workloads
    return workloads.get_workload(name, batch=batch, seq_len=seq_len)
