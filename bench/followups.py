"""Follow-up questions: carry the previous question's subject, or only offer it? Measured on written follow-ups.

Each case is a question, a follow-up that leans on it, and a piece of the
sentence that answers the follow-up in the bundled corpus. "As asked" searches the
follow-up alone (what the page did, and what a hint leaves on screen until
the person clicks it); "carried" searches `ui.followup.carried(follow-up,
question)` whenever the follow-up has no subject of its own. The control set
is the bundled question sets asked after an unrelated question: the
detector should leave them alone, and carrying must not cost them.

    python bench/followups.py [--index DIR]   # default: builds corpus/ with the bundled model into a temporary folder
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from index.config import Config
from index.embed.registry import embedder_for
from index.search.searcher import Searcher
from index.store.reader import load
from ingest.pipeline import build
from ui.followup import carried

REPO = Path(__file__).resolve().parent.parent
FOLLOWUPS = [
    ("what is spinal fusion?", "and how long is the recovery?", "requires a long recovery period"),
    ("what is kyphoplasty?", "does it help with the pain?", "which can help to reduce pain"),
    ("how often should I ice a painful hip?", "for how long each time?", "10 to 15 minutes"),
    ("what causes pain on the inside of the hip?", "and what do those muscles do?", "pull the leg inward"),
    ("what is spondylolisthesis?", "what causes it?", "secondary to a defect or fracture of the pars"),
    ("what is a grade II muscle tear?", "how long does it take to heal?", "a couple weeks to a few months"),
    ("what are spondyloarthropathies?", "when do they usually begin?", "second and third decades of life"),
    ("what is degenerative disc disease?", "what happens to them with age?", "discs lose hydration and wear down"),
    ("how often should I do the hip exercises?", "and should I rest in between?", "build in a rest day"),
    ("what are the intervertebral discs?", "what are they made of?", "central, softer component"),
    ("how common is low back pain?", "and does it come back?", "recurrent episode within one year"),
    ("what is a good hip flexor stretch?", "how long should I hold it?", "Hold for 30-45 seconds"),
]
UNRELATED = "what is spinal fusion?"


def rank_of(searcher: Searcher, query: str, answer: str) -> int | None:
    hits = searcher.search(query, k=10).hits
    return next((h.rank for h in hits if answer in h.passage.text), None)


def verdict_of(searcher: Searcher, query: str) -> str:
    return searcher.search(query, k=10).verdict.value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", type=Path)
    args = parser.parse_args()
    config = Config.resolve()
    embedder = embedder_for(config)
    with tempfile.TemporaryDirectory() as scratch:
        index_dir = args.index or Path(scratch) / "index"
        if args.index is None:
            build(REPO / "corpus", index_dir, embedder)
        searcher = Searcher(load(index_dir, model=embedder.name), embedder)
        asked_1 = carried_1 = asked_3 = carried_3 = 0
        verdicts: dict[str, dict[str, int]] = {"as asked": {}, "carried": {}}
        for previous, follow_up, answer in FOLLOWUPS:
            query = carried(follow_up, previous) or follow_up
            plain, carry = rank_of(searcher, follow_up, answer), rank_of(searcher, query, answer)
            for how, text in (("as asked", follow_up), ("carried", query)):
                verdict = verdict_of(searcher, text)
                verdicts[how][verdict] = verdicts[how].get(verdict, 0) + 1
            asked_1 += plain == 1
            carried_1 += carry == 1
            asked_3 += plain is not None and plain <= 3
            carried_3 += carry is not None and carry <= 3
            print(f"{follow_up!r:45} as asked {plain!s:>4}  carried {carry!s:>4}  ({query})")
        n = len(FOLLOWUPS)
        print(
            f"\nfollow-ups ({n}): right passage first: as asked {asked_1}/{n}, carried {carried_1}/{n}; "
            f"in the top 3: as asked {asked_3}/{n}, carried {carried_3}/{n}"
        )
        print(f"verdicts: as asked {verdicts['as asked']}, carried {verdicts['carried']}")
        controls = []
        for name in ("questions.jsonl", "questions-everyday.jsonl"):
            for line in (REPO / "corpus" / name).read_text(encoding="utf-8").splitlines():
                record = json.loads(line)
                if record.get("answer"):
                    controls.append((record["query"], record["answer"]))
        fired = changed = worse = 0
        for question, answer in controls:
            query = carried(question, UNRELATED)
            if query is None:
                continue
            fired += 1
            plain, carry = rank_of(searcher, question, answer), rank_of(searcher, query, answer)
            changed += plain != carry
            worse += (carry or 99) > (plain or 99)
        print(
            f"standalone questions ({len(controls)}, asked after {UNRELATED!r}): the detector carried a subject "
            f"into {fired}; the right passage moved for {changed}, down for {worse}"
        )


if __name__ == "__main__":
    main()
