"""Run SCALE-Sim (2.0.x or 3.x) on a topology table; print what it computed as JSON.

Used by ``tests/test_scalesim_crosscheck.py`` in-process (``drive``) or with another Python
that has a different SCALE-Sim installed (``python tests/scalesim_driver.py OUT_DIR TABLE
[TABLE...]``).  It imports nothing from gradpimsim, so any interpreter with ``scalesim`` can
run it.  The configuration holds every key either version reads: 3.x added
``UseRamulatorTrace``, request buffers, a ``[layout]`` and a ``[sparsity]`` section, and
requires a layout file (a header row is enough when custom layouts are off).
"""

from __future__ import annotations

import inspect
import json
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

CONFIG = """[general]
run_name = gradpimsim_check

[architecture_presets]
ArrayHeight:    128
ArrayWidth:     128
IfmapSramSzkB:    8192
FilterSramSzkB:   8192
OfmapSramSzkB:    8192
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Dataflow : ws
Bandwidth : 64
MemoryBanks: 1
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
FilterCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport: false
SparseRep: ellpack_block
OptimizedMapping: false
BlockSize: 8
RandomNumberGeneratorSeed: 40

[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""


def drive(out_dir: Path, tables: list[Path]) -> dict[str, Any]:
    """Simulate ``tables[0]``; report every table's output sizes as SCALE-Sim computes them.

    Returns ``{"scalesim": version, "numpy": version, "cycles": [per layer],
    "ofmap": [[[h, w] per layer] per table]}``; "cycles" is the compute report's "Total
    Cycles" column (3.x puts "Total Cycles (incl. prefetch)" before it).
    """
    from scalesim.scale_sim import scalesim
    from scalesim.topology_utils import topologies

    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = out_dir / "scale.cfg"
    cfg.write_text(CONFIG)
    kwargs: dict[str, Any] = {}
    if "layout" in inspect.signature(scalesim.__init__).parameters:
        layout = out_dir / "layout.csv"
        layout.write_text("Layer name, IFMAP Height Intraline Factor,\n")
        kwargs["layout"] = str(layout)
    sim = scalesim(save_disk_space=True, verbose=False, config=str(cfg),
                   topology=str(tables[0]), **kwargs)
    sim.run_scale(top_path=str(out_dir))
    report = next(out_dir.rglob("COMPUTE_REPORT.csv")).read_text().splitlines()
    header = [h.strip() for h in report[0].split(",")]
    col = header.index("Total Cycles")
    cycles = [int(float(r.split(",")[col])) for r in report[1:] if r.strip()]
    ofmaps = []
    for table in tables:
        topo = topologies()
        topo.load_arrays(topofile=str(table))
        ofmaps.append([[int(v) for v in topo.get_layer_ofmap_dims(i)]
                       for i in range(topo.get_num_layers())])
    return {"scalesim": version("scalesim"), "numpy": version("numpy"), "cycles": cycles,
            "ofmap": ofmaps}


if __name__ == "__main__":
    result = drive(Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]])
    print(json.dumps(result))
