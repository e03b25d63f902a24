"""Build hook: optionally compile the scheduler's hot modules with mypyc.

``pip install mypy && GRADPIMSIM_COMPILE=1 pip install --no-build-isolation .`` compiles the
event loop (controller, device state, request, refresh, latency histogram) to C with mypyc,
about twice as fast; the source is the same Python, so results are identical.  Without the
variable (the default) the package is pure Python, which is what the test suite runs.  A failed
compilation falls back to pure Python instead of failing the install.
"""

import os

from setuptools import setup

HOT_MODULES = [
    "gradpimsim/controller/controller.py",
    "gradpimsim/controller/refresh.py",
    "gradpimsim/controller/request.py",
    "gradpimsim/dram/device.py",
    "gradpimsim/stats/latency.py",
]

ext_modules = []
if os.environ.get("GRADPIMSIM_COMPILE") == "1":
    try:
        from mypyc.build import mypycify

        ext_modules = mypycify(["--ignore-missing-imports", *HOT_MODULES], opt_level="3")
        for ext in ext_modules:
            ext.optional = True  # a compiler problem must not break the install
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - any failure: stay pure Python
        print(f"gradpimsim: not compiling with mypyc ({exc}); installing pure Python")
        ext_modules = []

setup(ext_modules=ext_modules)
