"""Library chatter kept out of the console.

pypdf logs a warning for every oddity it works around while reading a PDF
(a font dictionary dumped whole, a wrong object pointer), many per file. A
PDF it cannot read at all is reported by the loader as skipped, with the
reason, so these warnings tell the person running the app or the build
nothing they can act on; errors still show.
"""

from __future__ import annotations

import logging

NOISY = ("pypdf",)


def quiet_library_logs() -> None:
    """Show only errors from the libraries in `NOISY` (idempotent)."""
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.ERROR)
