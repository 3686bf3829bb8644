"""Reading a scanned page: OCR by rapidocr-onnxruntime, then the spaces it loses put back.

rapidocr-onnxruntime installs from the package index with its models in the
wheel and runs offline. Its recognition model often drops the spaces of
English ("Wearshoesthatfitwell"), so a run of letters that is not a word is
segmented into words by symspellpy's English frequency dictionary (shipped
in its wheel too); words it already knows are left alone.
"""

from __future__ import annotations

import re
from functools import cache

OCR_DPI = 150
OCR_MIN_SCORE = 0.5
# A run of letters at least this long that is no dictionary word is taken for words run together.
_RUN_TOGETHER = 8
_LETTERS = re.compile(r"[A-Za-z]+")


def available() -> bool:
    """Whether the OCR package is installed."""
    try:
        import rapidocr_onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def has_image(page) -> bool:
    """Whether a PDF page shows an image (a blank page has nothing to read, and OCR costs a model load)."""
    import pypdfium2.raw as pdfium_c

    return next(iter(page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=3)), None) is not None


def read_page(page) -> list[str]:
    """A PDF page's lines as OCR reads them, top to bottom ([] without the package, an image or any text)."""
    if not available() or not has_image(page):
        return []
    try:
        image = page.render(scale=OCR_DPI / 72).to_numpy()
        result, _ = _engine()(image)
    except Exception:  # a damaged image or an engine failure: the page is reported as not read
        return []
    return [respace(text) for _box, text, score in (result or []) if score >= OCR_MIN_SCORE]


def respace(line: str) -> str:
    """`line` with runs of letters that are no word split into the words they run together."""
    words = _words()
    return _LETTERS.sub(lambda m: _split(m.group(), words), line)


def _split(run: str, words) -> str:
    if len(run) < _RUN_TOGETHER or run.lower() in words.words:
        return run
    return words.word_segmentation(run, max_edit_distance=0).segmented_string


@cache
def _engine():
    from rapidocr_onnxruntime import RapidOCR

    return RapidOCR()


@cache
def _words():
    import importlib.resources

    from symspellpy import SymSpell

    words = SymSpell(max_dictionary_edit_distance=0, prefix_length=7)
    words.load_dictionary(str(importlib.resources.files("symspellpy") / "frequency_dictionary_en_82_765.txt"), 0, 1)
    return words
