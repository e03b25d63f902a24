"""``gradpimsim presets``: the built-in memory presets and every configurable field."""

from __future__ import annotations

import dataclasses
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gradpimsim.config.model import ControllerConfig, Organization, Timing
from gradpimsim.config.presets import load_config, preset, preset_names

console = Console()


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "presets",
        help="list memory presets, or show one preset / every configurable field",
        description="List the built-in DDR4 presets (suffix -<N>r for ranks, -<N>ch for "
        "channels), show one preset or config file in full, or list every field a .toml "
        "config may set.",
    )
    p.add_argument("name", nargs="?", metavar="PRESET|FILE", help="show this preset or file")
    p.add_argument("--fields", action="store_true", help="list every configurable field")
    p.set_defaults(func=run)


def run(args: Any) -> int:
    if args.fields:
        table = Table(title="configuration fields (.toml sections)")
        for col in ("section", "field", "default"):
            table.add_column(col)
        for section, cls in (("org", Organization), ("timing", Timing),
                             ("controller", ControllerConfig)):
            for f in dataclasses.fields(cls):
                default = "" if f.default is dataclasses.MISSING else repr(f.default)
                table.add_row(section, f.name, default or "(from the preset)")
        console.print(table)
        return 0
    if args.name:
        cfg = load_config(args.name)
        table = Table(title=escape(cfg.name))
        table.add_column("field")
        table.add_column("value", justify="right")
        for section in ("org", "timing", "controller"):
            for key, value in dataclasses.asdict(getattr(cfg, section)).items():
                table.add_row(f"{section}.{key}", str(value))
        console.print(table)
        return 0
    table = Table(title="built-in presets")
    for col in ("preset", "CL-tRCD-tRP", "tFAW", "bank groups", "row", "peak GB/s"):
        table.add_column(col)
    for name in preset_names():
        cfg = preset(name)
        t = cfg.timing
        table.add_row(name, f"{t.CL}-{t.tRCD}-{t.tRP}", str(t.tFAW), str(cfg.org.bankgroups),
                      f"{cfg.org.row_bytes // 1024} KiB", f"{cfg.peak_bandwidth_gbs:.1f}")
    console.print(table)
    console.print("[dim]add -<N>r / -<N>ch for ranks / channels, e.g. ddr4-2400-x8-2r-4ch[/]")
    return 0
