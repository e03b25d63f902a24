"""torch.fx import (optional: skipped without PyTorch).  No weights are downloaded or read."""

from __future__ import annotations

import networkx as nx
import pytest

import workloads
from gradpimsim.graph import GraphError, param_count

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from gradpimsim.graph.importers.torchfx import import_torch  # noqa: E402


class MLP(nn.Module):
    """Our MLP definition (workloads/mlp.py) written in PyTorch."""

    def __init__(self) -> None:
        super().__init__()
        dims = [784, 2048, 2048, 2048, 10]
        for i in range(4):
            setattr(self, f"fc{i}", nn.Linear(dims[i], dims[i + 1]))
            if i < 3:
                setattr(self, f"relu{i}", nn.ReLU())

    def forward(self, x):
        for i in range(3):
            x = getattr(self, f"relu{i}")(getattr(self, f"fc{i}")(x))
        return self.fc3(x)


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (self.downsample(x) if self.downsample is not None else x))


class ResNet18(nn.Module):
    """A ResNet-18 written for this test (same layer shapes as torchvision's)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = 64
        for s, cout in enumerate((64, 128, 256, 512)):
            stride = 1 if s == 0 else 2
            setattr(self, f"layer{s + 1}", nn.Sequential(Block(cin, cout, stride),
                                                         Block(cout, cout, 1)))
            cin = cout
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, 1000)

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def gemm_layers(g: nx.DiGraph) -> list[tuple]:
    return [(n, d["op"], d["in_shapes"], d["out_shape"], d["params"], d["flops"])
            for n, d in g.nodes(data=True) if d["op"] in ("conv2d", "linear")]


def test_mlp_module_matches_builtin() -> None:
    g = import_torch(MLP(), [(8, 784)], input_names=["input"])
    ref = workloads.get_workload("mlp", batch=8)
    strip = {n: (d["op"], d["in_shapes"], d["out_shape"], d["params"], d["flops"])
             for n, d in ref.nodes(data=True)}
    assert {n: (d["op"], d["in_shapes"], d["out_shape"], d["params"], d["flops"])
            for n, d in g.nodes(data=True)} == strip
    assert set(g.edges) == set(ref.edges)


def test_resnet18_module_matches_builtin_layers() -> None:
    g = import_torch(ResNet18(), [(2, 3, 224, 224)])
    ref = workloads.get_workload("resnet18", batch=2)
    assert param_count(g) == 11_689_512
    assert gemm_layers(g) == gemm_layers(ref)


def test_tied_weight_becomes_shared_param() -> None:
    class TinyLM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.wte = nn.Embedding(100, 16)
            self.ln = nn.LayerNorm(16)

        def forward(self, ids):
            return F.linear(self.ln(self.wte(ids)), self.wte.weight)

    g = import_torch(TinyLM(), [(2, 5)], ["int64"])
    head = next(d for _, d in g.nodes(data=True) if d["op"] == "linear")
    assert head["shared_params"] == {"weight": "wte.weight"}
    assert param_count(g) == 100 * 16 + 2 * 16


def test_untraceable_module_is_a_clear_error() -> None:
    class Branchy(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(GraphError, match="Branchy.*cannot trace"):
        import_torch(Branchy(), [(2, 3)])
