"""Every mention of a phrase, timed on SciFact and at a million passages, against a plain scan of the same texts.

For each index and phrase, in the same run:

- `mentions`: `MentionFinder.find` (the keyword index's terms pick the
  candidate documents, an exact scan of their stored texts finds the places),
  timed cold (the first phrase pays for reading the documents' list and the
  keyword vocabulary once) and warm (the median of three);
- `plain scan`: every document's stored text read and searched with the same
  whole-word regular expression, case-insensitive (`re.I`), no index.

The two counts must agree (a difference is printed: the plain scan does not
fold accents). The million-passage index is the one `bench/first_answer.py`
builds (synthetic SciFact passages, one document each), built here the same
way, by its own code, when `--million` holds none of `--size` passages.

    python bench/mentions.py [--scifact data/dev/scifact] [--million data/million] [--size 1000000]
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from pathlib import Path

PHRASES = ['"vitamin D"', '"breast cancer"', "insulin", '"randomized controlled trial"', '"T cells"', "zebrafish"]


def plain_scan(stored, phrase: str) -> int:
    """The places a plain case-insensitive whole-word regex finds in every stored text."""
    words = phrase.strip('"').split()
    pattern = re.compile(r"\b" + r"\s+".join(map(re.escape, words)) + r"\b", re.I)
    texts = stored.texts
    return sum(len(pattern.findall(texts.text(row))) for row in range(len(texts)))


def measure(name: str, index_dir: Path) -> list[list]:
    from index.search.mentions import MentionFinder
    from index.store.reader import load

    began = time.perf_counter()
    stored = load(index_dir)
    loaded = time.perf_counter() - began
    finder = MentionFinder(stored)
    rows = []
    for number, phrase in enumerate(PHRASES):
        began = time.perf_counter()
        found = finder.find(phrase)
        first = time.perf_counter() - began
        warm = []
        for _ in range(3):
            began = time.perf_counter()
            again = finder.find(phrase)
            warm.append(time.perf_counter() - began)
        assert again == found
        candidates = len(finder.candidates(found_phrase(phrase)) or [])
        began = time.perf_counter()
        plain = plain_scan(stored, phrase)
        scan = time.perf_counter() - began
        warm_s = statistics.median(warm)
        agree = "yes" if plain == found.total else f"no (plain {plain})"
        rows.append(
            [
                name,
                f"{stored.manifest.passages:,}",
                f"{stored.manifest.documents:,}",
                phrase.replace('"', "“", 1).replace('"', "”", 1),
                f"{found.total:,}",
                f"{len(found.documents):,}",
                f"{candidates:,}",
                f"{first * 1000:,.0f}" + (" (first phrase)" if number == 0 else ""),
                f"{warm_s * 1000:,.1f}",
                f"{scan * 1000:,.0f}",
                f"{scan / warm_s:,.0f}×",
                agree,
            ]
        )
        print(rows[-1], flush=True)
    print(f"{name}: loaded in {loaded:.2f} s", flush=True)
    return rows


def found_phrase(phrase: str):
    from index.search.mentions import Phrase

    return Phrase.parse(phrase)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scifact", type=Path, default=Path("data/dev/scifact"), help="a SciFact index")
    parser.add_argument("--million", type=Path, default=Path("data/million"), help="built once, reused after")
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--data", type=Path, default=Path("../shared/eval/scifact"), help="SciFact's files")
    parser.add_argument("--skip-million", action="store_true")
    args = parser.parse_args()

    rows = measure("SciFact", args.scifact)
    if not args.skip_million:
        from first_answer import build  # the million-passage index, made as bench/first_answer.py makes it

        from index.store.pointer import current_version
        from index.store.reader import manifest_of

        version = current_version(args.million) if (args.million / "CURRENT").exists() else None
        if version is None or manifest_of(version).passages != args.size:
            build(args.million, args.size, args.scifact, args.data / "corpus.jsonl")
        rows += measure(f"synthetic {args.size:,}", args.million)

    from report import record, table

    body = table(
        [
            "index",
            "passages",
            "documents",
            "phrase",
            "mentions",
            "in documents",
            "candidate documents",
            "first ms",
            "warm ms",
            "plain scan ms",
            "speed-up",
            "counts agree",
        ],
        rows,
    )
    body += (
        "\n\nEvery mention is exhaustive: the keyword index only narrows the scan to the documents whose passages "
        "hold every term of the phrase, and the count equals the plain scan's. The first phrase on an index also "
        "reads the documents' list and the keyword vocabulary (kept for the next phrases). Its time grows with "
        "the documents that hold the words, the plain scan's with the whole collection."
    )
    record("Every mention of a phrase (bench/mentions.py)", body)


if __name__ == "__main__":
    main()
