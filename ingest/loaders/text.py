"""Bytes to text: the encoding from a byte-order mark, else UTF-8, cp1252, Latin-1; lone surrogates made safe."""

from __future__ import annotations

import codecs
import re

from ingest.loaders.document import LoadError

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
SURROGATE = re.compile(r"[\ud800-\udfff]")


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


def valid_unicode(text: str) -> str:
    """`text` with lone surrogates replaced by U+FFFD (one character for one, so offsets hold)."""
    return SURROGATE.sub("\ufffd", text) if SURROGATE.search(text) else text
