"""Memory-system configuration as validated, immutable data.

Every number the simulator uses comes from here: organization, timing in DRAM clock cycles, the
controller's policies and (optionally) datasheet currents.  Validation happens once, at load time,
and every error names the field and what would fix it, because users edit these files by hand.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from gradpimsim.errors import clip, clip_repr

SCHEDULERS = ("fr-fcfs", "fcfs")
PAGE_POLICIES = ("open", "closed", "adaptive")
MAPPING_FIELDS = ("ro", "ch", "ra", "ba", "bg", "co")


class ConfigError(ValueError):
    """A configuration value is missing, malformed or inconsistent.

    ``field`` is the dotted name of the offending entry (``timing.tRAS``) so tools can point at it.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


@dataclass(frozen=True)
class Organization:
    """Geometry of one channel's DRAM and of the memory system."""

    channels: int = 1
    ranks: int = 1
    bankgroups: int = 4
    banks_per_group: int = 4
    rows: int = 65536
    columns: int = 1024
    device_width: int = 8
    bus_width: int = 64
    burst_length: int = 8

    @property
    def banks_per_rank(self) -> int:
        return self.bankgroups * self.banks_per_group

    @property
    def banks_per_channel(self) -> int:
        return self.ranks * self.banks_per_rank

    @property
    def devices_per_rank(self) -> int:
        return self.bus_width // self.device_width

    @property
    def burst_bytes(self) -> int:
        """Bytes moved by one column command across the rank (64 for a 64-bit bus, BL8)."""
        return self.bus_width * self.burst_length // 8

    @property
    def bursts_per_row(self) -> int:
        return self.columns // self.burst_length

    @property
    def row_bytes(self) -> int:
        """Bytes of one row across the rank (the rank-level page)."""
        return self.columns * self.bus_width // 8

    @property
    def channel_bytes(self) -> int:
        return self.ranks * self.banks_per_rank * self.rows * self.row_bytes

    @property
    def total_bytes(self) -> int:
        return self.channels * self.channel_bytes

    @property
    def device_bits(self) -> int:
        return self.banks_per_rank * self.rows * self.columns * self.device_width


@dataclass(frozen=True)
class Timing:
    """DDR4 timing parameters in DRAM clock cycles (nCK); ``tCK_ns`` is the clock period."""

    tCK_ns: float
    CL: int
    CWL: int
    AL: int
    tRCD: int
    tRP: int
    tRAS: int
    tRC: int
    tRRD_S: int
    tRRD_L: int
    tFAW: int
    tCCD_S: int
    tCCD_L: int
    tWTR_S: int
    tWTR_L: int
    tRTP: int
    tWR: int
    tRFC: int
    tREFI: int
    tXS: int
    tCKESR: int
    tXP: int
    tCKE: int
    tRTRS: int
    tRPRE: int
    tWPRE: int
    tMRD: int = 8
    tMOD: int = 24

    @property
    def RL(self) -> int:
        """Read latency: command to first data beat."""
        return self.AL + self.CL

    @property
    def WL(self) -> int:
        """Write latency: command to first data beat."""
        return self.AL + self.CWL


@dataclass(frozen=True)
class ControllerConfig:
    """Per-channel memory-controller policies (DRAMsim3/DRAMSys vocabulary)."""

    scheduler: str = "fr-fcfs"
    page_policy: str = "open"
    read_queue_depth: int = 32
    write_queue_depth: int = 32
    write_high_watermark: int = 24
    write_low_watermark: int = 8
    starvation_cap: int = 16
    adaptive_idle_cycles: int = 64
    refresh: bool = True
    max_postponed_refreshes: int = 8
    address_mapping: str = "rochrababgco"
    xor_bank_hash: bool = False


@dataclass(frozen=True)
class MemoryConfig:
    """Everything the memory system needs: name, geometry, timing, controller and power."""

    name: str
    org: Organization
    timing: Timing
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    power: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate(self)

    @property
    def burst_cycles(self) -> int:
        """Data-bus cycles of one burst (BL/2 at double data rate)."""
        return self.org.burst_length // 2

    @property
    def peak_bandwidth_gbs(self) -> float:
        """Peak data rate of one channel in GB/s (10^9 bytes per second)."""
        return self.org.burst_bytes / self.burst_cycles / self.timing.tCK_ns

    def replace(self, **sections: Any) -> MemoryConfig:
        """A copy with whole sections or top-level fields replaced (validated again)."""
        return dataclasses.replace(self, **sections)

    def with_overrides(self, **values: Any) -> MemoryConfig:
        """A copy with individual fields changed, by name, in whichever section owns them."""
        org, timing, ctrl = {}, {}, {}
        for key, value in values.items():
            if key in Organization.__dataclass_fields__:
                org[key] = value
            elif key in Timing.__dataclass_fields__:
                timing[key] = value
            elif key in ControllerConfig.__dataclass_fields__:
                ctrl[key] = value
            else:
                raise ConfigError(key, "unknown field; see `gradpimsim presets --fields`")
        return dataclasses.replace(
            self,
            org=dataclasses.replace(self.org, **org),
            timing=dataclasses.replace(self.timing, **timing),
            controller=dataclasses.replace(self.controller, **ctrl),
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: Accepted range of every integer field: (minimum, maximum).  The maxima are far beyond any DDR4
#: system yet keep a typo (``channels = 16384``, ``tREFI = 1e9``) from reaching the simulator.
INT_RANGES: dict[str, tuple[int, int]] = {
    "org.channels": (1, 1024), "org.ranks": (1, 64), "org.bankgroups": (1, 16),
    "org.banks_per_group": (1, 16), "org.rows": (1, 1 << 22), "org.columns": (1, 1 << 16),
    "org.bus_width": (1, 1024), "timing.AL": (0, 1 << 24),
}
#: Default ranges per section (timing in cycles; controller depths and counts).
SECTION_INT_RANGES = {"org": (1, 1 << 24), "timing": (1, 1 << 24), "controller": (0, 1 << 24)}
#: Clock period accepted, in ns (DDR4 runs at 0.625-1.6 ns).
TCK_RANGE_NS = (0.1, 100.0)


def _type_name(f: dataclasses.Field[Any]) -> str:
    return f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))


def _check_types(section: str, obj: Any) -> None:
    """Every field has its declared type (bool is not an int, a string is not a bool) and, for
    integers, a value in range; errors name the field and what is accepted."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        where = f"{section}.{f.name}"
        kind = _type_name(f)
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(where, f"must be an integer number of cycles/units, got "
                                  f"{_shown(value)}")
            low, high = INT_RANGES.get(where, SECTION_INT_RANGES[section])
            if not low <= value <= high:
                raise ConfigError(where, f"must be between {low:,} and {high:,}, got "
                                  f"{_shown(value)}")
        elif kind == "bool":
            if not isinstance(value, bool):
                raise ConfigError(where, f"must be true or false (a TOML boolean, unquoted), "
                                  f"got {_shown(value)}")
        elif kind == "str":
            if not isinstance(value, str):
                raise ConfigError(where, f"must be a string, got {_shown(value)}")
        elif kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(where, f"must be a number, got {_shown(value)}")
            if not math.isfinite(value):
                raise ConfigError(where, f"must be a finite number, got {_shown(value)}")


def _shown(value: Any) -> str:
    return clip_repr(value) if isinstance(value, str) else clip(repr(value))


def _check(cond: bool, fld: str, message: str) -> None:
    if not cond:
        raise ConfigError(fld, message)


def validate(cfg: MemoryConfig) -> None:
    """Reject inconsistent configurations with an error naming the field and the fix."""
    o, t, c = cfg.org, cfg.timing, cfg.controller
    _check(isinstance(cfg.name, str), "name", f"must be a string, got {_shown(cfg.name)}")
    _check_types("org", o)
    _check_types("timing", t)
    _check_types("controller", c)
    for name in ("channels", "ranks", "bankgroups", "banks_per_group", "rows", "columns"):
        _check(
            _is_pow2(getattr(o, name)),
            f"org.{name}",
            f"must be a power of two for address mapping, got {getattr(o, name)}",
        )
    _check(
        o.device_width in (4, 8, 16),
        "org.device_width",
        f"DDR4 devices are x4, x8 or x16, got x{o.device_width}",
    )
    _check(
        o.bus_width % o.device_width == 0,
        "org.bus_width",
        f"{o.bus_width} is not a multiple of the device width {o.device_width}",
    )
    _check(
        o.burst_length in (4, 8),
        "org.burst_length",
        f"DDR4 BL is 8 (or 4 chopped), got {o.burst_length}",
    )
    _check(o.columns % o.burst_length == 0, "org.columns", "must be a multiple of burst_length")
    _check(
        o.device_width != 16 or o.bankgroups == 2,
        "org.bankgroups",
        "x16 DDR4 dies have 2 bank groups; set bankgroups = 2",
    )
    low, high = TCK_RANGE_NS
    _check(low <= t.tCK_ns <= high, "timing.tCK_ns",
           f"must be between {low} and {high} ns (DDR4: 0.625 to 1.6), got {t.tCK_ns!r}")
    burst = o.burst_length // 2
    _check(
        t.tRAS >= t.tRCD,
        "timing.tRAS",
        f"tRAS ({t.tRAS}) < tRCD ({t.tRCD}): a row must stay open "
        "at least until its first column command; raise tRAS or lower tRCD",
    )
    _check(
        t.tRC >= t.tRAS + t.tRP,
        "timing.tRC",
        f"tRC ({t.tRC}) < tRAS + tRP ({t.tRAS + t.tRP}); set tRC = tRAS + tRP",
    )
    _check(t.tRRD_L >= t.tRRD_S, "timing.tRRD_L", f"tRRD_L ({t.tRRD_L}) < tRRD_S ({t.tRRD_S})")
    _check(t.tCCD_L >= t.tCCD_S, "timing.tCCD_L", f"tCCD_L ({t.tCCD_L}) < tCCD_S ({t.tCCD_S})")
    _check(t.tWTR_L >= t.tWTR_S, "timing.tWTR_L", f"tWTR_L ({t.tWTR_L}) < tWTR_S ({t.tWTR_S})")
    _check(
        t.tCCD_S >= burst,
        "timing.tCCD_S",
        f"tCCD_S ({t.tCCD_S}) < BL/2 ({burst}): bursts would overlap on the data bus",
    )
    _check(t.tFAW >= t.tRRD_S, "timing.tFAW", f"tFAW ({t.tFAW}) < tRRD_S ({t.tRRD_S})")
    _check(t.tREFI > t.tRFC, "timing.tREFI", f"tREFI ({t.tREFI}) must exceed tRFC ({t.tRFC})")
    _check(t.tXS >= t.tRFC, "timing.tXS", f"tXS ({t.tXS}) < tRFC ({t.tRFC}); tXS = tRFC + 10 ns")
    _check(
        t.CL + burst + 2 > t.CWL, "timing.CWL", f"CWL ({t.CWL}) too large relative to CL ({t.CL})"
    )
    _check(t.tWPRE in (1, 2), "timing.tWPRE", "write preamble is 1 or 2 cycles")
    _check(t.tRPRE in (1, 2), "timing.tRPRE", "read preamble is 1 or 2 cycles")
    _check(
        c.scheduler in SCHEDULERS,
        "controller.scheduler",
        f"unknown scheduler {c.scheduler!r}; choose one of {', '.join(SCHEDULERS)}",
    )
    _check(
        c.page_policy in PAGE_POLICIES,
        "controller.page_policy",
        f"unknown page policy {c.page_policy!r}; choose one of {', '.join(PAGE_POLICIES)}",
    )
    _check(c.read_queue_depth >= 1, "controller.read_queue_depth", "must be >= 1")
    _check(c.write_queue_depth >= 1, "controller.write_queue_depth", "must be >= 1")
    _check(
        c.write_low_watermark < c.write_high_watermark <= c.write_queue_depth,
        "controller.write_high_watermark",
        f"need write_low_watermark ({c.write_low_watermark}) < write_high_watermark "
        f"({c.write_high_watermark}) <= write_queue_depth ({c.write_queue_depth})",
    )
    _check(c.starvation_cap >= 1, "controller.starvation_cap", "must be >= 1")
    _check(
        1 <= c.max_postponed_refreshes <= 8,
        "controller.max_postponed_refreshes",
        f"must be 1 to 8, got {c.max_postponed_refreshes}: JEDEC allows at most 8 postponed "
        "REFs, and a busy rank owes one while its rows close before the REF (1 refreshes on "
        "time)",
    )
    _check_mapping(c.address_mapping)
    _check(isinstance(cfg.power, dict), "power", "must be a table of name = number entries")
    for key, value in cfg.power.items():
        _check(
            isinstance(key, str) and not isinstance(value, bool)
            and isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value <= 1e6,
            f"power.{key}",
            f"must be a finite number between 0 and 1e6 (mA, V or pJ/bit), got {_shown(value)}",
        )


def _check_mapping(mapping: str) -> None:
    fields_ = [mapping[i : i + 2] for i in range(0, len(mapping), 2)]
    _check(
        len(mapping) == 12 and sorted(fields_) == sorted(MAPPING_FIELDS),
        "controller.address_mapping",
        f"{mapping!r} must name each of ro, ch, ra, ba, bg, co exactly once, most significant "
        "first, e.g. 'rochrababgco'",
    )
