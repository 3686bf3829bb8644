"""The bundled model as an ONNX graph: exported once, cached, run with onnxruntime.

Full ingest is bound by the model's arithmetic. On this project's CPUs (AVX2;
no AVX-512, VNNI or BF16, so torch bf16 runs 5x slower than fp32) the fastest
route with the same vectors is: export the transformer with `torch.onnx`
(eager attention) and fuse attention, layer norms and GELU with onnxruntime's
BERT optimizer ("onnx", about 1.5x sentence-transformers). Quantizing the
weights to int8 per output channel on top ("onnx-int8") reaches about 2.2x at
cosine 0.99 on average. The figures are in bench/RESULTS.md, sections
"Embedding speed" and "Embedding quality".

The export needs torch and takes seconds, so it runs once per model and
toolchain: the file is cached under `Config.cache_dir` (`KB_CACHE_DIR`, default `~/.cache/kb`),
named by a hash of the model files, the recipe and the library versions, and
written atomically so concurrent processes never read half a file. Running
the cached graph imports neither torch nor transformers (the tokenizer is
`index.embed.tokens.WordPieces`).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from functools import cached_property
from importlib import metadata
from pathlib import Path

import numpy as np

from index.embed.pooling import TokenBatch
from index.embed.tokens import TokenArrays, WordPieces

# Changing any step of `export` must change this, so caches are rebuilt.
RECIPE = "eager-opset17/token-embeddings/bert-fusion/int8-weights-per-channel/v3"
# The cosine an export must reach against sentence-transformers on the probe
# texts, or it is refused; a sanity check against broken graphs (the quality
# bound itself is tested in tests/test_embedding.py).
EXPORT_MIN_COSINE = 0.98
PROBES = (
    "what is the role of p53 in apoptosis?",
    "Vitamin D supplementation does not reduce the risk of hip fracture in older adults living at home.",
    "short",
)
# The graphs BundledModel can run, by backend name: export() options.
VARIANTS = {
    "onnx": {"fuse": True, "quantize": None},
    "onnx-int8": {"fuse": True, "quantize": "per-channel"},
    "onnx-int8-blocks": {"fuse": True, "quantize": "blocks"},
}
# Blockwise int8 (MatMulNBits): weights in blocks of this many input channels, each with its own
# scale; at accuracy level 4 the activations are quantized per block too and multiplied in int8.
BLOCK_SIZE = 128
INT8_COMPUTE = 4
_VERSIONED = ("torch", "transformers", "onnxruntime", "onnx")
# A cached graph of another recipe or library version that nobody has opened for
# this long is removed when a new one is exported (bench/RESULTS.md, "ONNX cache").
STALE_AFTER = 7 * 24 * 3600
_IGNORED_FILES = {"README.md", ".gitattributes"}


class ExportError(RuntimeError):
    """The ONNX export could not be made or did not match the original model."""


def cache_root() -> Path:
    """Where exported models live unless a cache folder is given: `$XDG_CACHE_HOME/kb`, else `~/.cache/kb`."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kb"


def model_key(model_dir: Path) -> str:
    """A hash of everything the exported file depends on: model files, recipe and library versions."""
    digest = hashlib.sha256(RECIPE.encode())
    for package in _VERSIONED:
        try:
            digest.update(f"{package}={metadata.version(package)};".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{package}=missing;".encode())
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file() and p.name not in _IGNORED_FILES):
        digest.update(path.relative_to(model_dir).as_posix().encode() + b"\0")
        with open(path, "rb") as data:
            digest.update(hashlib.file_digest(data, "sha256").digest())
    return digest.hexdigest()[:20]


def cached_onnx(
    model_dir: Path,
    cache_dir: Path | None = None,
    exporter: Callable[[Path, Path], None] | None = None,
    variant: str = "onnx-int8",
) -> Path:
    """The ONNX file for `model_dir`, exported on first use and reused after.

    Args:
        model_dir: A sentence-transformers model folder.
        cache_dir: Cache folder (default: `cache_root()`).
        exporter: Writes the ONNX file for a model folder (default: `export` with the variant's options).
        variant: "onnx" (fused fp32) or "onnx-int8" (fused, int8 weights).

    Returns:
        The cached file. Files of the same variant cached for other model
        versions or recipes are removed once they have not been used for
        `STALE_AFTER` seconds: another installation on the machine (an older
        checkout, a second app) may still be using its own.

    Raises:
        ExportError: The export failed; nothing is cached.
    """
    folder = (cache_dir or cache_root()) / "onnx"
    if variant not in VARIANTS:
        raise ValueError(f"unknown ONNX variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    target = folder / f"{model_dir.name}-{variant}-{model_key(model_dir)}.onnx"
    if target.is_file():
        os.utime(target)  # in use: not stale for other installations
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".export-") as work:
        written = Path(work) / "model.onnx"
        try:
            if exporter is None:
                export(model_dir, written, **VARIANTS[variant])
            else:
                exporter(model_dir, written)
        except ExportError:
            raise
        except Exception as exc:  # torch/onnx raise many kinds; the caller falls back to torch
            raise ExportError(f"exporting {model_dir} to ONNX failed: {type(exc).__name__}: {exc}") from exc
        os.replace(written, target)
    now = time.time()
    for stale in folder.glob(f"{model_dir.name}-{variant}-*.onnx"):
        try:
            if stale != target and now - stale.stat().st_mtime > STALE_AFTER:
                stale.unlink()
        except FileNotFoundError:  # another process removed it first
            continue
    return target


def export(
    model_dir: Path,
    out: Path,
    fuse: bool = True,
    quantize: str | None = "per-channel",
    keep_float: Sequence[str] = (),
    keep_nodes: str | None = None,
    min_cosine: float = EXPORT_MIN_COSINE,
) -> None:
    """Export the transformer of a sentence-transformers BERT model with mean pooling to ONNX.

    The graph takes `input_ids` and `attention_mask` (int64, any batch and
    length) and returns the final-layer token embeddings; `OnnxEncoder`
    pools them, into the text's vector (mean pooling, as sentence-transformers
    does) and, from the same pass, into vectors of its sentences. The pooled
    vectors are checked against sentence-transformers on `PROBES` before the
    graph is accepted.

    Args:
        model_dir: The sentence-transformers model folder.
        out: The ONNX file to write.
        fuse: Fuse attention, layer norms and GELU (onnxruntime's BERT optimizer).
        quantize: "per-channel" or "per-tensor" int8 weight scales with int8 activations quantized
            per batch at run time; "blocks" for int8 weights and activations scaled per block of
            `BLOCK_SIZE` input channels (onnxruntime's MatMulNBits); or None for fp32.
        keep_float: Op types left in fp32 when quantizing (e.g. "Attention").
        keep_nodes: A regular expression; nodes whose names it matches stay fp32 when quantizing
            (e.g. the last layer's, `r"layer\\.5/|Attention_5"`).
        min_cosine: The export is refused when a probe's cosine to the original is lower.
    """
    if quantize not in ("per-channel", "per-tensor", "blocks", None):
        raise ValueError(f"quantize must be 'per-channel', 'per-tensor', 'blocks' or None, got {quantize!r}")
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.registry import IntegerOpsRegistry
    from onnxruntime.transformers import optimizer
    from sentence_transformers import SentenceTransformer

    # Eager attention exports as plain MatMul/Softmax, which the optimizer fuses
    # into one Attention op per layer; the SDPA export is not recognised.
    model = SentenceTransformer(
        str(model_dir), device="cpu", local_files_only=True, model_kwargs={"attn_implementation": "eager"}
    )
    pooling = model[1].get_config_dict() if len(model) > 1 else {}
    if not pooling.get("pooling_mode_mean_tokens", pooling.get("pooling_mode") == "mean"):
        raise ExportError(f"{model_dir} does not use mean pooling; only mean pooling is exported")
    bert = model[0].auto_model.eval()
    config = bert.config
    sample = model.tokenizer(list(PROBES), padding=True, return_tensors="pt")
    with tempfile.TemporaryDirectory() as work, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about shape-dependent branches
        plain, fused = Path(work) / "plain.onnx", Path(work) / "fused.onnx"
        torch.onnx.export(
            _token_embeddings(bert),
            (sample["input_ids"], sample["attention_mask"]),
            str(plain),
            dynamo=False,
            opset_version=17,
            input_names=["input_ids", "attention_mask"],
            output_names=["tokens"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "length"},
                "attention_mask": {0: "batch", 1: "length"},
                "tokens": {0: "batch", 1: "length"},
            },
        )
        if fuse:
            optimized = optimizer.optimize_model(
                str(plain),
                model_type="bert",
                opt_level=0,
                num_heads=config.num_attention_heads,
                hidden_size=config.hidden_size,
            )
            optimized.save_model_to_file(str(fused))
        graph = fused if fuse else plain
        if quantize is None:
            shutil.copyfile(graph, out)
        elif quantize == "blocks":
            _quantize_blocks(graph, out)
        else:
            # Weights only: activations are quantized per batch at run time. Per-channel
            # scales keep cosine to fp32 near 0.99; per-tensor scales drop it to ~0.94.
            ops = [op for op in IntegerOpsRegistry if op not in keep_float]
            kept = _matching_nodes(graph, keep_nodes) if keep_nodes else []
            quantize_dynamic(
                str(graph),
                str(out),
                weight_type=QuantType.QInt8,
                op_types_to_quantize=ops,
                per_channel=quantize == "per-channel",
                nodes_to_exclude=kept,
                extra_options={"DefaultTensorType": 1},
            )  # 1 = FLOAT, for fused ops' outputs
    reference = model.encode(list(PROBES), normalize_embeddings=True, convert_to_numpy=True)
    pieces = WordPieces(model_dir / "tokenizer.json", max_tokens=model.max_seq_length)
    exported = OnnxEncoder(out).vectors(pieces.arrays(PROBES))
    cosine = float((reference * exported).sum(axis=1).min())
    if cosine < min_cosine:
        raise ExportError(f"exported model disagrees with the original (cosine {cosine:.4f} < {min_cosine})")


def _quantize_blocks(graph: Path, out: Path) -> None:
    """The graph's MatMuls as 8-bit MatMulNBits: one scale per `BLOCK_SIZE` input channels, int8 arithmetic.

    A per-batch activation scale (`quantize_dynamic`) lets one large value coarsen a whole
    batch; a scale per block keeps vectors within cosine 0.9997 of fp32 (bench/RESULTS.md,
    "Model variants").
    """
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(
        onnx.load(str(graph)), bits=8, block_size=BLOCK_SIZE, is_symmetric=True, accuracy_level=INT8_COMPUTE
    )
    quantizer.process()
    quantizer.model.save_model_to_file(str(out), False)


def _matching_nodes(graph: Path, pattern: str) -> list[str]:
    """Names of the graph's nodes that `pattern` matches (searched anywhere in the name)."""
    import onnx

    found = re.compile(pattern)
    return [node.name for node in onnx.load(str(graph)).graph.node if found.search(node.name)]


def _token_embeddings(bert):
    """The transformer alone: final-layer token embeddings (pooling happens in numpy, `index.embed.pooling`)."""
    import torch

    class Tokens(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    return Tokens().eval()


class OnnxEncoder:
    """Runs an exported graph over one padded batch: the final-layer token embeddings."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        """
        Args:
            path: The exported graph.
            threads: Threads per forward pass; default `$OMP_NUM_THREADS` (Ray sets it to an
                actor's CPUs, so actors sharing a node do not oversubscribe it), else one per
                physical core.
        """
        import onnxruntime

        if threads is None:
            threads = default_threads()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads  # 0: one per physical core
        options.log_severity_level = 3  # the quantized graph logs harmless shape-inference warnings
        self.threads = threads
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, batch: TokenArrays) -> np.ndarray:
        """Token embeddings, shape (texts, tokens, dimensions), float32."""
        feed = {"input_ids": batch.ids, "attention_mask": batch.mask}
        return self.session.run(None, feed)[0].astype(np.float32, copy=False)

    def vectors(self, batch: TokenArrays) -> np.ndarray:
        """Unit vectors of the batch's texts (mean pooling)."""
        return TokenBatch(self(batch), batch.mask, batch.offsets).vectors()


def default_threads() -> int:
    """Threads for a forward pass over many texts: `$OMP_NUM_THREADS` when set, else 0 (one per physical core)."""
    omp = os.environ.get("OMP_NUM_THREADS", "")
    return int(omp) if omp.isdigit() else 0


class OnnxRunner:
    """The graph in two sessions, each opened on first use: one for a lone text (a question), one for batches.

    Both run on `threads`: every core, unless `$OMP_NUM_THREADS` says
    otherwise. A lone question on every core is faster on a quiet machine
    and no slower on a busy one; but when several threads ask at once, each
    question on one thread answers more of them (bench/RESULTS.md, "One
    question on one thread or every core": 1.5x the questions/s for one
    asker, 0.8x to 0.9x for 4 or 16). So the entry points of one person (the
    command line, the app, MCP) keep every core, and a server answering many
    questions sets one (`index.serve.app.one_thread_per_pass`; Ray sets its
    replicas' CPUs). Two sessions keep two thread pools, so a question asked
    while the same process embeds a build's batches (the app's document
    manager) has threads of its own. ONNX Runtime lets threads call one
    session at once, so a searcher shared by threads needs nothing more.
    """

    def __init__(self, path: Path, threads: int | None = None) -> None:
        self.path = path
        self.threads = default_threads() if threads is None else threads

    @cached_property
    def alone(self) -> OnnxEncoder:
        return OnnxEncoder(self.path, threads=self.threads)

    @cached_property
    def batched(self) -> OnnxEncoder:
        return OnnxEncoder(self.path, threads=self.threads)

    def __call__(self, batch: TokenArrays) -> np.ndarray:
        """Token embeddings of a padded batch (see `OnnxEncoder`)."""
        return (self.alone if len(batch) == 1 else self.batched)(batch)
