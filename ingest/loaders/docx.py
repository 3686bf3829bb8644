"""DOCX: paragraphs and table rows, after zip guards that refuse a decompression bomb before python-docx reads it."""

from __future__ import annotations

import os
from pathlib import Path

from ingest.loaders import limits
from ingest.loaders.document import LoadError
from ingest.loaders.limits import TextBudget


def read_docx(path: Path) -> str:
    import docx

    budget = TextBudget(path.stat().st_size)
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

    if _zip_entries(path) > limits.MAX_ZIP_PARTS:
        raise LoadError(f"refused: more than {limits.MAX_ZIP_PARTS:,} parts in the zip (a .docx has tens)")
    with zipfile.ZipFile(path) as archive:
        parts = archive.infolist()
    total = sum(part.file_size for part in parts)
    if total > limits.MAX_UNZIPPED_BYTES:
        raise LoadError(
            f"refused: unzips to {total / 2**20:,.1f} MB, more than {limits.MAX_UNZIPPED_BYTES / 2**20:,.1f} MB "
            "(a decompression bomb?); split it into smaller files"
        )
    for part in parts:
        ratio = part.file_size / max(part.compress_size, 1)
        if part.file_size > limits.RATIO_FROM_BYTES and ratio > limits.MAX_ZIP_RATIO:
            raise LoadError(
                f"refused: its part {part.filename} unzips {ratio:,.0f}-fold to {part.file_size / 2**20:,.0f} MB "
                f"(more than {limits.MAX_ZIP_RATIO}-fold: a decompression bomb?)"
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
    return limits.MAX_ZIP_PARTS + 1 if entries == 0xFFFF else entries  # 0xFFFF: a Zip64 count, far too many


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
