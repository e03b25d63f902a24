"""Build hook: compile the scheduler's hot modules with mypyc (the default).

``pip install .`` compiles the event loop (controller, device state, request, refresh, latency
histogram) to C with mypyc (a build requirement in ``pyproject.toml``), about twice as fast; the
source is the same Python, so results are identical.  It stays pure Python when

* ``GRADPIMSIM_PURE=1`` is set (or the older ``GRADPIMSIM_COMPILE=0``),
* the install is editable (``pip install -e .``): a compiled module would shadow source edits,
* mypyc or the C compiler fails: one line says so and the install goes on, pure Python.

``gradpimsim --version`` says which build is installed.
"""

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

HOT_MODULES = [
    "gradpimsim/controller/address_map.py",
    "gradpimsim/controller/bulk.py",
    "gradpimsim/controller/controller.py",
    "gradpimsim/controller/pim_arbiter.py",
    "gradpimsim/controller/refresh.py",
    "gradpimsim/controller/request.py",
    "gradpimsim/dram/device.py",
    "gradpimsim/pim/channel.py",
    "gradpimsim/pim/kernels.py",
    "gradpimsim/stats/latency.py",
]

#: setup.py commands that never build extensions: metadata, sdists and editable installs.
NO_BUILD_COMMANDS = {"egg_info", "dist_info", "sdist", "editable_wheel", "develop"}


def say_pure(exc: BaseException) -> None:
    if isinstance(exc, SystemExit):  # mypy found type errors: they are printed above
        reason = "the hot modules do not type-check, see the mypy errors above"
    else:
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
    if len(reason) > 160:
        reason = reason[:157] + "..."
    print(f"gradpimsim: mypyc build failed, installing pure Python ({reason})", file=sys.stderr)


class BuildExtOrPure(build_ext):
    """Build every compiled module or none: on any failure, drop them all and stay pure.

    (A module's thin extension without the shared ``*__mypyc`` library would fail to import, so
    a partial build must not be installed.)
    """

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - compiler missing, compile error, ...
            for path in self.get_outputs():
                if os.path.exists(path):
                    os.remove(path)
            say_pure(exc)


def compiled_modules() -> list:
    if os.environ.get("GRADPIMSIM_PURE") == "1" or os.environ.get("GRADPIMSIM_COMPILE") == "0":
        return []
    if NO_BUILD_COMMANDS & set(sys.argv[1:]):
        return []
    try:
        from mypyc.build import mypycify

        ext_modules = mypycify(["--ignore-missing-imports", *HOT_MODULES], opt_level="3")
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - any failure: stay pure Python
        say_pure(exc)
        return []
    return ext_modules


setup(ext_modules=compiled_modules(), cmdclass={"build_ext": BuildExtOrPure})
