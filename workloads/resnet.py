"""ResNet-18 and ResNet-50 as in torchvision (He et al. 2016; torchvision's v1.5 bottleneck).

Node names follow torchvision's module names (``layer1.0.conv1``), so parameter ids match its
``state_dict`` keys; ReLUs and residual additions, which torchvision does not name separately,
get ``relu1``/``relu2``/``add`` suffixes.  The bottleneck puts the stride on the 3x3
convolution (torchvision); the parameter count does not depend on where the stride sits.
"""

from __future__ import annotations

import networkx as nx

from gradpimsim.graph.builder import GraphBuilder, Tensor

IMAGE = 224
CLASSES = 1000


def _conv_bn(b: GraphBuilder, x: Tensor, prefix: str, idx: str, out: int, k: int,
             stride: int = 1) -> Tensor:
    x = b.conv2d(x, f"{prefix}.conv{idx}", out, k, stride=stride, padding=k // 2)
    return b.batchnorm(x, f"{prefix}.bn{idx}")


def _basic(b: GraphBuilder, x: Tensor, prefix: str, out: int, stride: int) -> Tensor:
    identity = x
    y = b.act(_conv_bn(b, x, prefix, "1", out, 3, stride), f"{prefix}.relu1")
    y = _conv_bn(b, y, prefix, "2", out, 3)
    if stride != 1 or x.shape[1] != out:
        identity = b.conv2d(x, f"{prefix}.downsample.0", out, 1, stride=stride)
        identity = b.batchnorm(identity, f"{prefix}.downsample.1")
    return b.act(b.add(y, identity, f"{prefix}.add"), f"{prefix}.relu2")


def _bottleneck(b: GraphBuilder, x: Tensor, prefix: str, width: int, stride: int) -> Tensor:
    out = width * 4
    identity = x
    y = b.act(_conv_bn(b, x, prefix, "1", width, 1), f"{prefix}.relu1")
    y = b.act(_conv_bn(b, y, prefix, "2", width, 3, stride), f"{prefix}.relu2")
    y = _conv_bn(b, y, prefix, "3", out, 1)
    if stride != 1 or x.shape[1] != out:
        identity = b.conv2d(x, f"{prefix}.downsample.0", out, 1, stride=stride)
        identity = b.batchnorm(identity, f"{prefix}.downsample.1")
    return b.act(b.add(y, identity, f"{prefix}.add"), f"{prefix}.relu3")


def _resnet(name: str, batch: int, blocks: tuple[int, ...], bottleneck: bool) -> nx.DiGraph:
    b = GraphBuilder(name, batch)
    x = b.input("input", (batch, 3, IMAGE, IMAGE))
    x = b.conv2d(x, "conv1", 64, 7, stride=2, padding=3)
    x = b.act(b.batchnorm(x, "bn1"), "relu")
    x = b.pool(x, "maxpool", "max", 3, 2, 1)
    for stage, count in enumerate(blocks):
        width = 64 * 2 ** stage
        for i in range(count):
            stride = 2 if stage > 0 and i == 0 else 1
            prefix = f"layer{stage + 1}.{i}"
            x = (_bottleneck(b, x, prefix, width, stride) if bottleneck
                 else _basic(b, x, prefix, width, stride))
    x = b.flatten(b.adaptive_avgpool(x, "avgpool"), "flatten")
    b.linear(x, "fc", CLASSES)
    return b.build()


def resnet18(batch: int = 32) -> nx.DiGraph:
    """torchvision ``resnet18``: 11,689,512 parameters."""
    return _resnet("resnet18", batch, (2, 2, 2, 2), bottleneck=False)


def resnet50(batch: int = 32) -> nx.DiGraph:
    """torchvision ``resnet50``: 25,557,032 parameters."""
    return _resnet("resnet50", batch, (3, 4, 6, 3), bottleneck=True)
