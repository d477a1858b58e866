"""The default embedder's fast path (hub/text/onnx_minilm.py): the ONNX graph built from the shipped
weights computes what the numpy forward pass computes, the int8 model stays close to it, and a
text's vector does not depend on the other texts embedded with it."""

from __future__ import annotations

import numpy as np
import pytest

from hub.datadir import default_cache_dir
from hub.text.blas import single_blas_thread
from hub.text.embedding import MiniLM, QuantizedMiniLM, load_embedder
from hub.text.onnx_minilm import OnnxEncoder, model_path

TEXTS = ["How do I reset my password?",
         "Expenses. Hotels. Hotel costs are capped at 160 euros per night in most cities and 240 euros in London.",
         "Quarterly revenue grew ten percent, while fuel costs rose to 21 percent of operating costs.",
         "",
         "word " * 60]


@pytest.fixture(scope="module")
def reference() -> MiniLM:
    return MiniLM()


@pytest.fixture(scope="module")
def quantized() -> QuantizedMiniLM:
    return QuantizedMiniLM()  # builds the cached ONNX files once if tools/setup.sh has not


def test_float_graph_matches_numpy_forward(reference: MiniLM) -> None:
    """A padded batch of two: the fused graph's Attention must ignore the padding the mask marks."""
    encoded = [reference.tokenizer.encode(t).ids for t in TEXTS[:2]]
    length = max(map(len, encoded))
    ids = np.zeros((2, length), dtype=np.int64)
    mask = np.zeros((2, length), dtype=np.float32)
    for row, tokens in enumerate(encoded):
        ids[row, : len(tokens)], mask[row, : len(tokens)] = tokens, 1.0
    encoder = OnnxEncoder(model_path(reference, default_cache_dir() / "models", quantized=False))
    x = reference.word[ids] + reference.position[:length] + reference.token_type
    from hub.text.embedding import _layer_norm

    hidden = encoder(_layer_norm(x, *reference.embed_norm).astype(np.float32), mask.astype(np.int32))
    pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    assert ((pooled * reference._forward(ids, mask)).sum(1) > 0.9999).all()


def test_int8_embeddings_stay_close_to_float(reference: MiniLM, quantized: QuantizedMiniLM) -> None:
    with single_blas_thread():  # OpenBLAS threads spin on a busy machine; one is faster here
        fast, exact = quantized.embed(TEXTS), reference.embed(TEXTS)
    assert fast.shape == (len(TEXTS), 384) and np.allclose((fast ** 2).sum(1), 1.0, atol=1e-4)
    cosines = (fast * exact).sum(1)
    assert cosines.min() > 0.98, cosines


def test_a_vector_does_not_depend_on_its_batch(quantized: QuantizedMiniLM) -> None:
    together = quantized.embed(TEXTS)
    alone = np.vstack([quantized.embed([t]) for t in TEXTS])
    assert ((together * alone).sum(1) > 0.9999).all()


def test_default_embedder_is_the_int8_one(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.delenv("MEMORY_EMBEDDER", raising=False)
    lazy = load_embedder(default_cache_dir() / "models")
    assert lazy.name == MiniLM.name
    lazy.embed(["x"])
    assert isinstance(lazy._loaded, QuantizedMiniLM)  # type: ignore[attr-defined]
    monkeypatch.setenv("MEMORY_EMBEDDER", "minilm-numpy")
    numpy_path = load_embedder(default_cache_dir() / "models")
    numpy_path.embed(["x"])
    assert type(numpy_path._loaded) is MiniLM  # type: ignore[attr-defined]


def test_long_texts_are_embedded_from_their_first_128_word_pieces(quantized: QuantizedMiniLM) -> None:
    """The int8 path cuts at 128 word pieces ([CLS] + 126 + [SEP]), what MiniLM was trained on."""
    text = " ".join(f"Invoice {i} for depot {i % 13} was paid {i * 7 % 31} days late." for i in range(40))
    full = MiniLM().tokenizer.encode(text).ids  # cut at 256
    assert len(full) > 200
    cut = np.asarray(full[:127] + full[-1:], dtype=np.int64)[None, :]
    expected = quantized._forward(cut, np.ones(cut.shape, dtype=np.float32))[0]
    assert float(quantized.embed([text])[0] @ expected) > 0.9999
