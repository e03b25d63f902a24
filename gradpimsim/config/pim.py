"""GradPIM unit knobs: the working assumptions of ``docs/gradpim.md`` as data.

Timing knobs left as ``None`` follow the DDR4 rule they mirror (documented per field).  The
simulator applies those defaults in one place, :meth:`PimConfig.resolved`; the protocol checker
resolves them on its own (``checker/rules.py``), from these raw values and the DDR4 timing, so
that a wrong resolution in one cannot hide in the other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from gradpimsim.config.model import ConfigError, Timing

PIM_DTYPES = ("fp32", "fp16", "bf16", "int8")

#: Default PIM energy per command (pJ, rank-wide), see ``docs/energy.md`` for the derivation:
#: ``column_access`` = mean of the DDR4-2400 x8 RD and WR burst energies ((IDD4R|IDD4W - IDD3N)
#: x VDD x BL/2 x tCK x 8 devices = 2943 and 2559 pJ), which exclude the I/O termination;
#: ``op`` = 16 fp32 lanes x (2 multiplies + 1 add) at 45 nm (3.7 + 3.7 + 0.9 pJ, Horowitz ISSCC
#: 2014) = 133 pJ, x3 for logic in a DRAM process (an assumption); ``set`` = one command on the
#: command/address bus plus a 32-bit register write (an assumption).
PIM_ENERGY_PJ: dict[str, float] = {"column_access": 2750.0, "op": 400.0, "set": 50.0}


@dataclass(frozen=True)
class PimTiming:
    """The PIM timing knobs in DRAM cycles with every default applied (see :class:`PimConfig`
    for what each one means and which DDR4 rule it mirrors)."""

    col_to_col: int
    write_to_read: int
    read_to_precharge: int
    write_recovery: int
    set_to_set: int
    set_to_op: int
    op_latency: int
    sqrt_div_latency: int
    read_to_op: int


@dataclass(frozen=True)
class PimConfig:
    """One GradPIM unit per bank group per rank (the rank's chips in lockstep: 64 B a column op)."""

    vector_registers: int = 8
    scalar_registers: int = 8
    #: PIM_OP fixed latency: a PIM_WR on the same unit waits this long after the last PIM_OP.
    op_latency: int = 4
    #: PIM_RD -> PIM_OP on the same unit: the read's data reaches the unit's register this many
    #: cycles after the PIM_RD issues, so the unit's next PIM_OP waits that long after its
    #: latest PIM_RD (0: the data is taken to be in the register when the next command may
    #: issue, the model before this knob).
    read_to_op: int = 0
    #: Column-to-column spacing of PIM_RD/PIM_WR with any column command in the same bank group
    #: (``None``: tCCD_L).  Different bank groups are limited only by the command bus.
    col_to_col: int | None = None
    #: PIM_WR -> RD/PIM_RD in the same bank group (``None``: BL/2 + tWTR_L; the internal write
    #: needs no CWL because the data comes from the unit beside the bank-group I/O).
    write_to_read: int | None = None
    #: PIM_RD -> PRE of the bank (``None``: AL + tRTP, as RD).
    read_to_precharge: int | None = None
    #: PIM_WR -> PRE of the bank (``None``: BL/2 + tWR, write recovery without CWL).
    write_recovery: int | None = None
    #: PIM_SET -> PIM_SET to the rank (``None``: tMRD); PIM_SET -> PIM_OP (``None``: tMOD).
    set_to_set: int | None = None
    set_to_op: int | None = None
    #: Datatypes the datapath converts between.
    dtypes: tuple[str, ...] = PIM_DTYPES
    #: Square root and division (needed by Adam/AdamW): an extension beyond the paper's unit.
    has_sqrt_div: bool = False
    sqrt_div_latency: int = 16
    #: Energy knobs (pJ, whole rank-wide unit) for the energy model: ``column_access`` per
    #: PIM_RD/PIM_WR (one 64 B internal column access, no I/O), ``op`` per PIM_OP (a 16-lane
    #: fp32 vector operation), ``set`` per PIM_SET.  Defaults and their sources: ``docs/energy.md``.
    energy_pj: dict[str, float] = field(default_factory=lambda: dict(PIM_ENERGY_PJ))

    def __post_init__(self) -> None:
        for name in ("vector_registers", "scalar_registers", "op_latency", "sqrt_div_latency"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"pim.{name}", f"must be an integer >= 1, got {value!r}")
        for name in ("col_to_col", "write_to_read", "read_to_precharge", "write_recovery",
                     "set_to_set", "set_to_op"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise ConfigError(f"pim.{name}", f"must be an integer >= 1 or unset, got {value!r}")
        value = self.read_to_op
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError("pim.read_to_op",
                              f"must be an integer >= 0 (cycles from a PIM_RD to the unit's next "
                              f"PIM_OP, 0 for none), got {value!r}; e.g. read_to_op = 4")
        for key, value in self.energy_pj.items():
            if key not in PIM_ENERGY_PJ:
                raise ConfigError(f"pim.energy_pj.{key}",
                                  f"unknown energy knob; known: {', '.join(PIM_ENERGY_PJ)}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"pim.energy_pj.{key}",
                                  f"must be a non-negative number of pJ, got {value!r}")
        for d in self.dtypes:
            if d not in PIM_DTYPES:
                raise ConfigError("pim.dtypes",
                                  f"unknown dtype {d!r}; known: {', '.join(PIM_DTYPES)}")

    def resolved(self, timing: Timing, burst_cycles: int) -> PimTiming:
        """Every timing knob in cycles, ``None`` replaced by the DDR4 rule it mirrors, for a
        device with ``timing`` and bursts of ``burst_cycles`` (BL/2) on the data bus."""
        t = timing

        def knob(value: int | None, default: int) -> int:
            return value if value is not None else default

        return PimTiming(
            col_to_col=knob(self.col_to_col, t.tCCD_L),
            write_to_read=knob(self.write_to_read, burst_cycles + t.tWTR_L),
            read_to_precharge=knob(self.read_to_precharge, t.AL + t.tRTP),
            write_recovery=knob(self.write_recovery, burst_cycles + t.tWR),
            set_to_set=knob(self.set_to_set, t.tMRD),
            set_to_op=knob(self.set_to_op, t.tMOD),
            op_latency=self.op_latency,
            sqrt_div_latency=self.sqrt_div_latency,
            read_to_op=self.read_to_op,
        )


#: Keys of a ``[pim]`` table: every :class:`PimConfig` field (``energy_pj`` a sub-table).
PIM_KEYS: tuple[str, ...] = tuple(PimConfig.__dataclass_fields__)


def pim_from_dict(values: object, *, source: str = "<dict>") -> PimConfig:
    """A :class:`PimConfig` from a ``[pim]`` table (the memory TOML's, or a dict): unknown keys
    and wrong types stop with an error naming ``pim.<key>`` and the fix."""
    if not isinstance(values, dict):
        raise ConfigError("pim", f"must be a table of key = value entries in {source}")
    kw: dict[str, object] = {}
    for key, value in values.items():
        if key not in PIM_KEYS:
            raise ConfigError(f"pim.{key}", f"unknown key in {source}; known keys: "
                                            f"{', '.join(PIM_KEYS)}")
        if key == "dtypes":
            if not isinstance(value, list) or not all(isinstance(d, str) for d in value):
                raise ConfigError("pim.dtypes", 'must be a list of names, e.g. ["fp32", "fp16"]')
            value = tuple(value)
        elif key == "energy_pj":
            if not isinstance(value, dict):
                raise ConfigError("pim.energy_pj", "must be a table, e.g. "
                                                   "[pim.energy_pj] op = 400.0")
            value = {**PIM_ENERGY_PJ, **value}
        elif key == "has_sqrt_div" and not isinstance(value, bool):
            raise ConfigError("pim.has_sqrt_div", f"must be true or false, got {value!r}")
        kw[key] = value
    return PimConfig(**kw)  # type: ignore[arg-type]


def pim_knobs(pim: PimConfig) -> dict[str, object]:
    """The knobs as plain data (for results.json): what a run's units were."""
    return {k: (list(v) if isinstance(v, tuple) else dict(v) if isinstance(v, dict) else v)
            for k, v in ((k, getattr(pim, k)) for k in PIM_KEYS)}


def with_knobs(base: PimConfig, knobs: Mapping[str, object], *, source: str) -> PimConfig:
    """``base`` with ``knobs`` set over it, knob by knob (validated as a ``[pim]`` table
    naming ``source``); ``base`` itself when there are none."""
    if not knobs:
        return base
    return pim_from_dict({**pim_knobs(base), **knobs}, source=source)


def parse_knob_options(items: Iterable[str]) -> dict[str, object]:
    """``--pim-knob KEY=VALUE`` options as a dict, each value read as a TOML value (numbers,
    true/false, ["lists"]); the keys are checked when the knobs are applied (:func:`with_knobs`)."""
    import tomllib

    knobs: dict[str, object] = {}
    for item in items:
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ConfigError("pim_knobs", f"--pim-knob {item!r}: expected KEY=VALUE, "
                                           "e.g. --pim-knob vector_registers=16")
        try:
            knobs[key] = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            raise ConfigError(f"pim.{key}", f"--pim-knob {item!r}: {text!r} is not a number, "
                                            "true/false or a quoted string") from None
    return knobs
