"""DNN workload graphs: schema and validation, JSON IO, model-building helpers, importers."""

from gradpimsim.graph.builder import GraphBuilder, Tensor
from gradpimsim.graph.io import load_graph, loads, save_graph
from gradpimsim.graph.schema import (
    GraphError,
    activation_bytes,
    param_bytes,
    param_count,
    parameters,
    total_flops,
    validate,
)

__all__ = [
    "GraphBuilder",
    "GraphError",
    "Tensor",
    "activation_bytes",
    "load_graph",
    "loads",
    "param_bytes",
    "param_count",
    "parameters",
    "save_graph",
    "total_flops",
    "validate",
]
