"""JSON save/load of workload graphs in networkx's node-link layout.

The layout is the one :func:`networkx.node_link_data` writes (``directed``, ``multigraph``,
``graph``, ``nodes`` with ``id``, ``links`` with ``source``/``target``), so other tools can read
the files.  We parse it ourselves rather than through ``node_link_graph`` because that function
silently creates a node for an edge endpoint that does not exist; a dangling edge must instead be
reported with the edge's position in the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import networkx as nx

from gradpimsim.errors import clip
from gradpimsim.graph.schema import SCHEMA_VERSION, GraphError, validate


def to_node_link(g: nx.DiGraph) -> dict[str, Any]:
    """A JSON-serialisable node-link dict of ``g`` (shapes as lists)."""
    graph = {"schema": SCHEMA_VERSION, **dict(g.graph)}
    nodes = [{"id": n, **_plain(d)} for n, d in g.nodes(data=True)]
    links = [{"source": u, "target": v, **_plain(d)} for u, v, d in g.edges(data=True)]
    return {"directed": True, "multigraph": False, "graph": graph, "nodes": nodes, "links": links}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def from_node_link(data: Any, source: str = "graph") -> nx.DiGraph:
    """Build and validate a graph from a node-link dict; errors name the node or link."""
    if not isinstance(data, dict):
        raise GraphError(source, "top level must be a JSON object with 'nodes' and 'links'")
    if data.get("multigraph"):
        raise GraphError(source, "multigraphs are not supported")
    nodes = data.get("nodes")
    links = data.get("links", data.get("edges"))
    if not isinstance(nodes, list) or not isinstance(links, list):
        raise GraphError(source, "needs a 'nodes' list and a 'links' list")
    graph = data.get("graph") or {}
    if not isinstance(graph, dict):
        raise GraphError(f"{source}: graph", "must be an object of graph attributes (name, "
                         "batch, seq_len)")
    g = nx.DiGraph()
    g.graph.update(graph)
    for i, entry in enumerate(nodes):
        if not isinstance(entry, dict) or "id" not in entry:
            raise GraphError(f"{source}: nodes[{i}]", "each node needs an 'id'")
        if not isinstance(entry["id"], str) or not entry["id"]:
            raise GraphError(f"{source}: nodes[{i}]", f"'id' must be a non-empty string, got "
                             f"{clip(repr(entry['id']), 60)}")
        attrs = {k: v for k, v in entry.items() if k != "id"}
        if entry["id"] in g:
            raise GraphError(f"node {entry['id']!r}", "duplicate node id")
        g.add_node(entry["id"], **attrs)
    for i, entry in enumerate(links):
        if not isinstance(entry, dict) or "source" not in entry or "target" not in entry:
            raise GraphError(f"{source}: links[{i}]", "each link needs 'source' and 'target'")
        u, v = entry["source"], entry["target"]
        for end in (u, v):
            if not isinstance(end, str) or end not in g:
                raise GraphError(f"{source}: links[{i}] ({clip(repr(u), 60)} -> "
                                 f"{clip(repr(v), 60)})",
                                 f"dangling edge: node {clip(repr(end), 60)} does not exist")
        if g.has_edge(u, v):
            raise GraphError(f"node {v!r}", f"duplicate edge from {u!r}")
        g.add_edge(u, v, **{k: val for k, val in entry.items() if k not in ("source", "target")})
    return validate(g)


def dumps(g: nx.DiGraph) -> str:
    return json.dumps(to_node_link(validate(g)), indent=1)


def loads(text: str, source: str = "graph") -> nx.DiGraph:
    """Parse node-link JSON text (strict: no NaN, bounded nesting) and validate the graph."""
    from gradpimsim.errors import InputError
    from gradpimsim.io_safety import parse_json

    try:
        data = parse_json(text, source)
    except InputError as exc:
        where, _, message = str(exc).partition(": ")
        raise GraphError(where, message) from None
    return from_node_link(data, source)


def save_graph(g: nx.DiGraph, path: str | Path) -> None:
    """Validate ``g`` and write it as node-link JSON (atomically, see ``io_safety``)."""
    from gradpimsim.io_safety import atomic_write_text

    atomic_write_text(path, dumps(g))


def load_graph(path: str | Path) -> nx.DiGraph:
    """Read a node-link JSON file and validate it (raises :class:`GraphError`)."""
    from gradpimsim.errors import InputError
    from gradpimsim.io_safety import read_input_text

    p = Path(path)
    try:
        text = read_input_text(p)
    except InputError as exc:
        raise GraphError(str(clip(p, 300)), f"cannot read: {exc}") from None
    return loads(text, str(clip(p, 300)))
