"""Network recasting (Yu, Kang and Choi, AAAI 2019) as a workload: one block-wise step.

Recasting turns a trained *teacher* network into a *student* one block at a time.  For block
``k`` the student's block is trained so that its output activation matches the teacher
block's (a mean-squared-error loss on activations); nothing else is trained.  One training
iteration of that step, as this module builds it:

- the teacher's stem and blocks ``0..k`` run forward only: their nodes are ``frozen`` (no
  weight gradient, no update) and, since no trained parameter feeds them, nothing of them
  needs a gradient (autograd's ``no_grad``: no backward task, nothing saved for one);
- the student block (nodes ``student.<prefix>...``) reads the teacher's input to block ``k``
  (the output of block ``k-1``, or of the stem) and runs forward and backward;
- the loss is an MSE between the student block's output and the teacher block ``k``'s output
  (``graph["loss"] = "mse"``, ``graph["loss_targets"]``);
- the update touches the student block's parameters only.

Student block types (``STUDENTS``), each with the teacher block's input and output shape:

``plain``
    two 3x3 convolution + BatchNorm + ReLU layers, no shortcut (the paper's plain target
    block); the first takes the block's stride, the inner width defaults to the teacher
    block's (a bottleneck's inner width, a basic block's output width).
``basic``
    torchvision's ``BasicBlock`` (inner width = output width, a 1x1 projection shortcut where
    the shape changes).
``bottleneck``
    torchvision's ``Bottleneck`` layout (1x1, 3x3 with the stride, 1x1 back to the output
    width, projection shortcut where needed) with a smaller inner width: half the teacher's
    by default (a smaller block of the same type, the paper's compression use).

Teachers (``TEACHERS``): the zoo's ``resnet18`` and ``resnet50`` (torchvision) and
``resnet32`` (CIFAR-10).  Block ``k`` counts the residual blocks in order (``layer1.0`` is 0).

Left out: the paper's sequential schedule also trains the block after the target and feeds
the student from already recast student blocks; here the input comes from the teacher, and a
schedule is a sequence of single-block steps (``gradpimsim.recast``).
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from gradpimsim.graph.builder import GraphBuilder, Tensor
from gradpimsim.graph.schema import GraphError
from workloads import cifar_resnet, resnet

STUDENTS = ("plain", "basic", "bottleneck")


@dataclass(frozen=True)
class Block:
    """One residual block of a teacher: its node prefix, type and shape."""

    prefix: str
    kind: str  # "basic", "bottleneck" (torchvision) or "cifar" (option-A shortcut)
    cin: int
    cout: int
    width: int  # inner width (bottleneck: its 3x3's channels; basic: the output width)
    stride: int
    hw: int  # input feature map height (= width)


@dataclass(frozen=True)
class Teacher:
    """A teacher network: its input size, batch default and blocks."""

    name: str
    batch: int
    image: int
    blocks: tuple[Block, ...]


def _torchvision_blocks(counts: tuple[int, ...], bottleneck: bool) -> tuple[Block, ...]:
    out, cin, hw = [], 64, resnet.IMAGE // 4  # after the stride-2 conv1 and max pool
    for stage, count in enumerate(counts):
        width = 64 * 2 ** stage
        cout = width * 4 if bottleneck else width
        for i in range(count):
            stride = 2 if stage > 0 and i == 0 else 1
            out.append(Block(f"layer{stage + 1}.{i}", "bottleneck" if bottleneck else "basic",
                             cin, cout, width, stride, hw))
            cin, hw = cout, hw // stride
    return tuple(out)


def _cifar_blocks() -> tuple[Block, ...]:
    out, cin, hw = [], cifar_resnet.WIDTHS[0], cifar_resnet.IMAGE
    for prefix, cout, stride in cifar_resnet.block_plan():
        out.append(Block(prefix, "cifar", cin, cout, cout, stride, hw))
        cin, hw = cout, hw // stride
    return tuple(out)


TEACHERS: dict[str, Teacher] = {
    "resnet18": Teacher("resnet18", 32, resnet.IMAGE, _torchvision_blocks((2, 2, 2, 2), False)),
    "resnet50": Teacher("resnet50", 32, resnet.IMAGE, _torchvision_blocks((3, 4, 6, 3), True)),
    "resnet32": Teacher("resnet32", 128, cifar_resnet.IMAGE, _cifar_blocks()),
}


def teacher(name: str) -> Teacher:
    try:
        return TEACHERS[name]
    except KeyError:
        raise GraphError("recast.teacher", f"unknown teacher {name!r}; choose one of "
                                           f"{', '.join(TEACHERS)}") from None


def teacher_block(b: GraphBuilder, x: Tensor, blk: Block) -> Tensor:
    """The teacher's own block (the zoo's definition, same node names)."""
    if blk.kind == "cifar":
        return cifar_resnet.cifar_basic(b, x, blk.prefix, blk.cout, blk.stride)
    if blk.kind == "bottleneck":
        return resnet._bottleneck(b, x, blk.prefix, blk.width, blk.stride)
    return resnet._basic(b, x, blk.prefix, blk.width, blk.stride)


def _conv_bn(b: GraphBuilder, x: Tensor, name: str, idx: str, out: int, k: int,
             stride: int = 1) -> Tensor:
    y = b.conv2d(x, f"{name}.conv{idx}", out, k, stride=stride, padding=k // 2)
    return b.batchnorm(y, f"{name}.bn{idx}")


def _projection(b: GraphBuilder, x: Tensor, name: str, out: int, stride: int) -> Tensor:
    if stride == 1 and x.shape[1] == out:
        return x
    y = b.conv2d(x, f"{name}.downsample.0", out, 1, stride=stride)
    return b.batchnorm(y, f"{name}.downsample.1")


def student_width(blk: Block, student: str) -> int:
    """The default inner width of a student block replacing ``blk``."""
    if student == "bottleneck":
        return max(1, blk.width // 2)
    if student == "basic":
        return blk.cout
    return blk.width


def student_block(b: GraphBuilder, x: Tensor, blk: Block, student: str, width: int,
                  name: str) -> Tensor:
    """A student block of type ``student`` with ``blk``'s input and output shape."""
    if student == "plain":
        y = b.act(_conv_bn(b, x, name, "1", width, 3, blk.stride), f"{name}.relu1")
        return b.act(_conv_bn(b, y, name, "2", blk.cout, 3), f"{name}.relu2")
    if student == "basic":
        if width != blk.cout:
            raise GraphError("recast.width", f"a basic block's width is its output width "
                                             f"({blk.cout}), got {width}")
        y = b.act(_conv_bn(b, x, name, "1", blk.cout, 3, blk.stride), f"{name}.relu1")
        y = _conv_bn(b, y, name, "2", blk.cout, 3)
    elif student == "bottleneck":
        y = b.act(_conv_bn(b, x, name, "1", width, 1), f"{name}.relu1")
        y = b.act(_conv_bn(b, y, name, "2", width, 3, blk.stride), f"{name}.relu2")
        y = _conv_bn(b, y, name, "3", blk.cout, 1)
    else:
        raise GraphError("recast.student", f"unknown student block {student!r}; choose one "
                                           f"of {', '.join(STUDENTS)}")
    identity = _projection(b, x, name, blk.cout, blk.stride)
    return b.act(b.add(y, identity, f"{name}.add"), f"{name}.relu3")


def _teacher_stem(b: GraphBuilder, t: Teacher, batch: int) -> Tensor:
    if t.name == "resnet32":
        return cifar_resnet.stem(b, batch)
    x = b.input("input", (batch, 3, t.image, t.image))
    x = b.conv2d(x, "conv1", 64, 7, stride=2, padding=3)
    x = b.act(b.batchnorm(x, "bn1"), "relu")
    return b.pool(x, "maxpool", "max", 3, 2, 1)


def recast_step(teacher_name: str, block: int, student: str = "plain",
                batch: int | None = None, width: int | None = None) -> nx.DiGraph:
    """One training iteration of recasting block ``block`` of ``teacher_name`` into a
    ``student`` block (see the module docstring)."""
    t = teacher(teacher_name)
    if student not in STUDENTS:
        raise GraphError("recast.student", f"unknown student block {student!r}; choose one of "
                                           f"{', '.join(STUDENTS)}")
    if not 0 <= block < len(t.blocks):
        raise GraphError("recast.block", f"{t.name} has blocks 0..{len(t.blocks) - 1}, got "
                                         f"{block}")
    if width is not None and width < 1:
        raise GraphError("recast.width", f"must be a positive integer, got {width}")
    batch = t.batch if batch is None else batch
    blk = t.blocks[block]
    b = GraphBuilder(f"recast-{t.name}-b{block}-{student}", batch)
    x = _teacher_stem(b, t, batch)
    for prev in t.blocks[:block]:
        x = teacher_block(b, x, prev)
    target = teacher_block(b, x, blk)
    frozen = list(b.g.nodes)
    out = student_block(b, x, blk, student, width or student_width(blk, student),
                        f"student.{blk.prefix}")
    assert out.shape == target.shape
    for n in frozen:
        b.g.nodes[n]["frozen"] = True
    b.g.graph.update(loss="mse", loss_targets=[target.node], recast={
        "teacher": t.name, "block": block, "prefix": blk.prefix, "student": student,
        "target": target.node, "output": out.node})
    return b.build()


def parse_spec(name: str) -> tuple[str, int, str, int | None] | None:
    """``recast:TEACHER:BLOCK[:STUDENT[:WIDTH]]`` -> its parts; None if not a recast name."""
    if not name.lower().startswith("recast:"):
        return None
    parts = name.split(":")[1:]
    usage = "use recast:TEACHER:BLOCK[:STUDENT[:WIDTH]], e.g. recast:resnet32:7:plain"
    if not 2 <= len(parts) <= 4:
        raise GraphError("workload", f"{name!r}: {usage}")
    try:
        block = int(parts[1])
        width = int(parts[3]) if len(parts) == 4 else None
    except ValueError:
        raise GraphError("workload", f"{name!r}: BLOCK and WIDTH are integers; {usage}") \
            from None
    return parts[0].lower(), block, parts[2].lower() if len(parts) > 2 else "plain", width


def blocks_of(teacher_name: str) -> int:
    """How many blocks a teacher has (a schedule recasts each)."""
    return len(teacher(teacher_name).blocks)


__all__ = ["STUDENTS", "TEACHERS", "Block", "Teacher", "blocks_of", "parse_spec",
           "recast_step", "student_block", "student_width", "teacher", "teacher_block"]
