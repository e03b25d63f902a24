"""``gradpimsim workloads``: list the zoo, inspect a workload, export it as JSON.

``show`` accepts a zoo name or a graph file (node-link ``.json``, SCALE-Sim ``.csv``, ``.onnx``)
so users can inspect their own networks the same way as the built-in ones, and, with
``--allow-python``, a PyTorch model from ``python:MODULE:FUNCTION`` (see
``graph/importers/python_entry.py``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gradpimsim.config import ConfigError
from gradpimsim.config.training import OPTIMIZERS, PRECISIONS, OptimizerConfig, precision
from gradpimsim.graph.importers.python_entry import AllowPython
from gradpimsim.graph.loader import load_any

if TYPE_CHECKING:
    import networkx as nx

from gradpimsim.graph.schema import (
    GraphError,
    activation_bytes,
    compute_nodes,
    numel,
    param_bytes,
    param_count,
    parameters,
    tensor_bytes,
    total_flops,
)
from gradpimsim.options import positive_int

#: Piped or redirected, rich would wrap at 80 columns: a wide table stays whole.
out = Console(width=None if sys.stdout.isatty() else 200)


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
    # a frozen node's parameters (a recasting teacher, a stored table) are read, not updated
    trained = sum(numel(p["shape"]) for p in parameters(g).values()
                  if not g.nodes[p["node"]].get("frozen"))
    summary = Table(title=escape(f"{g.graph.get('name', args.name)}"), show_header=False)
    summary.add_column("what")
    summary.add_column("value", justify="right")
    rows = [
        ("batch", str(g.graph.get("batch", "-"))),
        ("sequence length", str(g.graph.get("seq_len", "-"))),
        ("layers (nodes)", f"{len(compute_nodes(g)):,}"),
        ("parameters", f"{params:,}"),
        *([("trained parameters (the rest frozen)", f"{trained:,}")] if trained != params
          else []),
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

    upd = Table(title=f"Host update traffic per iteration ({pol.name} precision, "
                      f"{trained:,} trained parameters)")
    for col in ("optimizer", "read B/param", "written B/param", "read", "written"):
        upd.add_column(col, justify="left" if col == "optimizer" else "right")
    for name in OPTIMIZERS:
        r, w = update_traffic(1, OptimizerConfig(name), pol)
        mark = " *" if name == opt.name else ""
        upd.add_row(name + mark, str(r), str(w), _fmt_bytes(r * trained),
                    _fmt_bytes(w * trained))
    out.print(upd)
    if args.traffic:
        _traffic_tables(g, args)
    return 0


def _traffic_tables(g: nx.DiGraph, args: argparse.Namespace) -> None:
    """``show --traffic``: the iteration's planned DRAM bytes by phase, tensor class and pass
    (the NPU's transfers, tiling included, in whole bursts; ``host.traffic``)."""
    from gradpimsim.host.npu import NPUModel
    from gradpimsim.host.traffic import CLASSES, by_layer, by_phase_and_class, traffic_rows
    from gradpimsim.host.training import Dataflow, expand_training

    npu = NPUModel(args.npu)
    flow = Dataflow(args.fusion, args.task_order, args.backward,
                    npu.cfg.residency_budget if args.fusion == "full" else 0)
    schedule = expand_training(g, OptimizerConfig(args.optimizer), precision(args.precision),
                               flow)
    rows = traffic_rows(schedule, npu.schedule_costs(schedule))
    phases = by_phase_and_class(rows)
    title = (f"DRAM traffic of one iteration (host update; fusion {flow.fusion}, "
             f"{flow.order} order, {flow.backward} backward, NPU {npu.cfg.name})")
    t = Table(title=title)
    t.add_column("tensor class")
    for ph in ("forward", "backward", "update"):
        t.add_column(f"{ph} read / written", justify="right")
    t.add_column("total", justify="right")
    grand = 0
    for cls in CLASSES:
        cells, total = [], 0
        for ph in ("forward", "backward", "update"):
            v = phases.get(ph, {}).get(cls, {"read": 0, "write": 0})
            cells.append(f"{_fmt_bytes(v['read'])} / {_fmt_bytes(v['write'])}")
            total += v["read"] + v["write"]
        if total:
            t.add_row(cls, *cells, _fmt_bytes(total))
            grand += total
    t.add_row("[bold]all[/]", "", "", "", f"[bold]{_fmt_bytes(grand)}[/]")
    out.print(t)
    layers = Table(title="DRAM traffic per pass (read + written; updates: one row)")
    layers.add_column("pass (anchor layer)", overflow="fold")
    for ph in ("forward", "backward", "update"):
        layers.add_column(ph, justify="right")
    update_total = 0
    for layer, v in by_layer(rows).items():
        if v["forward"] or v["backward"]:
            layers.add_row(layer, _fmt_bytes(v["forward"]), _fmt_bytes(v["backward"]), "")
        update_total += v["update"]
    layers.add_row("optimizer updates (all parameters)", "", "", _fmt_bytes(update_total))
    out.print(layers)


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
        sp.add_argument("name", help="zoo name (see `workloads list`), a .json/.csv/.onnx "
                        "file, or python:MODULE:FUNCTION[@SHAPES] (needs --allow-python)")
        sp.add_argument("--batch", type=positive_int, default=None, help="batch size")
        sp.add_argument("--seq-len", type=positive_int, default=None, help="sequence length")
        sp.add_argument("--allow-python", action=AllowPython)

    show = sub.add_parser("show", help="layers, parameters, FLOPs, bytes, update traffic")
    common(show)
    show.add_argument("--optimizer", default="momentum", choices=OPTIMIZERS)
    show.add_argument("--precision", default="mixed", choices=list(PRECISIONS))
    show.add_argument("--all", action="store_true", help="list every node, views included")
    show.add_argument("--traffic", action="store_true",
                      help="also break the iteration's DRAM traffic down by phase, tensor "
                      "class and pass, under the dataflow options below")
    from gradpimsim.host.fusion import FUSION_POLICIES
    from gradpimsim.host.npu import DEFAULT_NPU
    from gradpimsim.host.training import BACKWARD_PASSES, TASK_ORDERS

    show.add_argument("--npu", default=DEFAULT_NPU, metavar="PRESET|FILE",
                      help=f"with --traffic: NPU preset or .toml (default {DEFAULT_NPU})")
    show.add_argument("--fusion", choices=FUSION_POLICIES, default="full",
                      help="with --traffic: fusion policy (default full)")
    show.add_argument("--task-order", choices=TASK_ORDERS, default="autograd",
                      help="with --traffic: task order (default autograd)")
    show.add_argument("--backward", choices=BACKWARD_PASSES, default="fused",
                      help="with --traffic: fused or split backward passes (default fused)")
    show.set_defaults(func=_guard(_cmd_show))
    exp = sub.add_parser("export", help="write a workload as node-link JSON")
    common(exp)
    exp.add_argument("-o", "--output", required=True, help="output .json path")
    exp.add_argument("--force", action="store_true",
                     help="replace an output file that gradpimsim did not write")
    exp.set_defaults(func=_guard(_cmd_export))
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
