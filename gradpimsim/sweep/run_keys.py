"""The keys of the ``iteration`` and ``compare`` sweep kinds: every ``RunConfig`` field.

The schema is made from :class:`~gradpimsim.system.config.RunConfig` itself, so a field added
there is a sweep key at once: its type is checked from the field's annotation, and each point
is then built into a ``RunConfig`` while the spec is read, so every value and combination the
run would refuse (an unknown policy, a legacy order with fusion) stops the spec before any
work, naming the point and the field.

``KEY = "*"`` in ``[grid]`` means every choice the simulator knows for that key (the choices
are read from the code: ``pim_policy = "*"`` follows ``PIM_POLICIES`` as it grows).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from gradpimsim.config import ConfigError

if TYPE_CHECKING:  # (the registry builds the KindSchema: this module stays off its import loop)
    from gradpimsim.sweep.spec import Check

#: Tables a sweep point sets only when given (allowed, not defaulted): ``extra`` is free-form,
#: ``pim_knobs`` go over the memory's ``[pim]`` section (none: the memory's own).
NOT_DEFAULTED = ("extra", "pim_knobs")


@cache
def choices() -> dict[str, tuple[str, ...]]:
    """Field -> every value it may take, where the simulator has a closed list."""
    from gradpimsim.config.training import OPTIMIZERS, PRECISIONS
    from gradpimsim.host.fusion import FUSION_POLICIES
    from gradpimsim.host.npu import npu_preset_names
    from gradpimsim.host.placement import PLACEMENTS
    from gradpimsim.host.training import BACKWARD_PASSES, TASK_ORDERS
    from gradpimsim.system import config

    out = {"optimizer": tuple(OPTIMIZERS), "precision": tuple(PRECISIONS),
           "fusion": tuple(FUSION_POLICIES), "task_order": tuple(TASK_ORDERS),
           "backward": tuple(BACKWARD_PASSES), "placement": tuple(PLACEMENTS),
           "npu": tuple(npu_preset_names()), "pim": (False, True)}
    # every tuple of names RunConfig's module declares for one of its fields
    for name, value in vars(config).items():
        field = {"PIM_POLICIES": "pim_policy", "LAYOUTS": "layout",
                 "UPDATE_POLICIES": "update_policy"}.get(name)
        if field and isinstance(value, tuple):
            out[field] = value
    return out


def _type_check(name: str, hint: Any) -> Check:
    """A value check from a field's type annotation (``int | None``, ``str``, ``bool``...)."""
    import types

    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    members = set(typing.get_args(hint)) if union else {hint}
    optional = type(None) in members
    args = {typing.get_origin(a) or a for a in members} - {type(None)}
    opts = choices().get(name)

    def check(v: Any) -> str | None:
        if v is None and optional:
            return None
        if bool in args and isinstance(v, bool):
            return None
        if int in args and isinstance(v, int) and not isinstance(v, bool):
            return None
        if float in args and isinstance(v, (int, float)) and not isinstance(v, bool):
            return None
        if str in args and isinstance(v, str) and v:
            if opts and name not in ("npu",) and v not in opts:
                return f"unknown value {v!r}; choose one of {', '.join(map(str, opts))}"
            return None
        if dict in args and isinstance(v, Mapping):
            return None
        want = " or ".join(sorted(getattr(a, "__name__", str(a)) for a in args))
        return f"must be {want}, got {v!r}"
    return check


def _validator(drop: tuple[str, ...]) -> Callable[[dict[str, Any]], str | None]:
    def validate(point: dict[str, Any]) -> str | None:
        from gradpimsim.system.config import RunConfig

        try:
            RunConfig.from_dict({k: v for k, v in point.items() if k not in drop})
        except ConfigError as exc:
            return str(exc)
        except TypeError as exc:
            return f"not a run configuration: {exc}"
        return None
    return validate


def run_schema(*, without: tuple[str, ...] = ()) -> dict[str, Any]:
    """The ``KindSchema`` fields for every ``RunConfig`` field but ``without``; defaults: the
    field's."""
    from gradpimsim.system.config import RunConfig

    hints = typing.get_type_hints(RunConfig)
    keys: dict[str, Check] = {}
    defaults: dict[str, Any] = {}
    for f in dataclasses.fields(RunConfig):
        if f.name in without:
            continue
        keys[f.name] = _type_check(f.name, hints[f.name])
        if f.name in NOT_DEFAULTED or f.name == "workload":
            continue
        if f.default is not dataclasses.MISSING:
            defaults[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            defaults[f.name] = f.default_factory()
    return {"keys": keys, "required": ("workload",), "defaults": defaults,
            "choices": {k: v for k, v in choices().items() if k in keys},
            "validate": _validator(without)}


#: Kind -> the RunConfig fields it does not take (``compare`` runs both values of ``pim``).
KINDS = {"iteration": (), "compare": ("pim",)}

__all__ = ["KINDS", "choices", "run_schema"]
