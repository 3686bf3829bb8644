"""What a link to the Ask page asked for that the page could not do, said instead of dropped.

`?k=banana&doc=nope.txt` used to open the page with five sources and all
documents and no word about it; now the page says "Ignored in the link:
k=banana, doc=nope.txt" so whoever shared the link can fix it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence


def ignored_params(k: Sequence[str], documents: Sequence[str], known: Collection[str], max_k: int) -> list[str]:
    """The link's `k` and `doc` values the page cannot use, as "name=value".

    Args:
        k: The link's `k` values (the page reads the first).
        documents: The link's `doc` values.
        known: The documents of the index.
        max_k: The most sources the page shows.
    """
    ignored = []
    if k:
        try:
            number = int(k[0])
        except ValueError:
            number = None
        if number is None or not 1 <= number <= max_k:
            ignored.append(f"k={k[0]} (a number from 1 to {max_k})" if number is not None else f"k={k[0]}")
    ignored += [f"doc={name}" for name in documents if name not in known]
    return ignored


def ignored_note(ignored: Sequence[str]) -> str:
    """ "Ignored in the link: k=banana, doc=nope.txt." ("" when nothing was)."""
    return f"Ignored in the link: {', '.join(ignored)}." if ignored else ""
