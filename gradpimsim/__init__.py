"""gradpimsim: an event-driven DDR4 + GradPIM simulator for deep-learning training."""

__version__ = "0.1.0"


def build() -> str:
    """Which build is installed: the hot modules compiled with mypyc, or pure Python."""
    from gradpimsim.controller import controller

    return "pure Python" if controller.__file__.endswith(".py") else "compiled with mypyc"
