"""Real documents, scored as the held-out set of their kind is: realdocs-dev (PDF leaflets, markdown) and
realdocs-web (saved web pages with their menus).

Each set's documents are indexed (or brought up to date) under `--dev`, its
questions asked through `python -m index query --file … -k 5 --json` exactly
as a user's tool would, and the answers scored by realdocs-dev's own
`score.py`: the answer sentence right (the first hit's quote holds a gold
phrase, from the right document), the right document first, answerable
questions called answered, and questions the documents do not answer not
called answered.

    python bench/realdocs.py [--dev data/dev] [--sets realdocs-dev,realdocs-web] [--record]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from report import record, table

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT.parent / "shared" / "eval"
SETS = {"realdocs-dev": EVAL / "realdocs-dev", "realdocs-web": ROOT / "eval" / "realdocs-web"}
SCORE = EVAL / "realdocs-dev" / "score.py"


def score(name: str, folder: Path, dev: Path) -> list[str]:
    """Index the set, ask its questions, and return score.py's figures as table cells."""
    index = dev / name
    subprocess.run(
        [sys.executable, "-m", "ingest", "--corpus", str(folder / "docs"), "--index", str(index)], check=True
    )
    rows = [json.loads(line) for line in (folder / "questions.jsonl").read_text().splitlines() if line.strip()]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as questions:
        questions.write("\n".join(r["q"] for r in rows) + "\n")
    answers = subprocess.run(
        [sys.executable, "-m", "index", "query", "--file", questions.name, "--index", str(index), "-k", "5", "--json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    scored = subprocess.run(
        [sys.executable, str(SCORE), str(folder / "questions.jsonl")], input=answers, capture_output=True, text=True
    )
    Path(questions.name).unlink()
    print(scored.stderr, file=sys.stderr)
    line = scored.stdout.strip().splitlines()[-1]  # "answer sentence right 19/30 (0.63), right document 30/30, ..."
    parts = [part.strip() for part in line.split(",")]
    return [name, *(part.rsplit(" ", 2)[-2] if "(" in part else part.rsplit(" ", 1)[-1] for part in parts)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", type=Path, default=ROOT / "data" / "dev", help="folder of the indexes")
    parser.add_argument("--sets", default=",".join(SETS), help="which sets (comma-separated)")
    parser.add_argument("--record", action="store_true", help="store the table in bench/RESULTS.md")
    args = parser.parse_args()
    rows = [score(name, SETS[name], args.dev) for name in args.sets.split(",")]
    body = (
        table(
            [
                "set",
                "answer sentence right",
                "right document",
                "answerable called answered",
                "unanswerable not called answered",
            ],
            rows,
        )
        + "\n\nRerun: `python bench/realdocs.py`"
    )
    if args.record:
        record("Real documents: realdocs-dev and realdocs-web (bench/realdocs.py)", body)
    print(body)


if __name__ == "__main__":
    main()
