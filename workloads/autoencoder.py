"""An autoencoder with a prototype classifier, for regularized incremental class learning.

Our own definition (no reference implementation), after the setting of incremental class
learning with prototypes: an encoder maps an input to a latent code, a decoder reconstructs
the input from it, and classification is metric-based: one prototype (the mean latent code of
a class) per class is kept in a small stored table, and an input is scored against every
prototype.  When a new task arrives the autoencoder keeps training under a regularizer
(``--optimizer ewc-momentum``: ``g + lambda * omega * (theta - theta_old)`` per parameter).

The graph, for ``in_features`` = 784 (a 28x28 image), hidden 512 and 256, latent 64 and 10
classes:

- encoder ``enc0``..``enc2`` (linear + ReLU, the last without): 784-512-256-64;
- decoder ``dec0``..``dec2`` (linear + ReLU, the last with a sigmoid): 64-256-512-784;
- ``prototypes``: a linear layer without bias whose weight is the class-mean table
  (classes x latent), ``frozen``: read by the classifier (the dot products that dominate the
  squared distances ``|z|^2 - 2 z.p + |p|^2``), never trained or updated; the gradient of the
  classification loss still flows through it into the encoder.

The loss reads both outputs and the input (the reconstruction target, ``graph["loss_targets"]``):
cross-entropy on the prototype scores plus the reconstruction error, costed with the default
loss rule.  The class means themselves are computed outside the training iteration (a pass
over each class's latent codes at the task boundary): not modelled.

Trained parameters: 784*512 + 512 + 512*256 + 256 + 256*64 + 64 (encoder, 549,696) +
64*256 + 256 + 256*512 + 512 + 512*784 + 784 (decoder, 550,416) = 1,100,112; the table adds
64*10 = 640 frozen values.
"""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx

from gradpimsim.graph.builder import GraphBuilder

IN_FEATURES = 784
HIDDEN = (512, 256)
LATENT = 64
CLASSES = 10


def ae_proto(batch: int = 64, in_features: int = IN_FEATURES, hidden: Sequence[int] = HIDDEN,
             latent: int = LATENT, classes: int = CLASSES) -> nx.DiGraph:
    """The autoencoder-prototype workload (see the module docstring)."""
    b = GraphBuilder("ae-proto", batch)
    x = b.input("input", (batch, in_features))
    widths = [*hidden, latent]
    for i, w in enumerate(widths):
        x = b.linear(x, f"enc{i}", w)
        if i < len(widths) - 1:
            x = b.act(x, f"enc{i}.relu")
    z = x
    widths = [*reversed(hidden), in_features]
    for i, w in enumerate(widths):
        x = b.linear(x, f"dec{i}", w)
        x = b.act(x, f"dec{i}.{'sigmoid' if i == len(widths) - 1 else 'relu'}",
                  "sigmoid" if i == len(widths) - 1 else "relu")
    scores = b.linear(z, "prototypes", classes, bias=False)
    b.g.nodes[scores.node]["frozen"] = True
    b.g.graph["loss_targets"] = ["input"]
    return b.build()
