"""What both command lines (`python -m index`, `python -m ingest`) share.

They agree on exit codes: 0 when the work is done, 1 for a runtime error
(an index that cannot be used, a file that cannot be read, a corpus without
text), printed as one line `error: ...` on stderr, and 2 only for a command
line that does not parse or makes no sense (argparse's code). Results go to
stdout; notes, warnings and progress go to stderr.
"""

from __future__ import annotations

import sys

EXIT_ERROR = 1
EXIT_USAGE = 2


def fail(error: BaseException | str) -> int:
    """Print `error: <message>` as one line on stderr; returns `EXIT_ERROR`."""
    print(f"error: {one_line(str(error))}", file=sys.stderr)
    return EXIT_ERROR


def note(message: str) -> None:
    """Print `note: <message>` as one line on stderr."""
    print(f"note: {one_line(message)}", file=sys.stderr)


def one_line(text: str) -> str:
    """`text` with its line breaks turned into spaces (a file name may hold one)."""
    return " ".join(text.splitlines())
