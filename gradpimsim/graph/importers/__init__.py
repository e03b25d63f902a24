"""Importers from formats users already have.

``import_scalesim`` (SCALE-Sim topology CSV) needs nothing extra; ``importers.onnx.import_onnx``
needs the optional ``onnx`` package and ``importers.torchfx.import_torch`` needs PyTorch, so
those two are imported from their modules on demand.
"""

from gradpimsim.graph.importers.scalesim import import_scalesim

__all__ = ["import_scalesim"]
