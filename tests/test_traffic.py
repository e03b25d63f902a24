"""DRAM traffic: an independent analytic count of ResNet-50's iteration, the audit, the sums.

``test_resnet50_traffic_equals_the_analytic_count`` counts ResNet-50 (batch 32, mixed
precision, momentum, fusion ``full``, the ``small`` NPU) from the rules of
``docs/iteration.md`` by hand: block by block from the architecture (channel widths, spatial
sizes, strides), not by walking the graph or calling the NPU model, and compares with the
planned traffic the simulator moves.
"""

from __future__ import annotations

from collections import Counter

import pytest

import workloads
from gradpimsim.config.training import OptimizerConfig
from gradpimsim.graph.io import save_graph
from gradpimsim.host.npu import NPUModel
from gradpimsim.host.traffic import burst_bytes, by_phase_and_class, tensor_class, traffic_rows
from gradpimsim.host.training import Dataflow, expand_training
from gradpimsim.system.config import RunConfig
from gradpimsim.system.simulate import simulate
from workloads.mlp import mlp

MIB = 2**20
B = 32          # batch
E = 2           # fp16 activations, gradients and weight copies
BUDGET = 4 * MIB  # residency: half the small NPU's 8 MiB buffer
BUFFER = 8 * MIB


class Count:
    """Bytes per (phase, class, read|write), with the residency and tiling rules applied by
    the caller."""

    def __init__(self) -> None:
        self.c: Counter[tuple[str, str, str]] = Counter()

    def add(self, phase: str, cls: str, rw: str, nbytes: int) -> None:
        self.c[(phase, cls, rw)] += burst_bytes(nbytes)

    def total(self) -> int:
        return sum(self.c.values())


def _tiled_extra(na: int, nb: int, nc: int) -> int:
    """Extra bytes re-read by a GEMM pass whose operands do not fit the buffer (the NPU's
    three loop orders, cheapest chosen: docs/iteration.md)."""
    if na + nb + nc <= BUFFER:
        return 0
    half = BUFFER // 2
    blocks = lambda n: max(1, -(-n // half))  # noqa: E731
    side = int((blocks(nc) - 1) ** 0.5) + 1 if blocks(nc) > 1 else 1
    options = [na * blocks(nb) + nb, na + nb * blocks(na), (na + nb) * side]
    return min(options) - (na + nb)


def resnet50_count() -> Count:  # noqa: PLR0915 - one block of arithmetic per pass
    k = Count()
    act = lambda c, h: B * c * h * h * E  # noqa: E731
    # -- stem: conv1 7x7/2 + bn1 + relu (its output recomputed by maxpool: only conv1's
    #    output is written), maxpool 3x3/2
    stem_w, bn = 64 * 3 * 49 * E, lambda c: 2 * c * E  # noqa: E731
    image, c_stem, pooled = B * 3 * 224 * 224 * E, act(64, 112), act(64, 56)
    k.add("forward", "input", "read", image)
    k.add("forward", "weights", "read", stem_w)
    k.add("forward", "weights", "read", bn(64))
    k.add("forward", "activations", "write", c_stem)
    k.add("forward", "activations", "read", c_stem)       # maxpool reads conv1's output
    k.add("forward", "activations", "write", pooled)
    blocks = []
    c_in, h = 64, 56
    for stage, count in enumerate((3, 4, 6, 3)):
        w = 64 * 2 ** stage
        for i in range(count):
            s = 2 if stage > 0 and i == 0 else 1
            blocks.append((c_in, w, h, s, i == 0))
            c_in, h = 4 * w, h // s
    # -- forward, block by block: passes conv1, [downsample], conv2, conv3(+bn3+add+relu3)
    for c_in, w, h, s, proj in blocks:
        x, c1, c2 = act(c_in, h), act(w, h), act(w, h // s)
        c3 = o = d = act(4 * w, h // s)
        w1, w2, w3, wd = c_in * w * E, w * w * 9 * E, w * 4 * w * E, c_in * 4 * w * E
        k.add("forward", "activations", "read", x)                       # conv1
        k.add("forward", "weights", "read", w1 + bn(w))
        k.add("forward", "activations", "write", c1)
        if proj:                                                          # downsample
            k.add("forward", "activations", "read", x)
            k.add("forward", "weights", "read", wd + bn(4 * w))
            k.add("forward", "activations", "write", d)
        if proj or c1 > BUDGET:  # conv2 takes c1 from the buffer only right after conv1
            k.add("forward", "activations", "read", c1)
        k.add("forward", "weights", "read", w2 + bn(w))
        k.add("forward", "activations", "write", c2)
        if c2 > BUDGET:
            k.add("forward", "activations", "read", c2)
        k.add("forward", "weights", "read", w3 + bn(4 * w))
        k.add("forward", "activations", "read", d if proj else x)        # the skip
        k.add("forward", "activations", "write", c3)                     # saved for bn3
        k.add("forward", "activations", "write", o)                      # block output
    # -- head: avgpool(+flatten) writes 2048 values; fc takes them from the buffer; its
    #    output and gradient never leave the chip (the loss is the next pass)
    last = act(2048, 7)
    k.add("forward", "activations", "read", last)
    k.add("forward", "activations", "write", B * 2048 * E)
    k.add("forward", "weights", "read", 2048 * 1000 * E + 1000 * E)
    # -- backward: fc (reads its input and weight; writes weight gradients), avgpool (no
    #    values needed; writes the gradient of layer4's output)
    k.add("backward", "activations", "read", B * 2048 * E)
    k.add("backward", "weights", "read", 2048 * 1000 * E)
    k.add("backward", "weight gradients", "write", 2048 * 1000 * E)
    k.add("backward", "weight gradients", "write", 1000 * E)
    k.add("backward", "activation gradients", "write", last)
    for c_in, w, h, s, proj in reversed(blocks):  # passes conv3, conv2, [downsample], conv1
        x, c1, c2 = act(c_in, h), act(w, h), act(w, h // s)
        c3 = o = d = act(4 * w, h // s)
        w1, w2, w3, wd = c_in * w * E, w * w * 9 * E, w * 4 * w * E, c_in * 4 * w * E
        # conv3: d(output) from DRAM (never small enough to stay), its mask from the output,
        # bn3 from c3, wgrad from c2; writes d(c2) for conv2's pass, the skip's gradient,
        # weight gradients
        k.add("backward", "activation gradients", "read", o)
        k.add("backward", "weights", "read", w3 + 4 * w * E)
        k.add("backward", "activations", "read", o + c3 + c2)
        if c2 > BUDGET:  # d(c2) is consumed by the very next pass: on chip when it fits
            k.add("backward", "activation gradients", "write", c2)
        k.add("backward", "activation gradients", "write", d if proj else x)
        k.add("backward", "weight gradients", "write", w3 + bn(4 * w))
        # conv2
        na, nb = c2 + c1 + w * E + (c2 if c2 > BUDGET else 0), w2
        k.add("backward", "activation gradients", "read", c2 if c2 > BUDGET else 0)
        k.add("backward", "weights", "read", w2 + w * E)
        k.add("backward", "activations", "read", c2 + c1)
        dc1_stays = not proj and c1 <= BUDGET
        k.add("backward", "activation gradients", "write", 0 if dc1_stays else c1)
        k.add("backward", "weight gradients", "write", w2 + bn(w))
        nc = (0 if dc1_stays else c1) + w2 + bn(w)
        k.add("backward", "weights", "read", _tiled_extra(na, nb, nc))
        if proj:  # downsample: reads its output's gradient and saved output, and x
            k.add("backward", "activation gradients", "read", d)
            k.add("backward", "weights", "read", wd + 4 * w * E)
            k.add("backward", "activations", "read", d + x)
            k.add("backward", "activation gradients", "write", x)        # first d(x)
            k.add("backward", "weight gradients", "write", wd + bn(4 * w))
        # conv1: adds its d(x) to the partial sum the skip (or downsample) wrote
        k.add("backward", "activation gradients", "read", 0 if dc1_stays else c1)
        k.add("backward", "weights", "read", w1 + w * E)
        k.add("backward", "activations", "read", c1 + x)
        k.add("backward", "activation gradients", "read", x)             # the partial sum
        k.add("backward", "activation gradients", "write", x)
        k.add("backward", "weight gradients", "write", w1 + bn(w))
    # maxpool: d(pooled) and conv1's output (its input, recomputed) -> d(stem output)
    k.add("backward", "activation gradients", "read", pooled)
    k.add("backward", "activations", "read", c_stem)
    k.add("backward", "activation gradients", "write", c_stem)
    # stem: no data gradient (the image); weight gradients from the image and conv1's output
    k.add("backward", "activation gradients", "read", c_stem)
    k.add("backward", "activations", "read", c_stem)
    k.add("backward", "input", "read", image)
    k.add("backward", "weight gradients", "write", stem_w + bn(64))
    # -- host update, momentum, mixed: per parameter tensor read grad (fp16), master and
    #    momentum (fp32); write master, momentum and the fp16 copy; each tensor in whole bursts
    g = workloads.get_workload("resnet50", batch=B)
    for node in g:
        for spec in g.nodes[node]["params"].values():
            n = 1
            for dim in spec["shape"]:
                n *= dim
            for rw, parts in (("read", (("weight gradients", 2), ("weights", 4),
                                        ("optimizer state", 4))),
                              ("write", (("weights", 4), ("optimizer state", 4),
                                         ("weights", 2)))):
                for cls, nb in parts:
                    k.add("update", cls, rw, n * nb)
    return k


def test_resnet50_traffic_equals_the_analytic_count() -> None:
    npu = NPUModel("small")
    assert npu.cfg.buffer_bytes == BUFFER and npu.cfg.residency_budget == BUDGET
    s = expand_training(workloads.get_workload("resnet50", batch=B), OptimizerConfig("momentum"),
                        "mixed", Dataflow(resident_bytes=BUDGET))
    planned = by_phase_and_class(traffic_rows(s, npu.schedule_costs(s)))
    got = Counter({(ph, cls, rw): v[rw] for ph, per in planned.items() for cls, v in per.items()
                   for rw in ("read", "write") if v[rw]})
    want = resnet50_count()
    assert dict(got) == {key: v for key, v in want.c.items() if v}
    # at most half of the 14.12 GiB the model before 0.2 moved
    assert want.total() <= 14.12 * 2**30 / 2
    assert round(want.total() / 2**30, 3) == 6.218


def test_traffic_adds_up_to_the_simulated_dram_bytes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "tiny.json"
    save_graph(mlp(batch=8, in_features=96, hidden=(160,), classes=24), path)
    for pim in (False, True):
        res = simulate(RunConfig(workload=str(path), pim=pim))
        reads = sum(v["read"] for per in res.traffic.values() for v in per.values())
        writes = sum(v["write"] for per in res.traffic.values() for v in per.values())
        assert (reads, writes) == (res.dram["read_bytes"], res.dram["write_bytes"])
        assert ("update" in res.traffic) != pim  # with PIM the update moves nothing


@pytest.mark.parametrize("name, cls", [
    ("act:conv1", "activations"), ("dact:conv1", "activation gradients"),
    ("fc.weight/weight_copy", "weights"), ("fc.weight/weight", "weights"),
    ("fc.weight/grad", "weight gradients"), ("fc.weight/momentum", "optimizer state"),
    ("fc.weight/exp_avg_sq", "optimizer state")])
def test_tensor_classes(name: str, cls: str) -> None:
    assert tensor_class(name) == cls
