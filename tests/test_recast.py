"""Network recasting as a workload: block parameter counts against torchvision's definitions
(plain torch.nn, layer for layer), the step's task DAG (a no-grad teacher forward, the student
block's forward/backward, an MSE loss on the teacher activation, an update of that block
only), the comparison with and without GradPIM (functional, checker online) and schedules.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import workloads
from gradpimsim.cli import main
from gradpimsim.graph import GraphError
from gradpimsim.graph.io import save_graph
from gradpimsim.graph.schema import numel, parameters
from gradpimsim.host.training import Dataflow, expand_training
from gradpimsim.recast.schedule import run_schedule
from gradpimsim.system.compare import compare
from gradpimsim.system.config import RunConfig
from workloads.autoencoder import ae_proto
from workloads.recast import TEACHERS, recast_step


def _block_params(g, prefix: str) -> int:
    return sum(numel(p["shape"]) for p in parameters(g).values()
               if p["node"].startswith(prefix + "."))


# --- parameter counts against torchvision's blocks -----------------------------------------------

def _torch_counts():
    torch = pytest.importorskip("torch", reason="PyTorch not installed: reference blocks "
                                                "cannot be built")
    from torch import nn

    from tests import torch_models as tm

    def count(m: nn.Module) -> int:
        return sum(p.numel() for p in m.parameters())

    def down(cin: int, cout: int, stride: int) -> nn.Module | None:
        if stride == 1 and cin == cout:
            return None
        return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def plain(cin: int, mid: int, cout: int, stride: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(cin, mid, 3, stride, 1, bias=False), nn.BatchNorm2d(mid),
                             nn.ReLU(), nn.Conv2d(mid, cout, 3, 1, 1, bias=False),
                             nn.BatchNorm2d(cout), nn.ReLU())

    def slim_bottleneck(cin: int, width: int, cout: int, stride: int) -> nn.Module:
        # torchvision's Bottleneck with a smaller inner width (base_width < 64)
        return nn.Sequential(nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width),
                             nn.Conv2d(width, width, 3, stride, 1, bias=False),
                             nn.BatchNorm2d(width), nn.Conv2d(width, cout, 1, bias=False),
                             nn.BatchNorm2d(cout), *([] if (m := down(cin, cout, stride)) is None
                                                     else [m]))

    return torch, tm, count, down, plain, slim_bottleneck


@pytest.mark.parametrize("teacher", ["resnet18", "resnet50"])
def test_teacher_and_student_blocks_match_torchvision(teacher: str) -> None:
    _, tm, count, down, plain, slim = _torch_counts()
    ref = getattr(tm, teacher)()
    ref_blocks = [blk for i in range(1, 5) for blk in getattr(ref, f"layer{i}")]
    spec = TEACHERS[teacher]
    assert len(ref_blocks) == len(spec.blocks)
    for k, (blk, tref) in enumerate(zip(spec.blocks, ref_blocks, strict=True)):
        if blk.prefix.split(".")[1] not in ("0", "1"):
            continue  # the later blocks of a stage repeat the second one's shapes
        for student in ("plain", "basic", "bottleneck"):
            g = recast_step(teacher, k, student, batch=1)
            # the teacher's block is torchvision's block, parameter for parameter
            assert _block_params(g, blk.prefix) == count(tref), (k, student)
            got = _block_params(g, f"student.{blk.prefix}")
            if student == "basic":
                want = count(tm.BasicBlock(blk.cin, blk.cout, blk.stride,
                                           down(blk.cin, blk.cout, blk.stride)))
            elif student == "bottleneck":
                want = count(slim(blk.cin, blk.width // 2, blk.cout, blk.stride))
            else:
                want = count(plain(blk.cin, blk.width, blk.cout, blk.stride))
            assert got == want, (teacher, k, student)
        if blk.kind == "bottleneck":  # the full-width bottleneck student is the teacher's block
            g = recast_step(teacher, k, "bottleneck", batch=1, width=blk.width)
            assert _block_params(g, f"student.{blk.prefix}") == count(tref)


def test_resnet32_blocks_by_hand() -> None:
    """Option-A shortcuts carry no parameters: 2 * 16*16*9 + 4*16 in stage 1, the first block
    of stage 2 16*32*9 + 32*32*9 + 4*32, the others 2 * 32*32*9 + 4*32."""
    g = recast_step("resnet32", 5, "plain", batch=1)
    assert _block_params(g, "layer2.0") == 16 * 32 * 9 + 32 * 32 * 9 + 4 * 32 == 13_952
    assert _block_params(g, "student.layer2.0") == 13_952  # plain: same convs, no shortcut
    g = recast_step("resnet32", 0, "basic", batch=1)
    assert _block_params(g, "layer1.0") == 2 * 16 * 16 * 9 + 4 * 16 == 4_672
    g = recast_step("resnet32", 5, "basic", batch=1)  # basic student: projection shortcut
    assert _block_params(g, "student.layer2.0") == 13_952 + 16 * 32 + 2 * 32


def test_resnet32_count_by_hand() -> None:
    g = workloads.get_workload("resnet32", batch=1)
    stem = 3 * 16 * 9 + 2 * 16
    s1 = 5 * (2 * 16 * 16 * 9 + 4 * 16)
    s2 = 16 * 32 * 9 + 32 * 32 * 9 + 4 * 32 + 4 * (2 * 32 * 32 * 9 + 4 * 32)
    s3 = 32 * 64 * 9 + 64 * 64 * 9 + 4 * 64 + 4 * (2 * 64 * 64 * 9 + 4 * 64)
    fc = 64 * 10 + 10
    assert sum(numel(p["shape"]) for p in parameters(g).values()) == \
        stem + s1 + s2 + s3 + fc == 464_154
    assert g.nodes["fc"]["in_shapes"] == [[1, 64]]
    assert g.nodes["layer3.4.relu2"]["out_shape"] == [1, 64, 8, 8]


# --- the step's task DAG ----------------------------------------------------------------------

@pytest.mark.parametrize("flow", [Dataflow(), Dataflow("none", "autograd", "split")])
def test_step_dag(flow: Dataflow) -> None:
    g = recast_step("resnet32", 7, "plain", batch=4)
    s = expand_training(g, dataflow=flow)
    nodes = s.dag.nodes
    student = {n for n in g.nodes if n.startswith("student.")}
    teacher = set(g.nodes) - student
    # updates: exactly the student block's parameters
    updated = {nodes[t]["param"] for t in s.tasks("update")}
    assert updated == {p for p, d in parameters(g).items() if d["node"] in student}
    assert set(s.groups) == updated
    # backward: only the student block's nodes, no teacher task
    back = [t for t in s.program if nodes[t]["kind"].startswith("backward")]
    assert back and all(set(nodes[t]["members"]) <= student for t in back)
    # nothing is written for a teacher gradient, nothing of the teacher updated
    for t in s.program:
        for a in nodes[t]["writes"]:
            name = a.tensor.split(":", 1)[-1].split("/")[0]
            assert not (a.tensor.startswith("dact:") and name in teacher)
            assert not (a.tensor.endswith("/grad") and name.rsplit(".", 1)[0] in teacher)
    # the MSE loss reads the student output and the teacher block's output (its target)
    loss_reads = {a.tensor for a in nodes["loss"]["reads"]}
    target = g.graph["recast"]["target"]
    assert f"act:{target}" in loss_reads
    out = g.graph["recast"]["output"]
    assert {a.tensor for a in nodes["loss"]["writes"]} == {f"dact:{out}"}
    out_numel = numel(g.nodes[out]["out_shape"])
    assert nodes["loss"]["flops"] == 4 * out_numel  # MSE on the trained output only
    # frozen teacher weights: read as stored compute copies, no optimizer group
    frozen = [n for n in s.tensors if n.startswith("layer2.1.conv1.weight/")]
    assert frozen == ["layer2.1.conv1.weight/weight"]
    assert s.tensors[frozen[0]].nbytes == 32 * 32 * 9 * 4


@pytest.mark.parametrize("flow", [Dataflow(), Dataflow("none", "autograd", "split")])
def test_step_traffic_by_hand(flow: Dataflow) -> None:
    """Recasting layer2.2 of ResNet-32 (block 7) into a plain block, batch 4, mixed precision.
    The block's output is 4 x 32 x 16 x 16 = 32,768 values, 2 B each in fp16: the MSE loss
    reads the student's output and the teacher's (the target), 2 x 65,536 B, and writes one
    output gradient, 65,536 B.  The student block has 2 * 32*32*9 + 4*32 = 18,560
    parameters; a momentum update moves per parameter 10 B in (grad 2, master 4, momentum
    4) and 10 B out (master 4, momentum 4, fp16 copy 2); nothing else is updated.  Every
    frozen teacher weight is read as its fp16 copy alone (2 B per value)."""
    from gradpimsim.config.training import precision

    g = recast_step("resnet32", 7, "plain", batch=4)
    s = expand_training(g, policy=precision("mixed"), dataflow=flow)
    loss = s.dag.nodes["loss"]
    act = 4 * 32 * 16 * 16 * 2
    assert sorted(a.nbytes for a in loss["reads"]) == [act, act]
    assert [a.nbytes for a in loss["writes"]] == [act]
    ups = [s.dag.nodes[t] for t in s.tasks("update")]
    assert sum(a.nbytes for u in ups for a in u["reads"]) == 10 * 18_560
    assert sum(a.nbytes for u in ups for a in u["writes"]) == 10 * 18_560
    teacher = {n for n in g.nodes if not n.startswith("student.")}
    frozen = {p: d for p, d in parameters(g).items() if d["node"] in teacher}
    stored = {name: spec for name, spec in s.tensors.items()
              if name.split("/")[0] in frozen}
    assert set(stored) == {f"{p}/weight_copy" for p in frozen}
    assert sum(spec.nbytes for spec in stored.values()) == 2 * sum(
        numel(d["shape"]) for d in frozen.values())
    # the teacher's weights up to block 7: stem 464 (+ 0 for relu), blocks 0-4 at 4,672,
    # block 5 at 13,952, blocks 6-7 at 18,560 each
    assert sum(numel(d["shape"]) for d in frozen.values()) == \
        464 + 5 * 4_672 + 13_952 + 2 * 18_560


@pytest.mark.parametrize("flow", [Dataflow(), Dataflow("none", "autograd", "split")])
def test_teacher_forward_saves_nothing_for_backward(flow: Dataflow) -> None:
    """In a trained network a fused group saves its anchor for backward besides its output;
    in the no-grad teacher only outputs that a later pass reads are written."""
    g = recast_step("resnet32", 2, "plain", batch=2)
    s = expand_training(g, dataflow=flow)
    readers: dict[str, int] = {}
    for t in s.program:
        for a in s.dag.nodes[t]["reads"]:
            readers[a.tensor] = readers.get(a.tensor, 0) + 1
    for t in s.tasks("forward"):
        for a in s.dag.nodes[t]["writes"]:
            assert readers.get(a.tensor), f"{t} writes {a.tensor}, which nothing reads"


def test_frozen_node_passes_gradient_but_is_not_trained() -> None:
    """ae-proto: the prototype table is frozen, yet the classifier's gradient reaches the
    encoder through it (data gradient, no weight gradient, no update)."""
    g = workloads.get_workload("ae-proto", batch=4)
    s = expand_training(g)
    assert "prototypes.weight" not in s.groups
    bwd = [t for t in s.program if s.dag.nodes[t]["layer"] == "prototypes"]
    assert bwd and all(not a.tensor.endswith("/grad") for t in bwd
                       for a in s.dag.nodes[t]["writes"])
    assert any(a.tensor == "dact:enc2" for t in bwd for a in s.dag.nodes[t]["writes"])
    assert "act:input" in {a.tensor for a in s.dag.nodes["loss"]["reads"]}
    trained = sum(numel(p["shape"]) for pid, p in parameters(g).items() if pid in s.groups)
    assert trained == 549_696 + 550_416 == 1_100_112
    assert numel(g.nodes["prototypes"]["params"]["weight"]["shape"]) == 640


@pytest.mark.parametrize("name", ["recast:resnet32:7:plain", "recast:resnet18:2:bottleneck",
                                  "ae-proto"])
def test_step_schedule_is_hazard_free(name: str) -> None:
    """The executor's waits hold on the frozen-teacher DAG as on every zoo workload (the
    stand-in memory and the cases of ``test_schedule_verifier``)."""
    from gradpimsim.config import load_config
    from gradpimsim.config.training import OptimizerConfig
    from gradpimsim.host.allocator import Allocator, place_schedule
    from gradpimsim.host.npu import NPUModel
    from gradpimsim.system.verify import verify_schedule
    from tests.test_schedule_verifier import CASES, execute

    for flow, runs in CASES.items():
        s = expand_training(workloads.get_workload(name, batch=1),
                            OptimizerConfig("ewc-momentum" if name == "ae-proto" else
                                            "momentum"), "mixed", flow)
        alloc = Allocator(load_config("ddr4-2400", channels=8))
        place_schedule(s, alloc)
        plan = (s, NPUModel("small").schedule_costs(s), alloc, alloc.cfg)
        for pim, policy in runs:
            for mem in ({"write_x": 0}, {"write_x": 20}):
                e = execute(plan, pim, policy, **mem)
                bad = verify_schedule(s.program, s.dag.nodes, e.records.values())
                assert bad == [], (name, flow, pim, policy, mem, bad[:2])


def test_workloads_show_counts_trained_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    """The update table of a recasting step counts the student block only: 18,560 parameters
    x 10 B (mixed momentum) = 181.25 KiB read and written; 93,456 parameters in all."""
    assert main(["workloads", "show", "recast:resnet32:7:plain", "--batch", "4"]) == 0
    out = capsys.readouterr().out
    assert "93,456" in out and "18,560" in out
    row = next(line for line in out.splitlines() if "momentum *" in line)
    assert row.count("181.25 KiB") == 2, row


def test_spec_errors() -> None:
    for bad, field in (("recast:resnet99:1", "teacher"), ("recast:resnet32:15", "block"),
                       ("recast:resnet32:1:mlp", "student"), ("recast:resnet32:x", "workload"),
                       ("recast:resnet32", "workload"), ("recast:resnet18:1:basic:7", "width")):
        with pytest.raises(GraphError, match=field):
            workloads.get_workload(bad)


# --- with and without GradPIM --------------------------------------------------------------------

def test_compare_recast_step_functional(online_checker: list) -> None:  # type: ignore[type-arg]
    run = RunConfig(workload="recast:resnet32:7:plain", batch=4, functional=True)
    res = compare(run)
    assert res.baseline.verified and res.pim.verified and res.weights_match
    assert not res.baseline.schedule_violations and not res.pim.schedule_violations
    assert set(res.pim.param_numels) == set(expand_training(
        workloads.get_workload(run.workload, batch=4)).groups)
    assert res.speedup > 1.0
    assert online_checker, "the protocol checker was attached"


def test_compare_regularized_incremental_step_functional(
        tmp_path: Path, online_checker: list) -> None:  # type: ignore[type-arg]
    """A small autoencoder-prototype network (the zoo's definition, narrower layers) under
    ewc-momentum.  Trained parameters: encoder 96*64+64 + 64*32+32 + 32*16+16 = 8,816,
    decoder 16*32+32 + 32*64+64 + 64*96+96 = 8,896: n = 17,712.  The host update reads per
    parameter the fp32 master (4 B) and momentum, omega and theta_old (3 x 4 B), writes the
    master and momentum (4 + 4 B); gradients (2 B) and the fp16 copy (2 B) are small tensors
    whose bursts may round up."""
    path = tmp_path / "ae.json"
    save_graph(ae_proto(batch=8, in_features=96, hidden=(64, 32), latent=16, classes=5), path)
    run = RunConfig(workload=str(path), batch=8, optimizer="ewc-momentum", functional=True)
    res = compare(run)
    assert res.baseline.verified and res.pim is not None and res.pim.verified
    assert res.weights_match
    assert not res.baseline.schedule_violations and not res.pim.schedule_violations
    n = 17_712
    assert sum(res.pim.param_numels.values()) == n  # the prototype table is not trained
    update = res.baseline.traffic["update"]
    assert update["weights"]["read"] == 4 * n
    assert update["optimizer state"] == {"read": 12 * n, "write": 4 * n}
    assert 2 * n <= update["weight gradients"]["read"] < 2 * n + 12 * 64
    assert 6 * n <= update["weights"]["write"] < 6 * n + 12 * 64
    assert "update" not in res.pim.traffic  # the update never crosses the bus
    assert res.speedup > 1.0
    assert online_checker, "the protocol checker was attached"


# --- schedules --------------------------------------------------------------------------------

def test_schedule_sums_its_blocks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = RunConfig(batch=2, functional=True)
    sched = run_schedule("resnet32", "plain", iterations=10, blocks=[0, 14], run=base)
    assert [b.block for b in sched.blocks] == [0, 14]
    assert sched.verified is True
    assert sched.total_cycles("pim") == 10 * sum(b.pim_cycles for b in sched.blocks)
    assert sched.blocks[1].teacher_params == sched.blocks[1].student_params == 73_984
    out = tmp_path / "sched.json"
    assert main(["recast", "resnet32", "--blocks", "13-14", "--batch", "2", "--iterations",
                 "3", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["schema"] == "gradpimsim.recast/1"
    assert [b["block"] for b in data["blocks"]] == [13, 14]
    # block 14 run on its own (not functional: the timing is the same) equals the schedule's
    assert data["blocks"][1]["baseline_cycles"] == sched.blocks[1].baseline_cycles
    assert data["blocks"][1]["pim_cycles"] == sched.blocks[1].pim_cycles
    assert data["total_cycles"]["baseline"] == 3 * sum(b["baseline_cycles"]
                                                       for b in data["blocks"])
    capsys.readouterr()
    assert main(["recast", "resnet32", "--blocks", "20"]) == 2
    assert "blocks" in capsys.readouterr().err
