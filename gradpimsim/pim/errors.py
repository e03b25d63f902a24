"""Errors of the PIM side: a missing capability, or data laid out where a unit cannot reach it.

Both are configuration problems the user must see, never something to paper over with a silent
host fallback: a comparison that quietly ran part of the update on the host would be wrong.
"""

from __future__ import annotations

from gradpimsim.config.model import ConfigError


class PimCapabilityError(ConfigError):
    """The GradPIM unit as configured cannot do what was asked.

    ``capability`` names what is missing, as the knob that would provide it
    (``pim.has_sqrt_div``, ``pim.vector_registers``, ``pim.dtypes``) or the unsupported request
    (``precision.master_dtype``).
    """

    def __init__(self, capability: str, message: str) -> None:
        super().__init__(capability, message)
        self.capability = capability


class LayoutError(ValueError):
    """Operands of one update are not where a bank-group-local unit can combine them."""
