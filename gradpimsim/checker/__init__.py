"""Independent DDR4 + GradPIM protocol checker, online (``ProtocolChecker``) or over a file.

It judges the controller, so it is written from the DDR4 reference alone: its modules import only
the configuration, the command vocabulary, the PIM knobs and the command-trace reader (a test
enforces this).
"""

from gradpimsim.checker.core import ProtocolChecker
from gradpimsim.checker.offline import check_commands, check_trace
from gradpimsim.checker.report import CheckReport, ProtocolViolation, RefreshGaps, Violation
from gradpimsim.checker.rules import RULES, Limits

__all__ = [
    "RULES",
    "CheckReport",
    "Limits",
    "ProtocolChecker",
    "ProtocolViolation",
    "RefreshGaps",
    "Violation",
    "check_commands",
    "check_trace",
]
