"""SCALE-Sim topology CSV -> workload graph.

Two forms exist (SCALE-Sim v2): the convolution table
``Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter,
Strides`` and the GEMM table ``Layer, M, N, K`` (``A[M,K] @ B[K,N]``, as SCALE-Sim maps it onto
a 1 x K filter).  The header row picks the form.

Real files have quirks, all accepted: blank or all-comma rows, trailing commas, extra unnamed
columns (ignored), Windows line ends, leading tabs, ``#`` comments in a field (``#dw``), rows
holding only a name (section labels, skipped) and repeated layer names (later ones get a
``_2``, ``_3`` ... suffix).

Mapping:
* a conv row with 1 x 1 IFMAP and filter becomes ``linear`` (``Channels -> Num Filter``) on a
  ``[batch, Channels]`` input; other conv rows become ``conv2d`` on NCHW.
* depthwise rows, written ``Channels = 1, Num Filter = 1`` and marked ``#dw`` or named ``*dw*``,
  become depthwise convolutions whose channel count is the one of the layer feeding them.
* ``padding`` picks the output-size arithmetic, and no choice is right for every table:

  - ``"same"`` (default) pads ``(kernel - 1) // 2``, PyTorch's floor arithmetic
    ``(H + 2P - R) // S + 1``: SCALE-Sim tables list the unpadded input size of padded
    convolutions (the shipped ResNet tables do), so this rebuilds the real network's shapes;
  - ``"valid"`` pads nothing, PyTorch's ``(H - R) // S + 1``;
  - ``"scalesim"`` is SCALE-Sim's own arithmetic, ``ceil((H - R + S) / S)``: no padding, but a
    stride that does not divide ``H - R`` yields one more row and column than ``"valid"``
    (7 of the 21 rows of SCALE-Sim's ResNet-18 table: 110 x 110 for conv1, not 109 x 109).
    The graph records it as padding after the input (``padding`` ``[top, left, bottom,
    right]``), so the layer's MACs are the ones SCALE-Sim simulates.
* GEMM rows become ``linear`` (weight ``[N, K]``) on ``[M, K]``, except those named in
  ``activation_gemms``, which become weightless ``matmul`` of two ``[M,K]``/``[K,N]`` inputs.
* Convolutions get no bias, linear layers get one (torchvision's convention); both settable.

A table lists layers, not connections: each layer reads the most recent earlier layer whose
output shape equals its input shape, or else a new graph input ``<layer>.input``.  Pooling,
normalisation, activations and residual additions are absent from such tables, and therefore
from the imported graph.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import networkx as nx

from gradpimsim.graph.builder import GraphBuilder, Tensor
from gradpimsim.graph.schema import GraphError

CONV_COLUMNS = ("Layer name", "IFMAP Height", "IFMAP Width", "Filter Height", "Filter Width",
                "Channels", "Num Filter", "Strides")
GEMM_COLUMNS = ("Layer", "M", "N", "K")
PADDINGS = ("same", "valid", "scalesim")


def _fields(line: str) -> tuple[list[str], str]:
    """Split a CSV line into stripped fields and the text of any ``#`` comment."""
    comment = ""
    if "#" in line:
        line, _, comment = line.partition("#")
    fields = [f.strip() for f in line.strip().split(",")]
    while fields and fields[-1] == "":
        fields.pop()
    return fields, comment.strip()


def import_scalesim(path: str | Path, batch: int = 1, *, name: str | None = None,
                    padding: str = "same", conv_bias: bool = False, linear_bias: bool = True,
                    activation_gemms: Iterable[str] = ()) -> nx.DiGraph:
    """Read a SCALE-Sim topology file into a schema-valid graph (errors name file:line)."""
    p = Path(path)
    if padding not in PADDINGS:
        raise GraphError("scalesim", f"padding must be one of {', '.join(PADDINGS)}, got "
                                     f"{padding!r}")
    try:
        lines = p.read_text().splitlines()
    except OSError as exc:
        raise GraphError(str(p), f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise GraphError(str(p), "not a text file") from None
    header: list[str] | None = None
    rows: list[tuple[int, list[str], str]] = []
    for lineno, line in enumerate(lines, 1):
        fields, comment = _fields(line)
        if not any(fields):
            continue
        if header is None:
            header = fields
            continue
        rows.append((lineno, fields, comment))
    if header is None:
        raise GraphError(str(p), "empty topology file (no header row)")
    norm = [re.sub(r"\s+", " ", h).strip().lower() for h in header]
    if norm[:4] == [c.lower() for c in GEMM_COLUMNS]:
        form, columns = "gemm", GEMM_COLUMNS
    elif norm[:8] == [c.lower() for c in CONV_COLUMNS]:
        form, columns = "conv", CONV_COLUMNS
    else:
        raise GraphError(f"{p}:1", "header is neither the SCALE-Sim convolution form ("
                                   + ", ".join(CONV_COLUMNS) + ") nor the GEMM form (Layer,M,N,K)")
    b = GraphBuilder(name or p.stem, batch)
    made: list[Tensor] = []
    seen: dict[str, int] = {}
    matmuls = set(activation_gemms)

    def source(layer: str, shape: tuple[int, ...]) -> Tensor:
        for t in reversed(made):
            if t.shape == shape:
                return t
        return b.input(f"{layer}.input", shape)

    for lineno, fields, comment in rows:
        where = f"{p}:{lineno}"
        layer = fields[0] if fields else ""
        values = fields[1:len(columns)]
        if not any(values):
            continue  # a section label such as "Transformer,"
        if not layer:
            raise GraphError(where, "row has no layer name")
        where = f"{p}:{lineno} ({layer})"
        if len(values) < len(columns) - 1:
            raise GraphError(where, f"expected {len(columns)} columns ({', '.join(columns)}), "
                                    f"got {len(fields)}")
        nums = []
        for col, v in zip(columns[1:], values, strict=True):
            try:
                n = int(v)
            except ValueError:
                raise GraphError(where, f"{col} is not an integer: {v!r}") from None
            if n < 1:
                raise GraphError(where, f"{col} must be >= 1, got {n}")
            nums.append(n)
        count = seen.get(layer, 0) + 1
        seen[layer] = count
        node = layer if count == 1 else f"{layer}_{count}"
        try:
            if form == "gemm":
                m, n, k = nums
                if layer in matmuls:
                    lhs = b.input(f"{node}.lhs", (m, k))
                    rhs = b.input(f"{node}.rhs", (k, n))
                    made.append(b.matmul(lhs, rhs, node))
                else:
                    made.append(b.linear(source(node, (m, k)), node, n, bias=linear_bias))
                continue
            h, w, r, s, c, f, stride = nums
            if h == w == r == s == 1:
                made.append(b.linear(source(node, (batch, c)), node, f, bias=linear_bias))
                continue
            pad_h, pad_w = ((r - 1) // 2, (s - 1) // 2) if padding == "same" else (0, 0)
            if r > h or s > w:  # SCALE-Sim rejects these too
                raise GraphError(where, f"filter {r}x{s} larger than IFMAP {h}x{w}")
            depthwise = c == 1 and f == 1 and r * s > 1 and (
                "dw" in comment.lower() or "dw" in layer.lower())
            groups = 1
            if depthwise:
                prod = next((t for t in reversed(made) if len(t.shape) == 4
                             and t.shape[2:] == (h, w)), None)
                if prod is None:
                    raise GraphError(where, "depthwise row (channels = filters = 1) but no "
                                            f"earlier layer produces a {h}x{w} feature map to "
                                            "take the channel count from")
                x, f = prod, prod.shape[1]
                groups = f
            else:
                x = source(node, (batch, c, h, w))
            if padding == "scalesim":
                made.append(_scalesim_conv(b, x, node, f, r, s, stride, groups, conv_bias))
            else:
                made.append(b.conv2d(x, node, f, (r, s), stride, (pad_h, pad_w),
                                     groups=groups, bias=conv_bias))
        except GraphError as exc:
            if exc.where.startswith(str(p)):
                raise
            raise GraphError(where, exc.message) from None
    if not made:
        raise GraphError(str(p), "no layer rows")
    return b.build()


def scalesim_out(size: int, kernel: int, stride: int) -> int:
    """SCALE-Sim's output extent: ``ceil((size - kernel + stride) / stride)``."""
    return -(-(size - kernel + stride) // stride)


def _scalesim_conv(b: GraphBuilder, x: Tensor, node: str, filters: int, r: int, s: int,
                   stride: int, groups: int, bias: bool) -> Tensor:
    """A convolution with SCALE-Sim's output size: PyTorch's arithmetic over an input padded
    after its last row and column by what the ceiling adds."""
    n, c, h, w = x.shape
    ho, wo = scalesim_out(h, r, stride), scalesim_out(w, s, stride)
    after_h, after_w = (ho - 1) * stride + r - h, (wo - 1) * stride + s - w
    params = {"weight": (filters, c // groups, r, s), **({"bias": (filters,)} if bias else {})}
    macs = n * filters * ho * wo * (c // groups) * r * s
    return b.node(node, "conv2d", [x], (n, filters, ho, wo), params=params, flops=2 * macs,
                  kernel=[r, s], stride=[stride, stride], padding=[0, 0, after_h, after_w],
                  groups=groups, dilation=1, bias=bias)
