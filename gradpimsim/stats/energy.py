"""DRAM energy from datasheet currents, command counts and background time (DRAMPower style).

Per device, with currents in mA, voltages in V and times in cycles of tCK ns (mA x V x ns = pJ):

- ACT/PRE pair: ``(IDD0 * tRC - (IDD3N * tRAS + IDD2N * tRP)) * VDD * tCK`` plus the wordline
  pump ``IPP0 * tRC * VPP * tCK`` when IPP0 is given (Micron's DDR4 power calculation);
- RD / WR burst: ``(IDD4R - IDD3N) * VDD * BL/2 * tCK`` and ``(IDD4W - IDD3N) * ...``;
- REF: ``(IDD5B - IDD3N) * VDD * tRFC * tCK``;
- background: ``IDD3N * VDD * tCK`` per cycle with a bank open (active standby), ``IDD2N * VDD
  * tCK`` per cycle with all banks precharged.

A rank is ``devices_per_rank`` devices in lockstep, so every term is multiplied by that.  The
currents come with each preset (``[power.x8]`` in the speed-bin TOML, from Micron's 8Gb data
sheet as DRAMsim3 ships them) or from a DRAMsim3 ``.ini``'s ``[power]``.  The same formulas as
DRAMsim3 and Micron's calculator are used so results compare side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gradpimsim.config import MemoryConfig
from gradpimsim.controller.controller import ChannelController
from gradpimsim.dram.commands import Cmd

REQUIRED = ("VDD", "IDD0", "IDD2N", "IDD3N", "IDD4R", "IDD4W", "IDD5B")


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


def dram_energy(cfg: MemoryConfig, controllers: Sequence[ChannelController],
                end_cycle: int) -> dict[str, Any]:
    """Energy (nJ) per component over ``[0, end_cycle)``, summed over channels and ranks."""
    e = command_energies_pj(cfg)
    acts = reads = writes = refs = 0
    active = 0
    for c in controllers:
        counts = c.cmd_counts
        acts += counts[Cmd.ACT]
        reads += counts[Cmd.RD] + counts[Cmd.RDA]
        writes += counts[Cmd.WR] + counts[Cmd.WRA]
        refs += counts[Cmd.REF]
        active += sum(c.dev.active_cycles(r, end_cycle) for r in range(cfg.org.ranks))
    rank_cycles = end_cycle * cfg.org.ranks * len(controllers)
    parts = {
        "act_pre": acts * e["act"],
        "read": reads * e["read"],
        "write": writes * e["write"],
        "refresh": refs * e["refresh"],
        "background_active": active * e["active_cycle"],
        "background_precharged": (rank_cycles - active) * e["precharged_cycle"],
    }
    out: dict[str, Any] = {k: v / 1000.0 for k, v in parts.items()}
    total = sum(parts.values()) / 1000.0
    out["total"] = total
    seconds = end_cycle * cfg.timing.tCK_ns * 1e-9
    out["average_power_mw"] = total * 1e-9 / seconds * 1e3 if seconds else 0.0
    return out
