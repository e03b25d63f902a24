"""gradpimsim: an event-driven DDR4 + GradPIM simulator for deep-learning training."""

__version__ = "0.1.0"
