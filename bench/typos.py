"""Did you mean, measured: the question sets with seeded typos, answered with and without the suggestion.

Every question of corpus/questions*.jsonl gets typos put in by a seeded
script: one word of four letters or more (two in questions of more than
eight words), not a stopword, gets one edit at a uniformly chosen place (two
neighbouring letters swapped, a letter dropped, a letter doubled, or a
letter replaced by a neighbour on a QWERTY keyboard). Each question, clean
and with typos, is asked with the suggestion off (`suggest=False`: the
question as typed) and on (the default: a question that finds nothing
confident is answered by its correction when that is surer), over the
bundled corpus with the bundled model.

Scores per on-topic question: recall@1 (the top hit's passage holds the
labelled answer) and the answer sentence (the top hit's highlight holds it);
off-topic questions: how many were (wrongly) answered. "Clean changed"
counts clean questions whose verdict or hits differ with the suggestion on.

Also the vocabulary's costs on SciFact (`--data`): counting the words of
its passages (what publishing adds) and building the SymSpell dictionary
(what the first misspelt question of a process waits for).

    python bench/typos.py [--index DIR] [--seed 0] [--data ../shared/eval/scifact]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KEYBOARD = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]


def neighbours(letter: str) -> str:
    for row_number, row in enumerate(KEYBOARD):
        column = row.find(letter)
        if column >= 0:
            near = row[max(0, column - 1) : column] + row[column + 1 : column + 2]
            for other in (row_number - 1, row_number + 1):
                if 0 <= other < len(KEYBOARD):
                    near += KEYBOARD[other][max(0, column - 1) : column + 2]
            return near
    return "e"


def misspell(word: str, rng: random.Random) -> str:
    """`word` with one edit at a uniformly chosen place."""
    at = rng.randrange(len(word))
    kind = rng.choice(["swap", "drop", "double", "near"])
    if kind == "swap" and at < len(word) - 1:
        return word[:at] + word[at + 1] + word[at] + word[at + 2 :]
    if kind == "drop":
        return word[:at] + word[at + 1 :]
    if kind == "double":
        return word[: at + 1] + word[at:]
    return word[:at] + rng.choice(neighbours(word[at].lower())) + word[at + 1 :]


def with_typos(question: str, rng: random.Random) -> str:
    from index.terms import tokenize

    words = [m for m in re.finditer(r"[A-Za-z]{4,}", question) if tokenize(m.group())]
    if not words:
        return question
    chosen = rng.sample(words, min(len(words), 2 if len(question.split()) > 8 else 1))
    out = question
    for match in sorted(chosen, key=lambda m: -m.start()):
        out = out[: match.start()] + misspell(match.group(), rng) + out[match.end() :]
    return out


def read_questions() -> list[dict]:
    return [
        json.loads(line)
        for path in sorted((REPO / "corpus").glob("questions*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def score(searcher, items: list[dict], suggest: bool) -> dict:
    on_topic = [q for q in items if q["answer"]]
    answers = [searcher.search(q["query"], k=3, suggest=suggest) for q in items]
    by_query = dict(zip((q["query"] for q in items), answers))
    top1 = [q["answer"] in by_query[q["query"]].hits[0].passage.text for q in on_topic]
    sentence = [q["answer"] in by_query[q["query"]].hits[0].answer.text for q in on_topic]
    off = [by_query[q["query"]].answered for q in items if not q["answer"]]
    return {
        "answers": answers,
        "recall@1": sum(top1) / len(on_topic),
        "sentence": sum(sentence) / len(on_topic),
        "answered on-topic": sum(by_query[q["query"]].answered for q in on_topic) / len(on_topic),
        "off-topic answered": f"{sum(off)}/{len(off)}",
        "suggested": sum(a.suggestion is not None for a in answers),
        "corrected": sum(a.corrected for a in answers),
    }


def vocabulary_costs(data: Path) -> str:
    """Seconds to count SciFact's words and to build the SymSpell dictionary from them."""
    import time

    from index.search.spelling import Speller
    from index.store.vocabulary import count_words

    texts = [
        (lambda r: f"{r.get('title', '')}\n\n{r['text']}")(json.loads(line)) for line in open(data / "corpus.jsonl")
    ]
    began = time.perf_counter()
    counts = count_words(texts)
    counted = time.perf_counter() - began
    speller = Speller(dict(sorted(counts.items(), key=lambda item: -item[1])))
    began = time.perf_counter()
    _ = speller.symspell
    built = time.perf_counter() - began
    began = time.perf_counter()
    _ = speller.english
    english = time.perf_counter() - began
    return (
        f"Vocabulary on SciFact ({len(texts):,} documents, {sum(map(len, texts)) / 1e6:.1f} M characters): "
        f"{len(counts):,} words counted in {counted:.2f} s at publish; the SymSpell dictionary built from them in "
        f"{built:.2f} s and the English word list read in {english:.2f} s, once per process, on the first "
        "question with an unknown word. Counting at publish, not at load: a process that loads the index pays "
        "nothing until a question has an unknown word."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, help="an index of corpus/ built with the bundled model (else built)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=Path("../shared/eval/scifact"), help="SciFact's files")
    args = parser.parse_args()

    from index.config import Config, one_thread_per_question
    from index.embed.registry import embedder_for
    from index.search.searcher import Searcher
    from index.store.reader import load
    from ingest.pipeline import build

    one_thread_per_question()
    embedder = embedder_for(Config.resolve())
    with tempfile.TemporaryDirectory() as scratch:
        index_dir = args.index or Path(scratch) / "index"
        if args.index is None:
            build(REPO / "corpus", index_dir, embedder)
        searcher = Searcher(load(index_dir, model=embedder.name), embedder)
        clean = read_questions()
        rng = random.Random(args.seed)
        typed = [{**q, "query": with_typos(q["query"], rng)} for q in clean]
        changed = sum(q["query"] != t["query"] for q, t in zip(clean, typed))
        rows, results = [], {}
        for name, items in (("clean", clean), ("with typos", typed)):
            for suggest in (False, True):
                result = results[name, suggest] = score(searcher, items, suggest)
                rows.append(
                    [
                        name,
                        "on" if suggest else "off",
                        f"{result['recall@1']:.3f}",
                        f"{result['sentence']:.3f}",
                        f"{result['answered on-topic']:.3f}",
                        result["off-topic answered"],
                        result["suggested"],
                        result["corrected"],
                    ]
                )
                print(rows[-1], flush=True)
        clean_changed = sum(
            (a.verdict, a.hits) != (b.verdict, b.hits)
            for a, b in zip(results["clean", False]["answers"], results["clean", True]["answers"])
        )
        examples = [(t["query"], a.suggestion) for t, a in zip(typed, results["with typos", True]["answers"])][:8]

    from report import record, table

    body = table(
        [
            "questions",
            "suggestion",
            "recall@1",
            "answer sentence",
            "answered (on-topic)",
            "off-topic answered",
            "suggested",
            "answered by the correction",
        ],
        rows,
    )
    body += (
        f"\n\n{len(clean)} questions of corpus/questions*.jsonl ({changed} got typos, seed {args.seed}), "
        f"model {embedder.name}. Clean questions whose answer changed with the suggestion on: {clean_changed} "
        "(the bundled sets hold people's own typos, which the suggestion corrects too).\n\nFirst typed questions "
        "and their suggestions:\n\n" + "\n".join(f"- {q!r} -> {s!r}" for q, s in examples)
    )
    body += "\n\n" + vocabulary_costs(args.data)
    record("Did you mean: questions with seeded typos (bench/typos.py)", body)


if __name__ == "__main__":
    main()
