"""SCALE-Sim topology CSV import: round trips of built-in models and the real shipped tables."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest

import workloads
from gradpimsim.graph import GraphError, param_count
from gradpimsim.graph.importers import import_scalesim

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "scalesim"
needs_reference = pytest.mark.skipif(not REFERENCE.is_dir(),
                                     reason="../shared/reference/scalesim not present")


def gemm_layers(g: nx.DiGraph) -> list[tuple]:
    """(op, input shapes, output shape, params, groups) of the GEMM-like layers, in order."""
    return [(d["op"], d["in_shapes"], d["out_shape"], d["params"], d["attrs"].get("groups"))
            for _, d in g.nodes(data=True) if d["op"] in ("conv2d", "linear", "matmul")]


def to_conv_csv(g: nx.DiGraph) -> str:
    """A SCALE-Sim convolution table of a built-in model, written the way SCALE-Sim users do
    (blank second row, trailing commas, depthwise rows as channels = filters = 1 with #dw)."""
    lines = ["Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
             "Num Filter, Strides,", ""]
    for n, d in g.nodes(data=True):
        a = d["attrs"]
        if d["op"] == "conv2d":
            _, c, h, w = d["in_shapes"][0]
            kh, kw = a["kernel"]
            f = d["out_shape"][1]
            if a["groups"] > 1:
                lines.append(f"{n}, {h}, {w}, {kh}, {kw}, 1, 1, {a['stride'][0]},#dw")
            else:
                lines.append(f"{n}, {h}, {w}, {kh}, {kw}, {c}, {f}, {a['stride'][0]},")
        elif d["op"] == "linear":
            lines.append(f"{n},1,1,1,1,{d['in_shapes'][0][-1]},{d['out_shape'][-1]},1,")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("model", ["resnet18", "mobilenetv2"])
def test_conv_csv_imports_to_builtin_layers(tmp_path: Path, model: str) -> None:
    g = workloads.get_workload(model, batch=2)
    path = tmp_path / f"{model}.csv"
    path.write_text(to_conv_csv(g))
    imported = import_scalesim(path, batch=2)
    assert gemm_layers(imported) == gemm_layers(g)


def test_gemm_csv_imports_to_builtin_mlp(tmp_path: Path) -> None:
    g = workloads.get_workload("mlp", batch=16)
    rows = ["Layer,M,N,K,"] + [
        f"{n},{d['in_shapes'][0][0]},{d['out_shape'][-1]},{d['in_shapes'][0][-1]},"
        for n, d in g.nodes(data=True) if d["op"] == "linear"]
    path = tmp_path / "mlp.csv"
    path.write_text("\r\n".join(rows))
    imported = import_scalesim(path)
    assert gemm_layers(imported) == gemm_layers(g)
    assert param_count(imported) == param_count(g)
    # Chained: each layer reads the previous one.
    assert list(imported.predecessors("fc2")) == ["fc1"]


@pytest.mark.parametrize("text,match", [
    ("Layer,M,N,K,\nfc,12,x,4,\n", r":2 \(fc\).*N is not an integer"),
    ("Layer,M,N,K,\nfc,12,3,\n", r":2 \(fc\).*expected 4 columns"),
    ("Layer,M,N,K,\n\nfc,12,3,0,\n", r":3 \(fc\).*K must be >= 1"),
    ("Name,A,B\nx,1,2\n", r":1.*header"),
    ("\n\n", "empty topology file"),
    ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter,"
     " Strides,\nc1, 4, 4, 9, 9, 3, 8, 1,\n", r":2 \(c1\).*larger than IFMAP"),
    ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter,"
     " Strides,\nc1_dw, 8, 8, 3, 3, 1, 1, 1,#dw\n", r":2 \(c1_dw\).*depthwise"),
])
def test_malformed_csv_names_row(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(GraphError, match=match):
        import_scalesim(path)


@needs_reference
def test_real_resnet18_table_matches_builtin_gemm_layers() -> None:
    imported = import_scalesim(REFERENCE / "Resnet18.csv", batch=1)
    builtin = workloads.get_workload("resnet18", batch=1)
    bn = sum(2 * d["out_shape"][1] for _, d in builtin.nodes(data=True) if d["op"] == "batchnorm")
    assert param_count(imported) == param_count(builtin) - bn == 11_679_912
    assert len(gemm_layers(imported)) == 21
    # Same shapes and weights, layer by layer, in the table's order (shortcut after the block).
    key = sorted((str(x[1]), str(x[2]), str(x[3])) for x in gemm_layers(imported))
    assert key == sorted((str(x[1]), str(x[2]), str(x[3])) for x in gemm_layers(builtin))


@needs_reference
def test_real_tables_with_quirks_import() -> None:
    r50 = import_scalesim(REFERENCE / "Resnet50.csv")  # empty 2nd row, extra unnamed columns
    builtin = workloads.get_workload("resnet50", batch=1)
    bn = sum(2 * d["out_shape"][1] for _, d in builtin.nodes(data=True) if d["op"] == "batchnorm")
    assert param_count(r50) == param_count(builtin) - bn
    mob = import_scalesim(REFERENCE / "mobilnet_paper.csv")  # '#dw' comments, tabs
    dws = [d for _, d in mob.nodes(data=True) if d["attrs"].get("groups", 1) > 1]
    assert len(dws) == 13 and all(d["attrs"]["groups"] == d["out_shape"][1] for d in dws)
    gpt = import_scalesim(REFERENCE / "gpt2.csv", activation_gemms={"QKT", "QKTV"})  # CRLF
    assert gpt.nodes["QKT"]["op"] == "matmul" and gpt.nodes["QKT"]["out_shape"] == [1024, 1024]
    assert gpt.nodes["Linear1"]["params"]["weight"]["shape"] == [4800, 1600]
    tr = import_scalesim(REFERENCE / "Transformer.csv")  # section label row, repeated names
    assert "Attn_Xmap_2" in tr


def test_output_size_conventions(tmp_path: Path) -> None:
    """conv1 of ResNet: 224x224 input, 7x7 filter, stride 2.  PyTorch pads 3: (224+6-7)//2+1
    = 112; unpadded floor: (224-7)//2+1 = 109; SCALE-Sim: ceil((224-7+2)/2) = 110."""
    path = tmp_path / "conv1.csv"
    path.write_text(", ".join(("Layer name", "IFMAP Height", "IFMAP Width", "Filter Height",
                               "Filter Width", "Channels", "Num Filter", "Strides")) +
                    ",\nconv1,224,224,7,7,3,64,2,\nconv2,56,56,3,3,64,64,1,\n")
    sizes = {p: import_scalesim(path, padding=p).nodes["conv1"]["out_shape"][2:]
             for p in ("same", "valid", "scalesim")}
    assert sizes == {"same": [112, 112], "valid": [109, 109], "scalesim": [110, 110]}
    g = import_scalesim(path, padding="scalesim")
    assert g.nodes["conv1"]["attrs"]["padding"] == [0, 0, 1, 1]  # (110-1)*2+7 = 225 rows read
    assert g.nodes["conv1"]["flops"] == 2 * 64 * 110 * 110 * 3 * 7 * 7
    assert g.nodes["conv2"]["out_shape"][2:] == [54, 54]  # stride 1: (56-3)+1 either way
    with pytest.raises(GraphError, match="padding must be one of"):
        import_scalesim(path, padding="full")


@needs_reference
def test_resnet18_table_in_scalesim_arithmetic() -> None:
    """SCALE-Sim's ceil((H-R+S)/S) differs from (H-R)//S+1 on the 7 strided rows of 21
    (where S does not divide H-R); the rows are read back from the table itself."""
    rows = [line.split(",") for line in (REFERENCE / "Resnet18.csv").read_text().splitlines()[1:]
            if line.strip()]
    ceil_mode = import_scalesim(REFERENCE / "Resnet18.csv", padding="scalesim")
    floor_mode = import_scalesim(REFERENCE / "Resnet18.csv", padding="valid")
    differ = 0
    for row in rows:
        name, (h, w, r, s, _, _, st) = row[0], (int(v) for v in row[1:8])
        expect = [-(-(h - r + st) // st), -(-(w - s + st) // st)]
        if ceil_mode.nodes[name]["op"] == "conv2d":
            assert ceil_mode.nodes[name]["out_shape"][2:] == expect, name
            differ += floor_mode.nodes[name]["out_shape"][2:] != expect
    assert differ == 7
