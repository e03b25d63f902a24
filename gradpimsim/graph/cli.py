"""``gradpimsim workloads``: list the zoo, inspect a workload, export it as JSON.

``show`` accepts a zoo name or a graph file (node-link ``.json``, SCALE-Sim ``.csv``, ``.onnx``)
so users can inspect their own networks the same way as the built-in ones.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import networkx as nx
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gradpimsim.config import ConfigError
from gradpimsim.config.training import OPTIMIZERS, PRECISIONS, OptimizerConfig, precision
from gradpimsim.graph.schema import (
    GraphError,
    activation_bytes,
    compute_nodes,
    numel,
    param_bytes,
    param_count,
    tensor_bytes,
    total_flops,
)
from gradpimsim.options import positive_int

out = Console()


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.2f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"


def _fmt_flops(n: float) -> str:
    for unit, scale in (("TFLOP", 1e12), ("GFLOP", 1e9), ("MFLOP", 1e6), ("kFLOP", 1e3)):
        if n >= scale:
            return f"{n / scale:,.2f} {unit}"
    return f"{n:,.0f} FLOP"


def load_any(name: str, batch: int | None = None, seq_len: int | None = None) -> nx.DiGraph:
    """A zoo workload by name, or a graph file by path (JSON, SCALE-Sim CSV, ONNX)."""
    path = Path(name)
    if path.suffix.lower() in (".json", ".csv", ".onnx"):
        if not path.exists():
            raise GraphError(str(path), "no such file")
        if path.suffix.lower() == ".json":
            from gradpimsim.graph.io import load_graph
            return load_graph(path)
        if path.suffix.lower() == ".csv":
            from gradpimsim.graph.importers.scalesim import import_scalesim
            return import_scalesim(path, batch=batch or 1)
        from gradpimsim.graph.importers.onnx import import_onnx
        return import_onnx(path)
    import workloads
    return workloads.get_workload(name, batch=batch, seq_len=seq_len)


def _cmd_list(args: argparse.Namespace) -> int:
    import workloads
    t = Table(title="Built-in workloads")
    for col in ("name", "description", "batch", "seq len", "parameters"):
        t.add_column(col, justify="right" if col in ("batch", "seq len", "parameters") else "left")
    for w in workloads.list_workloads():
        g = workloads.get_workload(w.name, batch=1, seq_len=min(w.seq_len or 1, 8)
                                   if w.is_sequence else None)
        t.add_row(w.name, w.description, str(w.batch), str(w.seq_len or "-"),
                  f"{param_count(g):,}")
    out.print(t)
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from gradpimsim.host.training import update_traffic

    g = load_any(args.name, args.batch, args.seq_len)
    pol = precision(args.precision)
    opt = OptimizerConfig(args.optimizer)
    params = param_count(g)
    summary = Table(title=escape(f"{g.graph.get('name', args.name)}"), show_header=False)
    summary.add_column("what")
    summary.add_column("value", justify="right")
    rows = [
        ("batch", str(g.graph.get("batch", "-"))),
        ("sequence length", str(g.graph.get("seq_len", "-"))),
        ("layers (nodes)", f"{len(compute_nodes(g)):,}"),
        ("parameters", f"{params:,}"),
        ("parameter bytes (fp32)", _fmt_bytes(param_bytes(g))),
        ("activation bytes (graph dtypes)", _fmt_bytes(activation_bytes(g))),
        ("forward FLOPs", _fmt_flops(total_flops(g))),
        ("training FLOPs (~3x forward)", _fmt_flops(3 * total_flops(g))),
    ]
    for r in rows:
        summary.add_row(*r)
    out.print(summary)

    layers = Table(title="Layers" + ("" if args.all else " with parameters or FLOPs"))
    layers.add_column("layer", overflow="fold")
    for col in ("op", "output", "params", "FLOPs", "activation"):
        layers.add_column(col, justify="left" if col in ("op", "output") else "right",
                          no_wrap=True)
    for n in compute_nodes(g):
        d = g.nodes[n]
        count = sum(numel(p["shape"]) for p in d["params"].values())
        if not args.all and not count and not d["flops"]:
            continue
        layers.add_row(escape(str(n)), escape(d["op"]), "x".join(map(str, d["out_shape"])),
                       f"{count:,}",
                       _fmt_flops(d["flops"]),
                       _fmt_bytes(tensor_bytes(d["out_shape"], d.get("out_dtype", "fp32"))))
    out.print(layers)

    upd = Table(title=f"Host update traffic per iteration ({pol.name} precision)")
    for col in ("optimizer", "read B/param", "written B/param", "read", "written"):
        upd.add_column(col, justify="left" if col == "optimizer" else "right")
    for name in OPTIMIZERS:
        r, w = update_traffic(1, OptimizerConfig(name), pol)
        mark = " *" if name == opt.name else ""
        upd.add_row(name + mark, str(r), str(w), _fmt_bytes(r * params), _fmt_bytes(w * params))
    out.print(upd)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from gradpimsim.graph.io import save_graph
    from gradpimsim.io_safety import output, preflight

    preflight([output("--output", args.output, "json")],
              [args.name if Path(args.name).exists() else None], force=args.force)
    g = load_any(args.name, args.batch, args.seq_len)
    save_graph(g, args.output)
    out.print(f"wrote {escape(args.output)} ({g.number_of_nodes()} nodes)")
    return 0


def _guard(func):  # turn our ValueErrors into the CLI's one-line user errors
    def run(args: argparse.Namespace) -> int:
        from gradpimsim.cli import UserError
        try:
            return func(args)
        except (GraphError, ConfigError, OSError) as exc:
            raise UserError(str(exc)) from None
    return run


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("workloads", help="list and inspect DNN workloads")
    sub = p.add_subparsers(dest="workloads_command", metavar="ACTION")
    ls = sub.add_parser("list", help="the built-in zoo")
    ls.set_defaults(func=_guard(_cmd_list))

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("name", help="zoo name (see `workloads list`) or a .json/.csv/.onnx file")
        sp.add_argument("--batch", type=positive_int, default=None, help="batch size")
        sp.add_argument("--seq-len", type=positive_int, default=None, help="sequence length")

    show = sub.add_parser("show", help="layers, parameters, FLOPs, bytes, update traffic")
    common(show)
    show.add_argument("--optimizer", default="momentum", choices=OPTIMIZERS)
    show.add_argument("--precision", default="mixed", choices=list(PRECISIONS))
    show.add_argument("--all", action="store_true", help="list every node, views included")
    show.set_defaults(func=_guard(_cmd_show))
    exp = sub.add_parser("export", help="write a workload as node-link JSON")
    common(exp)
    exp.add_argument("-o", "--output", required=True, help="output .json path")
    exp.add_argument("--force", action="store_true",
                     help="replace an output file that gradpimsim did not write")
    exp.set_defaults(func=_guard(_cmd_export))
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
