"""Run configuration files: ``run``/``compare --config FILE`` and what makes a run reproducible.

A run file is TOML whose top-level keys are :class:`~gradpimsim.system.config.RunConfig` fields
(every one may be given; ``extra`` is a table)::

    schema = "gradpimsim.run/1"        # optional
    workload = "resnet18"
    batch = 8
    memory = "ddr4-3200"               # a preset, or a .toml/.ini path (relative to this file)
    channels = 2
    optimizer = "adam"
    precision = "mixed-bf16"
    npu = "mid"
    placement = "bank-partition"
    seed = 7

A results JSON written by ``run``/``compare --out`` works as a run file too: its ``config``
object is the complete configuration of the run that wrote it, so ``compare --config
results.json`` reproduces those figures (cycle for cycle: the simulator is deterministic).

Command-line options override the file: :func:`mark_defaults` wraps each option's default in
:class:`Default`, so an option the user typed is told apart from one left at its default even
when the typed value equals the default.

GradPIM unit knobs come from the memory configuration's ``[pim]`` section (a memory TOML) and,
over it, the run file's ``[pim_knobs]`` table (``--pim-knob KEY=VALUE`` over both, knob by knob).
A ``[pim]`` table in a run file is refused: there ``pim`` is the true/false choice of where the
update runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import tomllib
from pathlib import Path
from typing import Any

from gradpimsim.config import ConfigError
from gradpimsim.errors import InputError, clip
from gradpimsim.system.config import RunConfig

RUN_SCHEMA = "gradpimsim.run/1"
RESULTS_SCHEMA = "gradpimsim.results/1"
#: Fields whose value may name a file: a relative path is taken relative to the run file.
PATH_FIELDS = ("workload", "memory", "npu")


class RunFileError(ConfigError):
    """A run file cannot be used: ``field`` names the key (exit code 2 on the command line)."""


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(RunConfig)]


def load_run_file(path: str | Path) -> dict[str, Any]:
    """The ``RunConfig`` values a run file (TOML) or results JSON gives, checked, with
    relative file names resolved against the file's directory."""
    from gradpimsim.io_safety import parse_json, read_input_text

    p = Path(path)
    shown = clip(p, 300)
    try:
        text = read_input_text(p, limit=16 * 2**20)
    except InputError as exc:
        raise RunFileError("--config", str(exc)) from None
    if text.lstrip().startswith("{"):
        try:
            data = parse_json(text, str(shown))
        except InputError as exc:
            raise RunFileError("--config", str(exc)) from None
        if not isinstance(data, dict) or data.get("schema") != RESULTS_SCHEMA \
                or not isinstance(data.get("config"), dict):
            raise RunFileError("--config", f"{shown}: a JSON run file must be a results.json "
                               f"(schema {RESULTS_SCHEMA}) with its config object")
        values = dict(data["config"])
    else:
        try:
            values = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RunFileError("--config", f"{shown}: not valid TOML ({exc}); fix the "
                               "syntax") from None
        schema = values.pop("schema", RUN_SCHEMA)
        if schema != RUN_SCHEMA:
            raise RunFileError("schema", f"{shown}: schema {schema!r}; a run file says "
                               f"{RUN_SCHEMA!r} (or nothing)")
    return check_values(values, p)


def check_values(values: dict[str, Any], source: Path | None = None) -> dict[str, Any]:
    """Known keys only (each error names the key), relative paths resolved."""
    where = f"{clip(source, 300)}: " if source is not None else ""
    known = field_names()
    if isinstance(values.get("pim"), dict):
        raise RunFileError(f"{where}pim", "pim is true or false (the update on GradPIM); "
                           "GradPIM unit knobs go in a [pim_knobs] table here, or in the "
                           "memory TOML's [pim] section")
    for key in values:
        if key not in known:
            raise RunFileError(f"{where}{key}", f"unknown run option; known: "
                               f"{', '.join(known)}")
    if "extra" in values and not isinstance(values["extra"], dict):
        raise RunFileError(f"{where}extra", "must be a table")
    out = dict(values)
    if source is not None:
        base = source.parent
        for key in PATH_FIELDS:
            v = out.get(key)
            if isinstance(v, str) and not Path(v).is_absolute() and (base / v).exists() \
                    and base != Path("."):
                out[key] = str(base / v)
    return out


# ---------------------------------------------------------------------- options vs the file
class Default:
    """An argparse default, wrapped so that a value the user typed can be told apart."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Default({self.value!r})"


def mark_defaults(parser: argparse.ArgumentParser, dests: set[str]) -> None:
    """Wrap the defaults of the options whose ``dest`` is in ``dests`` in :class:`Default`."""
    for action in parser._actions:  # noqa: SLF001 (argparse has no public list of actions)
        if action.dest in dests and not isinstance(action.default, Default):
            action.default = Default(action.default)


def plain(value: Any) -> Any:
    """An option's value, unwrapped."""
    return value.value if isinstance(value, Default) else value


def merge(given: dict[str, Any], file_values: dict[str, Any] | None) -> RunConfig:
    """A ``RunConfig`` from option values (``Default``-wrapped when not typed) over a file's.

    Precedence: options typed on the command line, then the file, then the options' defaults.
    """
    values: dict[str, Any] = {}
    for key, value in given.items():
        if isinstance(value, Default):
            if file_values is None or key not in file_values:
                values[key] = value.value
        else:
            values[key] = value
    if file_values:
        for key, value in file_values.items():
            values.setdefault(key, value)
    if not values.get("workload"):
        raise RunFileError("workload", "no workload: name one on the command line or set "
                           "workload in the --config file")
    return RunConfig.from_dict(values)


# ---------------------------------------------------------------------- provenance
def provenance(started: datetime.datetime | None = None) -> dict[str, Any]:
    """Which gradpimsim made a result, and when (UTC, ISO 8601)."""
    import gradpimsim

    now = datetime.datetime.now(datetime.UTC)
    return {"version": gradpimsim.__version__, "build": gradpimsim.build(),
            "started": (started or now).isoformat(timespec="seconds"),
            "finished": now.isoformat(timespec="seconds")}


def to_toml(run: RunConfig) -> str:
    """A run file for ``run`` (every field; ``None`` fields are left out: the default)."""
    lines = [f'schema = "{RUN_SCHEMA}"']
    tables = []
    for key, value in run.to_dict().items():
        if value is None:
            lines.append(f"# {key} = (the default)")
        elif isinstance(value, dict):
            if value:
                tables.append((key, value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    for name, table in tables:
        lines.append(f"\n[{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise RunFileError("extra", f"cannot write {type(value).__name__} values to a run file")
