"""``gradpimsim plot RESULTS``: figures of a sweep table or a compare results JSON.

The input is checked before anything is drawn: a results JSON must be strict JSON of schema
``gradpimsim.results/1`` with the fields the plots read, of the right types (:func:`check_results`);
a sweep table is read row by row (a corrupt row names its file and line).  The figures (PNG and
PDF by default, ``--formats png,pdf,svg``) are drawn into a private temporary directory inside
the output directory, and each is moved into place only after its name passed the pre-flight
(not an input, not a file gradpimsim did not write unless ``--force``): nothing is replaced
half-written, and nothing of someone else's is replaced.
"""

from __future__ import annotations

import argparse
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

RESULTS_SCHEMA = "gradpimsim.results/1"
PHASES = ("forward", "backward", "update")


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "plot",
        help="plot a sweep table (CSV) or a compare results JSON (PNG, PDF, SVG)",
        description="Detect the input (sweep CSV table or results JSON) and write every plot "
        "that applies: speedup per workload or per parameter count for sweeps; phases in time, "
        "energy by component, traffic by tensor class, bandwidth per channel and the update's "
        "overlap for results. Prints the paths.",
    )
    p.add_argument("results", metavar="RESULTS", help="a sweep .csv or a results .json")
    p.add_argument("--out", "-o", metavar="DIR", help="output directory (default: beside input)")
    p.add_argument("--formats", default="png,pdf", metavar="LIST",
                   help="figure formats, comma-separated: png, pdf, svg (default png,pdf)")
    p.add_argument("--force", action="store_true",
                   help="replace figure files that gradpimsim did not write")
    p.set_defaults(func=run_plot_cli)


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and \
        math.isfinite(value)


def check_results(data: Any, where: str) -> None:
    """The fields of a results JSON the plots read, with their types (ConfigError otherwise)."""
    from gradpimsim.config import ConfigError

    def bad(field: str, what: str) -> ConfigError:
        return ConfigError("input", f"{where}: {field} {what}; write the file with "
                           "gradpimsim compare --out")

    if not isinstance(data, dict):
        raise bad("the top level", "must be a JSON object")
    if data.get("schema") != RESULTS_SCHEMA:
        from gradpimsim.errors import clip_repr

        got = data.get("schema")
        raise bad("schema", f"is {clip_repr(got) if isinstance(got, str) else got!r:.60}, "
                  f"expected {RESULTS_SCHEMA!r}")
    if not isinstance(data.get("workload", ""), str):
        raise bad("workload", "must be a string")
    runs = data.get("runs")
    if not isinstance(runs, dict) or not runs or not set(runs) <= {"baseline", "pim"}:
        raise ConfigError("input", f"{where}: 'runs' must hold 'baseline' and/or 'pim'")
    for name, run in runs.items():
        at = f"runs.{name}"
        if not isinstance(run, dict):
            raise bad(at, "must be an object")
        if "tCK_ns" in run and not (_number(run["tCK_ns"]) and run["tCK_ns"] > 0):
            raise bad(f"{at}.tCK_ns", "must be a positive finite number")
        phases = run.get("phases", {})
        if not isinstance(phases, dict):
            raise bad(f"{at}.phases", "must be an object")
        for phase, v in phases.items():
            if not isinstance(v, dict) or not _number(v.get("cycles", 0)):
                raise bad(f"{at}.phases.{phase}", "must be an object with a numeric 'cycles'")
        energy = run.get("energy_nj", {})
        if not isinstance(energy, dict) or not all(_number(x) for x in energy.values()):
            raise bad(f"{at}.energy_nj", "must map components to finite numbers")
        bw = run.get("bandwidth", {})
        if bw is None:
            continue
        if not isinstance(bw, dict):
            raise bad(f"{at}.bandwidth", "must be an object")
        if "bin_cycles" in bw and not (_number(bw["bin_cycles"]) and bw["bin_cycles"] > 0):
            raise bad(f"{at}.bandwidth.bin_cycles", "must be a positive number")
        channels = bw.get("channels", [])
        if not isinstance(channels, list) or not all(
                isinstance(c, list) and all(_number(b) for b in c) for c in channels):
            raise bad(f"{at}.bandwidth.channels", "must be a list of lists of numbers")
        if sum(len(c) for c in channels) > 10_000_000:
            raise bad(f"{at}.bandwidth.channels", "has more than ten million bins")
    for name, run in runs.items():
        _check_optional(run, f"runs.{name}", bad)
    overlap = data.get("overlap", {})
    if not isinstance(overlap, dict) or not all(
            v is None or _number(v) for v in overlap.values()):
        raise bad("overlap", "must map names to numbers (or null)")


def _check_optional(run: dict[str, Any], at: str, bad: Any) -> None:
    """The newer fields (traffic, overlap, PIM utilization), when present."""
    traffic = run.get("traffic", {})
    if not isinstance(traffic, dict) or not all(
            isinstance(classes, dict) and all(
                isinstance(rw, dict) and all(_number(v) for v in rw.values())
                for rw in classes.values())
            for classes in traffic.values()):
        raise bad(f"{at}.traffic", "must map phase -> tensor class -> read/write bytes")
    overlap = run.get("overlap", {})
    if not isinstance(overlap, dict) or not all(_number(v) for v in overlap.values()):
        raise bad(f"{at}.overlap", "must map names to numbers")
    if overlap and not {"backward_end", "exposed_update_cycles"} <= set(overlap):
        raise bad(f"{at}.overlap", "needs backward_end and exposed_update_cycles")
    util = run.get("pim_utilization", {})
    if not isinstance(util, dict):
        raise bad(f"{at}.pim_utilization", "must be an object")
    units = util.get("units", {})
    if isinstance(units, list) and not units:
        units = {}
    if not isinstance(units, dict) or not all(
            isinstance(w, list) and all(_number(x) for x in w) for w in units.values()):
        raise bad(f"{at}.pim_utilization.units", "must map unit names to lists of numbers")
    if sum(len(w) for w in units.values()) > 10_000_000:
        raise bad(f"{at}.pim_utilization.units", "has more than ten million windows")


def run_plot_cli(args: argparse.Namespace) -> int:
    from gradpimsim.config import ConfigError
    from gradpimsim.errors import InputError, clip
    from gradpimsim.io_safety import (
        check_input_file,
        commit,
        load_json_input,
        make_out_dir,
        output,
        preflight,
        read_input_text,
    )
    from gradpimsim.stats.figures import check_formats
    from gradpimsim.stats.plots import detect_kind, plot_any
    from gradpimsim.sweep.store import ResultStore

    formats = check_formats(args.formats.split(","))
    check_input_file("RESULTS", args.results)
    src = Path(args.results)
    if detect_kind(src) == "results":
        try:
            data = load_json_input(src)
        except InputError as exc:
            raise ConfigError("input", f"not a readable JSON file ({exc})") from None
        check_results(data, str(clip(src, 300)))
    else:
        read_input_text(src, limit=1 << 40)  # UTF-8, readable
        if not ResultStore(src).rows:  # every row checked: file and line of a corrupt one
            raise ConfigError("input", f"{clip(src, 300)}: the sweep table has no rows to plot")
    out_dir = make_out_dir("--out", args.out) if args.out else (src.parent or Path("."))
    tmp_dir = Path(tempfile.mkdtemp(prefix=".partial.", dir=out_dir))
    try:
        drawn = plot_any(src, tmp_dir, formats)
        targets = [out_dir / p.name for p in drawn]
        preflight([output("--out", t, t.suffix.lstrip(".")) for t in targets], [src],
                  force=args.force)
        for p, target in zip(drawn, targets, strict=True):
            commit(p, target)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    for path in targets:
        print(path)
    return 0
