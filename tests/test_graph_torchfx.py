"""PyTorch import via torch.export and torch.fx (optional: skipped without PyTorch).

No weights are downloaded or read.  Expected parameter counts are the model's own
``sum(p.numel())``; expected FLOPs are counted by hand.
"""

from __future__ import annotations

import networkx as nx
import pytest

import workloads
from gradpimsim.graph import GraphError, param_count

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from gradpimsim.graph.importers.torch_export import TorchImportWarning  # noqa: E402
from gradpimsim.graph.importers.torchfx import import_torch  # noqa: E402
from gradpimsim.graph.schema import parameters  # noqa: E402
from tests import torch_models  # noqa: E402

TRACERS = pytest.mark.parametrize("tracer", ["export", "fx"])


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


@TRACERS
def test_mlp_module_matches_builtin(tracer: str) -> None:
    g = import_torch(MLP(), [(8, 784)], input_names=["input"], tracer=tracer)
    ref = workloads.get_workload("mlp", batch=8)
    strip = {n: (d["op"], d["in_shapes"], d["out_shape"], d["params"], d["flops"])
             for n, d in ref.nodes(data=True)}
    assert {n: (d["op"], d["in_shapes"], d["out_shape"], d["params"], d["flops"])
            for n, d in g.nodes(data=True)} == strip
    assert set(g.edges) == set(ref.edges)


@TRACERS
def test_resnet18_module_matches_builtin_layers(tracer: str) -> None:
    g = import_torch(ResNet18(), [(2, 3, 224, 224)], tracer=tracer)
    ref = workloads.get_workload("resnet18", batch=2)
    assert param_count(g) == 11_689_512
    assert gemm_layers(g) == gemm_layers(ref)


@TRACERS
def test_tied_weight_becomes_shared_param(tracer: str) -> None:
    class TinyLM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.wte = nn.Embedding(100, 16)
            self.ln = nn.LayerNorm(16)

        def forward(self, ids):
            return F.linear(self.ln(self.wte(ids)), self.wte.weight)

    g = import_torch(TinyLM(), [(2, 5)], ["int64"], tracer=tracer)
    head = next(d for _, d in g.nodes(data=True) if d["op"] == "linear")
    assert head["shared_params"] == {"weight": "wte.weight"}
    assert param_count(g) == 100 * 16 + 2 * 16


def test_untraceable_module_is_a_clear_error() -> None:
    class Branchy(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(GraphError, match="Branchy.*cannot trace"):
        import_torch(Branchy(), [(2, 3)])


def named(model: nn.Module) -> dict[str, int]:
    return {n: p.numel() for n, p in model.named_parameters()}


def graph_named(g: nx.DiGraph) -> dict[str, int]:
    return {k: int(torch.Size(v["shape"]).numel()) for k, v in parameters(g).items()}


@pytest.mark.parametrize("build", [torch_models.resnet50, torch_models.mobilenet_v2])
def test_reference_cnns_parameter_for_parameter(build) -> None:
    model = build()
    g = import_torch(model, [(1, 3, 224, 224)])
    assert graph_named(g) == named(model)
    assert param_count(g) == torch_models.param_total(model)


def test_conv_flops_by_hand() -> None:
    g = import_torch(torch_models.mobilenet_v2(), [(2, 3, 224, 224)])
    # features.0.0: 32 filters of 3x3x3, stride 2 -> 112x112, batch 2, 2 FLOPs per MAC.
    assert g.nodes["features.0.0"]["flops"] == 2 * 2 * 32 * 112 * 112 * 3 * 3 * 3
    # features.1.conv.0.0: depthwise 3x3 over 32 channels (one input channel per group).
    assert g.nodes["features.1.conv.0.0"]["attrs"]["groups"] == 32
    assert g.nodes["features.1.conv.0.0"]["flops"] == 2 * 2 * 32 * 112 * 112 * 1 * 3 * 3


def test_training_mode_batchnorm_counter_is_not_a_layer() -> None:
    """In training mode torch.export records ``num_batches_tracked += 1``: buffer-only work."""
    model = torch_models.resnet18().train()
    g = import_torch(model, [(2, 3, 32, 32)])
    assert param_count(g) == 11_689_512
    assert not [n for n, d in g.nodes(data=True) if d["op"] == "add" and not d["in_shapes"]]


def test_unused_parameters_are_reported() -> None:
    class Spare(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used = nn.Linear(4, 4)
            self.spare = nn.Linear(4, 3)

        def forward(self, x):
            return self.used(x)

    with pytest.warns(TorchImportWarning, match=r"15 values: 'spare.weight', 'spare.bias'"):
        g = import_torch(Spare(), [(2, 4)], tracer="export")
    assert param_count(g) == 20


def test_unknown_tracer_is_an_error() -> None:
    with pytest.raises(GraphError, match="tracer must be one of"):
        import_torch(MLP(), [(2, 784)], tracer="jit")


@pytest.fixture(scope="module")
def transformers():
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return pytest.importorskip("transformers")


def test_hugging_face_bert_traces(transformers) -> None:
    """BERT-base built from its config (no download) traces through torch.export."""
    model = transformers.BertModel(transformers.BertConfig()).eval()
    g = import_torch(model, [(2, 16)], ["int64"], input_names=["input_ids"])
    assert param_count(g) == torch_models.param_total(model) == 109_482_240
    assert graph_named(g) == named(model)
    q = g.nodes["encoder.layer.0.attention.self.query"]
    assert q["op"] == "linear" and q["flops"] == 2 * (2 * 16) * 768 * 768
    # Scaled dot-product attention: scores q @ k^T per head, 12 heads of 64 over 16 tokens.
    scores = [d for n, d in g.nodes(data=True) if n.endswith(".scores")]
    assert len(scores) == 12 and scores[0]["flops"] == 2 * 2 * 12 * 16 * 16 * 64


def test_hugging_face_gpt2_tied_head(transformers) -> None:
    config = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=1000,
                                     n_positions=64, use_cache=False)
    model = transformers.GPT2LMHeadModel(config).eval()
    g = import_torch(model, [(2, 8)], ["int64"])
    assert param_count(g) == torch_models.param_total(model)
    assert g.nodes["lm_head"]["shared_params"] == {"weight": "transformer.wte.weight"}
    # Conv1D (addmm) weights are [in, out]; the graph keeps [out, in] like nn.Linear.
    assert graph_named(g) == named(model)


@pytest.mark.parametrize("name,count", [("resnet18", 11_689_512), ("resnet50", 25_557_032),
                                        ("mobilenet_v2", 3_504_872)])
def test_torchvision_models(name: str, count: int) -> None:
    torchvision = pytest.importorskip("torchvision", reason="torchvision is not installed (it "
                                      "does not install beside every torch build)")
    model = getattr(torchvision.models, name)(weights=None)
    g = import_torch(model, [(1, 3, 224, 224)])
    assert graph_named(g) == named(model) and param_count(g) == count
