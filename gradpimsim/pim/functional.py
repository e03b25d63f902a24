"""Run PIM programs on real values, without timing.

:class:`PimArray` holds every unit of a memory system and applies one command where the
controller issues it; PIM_SET is rank-wide, so it loads the scalar register of every unit of the
addressed rank.  The timed simulation calls :meth:`PimArray.issue` at each PIM command's issue
cycle; :func:`run_program` simply issues a whole program in order (prologue first, then each unit's
list; units never share data, so their relative order does not matter).
"""

from __future__ import annotations

import numpy as np

from gradpimsim.config import MemoryConfig
from gradpimsim.config.pim import PimConfig
from gradpimsim.dram.commands import Cmd
from gradpimsim.pim.program import PimProgram
from gradpimsim.pim.store import DramStore
from gradpimsim.pim.unit import PimInstr, PimUnit


class PimArray:
    """All GradPIM units of a memory system (one per channel x rank x bank group)."""

    def __init__(self, cfg: MemoryConfig, store: DramStore, pim: PimConfig | None = None) -> None:
        self.cfg = cfg
        self.store = store
        self.pim = pim or PimConfig()
        o = cfg.org
        self.units: dict[tuple[int, int, int], PimUnit] = {
            (ch, r, bg): PimUnit(self.pim)
            for ch in range(o.channels) for r in range(o.ranks) for bg in range(o.bankgroups)
        }

    def unit(self, channel: int, rank: int, bankgroup: int) -> PimUnit:
        return self.units[(channel, rank, bankgroup)]

    def issue(self, channel: int, rank: int, bankgroup: int, instr: PimInstr) -> None:
        """Perform one issued PIM command (``bankgroup`` is ignored for the rank-wide PIM_SET)."""
        if instr.cmd == Cmd.PIM_SET:
            for bg in range(self.cfg.org.bankgroups):
                self.units[(channel, rank, bg)].set(instr)
            return
        self.units[(channel, rank, bankgroup)].execute(instr, self.store, channel, rank,
                                                       bankgroup)


def run_program(program: PimProgram, array: PimArray) -> None:
    """Execute ``program`` functionally on ``array``'s store."""
    with np.errstate(all="ignore"):  # overflow to inf / NaN is data, as in the reference
        for (ch, rank), sets in program.prologue.items():
            for ins in sets:
                array.issue(ch, rank, -1, ins)
        for (ch, rank, bg), prog in program.units.items():
            unit = array.unit(ch, rank, bg)
            store = array.store
            for ins in prog:
                unit.execute(ins, store, ch, rank, bg)
