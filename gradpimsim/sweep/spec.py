"""Sweep specifications: which runner, which points.

A spec is a TOML file (or the same structure as a dict)::

    kind = "update-bench"            # a registered runner (see gradpimsim.sweep.runner)
    [fixed]                          # values every point shares
    memory = "ddr4-2400"
    [grid]                           # lists: every combination is a point (cartesian product)
    params = [4096, 8192]
    optimizer = ["sgd", "momentum"]
    [[points]]                       # and/or explicit points (each merged over [fixed])
    params = 65536
    optimizer = "adam"

Each point's full parameter dict is the runner's defaults, then ``[fixed]``, then the grid
combination or the explicit point.  Its key is a stable hash of that dict, the kind and the
gradpimsim version (:func:`point_key`).  Every error names the key and the fix
(:class:`SpecError`, a ``ConfigError``: exit code 2 on the command line).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradpimsim
from gradpimsim.config import ConfigError
from gradpimsim.config.training import OPTIMIZERS, PRECISIONS

TOP_KEYS = ("kind", "name", "description", "fixed", "grid", "points")
#: Points a spec may expand to unless ``--max-points`` says otherwise (counted before expanding).
DEFAULT_MAX_POINTS = 10_000


class SpecError(ConfigError):
    """A sweep spec is malformed: ``field`` names the offending key (``grid.params``)."""


Check = Callable[[Any], str | None]  # returns an error message, or None when the value is fine


def _int(minimum: int = 1) -> Check:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            return f"must be an integer >= {minimum}, got {v!r}"
        return None
    return check


def _pow2(v: Any) -> str | None:
    msg = _int(1)(v)
    if msg is None and v & (v - 1):
        return f"must be a power of two, got {v}"
    return msg


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else f"must be true or false, got {v!r}"


def _str(v: Any) -> str | None:
    return None if isinstance(v, str) and v else f"must be a non-empty string, got {v!r}"


def _choice(options: tuple[str, ...]) -> Check:
    def check(v: Any) -> str | None:
        if v not in options:
            return f"unknown value {v!r}; choose one of {', '.join(options)}"
        return None
    return check


@dataclass(frozen=True)
class KindSchema:
    """The keys a runner kind accepts: type checks, required keys and defaults; ``choices``
    (what ``KEY = "*"`` in ``[grid]`` expands to) and ``validate`` (a whole point: an error
    message or None), both optional."""

    keys: Mapping[str, Check]
    required: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    choices: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    validate: Callable[[dict[str, Any]], str | None] | None = None


SCHEMAS: dict[str, KindSchema] = {
    "update-bench": KindSchema(
        keys={"params": _int(1), "optimizer": _choice(OPTIMIZERS),
              "precision": _choice(tuple(PRECISIONS)), "memory": _str, "channels": _pow2,
              "ranks": _pow2, "layout": _choice(("colocated", "naive")), "step": _int(1),
              "functional": _bool},
        required=("params",),
        defaults={"optimizer": "momentum", "precision": "mixed", "memory": "ddr4-2400",
                  "layout": "colocated", "step": 2, "functional": True},
    ),
}
#: ``iteration`` and ``compare`` (every RunConfig field) come from ``sweep/run_keys.py``,
#: declared when the runner registry first loads its kinds.


def register_schema(kind: str, schema: KindSchema) -> None:
    """Declare (or replace) the keys a runner kind accepts."""
    SCHEMAS[kind] = schema


#: The kinds with a runner: set by ``sweep/runner.py`` (the registry) when it is imported, which
#: importing the ``gradpimsim.sweep`` package always does first; a hook rather than an import,
#: so that the registry imports this module and not the other way round.
known_kinds: Callable[[], list[str]] = list


def point_key(kind: str, params: Mapping[str, Any], version: str | None = None) -> str:
    """Stable id of a point: sha256 of sorted JSON of kind, params and version; 16 hex digits."""
    blob = json.dumps({"kind": kind, "params": dict(params),
                       "version": version or gradpimsim.__version__},
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SweepSpec:
    """A validated spec: its kind and its points (full parameter dicts, in spec order)."""

    kind: str
    points: tuple[dict[str, Any], ...]
    name: str = "sweep"

    @property
    def keys(self) -> list[str]:
        return [point_key(self.kind, p) for p in self.points]

    @property
    def param_names(self) -> list[str]:
        names: dict[str, None] = {}
        for p in self.points:
            names.update(dict.fromkeys(p))
        return list(names)


def load_spec(source: str | Path | Mapping[str, Any] | SweepSpec, *,
              max_points: int | None = None) -> SweepSpec:
    """Read and validate a spec from a TOML path or a dict (a ``SweepSpec`` passes through)."""
    from gradpimsim.errors import InputError, clip
    from gradpimsim.io_safety import read_input_text

    limit = DEFAULT_MAX_POINTS if max_points is None else max_points
    if isinstance(source, SweepSpec):
        return source
    if isinstance(source, Mapping):
        return parse_spec(source, max_points=limit)
    path = Path(source)
    if not path.exists():
        raise SpecError("spec", f"{clip(path, 300)}: no such file; give the path of a sweep "
                        ".toml")
    try:
        data = tomllib.loads(read_input_text(path, limit=16 * 2**20))
    except InputError as exc:
        raise SpecError("spec", str(exc)) from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError("spec", f"{clip(path, 300)}: not valid TOML ({exc}); fix the "
                        "syntax") from None
    except RecursionError:
        raise SpecError("spec", f"{clip(path, 300)}: nested too deeply") from None
    return parse_spec(data, default_name=path.stem, max_points=limit)


def _schema(kind: Any) -> KindSchema:
    kinds = known_kinds()
    if isinstance(kind, str) and kind in SCHEMAS and kind not in kinds:
        raise SpecError("kind", f"no runner is registered for {kind!r} yet (it comes from "
                        "gradpimsim.system.sweep_runner); use kind = \"update-bench\"")
    if not isinstance(kind, str) or kind not in kinds:
        raise SpecError("kind", f"unknown sweep kind {kind!r}; set kind to one of "
                        f"{', '.join(sorted(kinds))}")
    if kind not in SCHEMAS:
        return KindSchema(keys={})  # a runner registered without a schema: no checks
    return SCHEMAS[kind]


def _check_key(schema: KindSchema, where: str, key: str) -> None:
    if schema.keys and key not in schema.keys:
        raise SpecError(where, f"unknown key {key!r} for this kind; known keys: "
                        f"{', '.join(schema.keys)}")


def _check_value(schema: KindSchema, where: str, key: str, value: Any) -> None:
    _check_key(schema, where, key)
    check = schema.keys.get(key)
    msg = check(value) if check else None
    if msg:
        raise SpecError(where, msg)


def parse_spec(data: Mapping[str, Any], *, default_name: str = "sweep",
               max_points: int = DEFAULT_MAX_POINTS) -> SweepSpec:
    """Validate the spec structure and expand it into points (counted first: a spec of more
    than ``max_points`` points is refused before anything is expanded)."""
    for key in data:
        if key not in TOP_KEYS:
            raise SpecError(key, f"unknown top-level key; allowed: {', '.join(TOP_KEYS)}")
    if "kind" not in data:
        raise SpecError("kind", 'missing; add e.g. kind = "update-bench"')
    kind = data["kind"]
    schema = _schema(kind)
    fixed = data.get("fixed", {})
    if not isinstance(fixed, Mapping):
        raise SpecError("fixed", "must be a table: [fixed] with key = value lines")
    for k, v in fixed.items():
        _check_value(schema, f"fixed.{k}", k, v)
    grid = data.get("grid", {})
    if not isinstance(grid, Mapping):
        raise SpecError("grid", "must be a table: [grid] with key = [values] lines")
    grid = {k: _every_choice(schema, k, v) for k, v in grid.items()}
    for k, values in grid.items():
        _check_key(schema, f"grid.{k}", k)
        if not isinstance(values, list) or not values:
            raise SpecError(f"grid.{k}", f"must be a non-empty list, e.g. {k} = [a, b]; "
                            f"put a single value in [fixed]")
        if k in fixed:
            raise SpecError(f"grid.{k}", "also given in [fixed]; keep it in one place")
        for i, v in enumerate(values):
            _check_value(schema, f"grid.{k}[{i}]", k, v)
    explicit = data.get("points", [])
    if not isinstance(explicit, list) or not all(isinstance(p, Mapping) for p in explicit):
        raise SpecError("points", "must be an array of tables: [[points]] blocks")
    for i, p in enumerate(explicit):
        for k, v in p.items():
            _check_value(schema, f"points[{i}].{k}", k, v)
    if not grid and not explicit:
        raise SpecError("grid", "the spec has no points; add a [grid] table of lists or "
                        "[[points]] blocks")
    count = math.prod(len(v) for v in grid.values()) if grid else 0
    count += len(explicit)
    if count > max_points:
        sizes = " x ".join(str(len(v)) for v in grid.values()) or "0"
        raise SpecError("grid", f"the spec has {count:,} points (grid {sizes} plus "
                        f"{len(explicit)} explicit), more than --max-points {max_points:,}; "
                        "split the sweep, or raise --max-points if you mean it")
    raw: list[tuple[str, dict[str, Any]]] = []
    if grid:
        names = list(grid)
        for combo in itertools.product(*(grid[n] for n in names)):
            raw.append(("grid", dict(zip(names, combo, strict=True))))
    raw.extend((f"points[{i}]", dict(p)) for i, p in enumerate(explicit))
    points: list[dict[str, Any]] = []
    seen: set[str] = set()
    for where, p in raw:
        merged = {**schema.defaults, **fixed, **p}
        order = [k for k in schema.keys if k in merged] + [k for k in merged
                                                            if k not in schema.keys]
        full = {k: merged[k] for k in order}
        for req in schema.required:
            if req not in full:
                raise SpecError(f"{where}.{req}", "missing; give it in [fixed], [grid] or "
                                "every [[points]] block")
        if schema.validate is not None:
            problem = schema.validate(full)
            if problem:
                raise SpecError(f"{where} ({_describe(full)})", problem)
        key = point_key(kind, full)
        if key not in seen:  # the same point twice is run once
            seen.add(key)
            points.append(full)
    _check_memory(points)
    if kind == "update-bench":
        _check_bench_bounds(points)
    elif kind in ("iteration", "compare"):
        _check_iteration_bounds(points)
    name = data.get("name", default_name)
    if not isinstance(name, str):
        raise SpecError("name", f"must be a string, got {type(name).__name__}")
    return SweepSpec(kind=kind, points=tuple(points), name=str(name))


def _every_choice(schema: KindSchema, key: str, values: Any) -> Any:
    """``KEY = "*"``: every value the schema knows for the key."""
    if values != "*":
        return values
    if key not in schema.choices:
        raise SpecError(f"grid.{key}", f'"*" (every choice) needs a closed list of choices, '
                        f"and {key} has none; list the values")
    return list(schema.choices[key])


def _describe(point: Mapping[str, Any]) -> str:
    shown = [f"{k}={v}" for k, v in point.items() if k in ("workload", "batch", "memory")]
    return ", ".join(shown)


def _check_bench_bounds(points: list[dict[str, Any]]) -> None:
    """Every update-bench point fits (DRAM capacity, host memory) before any runs."""
    from gradpimsim.bounds import check_update_bench
    from gradpimsim.config import load_config
    from gradpimsim.config.training import OptimizerConfig, precision
    from gradpimsim.errors import BoundsError

    configs: dict[tuple[Any, ...], Any] = {}
    for i, p in enumerate(points):
        combo = (p.get("memory", "ddr4-2400"), p.get("channels"), p.get("ranks"))
        if combo not in configs:
            configs[combo] = load_config(combo[0], channels=combo[1], ranks=combo[2])
        name = p.get("optimizer", "momentum")
        try:
            check_update_bench(configs[combo], int(p["params"]), OptimizerConfig(name),
                               precision(p.get("precision", "mixed")),
                               bool(p.get("functional", True)))
        except BoundsError as exc:
            raise SpecError(f"point {i + 1} (params = {p['params']:,})", str(exc)) from None


def _check_iteration_bounds(points: list[dict[str, Any]]) -> None:
    """Every iteration point's workload fits in its memory (DRAM capacity) before any runs."""
    from gradpimsim.bounds import check_workload
    from gradpimsim.config import load_config
    from gradpimsim.config.training import OptimizerConfig, precision
    from gradpimsim.errors import BoundsError
    from gradpimsim.graph.loader import load_any
    from gradpimsim.graph.schema import GraphError

    seen: set[tuple[Any, ...]] = set()
    for i, p in enumerate(points):
        combo = tuple(p.get(k) for k in ("workload", "batch", "seq_len", "memory", "channels",
                                          "ranks", "optimizer", "precision"))
        if combo in seen:
            continue
        seen.add(combo)
        try:
            cfg = load_config(p.get("memory") or "ddr4-2400", channels=p.get("channels"),
                              ranks=p.get("ranks"))
            graph = load_any(p["workload"], batch=p.get("batch"), seq_len=p.get("seq_len"))
            check_workload(graph, cfg, OptimizerConfig(p.get("optimizer") or "momentum"),
                           precision(p.get("precision") or "mixed"))
        except (BoundsError, GraphError, KeyError) as exc:
            raise SpecError(f"point {i + 1} ({p.get('workload')!r})", str(exc)) from None


def _check_memory(points: list[dict[str, Any]]) -> None:
    """Every memory/channels/ranks combination loads (a bad preset fails before any work)."""
    from gradpimsim.config import load_config

    combos = {(p.get("memory"), p.get("channels"), p.get("ranks")) for p in points
              if "memory" in p}
    for memory, channels, ranks in combos:
        try:
            load_config(memory, channels=channels, ranks=ranks)
        except ConfigError as exc:
            raise SpecError("memory", f"{memory!r} (channels={channels}, ranks={ranks}) does "
                            f"not load: {exc}") from None
        except (OSError, ValueError) as exc:
            raise SpecError("memory", f"{memory!r} does not load: {exc}; use a preset name "
                            "(gradpimsim presets) or a config file") from None
