"""Cross-check against SCALE-Sim itself, 2.0.x and 3.x, wherever one is installed.

Two sources of a SCALE-Sim run: the ``scalesim`` package of this interpreter, and any other
interpreters listed in ``GRADPIMSIM_SCALESIM_PYTHONS`` (``os.pathsep``-separated), so one
test run can check several versions, each installed in its own venv.  Each is skipped with
the reason when absent.  Checked:

* the importer's ``padding="scalesim"`` output sizes equal those SCALE-Sim computes, row by
  row, for a table with strided layers and for SCALE-Sim's own ResNet-18 table;
* our analytical weight-stationary cycles (``NPUModel.gemm_cycles`` of a 128 x 128 array,
  SCALE-Sim's configuration here) agree with SCALE-Sim's compute cycles to one cycle per
  layer (ours count one more on every layer measured, with 2.0.2 and 3.0.0 alike); the
  differences are recorded as test properties and printed.  The layers' M comes from the
  importer's SCALE-Sim arithmetic, so a wrong output size shows here too (conv1's 109 x 109
  instead of 110 x 110 is 438 cycles off).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gradpimsim.graph.importers import import_scalesim
from gradpimsim.host.npu import NPUConfig, NPUModel

HERE = Path(__file__).resolve().parent
REFERENCE_R18 = HERE.parents[1] / "shared" / "reference" / "scalesim" / "Resnet18.csv"
PYTHONS = [p for p in os.environ.get("GRADPIMSIM_SCALESIM_PYTHONS", "").split(os.pathsep) if p]

LAYERS = [  # name, ifmap h, w, filter h, w, channels, filters, stride
    ("conv3x3", 56, 56, 3, 3, 64, 64, 1),
    ("conv1x1", 28, 28, 1, 1, 256, 512, 1),
    ("fc", 1, 1, 1, 1, 2048, 1000, 1),
    ("conv1", 224, 224, 7, 7, 3, 64, 2),  # 110 x 110 in SCALE-Sim, 109 x 109 unpadded floor
    ("down", 56, 56, 1, 1, 64, 128, 2),  # 28 x 28 both ways
]
HEADER = ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
          "Num Filter, Strides,\n")


def _numpy_too_new(result_or_error: str) -> bool:
    """SCALE-Sim 3.0.0 calls int() on a one-element array, an error from numpy 2.4 on."""
    return "only 0-dimensional arrays can be converted" in result_or_error


@pytest.fixture(scope="module", params=["installed", *PYTHONS])
def scalesim_run(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One SCALE-Sim run per source: ``{"scalesim": version, "cycles", "ofmap", "tables"}``."""
    tmp_path = tmp_path_factory.mktemp("scalesim")
    table = tmp_path / "layers.csv"
    table.write_text(HEADER + "".join(",".join(map(str, r)) + ",\n" for r in LAYERS))
    tables = [table] + ([REFERENCE_R18] if REFERENCE_R18.is_file() else [])
    if request.param == "installed":
        pytest.importorskip("scalesim", reason="scalesim is not installed here (pip install "
                                               "scalesim; see GRADPIMSIM_SCALESIM_PYTHONS)")
        sys.path.insert(0, str(HERE))
        try:
            from scalesim_driver import drive

            try:
                return {**drive(tmp_path / "run", tables), "tables": tables}
            except TypeError as exc:
                if _numpy_too_new(str(exc)):
                    pytest.skip(f"the installed scalesim fails under numpy {np_version()}: "
                                f"{exc} (SCALE-Sim 3.0.0 needs numpy < 2.4)")
                raise
        finally:
            sys.path.remove(str(HERE))
    python = request.param
    if not Path(python).exists():
        pytest.skip(f"{python} (from GRADPIMSIM_SCALESIM_PYTHONS) does not exist")
    proc = subprocess.run([python, str(HERE / "scalesim_driver.py"), str(tmp_path / "run"),
                           *map(str, tables)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        if "No module named 'scalesim'" in proc.stderr:
            pytest.skip(f"{python} has no scalesim")
        if _numpy_too_new(proc.stderr):
            pytest.skip(f"scalesim under {python} fails with its numpy (SCALE-Sim 3.0.0 needs "
                        "numpy < 2.4)")
        pytest.fail(f"driving SCALE-Sim with {python} failed:\n{proc.stderr[-2000:]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "tables": tables}


def np_version() -> str:
    import numpy

    return numpy.__version__


def test_output_sizes_are_scalesims(scalesim_run: dict[str, Any], record_property) -> None:
    record_property("scalesim_version", scalesim_run["scalesim"])
    for path, theirs in zip(scalesim_run["tables"], scalesim_run["ofmap"], strict=True):
        g = import_scalesim(path, padding="scalesim")
        ours = [d["out_shape"][2:] if d["op"] == "conv2d" else [1, 1]
                for _, d in g.nodes(data=True) if d["op"] in ("conv2d", "linear")]
        assert ours == theirs, f"{path.name} with SCALE-Sim {scalesim_run['scalesim']}"
    assert scalesim_run["ofmap"][0][3] == [110, 110]


def test_ws_cycles_match_scalesim(scalesim_run: dict[str, Any], record_property) -> None:
    g = import_scalesim(scalesim_run["tables"][0], padding="scalesim")
    npu = NPUModel(NPUConfig(rows=128, cols=128, dataflow="ws"))
    version = scalesim_run["scalesim"]
    for (name, *_), cycles in zip(LAYERS, scalesim_run["cycles"], strict=True):
        d = g.nodes[name]
        if d["op"] == "linear":
            m, n, k = 1, d["out_shape"][-1], d["in_shapes"][0][-1]
        else:
            _, cout, ho, wo = d["out_shape"]
            kh, kw = d["attrs"]["kernel"]
            m, n, k = ho * wo, cout, kh * kw * d["in_shapes"][0][1]
        ours = npu.gemm_cycles(m, n, k)
        diff = (ours - cycles) / cycles
        record_property(f"scalesim{version}_{name}",
                        f"ours {ours} vs scalesim {cycles} ({diff:+.1%})")
        print(f"SCALE-Sim {version} {name}: ours {ours} cycles, SCALE-Sim {cycles} "
              f"({diff:+.1%})")
        assert 0 <= ours - cycles <= 1, name
