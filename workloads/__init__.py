"""The built-in workload zoo: DNN training workloads as schema-valid networkx graphs.

``get_workload(name, batch=..., seq_len=...)`` builds one; ``list_workloads()`` describes them.
Parameter counts equal the reference implementations (torchvision, Hugging Face); the MLP, the
LSTM language model and the autoencoder-prototype network are our own definitions, ResNet-32
follows He et al. 2016; each is documented in its module.

Besides the registry, ``recast:TEACHER:BLOCK[:STUDENT[:WIDTH]]`` names one step of network
recasting (``workloads.recast``): e.g. ``recast:resnet32:7:plain``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import networkx as nx

from gradpimsim.graph.schema import GraphError
from workloads.autoencoder import ae_proto
from workloads.cifar_resnet import resnet32
from workloads.lstm import lstm_lm
from workloads.mlp import mlp
from workloads.mobilenet import mobilenetv2
from workloads.resnet import resnet18, resnet50
from workloads.transformer import bert_base, bert_large, gpt2
from workloads.vgg import vgg16


def mlp_small(batch: int = 32) -> nx.DiGraph:
    """The quick-start workload: 784-512-512-10, 669,706 parameters."""
    return mlp(batch, hidden=(512, 512))


def mlp_tiny(batch: int = 8) -> nx.DiGraph:
    """A CI-sized workload (reduced studies, tests): 64-128-128-10, 26,122 parameters; a
    comparison takes a fraction of a second."""
    return mlp(batch, in_features=64, hidden=(128, 128))


@dataclass(frozen=True)
class WorkloadInfo:
    """A registry entry: the builder, its defaults and a one-line description."""

    name: str
    builder: Callable[..., nx.DiGraph]
    description: str
    batch: int
    seq_len: int | None = None  # None: not a sequence model

    @property
    def is_sequence(self) -> bool:
        return self.seq_len is not None


_REGISTRY: dict[str, WorkloadInfo] = {
    w.name: w for w in (
        WorkloadInfo("mlp", mlp, "MLP 784-2048x3-10 (ours)", 64),
        WorkloadInfo("mlp-tiny", mlp_tiny, "MLP 64-128x2-10 (ours; tests, reduced studies)",
                     8),
        WorkloadInfo("mlp-small", mlp_small, "MLP 784-512x2-10 (ours; seconds to simulate)", 32),
        WorkloadInfo("resnet18", resnet18, "ResNet-18, ImageNet 224x224 (torchvision)", 32),
        WorkloadInfo("resnet50", resnet50, "ResNet-50, ImageNet 224x224 (torchvision)", 32),
        WorkloadInfo("resnet32", resnet32, "ResNet-32, CIFAR-10 32x32 (He et al. 2016)", 128),
        WorkloadInfo("vgg16", vgg16, "VGG-16, ImageNet 224x224 (torchvision)", 32),
        WorkloadInfo("mobilenetv2", mobilenetv2, "MobileNetV2, ImageNet (torchvision)", 32),
        WorkloadInfo("bert-base", bert_base, "BERT-base encoder + pooler (HF BertModel)", 8, 128),
        WorkloadInfo("bert-large", bert_large, "BERT-large encoder + pooler (HF BertModel)", 8,
                     128),
        WorkloadInfo("gpt2", gpt2, "GPT-2 small, tied LM head (HF GPT2LMHeadModel)", 8, 1024),
        WorkloadInfo("lstm-lm", lstm_lm, "2-layer LSTM LM, hidden 650, vocab 10k (ours)", 20,
                     35),
        WorkloadInfo("ae-proto", ae_proto, "autoencoder 784-512-256-64 + prototype classifier "
                     "(ours; incremental learning)", 64),
    )
}


def list_workloads() -> list[WorkloadInfo]:
    """Every built-in workload, in registry order."""
    return list(_REGISTRY.values())


def workload_info(name: str) -> WorkloadInfo:
    key = name.strip().lower().replace("_", "-")
    try:
        return _REGISTRY[key]
    except KeyError:
        raise GraphError("workload", f"unknown workload {name!r}; known: "
                                     f"{', '.join(_REGISTRY)}") from None


def get_workload(name: str, batch: int | None = None, seq_len: int | None = None) -> nx.DiGraph:
    """Build workload ``name`` for ``batch`` (and ``seq_len``; sequence models only), or the
    recasting step a ``recast:...`` name describes."""
    from workloads.recast import parse_spec, recast_step

    spec = parse_spec(name)
    if spec is not None:
        if seq_len is not None:
            raise GraphError("workload", "a recasting step is not a sequence model; it takes "
                                         "no sequence length")
        teacher, block, student, width = spec
        return recast_step(teacher, block, student, batch=batch, width=width)
    info = workload_info(name)
    kwargs: dict[str, int] = {"batch": info.batch if batch is None else batch}
    if seq_len is not None:
        if not info.is_sequence:
            raise GraphError("workload", f"{info.name} is not a sequence model; "
                                         "it takes no sequence length")
        kwargs["seq_len"] = seq_len
    return info.builder(**kwargs)


__all__ = ["WorkloadInfo", "get_workload", "list_workloads", "workload_info"]
