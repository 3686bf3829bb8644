"""Files into text: one `Document` per file, or per record for JSONL collections.

Each loader returns the text that all provenance offsets index into. Plain
text and Markdown keep the file's decoded content unchanged; HTML keeps only
visible text; PDFs keep page boundaries; DOCX keeps paragraphs and table
rows; JSONL (the BEIR layout, `{"_id", "title", "text"}` per line) gives one
document per record. Anything that cannot be read becomes a `Skipped` with
the file's name and a short reason, and the rest of the corpus carries on.
"""

from __future__ import annotations

import bisect
import codecs
import fnmatch
import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from index.records import Skipped

SUPPORTED_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx", ".jsonl"})
# Evaluation question sets (questions.jsonl, questions-everyday.jsonl, ...) may sit
# beside the documents; they are not documents.
QUESTION_SETS = "questions*.jsonl"

# What one file may expand to. A 3.8 MB .docx of a million short paragraphs
# holds about 1 GB of XML, which python-docx parses whole (161 s, 3.6 GB):
# such files are refused before their text is extracted.
MAX_TEXT_CHARS = 200_000_000  # characters of text from one .docx, .pdf or .html
MAX_TEXT_PER_BYTE = 100  # characters per byte of the file: prose compresses to a few per byte
MAX_UNZIPPED_BYTES = 256 * 2**20  # a .docx unzipped: python-docx holds every part, parsed XML at ~4x
MAX_ZIP_RATIO = 100  # a .docx part's unzipped to zipped size (Word's XML: 5-30), for parts over 1 MB
MAX_ZIP_PARTS = 10_000  # a .docx has tens of parts; reading a zip's directory costs ~600 bytes each
_RATIO_FROM_BYTES = 2**20


def is_question_set(name: str) -> bool:
    """Whether a file of this name is a question set rather than a document."""
    return fnmatch.fnmatchcase(name.lower(), QUESTION_SETS)


class LoadError(Exception):
    """A file that cannot be turned into text; the message says why."""


@dataclass(frozen=True)
class Document:
    """Extracted text of one file or record, and where it came from.

    Attributes:
        doc_id: The relative path for files; the record `_id` for JSONL records.
        source: Path relative to the corpus folder, with `/` separators.
        text: The extracted text; all passage offsets index into it.
        pages: PDFs only: `pages[i]` is the offset where page i+1 begins.
        title: JSONL records: the record's title.
    """

    doc_id: str
    source: str
    text: str
    pages: tuple[int, ...] = ()
    title: str = ""

    def page_at(self, offset: int) -> int | None:
        """1-based page holding `offset`, or None for documents without pages."""
        return bisect.bisect_right(self.pages, offset) if self.pages else None


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_CONTROL = re.compile(rb"[\x00-\x08\x0e-\x1f]")
# Lone UTF-16 surrogates: JSON "\\ud800" escapes and broken PDF font maps make
# them, and they cannot be written as UTF-8 (the index files) or hashed.
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def decode_text(data: bytes) -> str:
    """Decode file bytes: a BOM's encoding, else UTF-8, else cp1252, else Latin-1.

    Raises:
        LoadError: The bytes look binary (NUL or many control bytes).
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as exc:
                raise LoadError(f"starts with a {encoding} byte-order mark but is not valid {encoding}") from exc
    if b"\x00" in data or len(_CONTROL.findall(data[:65536])) > max(8, len(data[:65536]) // 100):
        raise LoadError("binary file, not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")  # Windows text: curly quotes in 0x80-0x9f
    except UnicodeDecodeError:
        return data.decode("latin-1")  # maps every byte; never fails


class _VisibleText(HTMLParser):
    """Collects the text a browser would show, a blank line between blocks."""

    HIDDEN = frozenset({"script", "style", "head", "title", "noscript", "template", "svg", "iframe"})
    BLOCKS = frozenset(
        "p div li ul ol h1 h2 h3 h4 h5 h6 tr table section article header footer nav aside main "
        "blockquote pre dd dt dl figure figcaption form hr address details summary".split()
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[list[str]] = [[]]
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in self.HIDDEN:
            self.hidden += 1
        elif tag in self.BLOCKS:
            self.blocks.append([])
        elif tag == "br":
            self.blocks[-1].append("\n")
        elif tag in ("td", "th"):
            self.blocks[-1].append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self.BLOCKS:
            self.blocks.append([])

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.blocks[-1].append(data)

    def text(self) -> str:
        paragraphs = []
        for block in self.blocks:
            lines = ("".join(block)).split("\n")
            lines = [" ".join(line.split()) for line in lines]
            joined = "\n".join(line for line in lines if line)
            if joined:
                paragraphs.append(joined)
        return "\n\n".join(paragraphs)


class _TextBudget:
    """The characters one file may yield: `MAX_TEXT_CHARS`, and `MAX_TEXT_PER_BYTE` per byte of the file.

    Extraction takes from it as it goes, so a file that expands without
    bound is refused part way, not after its text has filled memory.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.limit = min(MAX_TEXT_CHARS, MAX_TEXT_PER_BYTE * size)
        self.left = self.limit

    def take(self, text: str) -> str:
        """`text`, counted against the budget.

        Raises:
            LoadError: The file has yielded more than its budget.
        """
        self.left -= len(text)
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


def _html(data: bytes) -> str:
    parser = _VisibleText()
    parser.feed(decode_text(data))
    parser.close()
    return _TextBudget(len(data)).take(parser.text())


def _pdf(path: Path) -> tuple[str, tuple[int, ...]]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    budget = _TextBudget(path.stat().st_size)
    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            try:
                if not reader.decrypt(""):
                    raise LoadError("encrypted PDF (password required)")
            except (NotImplementedError, PdfReadError) as exc:
                raise LoadError(f"encrypted PDF (cannot decrypt: {exc})") from None
        texts = [budget.take(page.extract_text() or "") for page in reader.pages]
    except LoadError:
        raise
    except Exception as exc:  # pypdf raises many kinds on damaged files
        raise LoadError(f"corrupt or unreadable PDF: {exc}") from None
    if texts and not any(text.strip() for text in texts):
        raise LoadError(f"no text layer in {len(texts)} page(s) (scanned images? run OCR on it first)")
    pages, parts, offset = [], [], 0
    for text in texts:
        pages.append(offset)
        parts.append(text)
        offset += len(text) + 2
    return "\n\n".join(parts), tuple(pages)


def _docx(path: Path) -> str:
    import docx

    budget = _TextBudget(path.stat().st_size)
    try:
        _check_unzipped_size(path)
        document = docx.Document(str(path))
        paragraphs = [budget.take(p.text.strip()) for p in document.paragraphs if p.text.strip()]
        for table in document.tables:
            for row in table.rows:
                cells = [cell.text.strip() for cell in row.cells]
                if any(cells):
                    paragraphs.append(budget.take(" | ".join(cells)))
    except LoadError:
        raise
    except Exception as exc:  # damaged zips and XML raise many kinds (zlib.error, XMLSyntaxError, ...)
        raise LoadError(f"not a valid .docx file ({type(exc).__name__}: {exc})") from None
    return "\n\n".join(paragraphs)


def _check_unzipped_size(path: Path) -> None:
    """Refuse a .docx that unzips to too much, before python-docx reads any of it.

    First from the zip's directory: how many parts, their total unzipped size,
    and each part's compression ratio. Then by inflating every part in 1 MB
    steps, counting, and stopping at once when one holds more than its header
    declares: a lying header would otherwise have zipfile inflate the whole
    part in one call (it cuts the output to the declared size only after).

    Raises:
        LoadError: Too many parts, too large unzipped, or a decompression bomb.
        zipfile.BadZipFile: Not a zip file (the caller reports it as not a valid .docx).
    """
    import zipfile

    if _zip_entries(path) > MAX_ZIP_PARTS:
        raise LoadError(f"refused: more than {MAX_ZIP_PARTS:,} parts in the zip (a .docx has tens)")
    with zipfile.ZipFile(path) as archive:
        parts = archive.infolist()
    total = sum(part.file_size for part in parts)
    if total > MAX_UNZIPPED_BYTES:
        raise LoadError(
            f"refused: unzips to {total / 2**20:,.1f} MB, more than {MAX_UNZIPPED_BYTES / 2**20:,.1f} MB "
            "(a decompression bomb?); split it into smaller files"
        )
    for part in parts:
        ratio = part.file_size / max(part.compress_size, 1)
        if part.file_size > _RATIO_FROM_BYTES and ratio > MAX_ZIP_RATIO:
            raise LoadError(
                f"refused: its part {part.filename} unzips {ratio:,.0f}-fold to {part.file_size / 2**20:,.0f} MB "
                f"(more than {MAX_ZIP_RATIO}-fold: a decompression bomb?)"
            )
    with open(path, "rb") as raw:
        for part in parts:
            _inflate_within(raw, part)


def _zip_entries(path: Path) -> int:
    """The number of entries a zip's end record declares (0 when there is none: zipfile then refuses it)."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - 65_557))  # the end record (22 bytes) and the longest comment
        tail = handle.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) < at + 22:
        return 0
    entries = int.from_bytes(tail[at + 10 : at + 12], "little")
    return MAX_ZIP_PARTS + 1 if entries == 0xFFFF else entries  # 0xFFFF: a Zip64 count, far too many


def _inflate_within(raw, part) -> None:
    """Inflate one part of a zip in bounded steps; refuse it as soon as it holds more than declared."""
    import zipfile
    import zlib

    if part.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise LoadError(f"not a valid .docx file: part {part.filename} uses compression method {part.compress_type}")
    raw.seek(part.header_offset)
    header = raw.read(30)  # the local file header; the data follows its name and extra field
    if len(header) < 30 or header[:4] != b"PK\x03\x04":
        raise LoadError(f"not a valid .docx file: part {part.filename} has no local header")
    raw.seek(
        part.header_offset + 30 + int.from_bytes(header[26:28], "little") + int.from_bytes(header[28:30], "little")
    )
    inflater = zlib.decompressobj(-zlib.MAX_WBITS) if part.compress_type == zipfile.ZIP_DEFLATED else None
    step, left, produced = 2**20, part.compress_size, 0
    while left > 0 and produced <= part.file_size:
        block = raw.read(min(step, left))
        if not block:
            break
        left -= len(block)
        if inflater is None:
            produced += len(block)
            continue
        produced += len(inflater.decompress(block, step))
        while inflater.unconsumed_tail and produced <= part.file_size:
            produced += len(inflater.decompress(inflater.unconsumed_tail, step))
    if produced > part.file_size:
        raise LoadError(
            f"refused: its part {part.filename} holds more than the {part.file_size:,} bytes its header declares "
            "(a decompression bomb?)"
        )


def _jsonl(data: bytes, source: str) -> tuple[list[Document], list[Skipped]]:
    """One document per record; a bad line, or an `_id` already used in this file, is a problem.

    A record is known by its file and its `_id` together, so the same `_id` in
    two files is two documents, and no file can shadow another.
    """
    documents, problems = [], []
    first_line: dict[str, int] = {}
    for number, line in enumerate(decode_text(data).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
            doc_id, text = str(record["_id"]), record["text"]
            title = record.get("title") or ""
            if not isinstance(text, str) or not isinstance(title, str):
                raise ValueError('"title" and "text" must be strings')
        except (ValueError, KeyError) as exc:
            problems.append(Skipped(f"{source}:{number}", f"invalid JSON record: {exc}"))
            continue
        if _SURROGATE.search(doc_id):
            problems.append(Skipped(f"{source}:{number}", f"invalid JSON record: _id {doc_id!r} is not valid Unicode"))
            continue
        if doc_id in first_line:
            problems.append(
                Skipped(f"{source}:{number}", f"duplicate record id {doc_id!r} (first on line {first_line[doc_id]})")
            )
            continue
        first_line[doc_id] = number
        title, text = _valid_unicode(title), _valid_unicode(text)
        full = f"{title}\n\n{text}" if title.strip() else text
        documents.append(Document(doc_id, source, full, title=title))
    return documents, problems


def _valid_unicode(text: str) -> str:
    """`text` with lone surrogates replaced by U+FFFD (one character for one, so offsets hold)."""
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


def _load(path: Path, source: str) -> tuple[list[Document], list[Skipped]]:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise LoadError(f"unsupported type {suffix or '(none)'}; supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}")
    if path.stat().st_size == 0:
        raise LoadError("file is empty")
    if suffix == ".pdf":
        text, pages = _pdf(path)
        return [Document(source, source, _valid_unicode(text), pages)], []
    if suffix == ".docx":
        return [Document(source, source, _valid_unicode(_docx(path)))], []
    data = path.read_bytes()
    if not data:  # emptied since the size check
        raise LoadError("file is empty")
    if suffix == ".jsonl":
        return _jsonl(data, source)
    text = _html(data) if suffix in (".html", ".htm") else decode_text(data)
    return [Document(source, source, _valid_unicode(text))], []


def load_file(path: Path, source: str) -> list[Document]:
    """Read one file.

    Args:
        path: The file.
        source: Its path relative to the corpus (used as id and citation).

    Returns:
        One document, or one per record for `.jsonl` (bad records are left out;
        `iter_documents` reports them).

    Raises:
        LoadError: The file cannot be read as text, with the reason.
    """
    return _load(path, source)[0]


def corpus_root(corpus: Path) -> Path:
    """The folder that sources are relative to: the corpus itself, or a single file's folder."""
    return corpus.parent if corpus.is_file() else corpus


def discover(corpus: Path, rejected: list[Skipped] | None = None) -> list[Path]:
    """Supported files under `corpus`, sub-folders included, sorted by relative path.

    `corpus` may also be one file (for example a BEIR `corpus.jsonl` that sits
    beside its queries). Hidden files and folders and question sets (`QUESTION_SETS`) are left
    out; symbolic links to folders are not followed, so a link loop cannot
    trap the walk. Links to files outside the corpus folder (`/etc/passwd`;
    nothing outside the corpus is ever read), pipes and devices (a read may
    block forever, or never end) and paths whose names are not valid UTF-8
    (old archives unpacked on Linux; they cannot be cited or stored) are left
    out too and, when `rejected` is given, appended to it with the reason.
    """
    if corpus.is_file():  # named by the operator: read wherever it lies
        return [] if _bad_name(corpus.name, rejected) else [corpus]
    found, left_out = [], []
    for folder, subfolders, files in os.walk(corpus, followlinks=False):
        subfolders[:] = [d for d in subfolders if not d.startswith(".")]
        for name in files:
            path = Path(folder) / name
            if name.startswith(".") or is_question_set(name) or path.suffix.lower() not in SUPPORTED_SUFFIXES:
                continue
            relative = path.relative_to(corpus).as_posix()
            if _bad_name(relative, left_out) or _leaves_corpus(path, corpus, relative, left_out):
                continue
            if not _special_file(path, relative, left_out):
                found.append(path)
    if rejected is not None:
        rejected.extend(sorted(left_out, key=lambda item: item.source))
    return sorted(found, key=lambda p: p.relative_to(corpus).as_posix())


LINK_OUT = "link points outside the corpus"


def is_outside(path: Path, folder: Path) -> bool:
    """Whether `path`, its links followed, lies outside `folder`.

    A broken link or a link loop counts as inside: reading it fails, and the loader says so.
    """
    try:
        return not path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop, before Python 3.13
        return False


def _leaves_corpus(path: Path, corpus: Path, relative: str, rejected: list[Skipped] | None) -> bool:
    """Whether `path` is a link out of the corpus (recording it in `rejected`)."""
    if not is_outside(path, corpus):
        return False
    if rejected is not None:
        rejected.append(Skipped(relative, LINK_OUT))
    return True


def _special_file(path: Path, relative: str, rejected: list[Skipped] | None) -> bool:
    """Whether `path` (or what its link points at) is a FIFO, socket or device: reading one can block forever."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False  # broken link or link loop: the loader reports it
    if stat.S_ISREG(mode):
        return False
    if rejected is not None:
        rejected.append(Skipped(relative, "not a regular file (a pipe, socket or device); only files are read"))
    return True


def _bad_name(relative: str, rejected: list[Skipped] | None) -> bool:
    """Whether `relative` holds bytes that are not UTF-8 (recording it in `rejected`)."""
    if not _SURROGATE.search(relative):
        return False
    if rejected is not None:
        printable = relative.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        rejected.append(Skipped(printable, "file name is not valid UTF-8; rename the file"))
    return True


def iter_documents(corpus: Path) -> Iterator[Document | Skipped]:
    """Every document in the corpus, and a `Skipped` for each file or record that failed.

    A document is known by its source file and its id together (for a JSONL
    record, its `_id`; a record id repeated within one file is skipped).
    """
    root = corpus_root(corpus)
    badly_named: list[Skipped] = []
    paths = discover(corpus, rejected=badly_named)
    yield from badly_named
    for path in paths:
        yield from read_file(path, root, corpus.is_dir())


def read_file(path: Path, root: Path, confined: bool = True) -> list[Document | Skipped]:
    """One file's documents, or a `Skipped` for the file or each bad record (blank records left out).

    Bad input never raises.

    Args:
        path: A file found by `discover`.
        root: The corpus root (`corpus_root`), which sources are relative to.
        confined: Refuse a file whose links lead outside `root` (checked again here, where
            it is read, in case it changed since `discover`); False when the corpus is
            this one named file.
    """
    source = path.relative_to(root).as_posix()
    if confined and is_outside(path, root):
        return [Skipped(source, LINK_OUT)]
    try:
        documents, problems = _load(path, source)
    except LoadError as exc:
        return [Skipped(source, str(exc))]
    except PermissionError:
        return [Skipped(source, "permission denied")]
    except OSError as exc:
        return [Skipped(source, f"cannot read: {exc.strerror or exc}")]
    documents = [d for d in documents if d.text.strip()]
    if not documents and not problems:
        return [Skipped(source, "no text found")]
    return [*problems, *documents]
