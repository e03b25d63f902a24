"""A multilayer perceptron of our own definition (no reference implementation).

Default: MNIST-sized input (784 features), three hidden layers of 2048 with ReLU, 10 classes:
a small, purely fully connected workload whose update traffic is all weight matrices.

Parameters: 784*2048 + 2048 + 2 * (2048*2048 + 2048) + 2048*10 + 10 = 10,020,874.
"""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx

from gradpimsim.graph.builder import GraphBuilder

IN_FEATURES = 784
HIDDEN = (2048, 2048, 2048)
CLASSES = 10


def mlp(batch: int = 64, in_features: int = IN_FEATURES, hidden: Sequence[int] = HIDDEN,
        classes: int = CLASSES) -> nx.DiGraph:
    """Linear + ReLU per hidden layer (``fc<i>``, ``relu<i>``), then the classifier ``fc<n>``."""
    b = GraphBuilder("mlp", batch)
    x = b.input("input", (batch, in_features))
    for i, width in enumerate(hidden):
        x = b.act(b.linear(x, f"fc{i}", width), f"relu{i}")
    b.linear(x, f"fc{len(hidden)}", classes)
    return b.build()
