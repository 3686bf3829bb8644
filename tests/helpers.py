"""Test helpers that are not library material: tiny corpora, a PDF writer, ways to damage an index, `wait_for`.

Imported as `tests.helpers` (tests/ is a package); the fake embedders live in
the library (`index.embed.fake`), where subprocesses and Ray workers find them too.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from index.embed.fake import FakeEmbedder

REPO = Path(__file__).resolve().parent.parent
Result = TypeVar("Result")
NOBODY = 65534

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


def write_corpus(corpus: Path, docs: dict[str, str]) -> Path:
    """Write `docs` (relative name -> text) as files under `corpus`; returns `corpus`."""
    for name, text in docs.items():
        path = corpus / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return corpus


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
        shutil.rmtree(version)
        path = version / "manifest.json"
    else:
        raise ValueError(f"unknown damage {how!r}")
    return str(path)


BREAKS = ("truncated", "missing", "tampered", "manifest", "version-gone")


def wait_for(condition: Callable[[], Result], *, what: str, timeout: float = 30, interval: float = 0.05) -> Result:
    """Poll `condition()` until it returns something true, and return that: the one way tests wait for an event.

    Tests wait for the event itself (a version served, a message shown, a process gone),
    never for a sleep to be long enough; `timeout` only bounds a wait that would otherwise hang.

    Args:
        condition: Called every `interval` seconds; a true result ends the wait.
        what: The event, as the failure message should name it ("the server to serve v-2").
        timeout: Seconds before the test fails.

    Raises:
        AssertionError: `condition()` was still false after `timeout` seconds (the message names
            `what` and the last result).
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what} (last seen: {result!r:.300})")
        time.sleep(interval)


# A Streamlit directive of ui.markdown, and what it wraps.
_DIRECTIVE = re.compile(r":(?:orange-background|gray)\[((?:\\.|[^\]\\])*)\]")


def directives_within_lines(markdown: str) -> bool:
    """Whether every directive closes on the line it opens (else Streamlit shows `[...]` literally, unhighlighted)."""
    opened = len(re.findall(r":(?:orange-background|gray)\[", markdown))
    closed = _DIRECTIVE.findall(markdown)
    return opened == len(closed) and not any("\n" in inner for inner in closed)


def as_unprivileged(function: Callable[[], Result]) -> Result:
    """`function()` with the permissions of an ordinary user, so that `chmod 000` stops its reads.

    Tests run as root, whom file modes do not stop. As root, `function` runs
    in a thread of its own whose file-system user and group are `nobody`'s
    (Linux `setfsuid`, per thread: the rest of the process stays root); the
    files it must read or write have to allow that user. As anyone else it
    simply runs.
    """
    if os.geteuid() != 0:
        return function()
    libc = ctypes.CDLL(None, use_errno=True)
    outcome: dict = {}

    def unprivileged() -> None:
        libc.setfsgid(NOBODY)
        libc.setfsuid(NOBODY)
        try:
            outcome["result"] = function()
        except BaseException as exc:  # raised again in the caller's thread
            outcome["error"] = exc

    worker = threading.Thread(target=unprivileged, name="unprivileged")
    worker.start()
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def write_scanned_pdf(path: Path, lines: list[str]) -> None:
    """A one-page PDF that is only an image of `lines` (no text layer), as a scanner makes it."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (1654, 2339), "white")  # A4 at 200 dpi
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=40)  # Pillow's own font: no system fonts needed
    for i, line in enumerate(lines):
        draw.text((120, 200 + i * 90), line, fill="black", font=font)
    image.save(path, "PDF", resolution=200)
