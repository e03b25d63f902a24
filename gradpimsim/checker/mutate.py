"""Single-mutation variants of a command stream, to test that the checker notices broken streams.

A legal stream from the simulator is perturbed in one place at a time: a command pulled earlier
by a few cycles, a PRE dropped, an ACT duplicated.  Most such variants break a rule; running the
checker over them measures how much of the breakage it catches (and, on a stream whose commands
all sit at their minimum gaps, every variant must be caught).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

from gradpimsim.checker.report import describe
from gradpimsim.dram.commands import Cmd, Command

__all__ = ["mutations"]


def _pull(stream: Sequence[Command], i: int, k: int) -> tuple[str, list[Command]] | None:
    c = stream[i]
    clk = c.clk - k
    if clk < 0 or (i > 0 and clk < stream[i - 1].clk):
        return None  # would leave the list unsorted (or before time 0)
    return (f"pull #{i} {describe(c)} earlier by {k}",
            [*stream[:i], c._replace(clk=clk), *stream[i + 1:]])


def _drop(stream: Sequence[Command], i: int) -> tuple[str, list[Command]]:
    return f"drop #{i} {describe(stream[i])}", [*stream[:i], *stream[i + 1:]]


def _duplicate(stream: Sequence[Command], i: int) -> tuple[str, list[Command]]:
    c = stream[i]
    later = i + 1 == len(stream) or stream[i + 1].clk > c.clk + 1
    dup = c._replace(clk=c.clk + 1) if later else c
    return (f"duplicate #{i} {describe(c)} at clk {dup.clk}",
            [*stream[:i + 1], dup, *stream[i + 1:]])


def mutations(
    stream: Sequence[Command],
    rng: random.Random,
    *,
    count: int | None = None,
    max_pull: int = 4,
) -> Iterator[tuple[str, list[Command]]]:
    """Yield ``(description, mutated copy)`` pairs, one change each, in random order.

    Kinds: a command pulled earlier by 1..``max_pull`` cycles (skipped when that would move it
    before its predecessor in the list, so the list stays sorted by clock), a PRE dropped, an ACT
    duplicated (one cycle later when that clock is free, else at the same clock).  With ``count``
    the variants are sampled (for long simulator streams); without it every variant is produced.
    """
    n = len(stream)
    if count is None:
        plan: list[tuple[str, int, int]] = [("pull", i, k) for i in range(n)
                                            for k in range(1, max_pull + 1)]
        plan += [("drop", i, 0) for i, c in enumerate(stream) if c.cmd == Cmd.PRE]
        plan += [("dup", i, 0) for i, c in enumerate(stream) if c.cmd == Cmd.ACT]
        rng.shuffle(plan)
        for kind, i, k in plan:
            out = _apply(stream, kind, i, k)
            if out is not None:
                yield out
        return
    pres = [i for i, c in enumerate(stream) if c.cmd == Cmd.PRE]
    acts = [i for i, c in enumerate(stream) if c.cmd == Cmd.ACT]
    kinds = ["pull"] + (["drop"] if pres else []) + (["dup"] if acts else [])
    made = tries = 0
    while n and made < count and tries < 20 * count:
        tries += 1
        kind = rng.choice(kinds)
        if kind == "pull":
            i, k = rng.randrange(n), rng.randint(1, max_pull)
        else:
            i, k = rng.choice(pres if kind == "drop" else acts), 0
        out = _apply(stream, kind, i, k)
        if out is not None:
            made += 1
            yield out


def _apply(stream: Sequence[Command], kind: str, i: int, k: int
           ) -> tuple[str, list[Command]] | None:
    if kind == "pull":
        return _pull(stream, i, k)
    if kind == "drop":
        return _drop(stream, i)
    return _duplicate(stream, i)
