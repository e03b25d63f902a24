"""BERT (Devlin et al. 2019) and GPT-2 (Radford et al. 2019) encoder/decoder stacks.

BERT follows Hugging Face ``BertModel`` with its pooler (the parameter counts quoted for
``bert-base-uncased``/``bert-large-uncased``); GPT-2 follows ``GPT2LMHeadModel`` whose LM head
is tied to the token embedding (``shared_params``), so it adds FLOPs but no parameters.
Attention is written out as Q/K/V projections, a head split (``reshape``), two batched matmuls
and a softmax, so the host sees the S x S score tensors.  Dropout, masks and the 1/sqrt(d)
scaling are omitted (no parameters; the scaling folds into the softmax FLOPs).
"""

from __future__ import annotations

import networkx as nx

from gradpimsim.graph.builder import GraphBuilder, Tensor


def _attention(b: GraphBuilder, q: Tensor, k: Tensor, v: Tensor, prefix: str,
               heads: int) -> Tensor:
    bs, s, h = q.shape
    dh = h // heads

    def split(t: Tensor, tag: str) -> Tensor:
        return b.reshape(t, f"{prefix}.{tag}_heads", (bs, heads, s, dh))

    scores = b.matmul(split(q, "q"), split(k, "k"), f"{prefix}.scores", transpose_b=True)
    probs = b.softmax(scores, f"{prefix}.softmax")
    ctx = b.matmul(probs, split(v, "v"), f"{prefix}.context")
    return b.reshape(ctx, f"{prefix}.merge_heads", (bs, s, h))


def _bert_layer(b: GraphBuilder, x: Tensor, p: str, heads: int, ffn: int) -> Tensor:
    h = x.shape[-1]
    q = b.linear(x, f"{p}.attention.self.query", h)
    k = b.linear(x, f"{p}.attention.self.key", h)
    v = b.linear(x, f"{p}.attention.self.value", h)
    ctx = _attention(b, q, k, v, f"{p}.attention.self", heads)
    y = b.linear(ctx, f"{p}.attention.output.dense", h)
    x = b.layernorm(b.add(y, x, f"{p}.attention.output.add"), f"{p}.attention.output.LayerNorm")
    y = b.act(b.linear(x, f"{p}.intermediate.dense", ffn), f"{p}.intermediate.gelu", "gelu")
    y = b.linear(y, f"{p}.output.dense", h)
    return b.layernorm(b.add(y, x, f"{p}.output.add"), f"{p}.output.LayerNorm")


def _bert(name: str, batch: int, seq_len: int, hidden: int, layers: int, heads: int,
          vocab: int = 30522, positions: int = 512, types: int = 2) -> nx.DiGraph:
    if seq_len > positions:
        from gradpimsim.graph.schema import GraphError
        raise GraphError(name, f"seq_len {seq_len} exceeds the {positions} position embeddings")
    b = GraphBuilder(name, batch, seq_len)
    ids = b.input("input_ids", (batch, seq_len), "int64")
    pos = b.input("position_ids", (1, seq_len), "int64")
    typ = b.input("token_type_ids", (batch, seq_len), "int64")
    e = "embeddings"
    x = b.embedding(ids, f"{e}.word_embeddings", vocab, hidden)
    x = b.add(x, b.embedding(typ, f"{e}.token_type_embeddings", types, hidden), f"{e}.add_type")
    x = b.add(x, b.embedding(pos, f"{e}.position_embeddings", positions, hidden), f"{e}.add_pos")
    x = b.layernorm(x, f"{e}.LayerNorm")
    for i in range(layers):
        x = _bert_layer(b, x, f"encoder.layer.{i}", heads, 4 * hidden)
    first = b.reshape(b.slice(x, "pooler.first_token", 1, 0, 1), "pooler.squeeze",
                      (batch, hidden))
    b.act(b.linear(first, "pooler.dense", hidden), "pooler.activation", "tanh")
    return b.build()


def bert_base(batch: int = 8, seq_len: int = 128) -> nx.DiGraph:
    """BERT-base: 12 layers, hidden 768, 12 heads; 109,482,240 parameters."""
    return _bert("bert-base", batch, seq_len, 768, 12, 12)


def bert_large(batch: int = 8, seq_len: int = 128) -> nx.DiGraph:
    """BERT-large: 24 layers, hidden 1024, 16 heads; 335,141,888 parameters."""
    return _bert("bert-large", batch, seq_len, 1024, 24, 16)


def gpt2(batch: int = 8, seq_len: int = 1024, vocab: int = 50257, positions: int = 1024,
         hidden: int = 768, layers: int = 12, heads: int = 12) -> nx.DiGraph:
    """GPT-2 small with its tied LM head: 124,439,808 parameters."""
    if seq_len > positions:
        from gradpimsim.graph.schema import GraphError
        raise GraphError("gpt2", f"seq_len {seq_len} exceeds the {positions} positions")
    b = GraphBuilder("gpt2", batch, seq_len)
    ids = b.input("input_ids", (batch, seq_len), "int64")
    pos = b.input("position_ids", (1, seq_len), "int64")
    x = b.add(b.embedding(ids, "wte", vocab, hidden), b.embedding(pos, "wpe", positions, hidden),
              "embed_add")
    for i in range(layers):
        p = f"h.{i}"
        y = b.layernorm(x, f"{p}.ln_1")
        qkv = b.linear(y, f"{p}.attn.c_attn", 3 * hidden)
        q, k, v = (b.slice(qkv, f"{p}.attn.{t}", 2, j * hidden, (j + 1) * hidden)
                   for j, t in enumerate("qkv"))
        y = b.linear(_attention(b, q, k, v, f"{p}.attn", heads), f"{p}.attn.c_proj", hidden)
        x = b.add(x, y, f"{p}.add_attn")
        y = b.layernorm(x, f"{p}.ln_2")
        y = b.act(b.linear(y, f"{p}.mlp.c_fc", 4 * hidden), f"{p}.mlp.gelu", "gelu")
        y = b.linear(y, f"{p}.mlp.c_proj", hidden)
        x = b.add(x, y, f"{p}.add_mlp")
    x = b.layernorm(x, "ln_f")
    b.linear(x, "lm_head", vocab, bias=False, shared_weight="wte.weight")
    return b.build()
