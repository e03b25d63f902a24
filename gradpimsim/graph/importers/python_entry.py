"""A PyTorch model from a Python entry point: ``python:MODULE:FUNCTION[@SHAPES]``.

Loading such a workload **imports and runs the user's Python code**, so it is refused unless
the user allows it: ``--allow-python`` on the command line (``workloads show/export``, ``run``,
``compare``), which sets :data:`ALLOW_ENV` so that ``compare``'s worker processes inherit the
permission, or ``allow=True`` / that variable from Python.

* ``MODULE`` is a module name (imported with the current directory first on the path) or a
  path to a ``.py`` file; ``FUNCTION`` a callable in it.
* The callable is called with ``batch=`` and ``seq_len=`` when its signature takes them and the
  user gave them, and returns an ``nn.Module``, or ``(module, example_inputs)`` with the inputs
  as tensors or shapes.
* ``@SHAPES`` gives the example inputs instead: comma-separated shapes written ``1x3x224x224``,
  with an optional dtype, ``int64:8x128`` for token ids.  Without a ``batch`` parameter,
  ``--batch`` replaces the first dimension of every input.

The module is then traced by :func:`~gradpimsim.graph.importers.torchfx.import_torch`
(``torch.export`` where available, ``torch.fx`` otherwise).  Every failure -- module not
found, no such function, not callable, the function raising, no PyTorch -- is a
:class:`GraphError` naming the spec, which the command line prints as one line (exit 2).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import os
import sys
from pathlib import Path
from typing import Any

import networkx as nx

from gradpimsim.graph.schema import GraphError

PREFIX = "python:"
ALLOW_ENV = "GRADPIMSIM_ALLOW_PYTHON"
DTYPES = {"fp32": "fp32", "float32": "fp32", "float": "fp32", "int64": "int64",
          "long": "int64"}
ALLOW_HELP = ("allow a python:MODULE:FUNCTION workload: this imports and runs that Python "
              "code (a function returning a torch.nn.Module) on this machine")


def is_python_spec(name: str) -> bool:
    return name.startswith(PREFIX)


class AllowPython(argparse.Action):
    """``--allow-python``: record the permission where worker processes see it too."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        kwargs.setdefault("help", ALLOW_HELP)
        super().__init__(option_strings, dest, nargs=0, default=False, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        os.environ[ALLOW_ENV] = "1"
        setattr(namespace, self.dest, True)


def parse_spec(spec: str) -> tuple[str, str, list[tuple[list[int], str]] | None]:
    """``python:pkg.mod:make@1x3x224x224`` -> ``("pkg.mod", "make", [([1, 3, 224, 224],
    "fp32")])``."""
    body = spec[len(PREFIX):] if is_python_spec(spec) else spec
    target, at, shape_text = body.partition("@")
    module, colon, func = target.rpartition(":")
    if not colon or not module or not func:
        raise GraphError(spec, "expected python:MODULE:FUNCTION (a module or .py file, and "
                               "a function in it returning a torch.nn.Module)")
    shapes = None
    if at:
        shapes = []
        for item in shape_text.split(","):
            dtype, _, dims = item.strip().rpartition(":")
            dtype = dtype or "fp32"
            if dtype not in DTYPES:
                raise GraphError(spec, f"unknown input dtype {dtype!r}; use fp32 or int64")
            try:
                shape = [int(d) for d in dims.lower().split("x")]
            except ValueError:
                shape = []
            if not shape or any(d < 1 for d in shape):
                raise GraphError(spec, f"input shape {item.strip()!r} is not like 1x3x224x224")
            shapes.append((shape, DTYPES[dtype]))
    return module, func, shapes


def _import(spec: str, module: str) -> Any:
    if module.endswith(".py") or os.sep in module or "/" in module:
        path = Path(module)
        if not path.is_file():
            raise GraphError(spec, f"no such file {module!r}")
        loader_spec = importlib.util.spec_from_file_location(path.stem, path)
        if loader_spec is None or loader_spec.loader is None:
            raise GraphError(spec, f"cannot import {module!r} as Python")
        mod = importlib.util.module_from_spec(loader_spec)
        try:
            loader_spec.loader.exec_module(mod)
        except Exception as exc:
            raise GraphError(spec, f"importing {module!r} failed: "
                                   f"{type(exc).__name__}: {exc}") from None
        return mod
    sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or module
        where = ("" if missing != module.split(".")[0] and missing != module
                 else " (looked in the current directory and the Python path)")
        raise GraphError(spec, f"no module named {missing!r}{where}") from None
    except Exception as exc:
        raise GraphError(spec, f"importing {module!r} failed: "
                               f"{type(exc).__name__}: {exc}") from None
    finally:
        sys.path.remove(os.getcwd())


def _inputs(spec: str, torch: Any, given: Any) -> list[tuple[list[int], str]]:
    """Example inputs returned by the entry point: tensors or shapes, one or several."""
    items = list(given) if isinstance(given, (list, tuple)) and given and not isinstance(
        given[0], int) else [given]
    out = []
    for item in items:
        if isinstance(item, torch.Tensor):
            out.append(([int(s) for s in item.shape],
                        "int64" if item.dtype in (torch.int64, torch.int32) else "fp32"))
        elif isinstance(item, (list, tuple, torch.Size)) and all(
                isinstance(d, int) for d in item):
            out.append(([int(d) for d in item], "fp32"))
        else:
            raise GraphError(spec, "the example inputs must be tensors or shapes, got "
                                   f"{type(item).__name__}")
    return out


def load_python(spec: str, *, batch: int | None = None, seq_len: int | None = None,
                allow: bool | None = None) -> nx.DiGraph:
    """Import, call and trace a ``python:MODULE:FUNCTION[@SHAPES]`` workload."""
    if not (allow if allow is not None else os.environ.get(ALLOW_ENV) == "1"):
        raise GraphError(spec, "a python: workload imports and runs that Python code; pass "
                               "--allow-python to allow it")
    module_name, func_name, shapes = parse_spec(spec)
    try:
        import torch
    except ModuleNotFoundError:
        raise GraphError(spec, "a python: workload needs PyTorch (pip install torch)") from None
    mod = _import(spec, module_name)
    func = getattr(mod, func_name, None)
    if func is None:
        raise GraphError(spec, f"module {module_name!r} has no attribute {func_name!r}")
    if not callable(func):
        raise GraphError(spec, f"{module_name}:{func_name} is not callable "
                               f"(a {type(func).__name__})")
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    kwargs: dict[str, int] = {}
    for key, value in (("batch", batch), ("seq_len", seq_len)):
        if value is None:
            continue
        if key in params:
            kwargs[key] = value
        elif key == "seq_len":
            raise GraphError(spec, f"--seq-len was given but {func_name}() takes no seq_len "
                                   "parameter")
    try:
        result = func(**kwargs)
    except Exception as exc:
        raise GraphError(spec, f"{func_name}() raised {type(exc).__name__}: {exc}") from None
    model, example = (result if isinstance(result, tuple) and len(result) == 2
                      else (result, None))
    if not isinstance(model, torch.nn.Module):
        raise GraphError(spec, f"{func_name}() must return a torch.nn.Module (or a module "
                               f"and its example inputs), got {type(model).__name__}")
    inputs = _inputs(spec, torch, example) if example is not None else shapes
    if inputs is None:
        raise GraphError(spec, "no example input shapes: append them to the spec "
                               f"(python:{module_name}:{func_name}@1x3x224x224) or return "
                               "(module, example_inputs)")
    if batch is not None and "batch" not in params:
        inputs = [([batch, *s[1:]], dt) for s, dt in inputs]
    from gradpimsim.graph.importers.torchfx import import_torch

    try:
        return import_torch(model, [s for s, _ in inputs], [dt for _, dt in inputs],
                            name=func_name)
    except GraphError as exc:
        raise GraphError(spec, str(exc)) from None
