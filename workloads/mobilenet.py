"""MobileNetV2 (Sandler et al. 2018) as torchvision's ``mobilenet_v2`` (width 1.0).

Each convolution is followed by batch norm; ReLU6 except after the linear bottleneck
projection.  Node names follow torchvision (``features.<i>.conv.<j>``); dropout is omitted.
"""

from __future__ import annotations

import networkx as nx

from gradpimsim.graph.builder import GraphBuilder, Tensor

#: (expansion t, output channels c, repeats n, first stride s), from the paper's Table 2.
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
            (6, 160, 3, 2), (6, 320, 1, 1))


def _cbr(b: GraphBuilder, x: Tensor, prefix: str, out: int, k: int, stride: int = 1,
         groups: int = 1) -> Tensor:
    x = b.conv2d(x, f"{prefix}.0", out, k, stride=stride, padding=(k - 1) // 2, groups=groups)
    return b.act(b.batchnorm(x, f"{prefix}.1"), f"{prefix}.2", "relu6")


def _inverted_residual(b: GraphBuilder, x: Tensor, prefix: str, out: int, stride: int,
                       t: int) -> Tensor:
    c = x.shape[1]
    hidden = c * t
    y = x
    j = 0
    if t != 1:
        y = _cbr(b, y, f"{prefix}.conv.{j}", hidden, 1)
        j += 1
    y = _cbr(b, y, f"{prefix}.conv.{j}", hidden, 3, stride, groups=hidden)
    y = b.conv2d(y, f"{prefix}.conv.{j + 1}", out, 1)
    y = b.batchnorm(y, f"{prefix}.conv.{j + 2}")
    if stride == 1 and c == out:
        y = b.add(x, y, f"{prefix}.add")
    return y


def mobilenetv2(batch: int = 32) -> nx.DiGraph:
    """torchvision ``mobilenet_v2``: 3,504,872 parameters."""
    b = GraphBuilder("mobilenetv2", batch)
    x = b.input("input", (batch, 3, 224, 224))
    x = _cbr(b, x, "features.0", 32, 3, 2)
    i = 1
    for t, c, n, s in SETTINGS:
        for r in range(n):
            x = _inverted_residual(b, x, f"features.{i}", c, s if r == 0 else 1, t)
            i += 1
    x = _cbr(b, x, f"features.{i}", 1280, 1)
    x = b.flatten(b.adaptive_avgpool(x, "avgpool"), "flatten")
    b.linear(x, "classifier.1", 1000)
    return b.build()
