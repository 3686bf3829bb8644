"""Shared fixtures: a deterministic fake embedder and tiny corpora.

The fake embedder hashes stemmed words into a small vector space, so texts
that share words are similar and unrelated texts are near-orthogonal; unit
tests get real retrieval behaviour in milliseconds without the model.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from index.keyword import tokenize

os.environ.setdefault("HF_HUB_OFFLINE", "1")

_PIECE = re.compile(r"\w+|[^\w\s]")


class FakeEmbedder:
    """Bag of hashed word stems, unit length. Same protocol as the real model."""

    name = "test/fake-hashing-embedder"
    dimensions = 64
    max_tokens = 256

    def __init__(self) -> None:
        self.encoded = 0

    def encode(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in tokenize(text):
                digest = hashlib.blake2b(token.encode(), digest_size=4).digest()
                out[row, int.from_bytes(digest, "little") % self.dimensions] += 1.0
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm else out[row]
        self.encoded += len(texts)
        if progress is not None and len(texts):
            progress(len(texts))
        return out

    def count_tokens(self, text: str) -> int:
        return len(_PIECE.findall(text)) + 2


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


TINY_DOCS = {
    "fractures.txt": (
        "Vertebral fractures take weeks to heal with rest and pain relievers. "
        "Kyphoplasty inflates a balloon in the compressed vertebra, restoring some of its lost height.\n\n"
        "Spinal fusion joins two vertebrae with bone grafts and screws."
    ),
    "hips/flexors.md": (
        "# Hip flexors\n\n"
        "The hip flexors lift the knee toward the body and bend the trunk at the waist. "
        "Stretch them gently after every workout, holding each stretch for thirty seconds.\n\n"
        "Icing an inflamed hip joint four times daily lowers inflammation."
    ),
    "copy.txt": "Spinal fusion joins two vertebrae with bone grafts and screws.\n\n×\n",
}


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    """Three small documents in two folders, one paragraph repeated across files, a junk line."""
    corpus = tmp_path / "corpus"
    for name, text in TINY_DOCS.items():
        path = corpus / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return corpus


REPO = Path(__file__).resolve().parent.parent


def write_pdf(path: Path, pages: list[str]) -> None:
    """A minimal valid PDF with a Helvetica text layer, one line of text per page."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", None, "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for text in pages:
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream.decode('latin-1')}\nendstream")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {len(objects)} 0 R >>"
        )
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(bytes(out))


class OtherModelEmbedder(FakeEmbedder):
    """The fake embedder under another model's name: its indexes must be refused by the real model."""

    name = "test/other-model"


def break_index(index_dir: Path, how: str) -> str:
    """Damage the live version of an index one way; returns the file the error must name.

    `how`: "truncated" (vectors cut short), "missing" (a file deleted),
    "tampered" (a passage edited), "manifest" (manifest not JSON),
    "version-gone" (CURRENT names a deleted version).
    """
    version = index_dir / (index_dir / "CURRENT").read_text(encoding="utf-8").strip()
    if how == "truncated":
        path = version / "vectors.faiss"
        path.write_bytes(path.read_bytes()[:100])
    elif how == "missing":
        path = version / "documents.json"
        path.unlink()
    elif how == "tampered":
        path = version / "passages.jsonl"
        path.write_text(path.read_text(encoding="utf-8").replace("vertebra", "vertebrum"), encoding="utf-8")
    elif how == "manifest":
        path = version / "manifest.json"
        path.write_text("{ not json", encoding="utf-8")
    elif how == "version-gone":
        import shutil

        shutil.rmtree(version)
        path = version / "manifest.json"
    else:
        raise ValueError(f"unknown damage {how!r}")
    return str(path)


BREAKS = ("truncated", "missing", "tampered", "manifest", "version-gone")
