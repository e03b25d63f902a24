"""A comparison model of hybrid in-memory computing (HIC) training with phase-change memory.

Separate from the DDR4/GradPIM timing model: it counts events (accumulator accesses, PCM
programming) from seeded gradients, with no timing (``model.py``; ``docs/related-methods.md``).
"""
