"""The DRAM command codes as plain ``Final`` integers, for the compiled hot paths.

:class:`gradpimsim.dram.commands.Cmd` names the commands; the schedulers, the device and the
arbiter compare codes millions of times, and mypyc folds a ``Final`` literal imported from
another compiled module into the code (where ``Cmd.X`` or ``int(Cmd.X)`` costs a lookup per
use).  So this is the one place the numbers are written; ``Cmd`` takes its values from here
and tests/test_runtime.py checks that every hot module sees the same ones.

``INF`` ("never") lives here too: every scheduler compares cycles against it.
"""

from __future__ import annotations

from typing import Final

ACT: Final = 0
PRE: Final = 1
RD: Final = 2
RDA: Final = 3  # read with auto-precharge
WR: Final = 4
WRA: Final = 5  # write with auto-precharge
REF: Final = 6  # all-bank refresh
SRE: Final = 7  # self-refresh entry
SRX: Final = 8  # self-refresh exit
PIM_RD: Final = 9  # bank column -> PIM register (bank-group local, no data bus)
PIM_WR: Final = 10  # PIM register -> bank column (bank-group local, no data bus)
PIM_OP: Final = 11  # register arithmetic inside the PIM unit
PIM_SET: Final = 12  # load PIM scalar registers (like a mode-register write)
#: How many command codes there are (the width of the device's per-command tables).
NCMD: Final = 13

#: "Never": a cycle later than any simulation reaches.  Below 2**62 so that mypyc keeps it
#: (and sums with it) a native short integer; 2**62 itself would be a boxed, slow long.
INF: Final = 1 << 61
