"""Named studies: a sweep spec shipped as data, with a reduced variant and its figures.

A study file (``gradpimsim/sweep/studies/<name>.toml``, or any path) is a sweep spec
(``kind``, ``[fixed]``, ``[grid]``, ``[[points]]``: :mod:`gradpimsim.sweep.spec`) with two more
parts::

    [reduced.grid]            # --reduced: these entries replace the spec's (a CI-sized run)
    workload = ["mlp-tiny"]
    [reduced.fixed]
    batch = 4

    [[figures]]               # drawn from the study's table (gradpimsim.stats.study_plots)
    name = "speedup"          # the file: <study>-speedup.png
    type = "lines"            # lines | bars | stacked
    x = "batch"
    y = ["speedup"]
    dashed = ["ideal_speedup"]

``run_study`` runs the points not yet in the table (resumable, like any sweep: the table is the
sweep's result store) and draws every figure from this study's rows, in the spec's order.
``gradpimsim study show NAME`` prints the file as shipped, to copy and edit.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from gradpimsim.sweep.spec import SpecError, SweepSpec, parse_spec, point_key

STUDY_KEYS = ("reduced", "figures")
FIGURE_KEYS = ("name", "type", "x", "y", "dashed", "stack", "title", "xlabel", "ylabel", "logx",
               "hline", "panels", "labels")
FIGURE_TYPES = ("lines", "bars", "stacked")
STACKS = ("energy", "traffic")


@dataclass(frozen=True)
class Study:
    """A loaded study: its sweep spec (full or reduced), figures and source text."""

    name: str
    description: str
    spec: SweepSpec
    figures: tuple[dict[str, Any], ...]
    text: str
    reduced: bool = False
    source: str = ""
    order: dict[str, int] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.name}-reduced" if self.reduced else self.name


def _shipped() -> Any:
    return resources.files("gradpimsim.sweep").joinpath("studies")


def study_names() -> list[str]:
    """The studies shipped with gradpimsim."""
    return sorted(f.name.removesuffix(".toml") for f in _shipped().iterdir()
                  if f.name.endswith(".toml"))


def study_text(name: str) -> tuple[str, str]:
    """(text, where it came from) of a shipped study by name, or of a study file by path."""
    from gradpimsim.errors import InputError, clip
    from gradpimsim.io_safety import read_input_text

    if name in study_names():
        return _shipped().joinpath(f"{name}.toml").read_text(encoding="utf-8"), name
    p = Path(name)
    if p.suffix == ".toml" and p.exists():
        try:
            return read_input_text(p, limit=16 * 2**20), str(p)
        except InputError as exc:
            raise SpecError("study", str(exc)) from None
    raise SpecError("study", f"no study {clip(name, 80)!r}; shipped: "
                    f"{', '.join(study_names())} (or give the path of a study .toml)")


def load_study(name: str, *, reduced: bool = False, max_points: int | None = None) -> Study:
    """A study by name or path, validated (its spec, its reduced variant, its figures)."""
    from gradpimsim.sweep.spec import DEFAULT_MAX_POINTS

    text, source = study_text(name)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError("study", f"{source}: not valid TOML ({exc}); fix the syntax") from None
    spec_data = {k: v for k, v in data.items() if k not in STUDY_KEYS}
    if reduced:
        spec_data = _reduce(spec_data, data.get("reduced"))
    default = Path(source).stem
    spec = parse_spec(spec_data, default_name=default,
                      max_points=DEFAULT_MAX_POINTS if max_points is None else max_points)
    figures = tuple(check_figure(i, f, spec) for i, f in enumerate(data.get("figures", [])))
    order = {point_key(spec.kind, p): i for i, p in enumerate(spec.points)}
    return Study(spec.name, str(data.get("description", "")).strip(), spec, figures, text,
                 reduced, source, order)


def _reduce(spec: dict[str, Any], reduced: Any) -> dict[str, Any]:
    if reduced is None:
        return spec  # a study without a reduced variant is its own
    if not isinstance(reduced, Mapping) or set(reduced) - {"grid", "fixed"}:
        raise SpecError("reduced", "must be a table of [reduced.grid] and [reduced.fixed]")
    out = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in spec.items()}
    grid, fixed = out.setdefault("grid", {}), out.setdefault("fixed", {})
    for key, value in reduced.get("grid", {}).items():
        fixed.pop(key, None)
        grid[key] = value
    for key, value in reduced.get("fixed", {}).items():
        grid.pop(key, None)
        fixed[key] = value
    return out


def check_figure(i: int, fig: Any, spec: SweepSpec) -> dict[str, Any]:
    """A figure spec's keys and types (the columns it names are checked when drawn)."""
    where = f"figures[{i}]"
    if not isinstance(fig, Mapping):
        raise SpecError(where, "must be a [[figures]] table")
    for key in fig:
        if key not in FIGURE_KEYS:
            raise SpecError(f"{where}.{key}", f"unknown figure key; known: "
                            f"{', '.join(FIGURE_KEYS)}")
    for key in ("name", "type"):
        if not isinstance(fig.get(key), str) or not fig[key]:
            raise SpecError(f"{where}.{key}", "missing; give a string")
    if fig["type"] not in FIGURE_TYPES:
        raise SpecError(f"{where}.type", f"unknown type {fig['type']!r}; choose one of "
                        f"{', '.join(FIGURE_TYPES)}")
    if not isinstance(fig.get("x"), str) or fig["x"] not in spec.param_names:
        raise SpecError(f"{where}.x", f"must name a parameter of the study, one of "
                        f"{', '.join(spec.param_names)}")
    if fig["type"] == "stacked":
        if fig.get("stack") not in STACKS:
            raise SpecError(f"{where}.stack", f"a stacked figure needs stack = one of "
                            f"{', '.join(STACKS)} (quantities that add up)")
    else:
        for key in ("y", "dashed"):
            v = fig.get(key, [] if key == "dashed" else None)
            if not isinstance(v, list) or not all(isinstance(c, str) for c in v) or \
                    (key == "y" and not v):
                raise SpecError(f"{where}.{key}", "must be a list of column names")
    if "panels" in fig and fig["panels"] not in spec.param_names:
        raise SpecError(f"{where}.panels", "must name a parameter of the study")
    if "labels" in fig and not isinstance(fig["labels"], Mapping):
        raise SpecError(f"{where}.labels", "must be a table: column = \"label\"")
    return dict(fig)


def study_table(study: Study, table: Any) -> Any:
    """This study's rows of a result table, in the spec's point order."""
    df = table[table["key"].isin(study.order)] if len(table) else table
    if not len(df):
        return df
    return (df.assign(_order=df["key"].map(study.order)).sort_values("_order")
            .drop(columns="_order").reset_index(drop=True))


def outputs(study: Study, out_dir: str | Path, formats: tuple[str, ...]) -> list[Path]:
    """Every file ``run_study`` writes: the table, then each figure in each format."""
    out = Path(out_dir)
    return [out / f"{study.label}.csv"] + [out / f"{study.label}-{f['name']}.{fmt}"
                                           for f in study.figures for fmt in formats]


def run_study(study: Study, out_dir: str | Path, *, formats: tuple[str, ...] = ("png", "pdf"),
              force: bool = False, **sweep_options: Any) -> tuple[Any, list[Path]]:
    """Run the study's missing points into ``out_dir/<label>.csv`` and draw its figures
    there; (this study's table, the figure files).  Every output is checked before any point
    runs (``io_safety.preflight``: a file gradpimsim did not write is replaced only with
    ``force``); figures are drawn in a private directory and moved into place complete.
    ``sweep_options`` go to ``run_sweep``."""
    import shutil
    import tempfile

    from gradpimsim.io_safety import commit, make_out_dir, output, preflight
    from gradpimsim.stats.figures import check_formats, save
    from gradpimsim.stats.study_plots import draw
    from gradpimsim.sweep.runner import run_sweep

    formats = check_formats(formats)
    out = make_out_dir("--out", out_dir)
    files = outputs(study, out, formats)
    # (the table is appended to, never replaced: the store itself refuses a foreign file)
    preflight([output("--out", files[0], "sweep-table")], force=True)
    preflight([output("--out", f, f.suffix.lstrip(".")) for f in files[1:]], force=force)
    table = study_table(study, run_sweep(study.spec, files[0], **sweep_options))
    ok = table[table["status"] == "ok"] if len(table) else table
    paths: list[Path] = []
    if not len(ok):
        return table, paths
    tmp = Path(tempfile.mkdtemp(prefix=".partial.", dir=out))
    try:
        for fig in study.figures:
            drawn = save(draw(ok, fig, study.spec.param_names, study.name),
                         tmp / f"{study.label}-{fig['name']}", formats)
            for p in drawn:
                commit(p, out / p.name)
                paths.append(out / p.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return table, paths


__all__ = ["Study", "load_study", "outputs", "run_study", "study_names", "study_table",
           "study_text"]
