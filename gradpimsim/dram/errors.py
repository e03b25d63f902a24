"""Errors of the device model (kept apart so the device module can be compiled with mypyc)."""


class ProtocolError(RuntimeError):
    """The controller asked the device for something the protocol forbids (a controller bug)."""
