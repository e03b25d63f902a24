"""GradPIM unit knobs: the working assumptions of ``docs/gradpim.md`` as data.

Timing knobs left as ``None`` follow the DDR4 rule they mirror (documented per field); the
controller and the checker each resolve them on their own, from these raw values and the DDR4
timing, so that a wrong resolution in one cannot hide in the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gradpimsim.config.model import ConfigError

PIM_DTYPES = ("fp32", "fp16", "bf16", "int8")


@dataclass(frozen=True)
class PimConfig:
    """One GradPIM unit per bank group per rank (the rank's chips in lockstep: 64 B a column op)."""

    vector_registers: int = 8
    scalar_registers: int = 8
    #: PIM_OP fixed latency: a PIM_WR on the same unit waits this long after the last PIM_OP.
    op_latency: int = 4
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
    #: Energy knobs (pJ) for the energy model.
    energy_pj: dict[str, float] = field(
        default_factory=lambda: {"column_access": 0.0, "op": 0.0}
    )

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
        for d in self.dtypes:
            if d not in PIM_DTYPES:
                raise ConfigError("pim.dtypes",
                                  f"unknown dtype {d!r}; known: {', '.join(PIM_DTYPES)}")
