"""Schema validation and JSON round trips."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import pytest

import workloads
from gradpimsim.graph import GraphBuilder, GraphError, load_graph, loads, save_graph, validate
from gradpimsim.graph.io import to_node_link


def _small() -> nx.DiGraph:
    b = GraphBuilder("tiny", 2)
    x = b.input("x", (2, 3, 8, 8))
    y = b.act(b.batchnorm(b.conv2d(x, "c", 4, 3, padding=1), "bn"), "r")
    z = b.add(y, b.conv2d(x, "skip", 4, 1), "sum")
    b.linear(b.flatten(z, "flat"), "fc", 5)
    return b.build()


def _edges_equal(a: nx.DiGraph, b: nx.DiGraph) -> bool:
    return dict(a.nodes(data=True)) == dict(b.nodes(data=True)) and sorted(
        a.edges(data=True)) == sorted(b.edges(data=True))


def test_json_round_trip(tmp_path: Path) -> None:
    g = workloads.get_workload("mobilenetv2", batch=1)
    path = tmp_path / "m.json"
    save_graph(g, path)
    back = load_graph(path)
    assert back.graph["name"] == "mobilenetv2"
    assert dict(back.nodes(data=True)) == json.loads(json.dumps(dict(g.nodes(data=True))))
    assert back.number_of_edges() == g.number_of_edges()
    # The file is networkx's node-link layout.
    data = json.loads(path.read_text())
    assert {"directed", "multigraph", "graph", "nodes", "links"} <= set(data)


def test_node_link_readable_by_networkx() -> None:
    data = to_node_link(_small())
    g = nx.node_link_graph(data, edges="links")
    assert set(g.nodes) == set(_small().nodes)


def _mutated(fn) -> str:
    data = to_node_link(_small())
    fn(data)
    return json.dumps(data)


def _node(data: dict, nid: str) -> dict:
    return next(n for n in data["nodes"] if n["id"] == nid)


def test_missing_attribute_names_node() -> None:
    text = _mutated(lambda d: _node(d, "bn").pop("out_shape"))
    with pytest.raises(GraphError, match="'bn'.*out_shape"):
        loads(text)


def test_dangling_edge_named() -> None:
    text = _mutated(lambda d: d["links"].append(
        {"source": "ghost", "target": "fc", "shape": [2, 256], "index": 1}))
    with pytest.raises(GraphError, match="dangling edge.*ghost"):
        loads(text)


def test_shape_mismatch_names_node() -> None:
    text = _mutated(lambda d: _node(d, "r").__setitem__("in_shapes", [[2, 4, 9, 9]]))
    with pytest.raises(GraphError, match="'r'.*shape mismatch"):
        loads(text)


def test_cycle_detected() -> None:
    def add_cycle(d: dict) -> None:
        _node(d, "c")["in_shapes"].append([2, 4, 8, 8])
        d["links"].append({"source": "r", "target": "c", "shape": [2, 4, 8, 8], "index": 1})
    with pytest.raises(GraphError, match="cycle"):
        loads(_mutated(add_cycle))


def test_unfed_slot_and_bad_json() -> None:
    text = _mutated(lambda d: d.__setitem__(
        "links", [link for link in d["links"] if link["target"] != "sum"
                  or link["source"] != "skip"]))
    with pytest.raises(GraphError, match="'sum'.*no incoming edge"):
        loads(text)
    with pytest.raises(GraphError, match="invalid JSON"):
        loads("{nodes: [}")
    with pytest.raises(GraphError, match="cannot read"):
        load_graph("/nonexistent/graph.json")


def test_validate_rejects_bad_params_and_flops() -> None:
    g = _small()
    g.nodes["fc"]["params"]["weight"]["shape"] = [5, -1]
    with pytest.raises(GraphError, match="'fc'.*weight"):
        validate(g)
    g = _small()
    g.nodes["c"]["flops"] = -3
    with pytest.raises(GraphError, match="'c'.*flops"):
        validate(g)


def test_builder_rejects_bad_shapes() -> None:
    b = GraphBuilder("bad", 1)
    x = b.input("x", (1, 3, 4, 4))
    with pytest.raises(GraphError, match="'c'.*larger than input"):
        b.conv2d(x, "c", 8, 7)
    a = b.input("a", (1, 4, 5))
    with pytest.raises(GraphError, match="'mm'.*cannot multiply"):
        b.matmul(a, a, "mm")
    with pytest.raises(GraphError, match="duplicate"):
        b.input("a", (1,))


def test_every_workload_round_trips_through_json() -> None:
    for w in workloads.list_workloads():
        g = workloads.get_workload(w.name, batch=1, seq_len=4 if w.is_sequence else None)
        back = loads(json.dumps(to_node_link(g)))
        assert sorted(back.edges) == sorted(g.edges)
        assert back.nodes(data=True) == g.nodes(data=True) or all(
            json.loads(json.dumps(g.nodes[n])) == back.nodes[n] for n in g)
