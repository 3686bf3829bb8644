"""What one file may expand to, and the budget extraction draws on so a bomb is refused part way."""

from __future__ import annotations

import time

from ingest.loaders.document import LoadError

# What one file may expand to. A small .docx of many short paragraphs can hold
# a gigabyte of XML (bench/RESULTS.md, "Files that expand"): each reader
# counts what it parses as it goes and refuses the file at the first bound
# passed, before its text has filled memory.
MAX_TEXT_CHARS = 20_000_000  # characters of text from one .docx, .pdf or .html: six copies of War and Peace
MAX_TEXT_PER_BYTE = 100  # characters per byte of the file: prose compresses to a few per byte
MAX_UNZIPPED_BYTES = 256 * 2**20  # a .docx unzipped, all parts (images included)
MAX_ZIP_RATIO = 100  # a .docx part's unzipped to zipped size (Word's XML: 5-30), for parts over 1 MB
MAX_ZIP_PARTS = 10_000  # a .docx has tens of parts; reading a zip's directory costs ~600 bytes each
RATIO_FROM_BYTES = 2**20
MAX_DOCX_XML_BYTES = 64 * 2**20  # word/document.xml: a 1,000-page report has 10-20 MB
MAX_DOCX_ELEMENTS = 3_000_000  # XML elements in word/document.xml: a long report has a few hundred thousand
MAX_DOCX_PARAGRAPHS = 500_000  # a 1,000-page report has about 30,000
MAX_PDF_PAGES = 5_000  # a long book has a thousand
MAX_PDF_CONTENT_BYTES = 8 * 2**20  # a PDF's stream of drawing operators, inflated: a page has KB, a detailed map MB
MAX_PDF_STREAM_BYTES = 64 * 2**20  # an image, font or object stream of a PDF, inflated
MAX_PDF_INFLATED_BYTES = 512 * 2**20  # all a PDF's Flate streams, inflated
MAX_PDF_OBJECTS = 1_000_000  # text, path and image objects of all pages: a page has tens to thousands
MAX_PDF_TEXT_SECONDS = 60  # reading the text layers of one PDF (OCR not counted): 5,000 pages take ~25 s
MAX_HTML_BYTES = 32 * 2**20  # a saved web page has tens of KB to a few MB
MAX_HTML_ELEMENTS = 500_000  # a long saved page has tens of thousands of tags
MAX_JSONL_RECORD_BYTES = 16 * 2**20  # one line of a .jsonl collection: a record is a document, KB to a few MB
MAX_JSONL_RECORDS = 5_000_000  # records in one .jsonl file (BEIR's largest corpora have a few million)
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
