"""The DRAM command vocabulary shared by the controller, the checker, traces and PIM.

This module holds names only, never timing: the controller's rule table and the checker's rules
both speak this vocabulary, but each derives its timing on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from typing import NamedTuple

from gradpimsim.dram import codes


class Cmd(IntEnum):
    """DDR4 commands plus GradPIM's commands in reserved (RFU) encodings."""

    ACT = codes.ACT
    PRE = codes.PRE
    RD = codes.RD
    RDA = codes.RDA  # read with auto-precharge
    WR = codes.WR
    WRA = codes.WRA  # write with auto-precharge
    REF = codes.REF  # all-bank refresh
    SRE = codes.SRE  # self-refresh entry
    SRX = codes.SRX  # self-refresh exit
    PIM_RD = codes.PIM_RD  # bank column -> PIM register (bank-group local, no data bus)
    PIM_WR = codes.PIM_WR  # PIM register -> bank column (bank-group local, no data bus)
    PIM_OP = codes.PIM_OP  # register arithmetic inside the PIM unit
    PIM_SET = codes.PIM_SET  # load PIM scalar registers (like a mode-register write)


#: Commands that read a column of the open row onto the data bus.
READS = frozenset({Cmd.RD, Cmd.RDA})
#: Commands that write a column of the open row from the data bus.
WRITES = frozenset({Cmd.WR, Cmd.WRA})
#: Column commands that stay inside the bank group (GradPIM).
PIM_COLUMN = frozenset({Cmd.PIM_RD, Cmd.PIM_WR})
#: Commands that address one bank's open row.
COLUMN = READS | WRITES | PIM_COLUMN
#: Commands that close the bank after the access.
AUTO_PRECHARGE = frozenset({Cmd.RDA, Cmd.WRA})
#: Commands of the GradPIM extension.
PIM = frozenset({Cmd.PIM_RD, Cmd.PIM_WR, Cmd.PIM_OP, Cmd.PIM_SET})

#: DRAMsim3 command-trace names (PIM commands use their own upper-case names).
TRACE_NAME: dict[Cmd, str] = {
    Cmd.ACT: "activate",
    Cmd.PRE: "precharge",
    Cmd.RD: "read",
    Cmd.RDA: "read_p",
    Cmd.WR: "write",
    Cmd.WRA: "write_p",
    Cmd.REF: "refresh",
    Cmd.SRE: "self_refresh_enter",
    Cmd.SRX: "self_refresh_exit",
    Cmd.PIM_RD: "PIM_RD",
    Cmd.PIM_WR: "PIM_WR",
    Cmd.PIM_OP: "PIM_OP",
    Cmd.PIM_SET: "PIM_SET",
}


class Command(NamedTuple):
    """One issued command.  Fields not meaningful for a command (row of a REF) are -1."""

    clk: int
    cmd: Cmd
    channel: int
    rank: int
    bankgroup: int
    bank: int  # bank index within its bank group
    row: int
    col: int  # burst-column index within the row (0 .. columns/BL - 1), as DRAMsim3 addresses it

    def trace_line(self) -> str:
        """The DRAMsim3 command-trace line for this command."""
        row = f"{self.row:#x}" if self.row >= 0 else "-1"
        col = f"{self.col:#x}" if self.col >= 0 else "-1"
        return (
            f"{self.clk} {TRACE_NAME[self.cmd]} {self.channel} {self.rank} {self.bankgroup} "
            f"{self.bank} {row} {col}"
        )


#: Where issued commands go: a trace writer, the online checker, a list in a test.
CommandSink = Callable[[Command], None]
