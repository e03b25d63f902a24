"""ResNet-32 for CIFAR-10 (He et al., CVPR 2016, section 4.2), our builder of its definition.

The 6n+2-layer CIFAR network with n = 5: a 3x3 convolution to 16 channels on the 32x32 input,
three stages of n basic blocks (two 3x3 convolutions each) at 16, 32 and 64 channels (feature
maps 32, 16 and 8), global average pooling and a 10-way fully connected layer.  The first block
of stages 2 and 3 halves the feature map with a stride-2 first convolution.  Shortcuts are the
paper's option A, parameter-free: the identity, or, where the shape changes, the input
subsampled by two and padded with zero channels (a ``pad`` node, costed as data movement).

Parameters, counted from that definition (BatchNorm's scale and shift count, its running
statistics do not):

- stem: 3*16*9 + 2*16 = 464
- stage 1: 5 * (2 * 16*16*9 + 2 * 2*16) = 23,360
- stage 2: 16*32*9 + 32*32*9 + 4*32 + 4 * (2 * 32*32*9 + 4*32) = 88,192
- stage 3: 32*64*9 + 64*64*9 + 4*64 + 4 * (2 * 64*64*9 + 4*64) = 351,488
- classifier: 64*10 + 10 = 650

Total 464,154: the "0.46M" of the paper's table 6.  Node names follow the layout of the
torchvision-style ResNets in this zoo (``layer2.0.conv1``, ``layer2.0.shortcut``).
"""

from __future__ import annotations

import networkx as nx

from gradpimsim.graph.builder import GraphBuilder, Tensor

IMAGE = 32
CLASSES = 10
WIDTHS = (16, 32, 64)
BLOCKS_PER_STAGE = 5  # n of the 6n+2 family: 5 -> 32 layers


def stem(b: GraphBuilder, batch: int) -> Tensor:
    """Input, the 3x3 convolution to 16 channels, BatchNorm, ReLU."""
    x = b.input("input", (batch, 3, IMAGE, IMAGE))
    x = b.conv2d(x, "conv1", WIDTHS[0], 3, padding=1)
    return b.act(b.batchnorm(x, "bn1"), "relu")


def option_a_shortcut(b: GraphBuilder, x: Tensor, name: str, out: int, stride: int) -> Tensor:
    """The parameter-free shortcut: subsample by ``stride``, zero-pad channels to ``out``."""
    n, c, h, w = x.shape
    return b.node(name, "pad", [x], (n, out, h // stride, w // stride), flops=0,
                  stride=stride, channels=out)


def cifar_basic(b: GraphBuilder, x: Tensor, prefix: str, out: int, stride: int) -> Tensor:
    """Two 3x3 conv-BN layers with ReLU between, the option-A shortcut added, then ReLU."""
    y = b.conv2d(x, f"{prefix}.conv1", out, 3, stride=stride, padding=1)
    y = b.act(b.batchnorm(y, f"{prefix}.bn1"), f"{prefix}.relu1")
    y = b.batchnorm(b.conv2d(y, f"{prefix}.conv2", out, 3, padding=1), f"{prefix}.bn2")
    identity = x
    if stride != 1 or x.shape[1] != out:
        identity = option_a_shortcut(b, x, f"{prefix}.shortcut", out, stride)
    return b.act(b.add(y, identity, f"{prefix}.add"), f"{prefix}.relu2")


def block_plan() -> list[tuple[str, int, int]]:
    """``(prefix, out channels, stride)`` of every block, in order."""
    plan = []
    for stage, width in enumerate(WIDTHS):
        for i in range(BLOCKS_PER_STAGE):
            plan.append((f"layer{stage + 1}.{i}", width, 2 if stage > 0 and i == 0 else 1))
    return plan


def resnet32(batch: int = 128) -> nx.DiGraph:
    """ResNet-32 on 32x32 CIFAR-10 images: 464,154 parameters (see the module docstring)."""
    b = GraphBuilder("resnet32", batch)
    x = stem(b, batch)
    for prefix, out, stride in block_plan():
        x = cifar_basic(b, x, prefix, out, stride)
    x = b.flatten(b.adaptive_avgpool(x, "avgpool"), "flatten")
    b.linear(x, "fc", CLASSES)
    return b.build()
