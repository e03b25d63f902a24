"""Import DRAMsim3 ``.ini`` configuration files, so users can simulate the setup they ran there.

The importer is strict where DRAMsim3 is lax: DRAMsim3 silently falls back to built-in defaults for
any key it does not find, so a typo (``tRDC = 17``) changes results without a word.  Here every key
of a known section must be one we understand (or one DRAMsim3 reads that we deliberately ignore,
listed below), every timing parameter must be present, and every error names ``section.key`` as
spelled in DRAMsim3's own files, plus the file and line.

DRAMsim3 conventions kept on purpose:

* keys and section names are case-insensitive and ``;`` starts a comment anywhere on a line;
* ``tCK`` is taken as written, even though DRAMsim3's files round it (``0.83`` for DDR4-2400);
* ``tRC`` is not a DRAMsim3 key (it always uses ``tRAS + tRP``); it is accepted if present;
* ``channel_size`` is MB per channel and determines the number of ranks;
* the 12-letter ``address_mapping`` string has the same meaning as ours (most significant first).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradpimsim.config.model import (
    MAPPING_FIELDS,
    ConfigError,
    ControllerConfig,
    MemoryConfig,
    Organization,
    Timing,
)
from gradpimsim.errors import clip, clip_repr

log = logging.getLogger(__name__)

#: Sections read entirely ignored: statistics output and the thermal model have no counterpart.
IGNORED_SECTIONS = ("other", "thermal")

#: ``[dram_structure]`` key -> Organization field.
STRUCTURE_KEYS = {
    "bankgroups": "bankgroups",
    "banks_per_group": "banks_per_group",
    "rows": "rows",
    "columns": "columns",
    "device_width": "device_width",
    "BL": "burst_length",
}

#: ``[timing]`` keys that are required integers (cycles) and map 1:1 onto Timing fields.
TIMING_KEYS = (
    "AL", "CL", "CWL", "tRCD", "tRP", "tRAS", "tRFC", "tREFI", "tRPRE", "tWPRE", "tRRD_S",
    "tRRD_L", "tWTR_S", "tWTR_L", "tFAW", "tWR", "tRTP", "tCCD_S", "tCCD_L", "tCKE", "tCKESR",
    "tXS", "tXP", "tRTRS",
)
#: Optional integer timing keys we use when present (DRAMsim3 itself never reads tRC).
OPTIONAL_TIMING_KEYS = ("tRC", "tMRD", "tMOD")

#: ``[power]`` key -> our key in ``MemoryConfig.power`` (datasheet mA / V per device).
POWER_KEYS = {
    "VDD": "VDD", "VPP": "VPP", "IDD0": "IDD0", "IPP0": "IPP0", "IDD2P": "IDD2P", "IDD2N": "IDD2N",
    "IDD3P": "IDD3P", "IDD3N": "IDD3N", "IDD4W": "IDD4W", "IDD4R": "IDD4R", "IDD5AB": "IDD5B",
    "IDD5PB": "IDD5PB", "IDD6x": "IDD6",
}

SYSTEM_KEYS = (
    "channel_size", "channels", "bus_width", "address_mapping", "queue_structure",
    "refresh_policy", "row_buf_policy", "cmd_queue_size", "trans_queue_size",
)

#: Keys DRAMsim3 knows that do not apply to our DDR4 model: accepted, ignored, reported as a note.
IGNORED_KEYS: dict[str, dict[str, str]] = {
    "dram_structure": {
        "num_dies": "3D-stacked dies (HBM/HMC) do not apply to DDR4",
        "hbm_dual_cmd": "HBM dual command issue does not apply to DDR4",
    },
    "timing": {
        "tRFC2": "2x fine-granularity refresh mode is not modelled (1x mode uses tRFC)",
        "tRFC4": "4x fine-granularity refresh mode is not modelled (1x mode uses tRFC)",
        "tWR2": "tWR for 2-cycle write preamble mode is not used (tWR applies)",
        "tRFCb": "per-bank refresh is not modelled; all-bank refresh uses tRFC",
        "tREFIb": "per-bank refresh is not modelled; all-bank refresh uses tREFI",
        "tPPD": "LPDDR4/GDDR5 parameter, not used for DDR4",
        "t32AW": "GDDR5 parameter, not used for DDR4",
        "tRCDRD": "GDDR5 parameter, not used for DDR4 (tRCD applies)",
        "tRCDWR": "GDDR5 parameter, not used for DDR4 (tRCD applies)",
        "ideal_memory_latency": "DRAMsim3's ideal-memory mode is not modelled",
    },
    "system": {
        "unified_queue": "separate read and write queues are always used",
        "write_buf_size": "write queue depth is taken from trans_queue_size",
        "enable_self_refresh": "idle self-refresh entry is not part of the controller policy",
        "sref_threshold": "idle self-refresh entry is not part of the controller policy",
        "aggressive_precharging_enabled": "use row_buf_policy / our adaptive page policy instead",
        "mega_tick": "DRAMsim3 simulation-speed knob, no effect on timing",
    },
    "power": {},
}

#: Where DRAMsim3 falls back to a default for a ``[system]`` key, we do the same (same results).
SYSTEM_DEFAULTS: dict[str, str] = {
    "channels": "1",
    "bus_width": "64",
    "address_mapping": "chrobabgraco",
    "queue_structure": "PER_BANK",
    "refresh_policy": "RANK_LEVEL_STAGGERED",
    "row_buf_policy": "OPEN_PAGE",
    "cmd_queue_size": "16",
    "trans_queue_size": "32",
}

ROW_BUFFER_POLICIES = {"OPEN_PAGE": "open", "CLOSE_PAGE": "closed"}
QUEUE_STRUCTURES = ("PER_BANK", "PER_RANK")
REFRESH_POLICIES = ("RANK_LEVEL_STAGGERED", "RANK_LEVEL_SIMULTANEOUS", "BANK_LEVEL_STAGGERED")

_KNOWN: dict[str, tuple[str, ...]] = {
    "dram_structure": ("protocol", *STRUCTURE_KEYS, "bankgroup_enable",
                       *IGNORED_KEYS["dram_structure"]),
    "timing": ("tCK", *TIMING_KEYS, *OPTIONAL_TIMING_KEYS, *IGNORED_KEYS["timing"]),
    "power": tuple(POWER_KEYS),
    "system": (*SYSTEM_KEYS, *IGNORED_KEYS["system"]),
}
#: Lower-case key -> canonical DRAMsim3 spelling, per section (keys are case-insensitive).
_CANONICAL = {sec: {k.lower(): k for k in keys} for sec, keys in _KNOWN.items()}

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_BOOLS = {"true": True, "yes": True, "on": True, "1": True,
          "false": False, "no": False, "off": False, "0": False}


@dataclass(frozen=True)
class Entry:
    """One ``key = value`` line: kept with its line number so errors can point at it."""

    key: str
    value: str
    line: int


@dataclass(frozen=True)
class Dramsim3Import:
    """The imported configuration plus what could not be carried over exactly.

    ``notes`` explains every ignored key or approximated policy; ``extras`` records DRAMsim3
    settings with no field in our configuration (``queue_structure``, ``cmd_queue_size``,
    ``refresh_policy``).
    """

    config: MemoryConfig
    notes: tuple[str, ...] = ()
    extras: dict[str, Any] = field(default_factory=dict)


def parse_ini(text: str, source: str = "<ini>") -> dict[str, dict[str, Entry]]:
    """Split INI text into ``{section: {lowercase key: Entry}}`` the way DRAMsim3's reader does.

    Section and key names are lower-cased; ``;`` starts a comment anywhere (DRAMsim3's files write
    ``power_epoch_period = 100000; ...`` without a space) and ``#`` starts a whole-line comment.
    """
    sections: dict[str, dict[str, Entry]] = {}
    current: str | None = None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(";", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            if not line.endswith("]") or len(line) < 3:
                raise ConfigError("section", f"{source}:{lineno}: malformed section header "
                                  f"{clip_repr(raw)}")
            current = line[1:-1].strip().lower()
            sections.setdefault(current, {})
            continue
        if "=" not in line:
            where = current or "ini"
            raise ConfigError(where, f"{source}:{lineno}: expected `key = value`, got "
                              f"{clip_repr(raw.strip())}")
        key, value = (part.strip() for part in line.split("=", 1))
        if current is None:
            raise ConfigError(key, f"{source}:{lineno}: key outside any [section]")
        entries = sections[current]
        if key.lower() in entries:
            first = entries[key.lower()]
            raise ConfigError(f"{current}.{key}",
                              f"{source}:{lineno}: given twice (first on line {first.line})")
        entries[key.lower()] = Entry(key, value, lineno)
    return sections


class _Section:
    """Typed access to one section's entries; every error names ``section.key`` and the line."""

    def __init__(self, name: str, entries: dict[str, Entry], source: str) -> None:
        self.name = name
        self.entries = entries
        self.source = source

    def error(self, key: str, message: str) -> ConfigError:
        entry = self.entries.get(key.lower())
        where = f"{self.source}:{entry.line}" if entry else self.source
        return ConfigError(f"{self.name}.{key}", f"{message} ({where})")

    def has(self, key: str) -> bool:
        return key.lower() in self.entries

    def raw(self, key: str, default: str | None = None) -> str:
        entry = self.entries.get(key.lower())
        if entry is not None:
            if not entry.value:
                raise self.error(key, "empty value")
            return entry.value
        if default is None:
            raise self.error(key, f"missing required value in [{self.name}]")
        return default

    def int(self, key: str, default: str | None = None) -> int:
        value = self.raw(key, default)
        if not _INT.fullmatch(value) or len(value) > 12:
            raise self.error(key, f"expected an integer (at most 12 digits), got "
                             f"{clip_repr(value)}")
        return int(value)

    def float(self, key: str, default: str | None = None) -> float:
        value = self.raw(key, default)
        if not _FLOAT.fullmatch(value):
            raise self.error(key, f"expected a number, got {clip_repr(value)}")
        if not math.isfinite(float(value)):
            raise self.error(key, f"must be a finite number, got {clip_repr(value)}")
        return float(value)

    def bool(self, key: str, default: str | None = None) -> bool:
        value = self.raw(key, default)
        if value.lower() not in _BOOLS:
            raise self.error(key, f"expected true or false, got {clip_repr(value)}")
        return _BOOLS[value.lower()]

    def protocol(self) -> None:
        """Only DDR4 is modelled; say so before anything else about the file."""
        protocol = self.raw("protocol")
        if protocol.upper() != "DDR4":
            raise self.error("protocol",
                             f"only DDR4 configurations can be imported, got "
                             f"{clip_repr(protocol)}")

    def choice(self, key: str, choices: tuple[str, ...], default: str | None = None) -> str:
        value = self.raw(key, default)
        if value.upper() not in choices:
            raise self.error(key, f"unknown value {clip_repr(value)}; expected one of "
                             f"{', '.join(choices)}")
        return value.upper()


def _check_keys(sections: dict[str, dict[str, Entry]], source: str) -> list[str]:
    """Reject unknown sections and keys (typos); return notes for the keys deliberately ignored."""
    notes: list[str] = []
    for sec, entries in sections.items():
        if sec in IGNORED_SECTIONS:
            if entries:
                notes.append(f"[{sec}] ignored: DRAMsim3 output/thermal settings, no effect here")
            continue
        if sec not in _KNOWN:
            known = ", ".join(f"[{s}]" for s in (*_KNOWN, *IGNORED_SECTIONS))
            raise ConfigError(clip(sec), f"unknown section [{clip(sec)}] in {source}; known "
                              f"sections: {known}")
        canonical = _CANONICAL[sec]
        for low, entry in entries.items():
            if low not in canonical:
                raise ConfigError(
                    f"{sec}.{clip(entry.key)}",
                    f"unknown key in [{sec}] ({source}:{entry.line}); known keys: "
                    f"{', '.join(_KNOWN[sec])}",
                )
            reason = IGNORED_KEYS[sec].get(canonical[low])
            if reason:
                notes.append(f"{sec}.{canonical[low]} ignored: {reason}")
    return notes


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _organization(ds: _Section, system: _Section) -> dict[str, int]:
    ds.protocol()
    if ds.has("bankgroup_enable") and not ds.bool("bankgroup_enable"):
        raise ds.error("bankgroup_enable", "DDR4 always has bank groups; remove this key or set it "
                       "to true")
    org = {field_: ds.int(key) for key, field_ in STRUCTURE_KEYS.items()}
    for key, field_ in STRUCTURE_KEYS.items():
        if org[field_] < 1:
            raise ds.error(key, f"must be >= 1, got {org[field_]}")
    for key in ("bankgroups", "banks_per_group", "rows", "columns"):
        if not _is_pow2(org[key]):
            raise ds.error(key, f"must be a power of two for address mapping, got {org[key]}")
    org["channels"] = system.int("channels", SYSTEM_DEFAULTS["channels"])
    if not _is_pow2(org["channels"]):
        raise system.error("channels", f"must be a power of two for address mapping, got "
                           f"{org['channels']}")
    org["bus_width"] = system.int("bus_width", SYSTEM_DEFAULTS["bus_width"])
    if org["device_width"] not in (4, 8, 16):
        raise ds.error("device_width", f"DDR4 devices are x4, x8 or x16, got {org['device_width']}")
    if org["bus_width"] < 1 or org["bus_width"] % org["device_width"]:
        raise system.error("bus_width", f"{org['bus_width']} is not a positive multiple of "
                           f"device_width {org['device_width']}")
    org["ranks"] = _ranks(org, system)
    return org


def _ranks(org: dict[str, int], system: _Section) -> int:
    """Ranks per channel from DRAMsim3's ``channel_size`` (MB per channel)."""
    channel_mb = system.int("channel_size")
    banks = org["bankgroups"] * org["banks_per_group"]
    device_bits = banks * org["rows"] * org["columns"] * org["device_width"]
    devices = org["bus_width"] // org["device_width"]
    rank_mb = device_bits * devices / 8 / 2**20
    ranks = channel_mb / rank_mb
    if ranks != int(ranks) or not _is_pow2(int(ranks)):
        raise system.error(
            "channel_size",
            f"{channel_mb} MB per channel is not a power-of-two number of {rank_mb:g} MB ranks "
            f"({devices} x{org['device_width']} devices of {device_bits // 2**20} Mb); "
            f"use {rank_mb:g} x 1, 2, 4... MB",
        )
    return int(ranks)


def _timing(tm: _Section) -> dict[str, Any]:
    tck = tm.float("tCK")
    if tck <= 0:
        raise tm.error("tCK", f"must be > 0 ns, got {tck}")
    timing: dict[str, Any] = {"tCK_ns": tck}
    for key in TIMING_KEYS:
        timing[key] = tm.int(key)
    for key in OPTIONAL_TIMING_KEYS:
        if tm.has(key):
            timing[key] = tm.int(key)
    timing.setdefault("tRC", timing["tRAS"] + timing["tRP"])
    return timing


def _power(pw: _Section) -> dict[str, float]:
    power: dict[str, float] = {}
    for key, ours in POWER_KEYS.items():
        if pw.has(key):
            value = pw.float(key)
            if value < 0:
                raise pw.error(key, f"must be >= 0, got {value}")
            power[ours] = value
    return power


def _controller(system: _Section, notes: list[str], extras: dict[str, Any]) -> dict[str, Any]:
    mapping = system.raw("address_mapping", SYSTEM_DEFAULTS["address_mapping"]).lower()
    fields_ = [mapping[i:i + 2] for i in range(0, len(mapping), 2)]
    if len(mapping) != 12 or sorted(fields_) != sorted(MAPPING_FIELDS):
        raise system.error("address_mapping", f"{clip_repr(mapping)} must name each of ro, ch, "
                           "ra, ba, bg, "
                           "co exactly once, most significant first, e.g. 'rochrababgco'")
    row_policy = system.choice("row_buf_policy", tuple(ROW_BUFFER_POLICIES),
                               SYSTEM_DEFAULTS["row_buf_policy"])
    queue = system.choice("queue_structure", QUEUE_STRUCTURES, SYSTEM_DEFAULTS["queue_structure"])
    refresh = system.choice("refresh_policy", REFRESH_POLICIES, SYSTEM_DEFAULTS["refresh_policy"])
    cmd_queue = system.int("cmd_queue_size", SYSTEM_DEFAULTS["cmd_queue_size"])
    depth = system.int("trans_queue_size", SYSTEM_DEFAULTS["trans_queue_size"])
    for key, value in (("cmd_queue_size", cmd_queue), ("trans_queue_size", depth)):
        if value < 1:
            raise system.error(key, f"must be >= 1, got {value}")
    if depth < 2:
        raise system.error("trans_queue_size", "must be >= 2 (the write queue needs a low and a "
                           "high watermark)")
    extras.update(queue_structure=queue, cmd_queue_size=cmd_queue, refresh_policy=refresh)
    notes.append(f"system.queue_structure = {queue} and cmd_queue_size = {cmd_queue} recorded; "
                 "our controller schedules from its read/write transaction queues")
    if refresh == "BANK_LEVEL_STAGGERED":
        message = ("system.refresh_policy = BANK_LEVEL_STAGGERED (per-bank refresh) is not "
                   "modelled; simulating all-bank refresh (REF every tREFI per rank) instead")
        notes.append(message)
        warnings.warn(message, UserWarning, stacklevel=3)
    else:
        notes.append(f"system.refresh_policy = {refresh} -> all-bank refresh, one REF per tREFI "
                     "per rank")
    high = max(1, depth * 3 // 4)
    low = min(depth // 4, high - 1)
    return {
        "page_policy": ROW_BUFFER_POLICIES[row_policy],
        "read_queue_depth": depth,
        "write_queue_depth": depth,
        "write_high_watermark": high,
        "write_low_watermark": low,
        "refresh": True,
        "address_mapping": mapping,
    }


#: Our validator's field names -> the DRAMsim3 key a user must edit to fix the problem.
_FIELD_TO_INI = {
    **{f"org.{ours}": f"dram_structure.{key}" for key, ours in STRUCTURE_KEYS.items()},
    "org.channels": "system.channels",
    "org.bus_width": "system.bus_width",
    "org.ranks": "system.channel_size",
    "timing.tCK_ns": "timing.tCK",
    **{f"power.{ours}": f"power.{key}" for key, ours in POWER_KEYS.items()},
    "controller.address_mapping": "system.address_mapping",
    "controller.page_policy": "system.row_buf_policy",
    "controller.read_queue_depth": "system.trans_queue_size",
    "controller.write_queue_depth": "system.trans_queue_size",
    "controller.write_high_watermark": "system.trans_queue_size",
}


def read_dramsim3_ini(path: str | Path) -> Dramsim3Import:
    """Import a DRAMsim3 DDR4 ``.ini`` file, with notes on what was ignored or approximated."""
    from gradpimsim.errors import InputError
    from gradpimsim.io_safety import read_input_text

    path = Path(path)
    if not path.exists():
        raise ConfigError("config", f"file not found: {clip(path, 300)}")
    try:
        text = read_input_text(path, limit=16 * 2**20)
    except InputError as exc:
        raise ConfigError("config", str(exc)) from None
    source = str(path)
    sections = parse_ini(text, source)
    # The protocol first: another protocol's file would otherwise fail on its own keys.
    _Section("dram_structure", sections.get("dram_structure", {}), source).protocol()
    notes = _check_keys(sections, source)
    for required in ("dram_structure", "timing", "system"):
        if required not in sections:
            raise ConfigError(required, f"missing section [{required}] in {source}")
    ds, tm, system, pw = (_Section(s, sections.get(s, {}), source)
                          for s in ("dram_structure", "timing", "system", "power"))
    extras: dict[str, Any] = {}
    org = _organization(ds, system)
    timing = _timing(tm)
    ctrl = _controller(system, notes, extras)
    power = _power(pw)
    if not tm.has("tRC"):
        notes.append("timing.tRC not given: tRAS + tRP as in DRAMsim3")
    try:
        cfg = MemoryConfig(
            name=path.stem,
            org=Organization(**org),
            timing=Timing(**timing),
            controller=dataclasses.replace(ControllerConfig(), **ctrl),
            power=power,
        )
    except ConfigError as exc:
        raise ConfigError(_FIELD_TO_INI.get(exc.field, exc.field),
                          f"{exc.message} ({source})") from None
    for note in notes:
        log.info("%s: %s", source, note)
    return Dramsim3Import(cfg, tuple(notes), extras)


def load_dramsim3_ini(path: str | Path) -> MemoryConfig:
    """The :class:`MemoryConfig` of a DRAMsim3 DDR4 ``.ini`` file; see :func:`read_dramsim3_ini`."""
    return read_dramsim3_ini(path).config
