"""What ``run`` and ``compare`` check before simulating: outputs, memory-system size, capacity.

Called first thing by the command functions (``system/cli.py``), so a run that could not write
its results, or could not fit, stops in a second with one line instead of after the simulation.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gradpimsim.bounds import check_memory_system, check_workload
from gradpimsim.io_safety import Output, make_out_dir, output, preflight
from gradpimsim.system.config import RunConfig


def _trace_variant(path: str, suffix: str) -> Path:
    """Where ``compare --cmd-trace FILE`` writes one run's trace (``cmds.pim.txt.gz``)."""
    p = Path(path)
    if not suffix:
        return p
    stem, dot, ext = p.name.partition(".")
    return p.with_name(f"{stem}.{suffix}{dot}{ext}")


def run_outputs(args: argparse.Namespace, runs: tuple[str, ...]) -> list[Output | None]:
    """Every file the command will write (``runs``: the trace suffixes, '' for ``run``)."""
    outs: list[Output | None] = []
    if args.out:
        d = make_out_dir("--out", args.out)
        names = [("results.json", "json"), ("tasks.csv", "tasks-csv")]
        if not args.no_timeline:
            names.append(("timeline.json", "json"))
        outs += [output("--out", d / n, kind) for n, kind in names]
    if args.cmd_trace:
        outs += [output("--cmd-trace", _trace_variant(args.cmd_trace, s), "cmd-trace")
                 for s in runs]
    return outs


def preflight_run(args: argparse.Namespace, run: RunConfig, runs: tuple[str, ...]) -> None:
    """Outputs writable and not someone else's; the memory system and the workload fit."""
    inputs = [run.workload if Path(run.workload).exists() else None,
              run.memory if Path(run.memory).exists() else None,
              run.npu if Path(run.npu).exists() else None]
    preflight(run_outputs(args, runs), inputs, force=getattr(args, "force", False))
    from gradpimsim.graph.loader import load_any

    cfg = run.memory_config()
    check_memory_system(cfg)
    graph = load_any(run.workload, batch=run.batch, seq_len=run.seq_len)
    check_workload(graph, cfg, run.optimizer_config(), run.precision_policy())
