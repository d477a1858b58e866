"""The memory domain's embedders: a re-export of `hub.text.embedding`, where the MiniLM embedder
lives so the hub's tool search and this domain share one implementation."""

from hub.text.embedding import (  # noqa: F401
    BATCH,
    MAX_TOKENS,
    Embedder,
    LazyEmbedder,
    MiniLM,
    QuantizedMiniLM,
    fast_minilm,
    StaticMiniLM,
    _gelu,
    _layer_norm,
    load_embedder,
)
