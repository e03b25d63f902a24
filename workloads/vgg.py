"""VGG-16 (configuration D, no batch norm) as torchvision's ``vgg16``.

Node names follow torchvision's ``features.<i>`` / ``classifier.<i>`` indices, so parameter ids
match its ``state_dict``; dropout layers are omitted (no parameters, negligible traffic).
"""

from __future__ import annotations

import networkx as nx

from gradpimsim.graph.builder import GraphBuilder

CFG_D = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def vgg16(batch: int = 32) -> nx.DiGraph:
    """torchvision ``vgg16``: 138,357,544 parameters."""
    b = GraphBuilder("vgg16", batch)
    x = b.input("input", (batch, 3, 224, 224))
    i = 0
    for v in CFG_D:
        if v == "M":
            x = b.pool(x, f"features.{i}", "max", 2, 2)
            i += 1
        else:
            x = b.conv2d(x, f"features.{i}", int(v), 3, padding=1, bias=True)
            x = b.act(x, f"features.{i + 1}")
            i += 2
    x = b.flatten(b.adaptive_avgpool(x, "avgpool", 7), "flatten")
    x = b.act(b.linear(x, "classifier.0", 4096), "classifier.1")
    x = b.act(b.linear(x, "classifier.3", 4096), "classifier.4")
    b.linear(x, "classifier.6", 1000)
    return b.build()
