"""Library chatter kept out of the console.

The readers' libraries log what they work around while reading a file (pypdf
a wrong object pointer, trafilatura and its date finder a page without a
title, the OCR engine each page), many lines per file. A file that cannot be
read at all is reported by the loader as skipped, with the reason, so these
warnings tell the person running the app or the build nothing they can act
on; errors still show.
"""

from __future__ import annotations

import logging

NOISY = ("pypdf", "trafilatura", "htmldate", "courlan", "RapidOCR")


def quiet_library_logs() -> None:
    """Show only errors from the libraries in `NOISY` (idempotent)."""
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.ERROR)
