"""The memory domain's embedders: a re-export of `hub.text.embedding`, where the MiniLM embedder
lives so the hub's tool search and this domain share one implementation."""

from hub.text.embedding import (  # noqa: F401
    BATCH,
    MAX_TOKENS,
    Embedder,
    LazyEmbedder,
    MiniLM,
    QuantizedMiniLM,
    StaticMiniLM,
    _gelu,
    _layer_norm,
    fast_minilm,
    load_embedder,
)
