"""An LSTM language model of our own definition, shaped like the PTB "medium" model.

Zaremba et al. (2014) "medium": vocabulary 10,000, embedding and hidden size 650, two LSTM
layers, unrolled 35 steps, untied softmax decoder.  We use PyTorch's ``nn.LSTM`` parameter
layout (two bias vectors per layer) and omit dropout.

Parameters (H = 650, V = 10,000):
  embedding            V*H                     =  6,500,000
  per LSTM layer       4H*H + 4H*H + 4H + 4H   =  3,385,200   (x2 = 6,770,400)
  decoder              H*V + V                 =  6,510,000
  total                                        = 19,780,400
"""

from __future__ import annotations

import networkx as nx

from gradpimsim.graph.builder import GraphBuilder

VOCAB = 10_000
HIDDEN = 650
LAYERS = 2
SEQ_LEN = 35


def lstm_lm(batch: int = 20, seq_len: int = SEQ_LEN, vocab: int = VOCAB, hidden: int = HIDDEN,
            layers: int = LAYERS) -> nx.DiGraph:
    b = GraphBuilder("lstm-lm", batch, seq_len)
    x = b.input("input_ids", (batch, seq_len), "int64")
    x = b.embedding(x, "encoder", vocab, hidden)
    for i in range(layers):
        x = b.lstm(x, f"rnn.{i}", hidden)
    b.linear(x, "decoder", vocab)
    return b.build()
