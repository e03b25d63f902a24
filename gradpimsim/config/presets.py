"""Built-in presets and loading of configurations from names, TOML files and DRAMsim3 .ini files.

Preset names compose a speed bin with a device width and a system size, so a user can say
``ddr4-3200-x16-2r-4ch`` and get 8Gb x16 dies, two ranks per channel and four channels.  Omitted
parts default to x8, one rank, one channel.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gradpimsim.config.model import (
    ConfigError,
    ControllerConfig,
    MemoryConfig,
    Organization,
    Timing,
)

if TYPE_CHECKING:
    from gradpimsim.config.pim import PimConfig

SPEED_BINS = ("2400", "3200")
WIDTHS = ("x4", "x8", "x16")
_NAME = re.compile(
    r"^ddr4-(?P<speed>\d{4})(?:-8gb)?(?:-(?P<width>x\d+))?(?:-(?P<ranks>\d+)r)?(?:-(?P<ch>\d+)ch)?$"
)


@cache
def _preset_file(name: str) -> dict[str, Any]:
    text = resources.files("gradpimsim.config").joinpath("presets", name).read_text()
    return tomllib.loads(text)


def preset_names() -> list[str]:
    """The canonical preset names (every speed bin x width; ranks/channels as suffixes)."""
    return [f"ddr4-{s}-{w}" for s in SPEED_BINS for w in WIDTHS]


def preset(name: str, *, ranks: int | None = None, channels: int | None = None) -> MemoryConfig:
    """Build a preset by name, e.g. ``ddr4-2400``, ``ddr4-2400-x16``, ``ddr4-3200-x8-2r-4ch``."""
    m = _NAME.match(name.strip().lower())
    if not m or m["speed"] not in SPEED_BINS or (m["width"] and m["width"] not in WIDTHS):
        raise ConfigError(
            "preset",
            f"unknown preset {name!r}; known: {', '.join(preset_names())} "
            "(optionally suffixed -<N>r for ranks and -<N>ch for channels, "
            "e.g. ddr4-2400-x8-2r-4ch)",
        )
    width = m["width"] or "x8"
    speed = _preset_file(f"ddr4-{m['speed']}.toml")
    devices = _preset_file("devices.toml")
    timing = {k: v for k, v in speed["timing"].items() if not isinstance(v, dict)}
    timing.update(speed["timing"][width])
    org = dict(devices[width])
    org["ranks"] = ranks or int(m["ranks"] or 1)
    org["channels"] = channels or int(m["ch"] or 1)
    canonical = f"ddr4-{m['speed']}-{width}"
    if org["ranks"] > 1:
        canonical += f"-{org['ranks']}r"
    if org["channels"] > 1:
        canonical += f"-{org['channels']}ch"
    return MemoryConfig(
        name=canonical,
        org=_build(Organization, org, "org"),
        timing=_build(Timing, timing, "timing"),
        controller=ControllerConfig(),
        power=dict(speed.get("power", {}).get(width, {})),
    )


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML configuration file as a dict; every failure is a one-line ``ConfigError``."""
    from gradpimsim.errors import InputError, clip
    from gradpimsim.io_safety import read_input_text

    if not path.exists():
        raise ConfigError("config", f"file not found: {clip(path, 300)}")
    try:
        text = read_input_text(path, limit=16 * 2**20)
    except InputError as exc:
        raise ConfigError("config", str(exc)) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"{clip(path, 300)}: not valid TOML ({exc})") from None
    except RecursionError:
        raise ConfigError("config", f"{clip(path, 300)}: nested too deeply") from None


def _build(cls: type, values: dict[str, Any], section: str) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in known:
            raise ConfigError(
                f"{section}.{key}", f"unknown key; known keys: {', '.join(sorted(known))}"
            )
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in values
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING  # type: ignore[misc]
    ]
    if missing:
        raise ConfigError(f"{section}.{missing[0]}", "missing required value")
    return cls(**values)


def from_dict(data: dict[str, Any], *, source: str = "<dict>") -> MemoryConfig:
    """A configuration from a nested dict (the TOML layout): optional ``base``, then sections.

    Sections ``org``, ``timing``, ``controller`` and ``power`` override the base field by field.
    A ``[pim]`` section describes the GradPIM units (:func:`load_pim_config`); it is validated
    here too, so a typo stops every command that reads the file.
    """
    allowed = {"name", "base", "org", "timing", "controller", "power", "pim"}
    for key in data:
        if key not in allowed:
            raise ConfigError(
                key, f"unknown section in {source}; allowed: {', '.join(sorted(allowed))}"
            )
    for key in ("name", "base"):
        if key in data and not isinstance(data[key], str):
            raise ConfigError(key, f"must be a string in {source}, e.g. base = \"ddr4-2400\"")
    if "pim" in data:
        from gradpimsim.config.pim import pim_from_dict

        pim_from_dict(data["pim"], source=source)
    if "base" in data:
        base = preset(str(data["base"]))
        org = dataclasses.asdict(base.org)
        timing = dataclasses.asdict(base.timing)
        ctrl = dataclasses.asdict(base.controller)
        power = dict(base.power)
    else:
        org, timing, ctrl, power = {}, {}, {}, {}
    for section, target in (
        ("org", org),
        ("timing", timing),
        ("controller", ctrl),
        ("power", power),
    ):
        values = data.get(section, {})
        if not isinstance(values, dict):
            raise ConfigError(section, f"must be a table of key = value entries in {source}")
        target.update(values)
    return MemoryConfig(
        name=str(data.get("name", data.get("base", Path(source).stem))),
        org=_build(Organization, org, "org"),
        timing=_build(Timing, timing, "timing"),
        controller=_build(ControllerConfig, ctrl, "controller"),
        power={str(k): v for k, v in power.items()},
    )


def load_config(
    spec: str | Path,
    *,
    ranks: int | None = None,
    channels: int | None = None,
    **overrides: Any,
) -> MemoryConfig:
    """Load a configuration from a preset name, a ``.toml`` file or a DRAMsim3 ``.ini`` file."""
    path = Path(spec)
    suffix = path.suffix.lower()
    if suffix == ".ini":
        from gradpimsim.config.dramsim3 import load_dramsim3_ini

        cfg = load_dramsim3_ini(path)
    elif suffix == ".toml":
        cfg = from_dict(read_toml(path), source=str(path))
    else:
        cfg = preset(str(spec))
    changes: dict[str, Any] = dict(overrides)
    if ranks is not None:
        changes["ranks"] = ranks
    if channels is not None:
        changes["channels"] = channels
    if changes:
        cfg = cfg.with_overrides(**changes)
    return cfg


def load_pim_config(spec: str | Path) -> PimConfig:
    """The GradPIM units a memory spec describes: a ``.toml`` file's ``[pim]`` section, else the
    defaults of ``docs/gradpim.md`` (presets and DRAMsim3 ``.ini`` files have none)."""
    from gradpimsim.config.pim import PimConfig, pim_from_dict

    path = Path(spec)
    if path.suffix.lower() == ".toml":
        data = read_toml(path)
        if "pim" in data:
            return pim_from_dict(data["pim"], source=str(path))
    return PimConfig()
