"""Importers from formats users already have (``docs/importers.md``).

``import_scalesim`` (SCALE-Sim topology CSV) needs nothing extra; ``importers.onnx.import_onnx``
needs the optional ``onnx`` package; ``importers.torchfx.import_torch`` (torch.export, else
torch.fx) and ``importers.python_entry.load_python`` (``python:MODULE:FUNCTION`` workloads,
which run user code and so need an explicit permission) need PyTorch.  Those are imported from
their modules on demand.
"""

from gradpimsim.graph.importers.scalesim import import_scalesim

__all__ = ["import_scalesim"]
