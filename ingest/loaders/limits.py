"""What one file may expand to, and the budget extraction draws on so a bomb is refused part way."""

from __future__ import annotations

import time

from ingest.loaders.document import LoadError

# What one file may expand to. A small .docx of many short paragraphs can hold
# a gigabyte of XML, which python-docx parses whole (bench/RESULTS.md, "Files
# that expand"): such files are refused before their text is extracted.
MAX_TEXT_CHARS = 200_000_000  # characters of text from one .docx, .pdf or .html
MAX_TEXT_PER_BYTE = 100  # characters per byte of the file: prose compresses to a few per byte
MAX_UNZIPPED_BYTES = 256 * 2**20  # a .docx unzipped: python-docx holds every part, parsed XML at ~4x
MAX_ZIP_RATIO = 100  # a .docx part's unzipped to zipped size (Word's XML: 5-30), for parts over 1 MB
MAX_ZIP_PARTS = 10_000  # a .docx has tens of parts; reading a zip's directory costs ~600 bytes each
RATIO_FROM_BYTES = 2**20
MAX_PDF_PAGES = 5_000  # a long book has a thousand
MAX_DOCX_ELEMENTS = 5_000_000  # XML elements in word/document.xml: a long report has a few hundred thousand
MAX_HTML_ELEMENTS = 2_000_000  # a long saved page has tens of thousands of tags
# Reading one file, OCR included: a file that takes longer is refused, whatever the reason.
MAX_READ_SECONDS = 180


class TextBudget:
    """The characters one file may yield: `MAX_TEXT_CHARS`, and `MAX_TEXT_PER_BYTE` per byte of the file.

    Extraction takes from it as it goes, so a file that expands without
    bound is refused part way, not after its text has filled memory.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.limit = min(MAX_TEXT_CHARS, MAX_TEXT_PER_BYTE * size)
        self.left = self.limit
        self.deadline = time.monotonic() + MAX_READ_SECONDS

    def check_time(self) -> None:
        """Refuse the file once reading it has taken `MAX_READ_SECONDS`.

        Raises:
            LoadError: Reading has taken too long.
        """
        if time.monotonic() > self.deadline:
            raise LoadError(f"refused: reading it took more than {MAX_READ_SECONDS} s; split it into smaller files")

    def take(self, text: str) -> str:
        """`text`, counted against the budget.

        Raises:
            LoadError: The file has yielded more than its budget.
        """
        self.left -= len(text)
        self.check_time()
        if self.left < 0:
            if self.limit == MAX_TEXT_CHARS:
                why = f"more than {MAX_TEXT_CHARS:,} characters of text"
            else:
                why = (
                    f"more than {self.limit:,} characters of text from {self.size:,} bytes "
                    f"(over {MAX_TEXT_PER_BYTE} per byte: a decompression bomb?)"
                )
            raise LoadError(f"refused: {why}; split it into smaller files")
        return text
