"""DRAM energy from datasheet currents, command counts and background time (DRAMPower style).

Per device, with currents in mA, voltages in V and times in cycles of tCK ns (mA x V x ns = pJ):

- ACT/PRE pair: ``(IDD0 * tRC - (IDD3N * tRAS + IDD2N * tRP)) * VDD * tCK`` plus the wordline
  pump ``IPP0 * tRC * VPP * tCK`` when IPP0 is given (Micron's DDR4 power calculation);
- RD / WR burst: ``(IDD4R - IDD3N) * VDD * BL/2 * tCK`` and ``(IDD4W - IDD3N) * ...``;
- REF: ``(IDD5B - IDD3N) * VDD * tRFC * tCK``;
- background: ``IDD3N * VDD * tCK`` per cycle with a bank open (active standby), ``IDD2N * VDD
  * tCK`` per cycle with all banks precharged.

- I/O (rank-wide, per burst on the external data bus): ``burst_bytes * 8 * io_read_pj_per_bit``
  per RD/RDA and ``... * io_write_pj_per_bit`` per WR/WRA (:class:`IoEnergy`; driver plus
  termination, defaults derived in ``docs/energy.md``);
- GradPIM (rank-wide unit): ``energy_pj["column_access"]`` per PIM_RD/PIM_WR (an internal
  column access, no I/O), ``energy_pj["op"]`` per PIM_OP, ``energy_pj["set"]`` per PIM_SET
  (:class:`~gradpimsim.config.pim.PimConfig`).

A rank is ``devices_per_rank`` devices in lockstep, so every term is multiplied by that.  The
currents come with each preset (``[power.x8]`` in the speed-bin TOML, from Micron's 8Gb data
sheet as DRAMsim3 ships them) or from a DRAMsim3 ``.ini``'s ``[power]``.  The same formulas as
DRAMsim3 and Micron's calculator are used so results compare side by side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gradpimsim.config import ConfigError, MemoryConfig
from gradpimsim.dram.commands import Cmd

if TYPE_CHECKING:
    from gradpimsim.config.pim import PimConfig
    from gradpimsim.controller.controller import ChannelController

REQUIRED = ("VDD", "IDD0", "IDD2N", "IDD3N", "IDD4R", "IDD4W", "IDD5B")

#: Components of :func:`energy_breakdown`, in report order (``total`` is their sum).
COMPONENTS = ("act", "read", "write", "refresh", "background", "io", "pim_column", "pim_op")
#: Command names :func:`energy_breakdown` accepts as count keys.
COUNT_KEYS = ("ACT", "PRE", "RD", "RDA", "WR", "WRA", "REF", "PIM_RD", "PIM_WR", "PIM_OP",
              "PIM_SET", "SRE", "SRX")


@dataclass(frozen=True)
class IoEnergy:
    """External data-bus I/O energy, pJ per data bit moved (output driver plus termination).

    Defaults (an assumption, derived in ``docs/energy.md`` the way Micron TN-40-07 and
    DRAMPower's I/O model do it, from a resistive POD model at DDR4-2400): a read costs the DRAM
    driver (34 ohm) into the controller's 60 ohm ODT, a write the controller's 40 ohm driver into
    the DRAM's 120 ohm RTT_WR, both to VDDQ = 1.2 V with half the bits low, plus the strobe
    (and DM/DBI for writes) pins.  A configuration overrides them with the ``[power]`` keys of
    the same name.
    """

    io_read_pj_per_bit: float = 4.0
    io_write_pj_per_bit: float = 2.6

    def __post_init__(self) -> None:
        for name in ("io_read_pj_per_bit", "io_write_pj_per_bit"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"power.{name}",
                                  f"must be a non-negative number of pJ per bit, got {value!r}")

    @classmethod
    def from_config(cls, cfg: MemoryConfig) -> IoEnergy:
        """The defaults, overridden by ``power.io_read_pj_per_bit`` / ``io_write_pj_per_bit``."""
        fields = ("io_read_pj_per_bit", "io_write_pj_per_bit")
        return cls(**{k: cfg.power[k] for k in fields if k in cfg.power})


def command_energies_pj(cfg: MemoryConfig) -> dict[str, float]:
    """Energy per command (whole rank, pJ) and per background cycle, from the config's currents."""
    p = cfg.power
    missing = [k for k in REQUIRED if k not in p]
    if missing:
        raise KeyError(f"power.{missing[0]}: missing datasheet current; energy needs "
                       f"{', '.join(REQUIRED)}")
    t = cfg.timing
    tck = t.tCK_ns
    vdd = p["VDD"]
    burst = cfg.org.burst_length // 2
    n = cfg.org.devices_per_rank
    act = (p["IDD0"] * t.tRC - (p["IDD3N"] * t.tRAS + p["IDD2N"] * t.tRP)) * vdd * tck
    if "IPP0" in p and "VPP" in p:
        act += p["IPP0"] * t.tRC * p["VPP"] * tck
    return {
        "act": n * act,
        "read": n * (p["IDD4R"] - p["IDD3N"]) * vdd * burst * tck,
        "write": n * (p["IDD4W"] - p["IDD3N"]) * vdd * burst * tck,
        "refresh": n * (p["IDD5B"] - p["IDD3N"]) * vdd * t.tRFC * tck,
        "active_cycle": n * p["IDD3N"] * vdd * tck,
        "precharged_cycle": n * p["IDD2N"] * vdd * tck,
    }


def io_energies_pj(cfg: MemoryConfig) -> dict[str, float]:
    """I/O energy (pJ) of one read and one write burst on the external bus (whole rank)."""
    io = IoEnergy.from_config(cfg)
    bits = cfg.org.burst_bytes * 8
    return {"read": bits * io.io_read_pj_per_bit, "write": bits * io.io_write_pj_per_bit}


def pim_energies_pj(pim: PimConfig | None = None) -> dict[str, float]:
    """PIM energy (pJ) per column access, PIM_OP and PIM_SET: defaults overridden by ``pim``."""
    from gradpimsim.config.pim import PIM_ENERGY_PJ

    return {**PIM_ENERGY_PJ, **(pim.energy_pj if pim is not None else {})}


def energy_breakdown(cfg: MemoryConfig, counts: Mapping[str, int], active_cycles: int,
                     precharged_cycles: int, *, pim: PimConfig | None = None) -> dict[str, float]:
    """Energy (nJ) per component for command ``counts`` and background time (pure function).

    ``counts`` maps command names (:data:`COUNT_KEYS`, or :class:`Cmd` members; missing ones
    are 0; SRE/SRX are accepted and cost nothing: self-refresh is not modelled) to how many were
    issued; ``active_cycles`` and ``precharged_cycles`` are rank-cycles with at least one bank
    open / all banks precharged, summed over ranks (and channels).  PRE costs nothing on its own:
    the ACT term is a whole ACT/PRE pair, as in DRAMPower and Micron's calculator.  PIM energy
    uses ``pim.energy_pj`` (the defaults when ``pim`` is None).  Components: :data:`COMPONENTS`
    plus ``total``.
    """
    c = dict.fromkeys(COUNT_KEYS, 0)
    for key, n in counts.items():
        name = key.name if isinstance(key, Cmd) else key
        if name not in c:
            raise KeyError(f"counts.{name}: unknown command; known: {', '.join(COUNT_KEYS)}")
        if n < 0:
            raise ValueError(f"counts.{name}: must be >= 0, got {n}")
        c[name] += int(n)
    if active_cycles < 0 or precharged_cycles < 0:
        raise ValueError("active_cycles and precharged_cycles must be >= 0")
    e = command_energies_pj(cfg)
    io = io_energies_pj(cfg)
    reads = c["RD"] + c["RDA"]
    writes = c["WR"] + c["WRA"]
    pim_columns = c["PIM_RD"] + c["PIM_WR"]
    pim_e = pim_energies_pj(pim) if pim_columns or c["PIM_OP"] or c["PIM_SET"] else {}
    parts_pj = {
        "act": c["ACT"] * e["act"],
        "read": reads * e["read"],
        "write": writes * e["write"],
        "refresh": c["REF"] * e["refresh"],
        "background": active_cycles * e["active_cycle"]
        + precharged_cycles * e["precharged_cycle"],
        "io": reads * io["read"] + writes * io["write"],
        "pim_column": pim_columns * pim_e.get("column_access", 0.0),
        "pim_op": c["PIM_OP"] * pim_e.get("op", 0.0) + c["PIM_SET"] * pim_e.get("set", 0.0),
    }
    out = {k: v / 1000.0 for k, v in parts_pj.items()}
    out["total"] = sum(parts_pj.values()) / 1000.0
    return out


def dram_energy(cfg: MemoryConfig, controllers: Sequence[ChannelController],
                end_cycle: int, *, pim: PimConfig | None = None) -> dict[str, Any]:
    """Energy (nJ) per component over ``[0, end_cycle)``, summed over channels and ranks.

    The components of :func:`energy_breakdown` (``total`` includes I/O and PIM energy), plus the
    older names ``act_pre`` (= ``act``), ``background_active`` and ``background_precharged``
    (which add up to ``background``) and ``average_power_mw``.
    """
    e = command_energies_pj(cfg)
    counts: dict[str, int] = dict.fromkeys(COUNT_KEYS, 0)
    active = 0
    for c in controllers:
        for cmd in Cmd:
            if cmd.name in counts:
                counts[cmd.name] += c.cmd_counts[cmd]
        active += sum(c.dev.active_cycles(r, end_cycle) for r in range(cfg.org.ranks))
    rank_cycles = end_cycle * cfg.org.ranks * len(controllers)
    out: dict[str, Any] = energy_breakdown(cfg, counts, active, rank_cycles - active, pim=pim)
    out["act_pre"] = out["act"]
    out["background_active"] = active * e["active_cycle"] / 1000.0
    out["background_precharged"] = (rank_cycles - active) * e["precharged_cycle"] / 1000.0
    seconds = end_cycle * cfg.timing.tCK_ns * 1e-9
    out["average_power_mw"] = out["total"] * 1e-9 / seconds * 1e3 if seconds else 0.0
    return out
