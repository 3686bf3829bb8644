"""Choose every search setting on all development sets at once, and fit the confidence model.

One script decides the defaults of `index.search.settings.SearchSettings` and the
weights in `index/search/confidence.json`, and prints every set separately:

- bundled:  corpus/questions.jsonl (tidy questions) and corpus/questions-everyday.jsonl
            (questions as a worried person types them), over the bundled corpus;
- medquad:  ../shared/eval/medquad-dev (consumer health questions against NIH answers);
- scifact:  ../shared/eval/scifact, train queries (test queries are reported, never chosen on).

Sections: the ranking grid (MRR@10 on the question sets, nDCG@10 on the BEIR
sets), the answer-sentence grid (the share of answering sentences highlighted,
and how many sentences a highlight holds), the confidence model (fitted on
every set with each set weighted equally, plus questions asked of a
collection they were not written for, which nothing there answers; Brier
scores from 5-fold cross-validation by question and from leaving a whole
collection out), and the verdict thresholds. A setting that helps one set and
hurts another by more than 0.005 must not become the default: the grid
prints each setting's worst change against the previous defaults.

The development indexes are built on first use under data/dev/ (the SciFact
one takes 10-20 minutes on two cores), or under `--dev DIR`:

    python bench/tune.py [--sets bundled,medquad,scifact] [--dev DIR] [--defaults] [--write] [--record]

An index's manifest names its vector space, not the backend that embedded
it, so indexes built with another backend (`KB_EMBEDDER=onnx-int8`) need a
folder of their own: updating one with another backend would silently mix
both backends' vectors. `--defaults` scores only the default settings (no
grids): how two backends compare. `--write` saves the fitted confidence
model to index/search/confidence.json; `--record` stores the tables in
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from report import record, table

from index.config import Config
from index.embed.registry import embedder_for
from index.evaluate import (
    BEIR_CANDIDATES,
    documents_by_best_passage,
    evaluate_questions,
    ndcg_at,
    read_qrels,
    read_queries,
    read_questions,
)
from index.search.answer import agrees
from index.search.confidence import BUNDLED, FEATURES, ConfidenceModel, features
from index.search.query import clean_query
from index.search.searcher import Searcher
from index.search.settings import Fusion, SearchSettings
from index.store.reader import load
from ingest.pipeline import build

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT.parent / "shared" / "eval"
DEV = ROOT / "data" / "dev"
# The defaults before this script chose them (passage cosine only, fixed 0.7 fusion weight).
PREVIOUS = SearchSettings(sentence_weight=0.0, dense_weight_slope=0.0)
CHOSEN = SearchSettings()
HITS = 5  # hits per question the confidence model is fitted on


class MemoEmbedder:
    """The real embedder, encoding each question once for every setting that asks again."""

    def __init__(self, inner) -> None:
        self.inner, self.cache = inner, {}
        self.name, self.dimensions, self.max_tokens = inner.name, inner.dimensions, inner.max_tokens

    def encode(self, texts, progress=None):
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            self.cache.update(zip(missing, self.inner.encode(missing)))
        return np.vstack([self.cache[t] for t in texts]) if texts else np.zeros((0, self.dimensions), np.float32)

    def encode_spans(self, texts, spans, progress=None):
        return self.inner.encode_spans(texts, spans, progress)

    def count_tokens(self, text):
        return self.inner.count_tokens(text)


@dataclass
class QuestionSet:
    """Questions over one collection: BEIR qrels (by document id) or answer strings (question sets)."""

    name: str
    collection: str
    queries: list[str]
    qrels: list[dict[str, int]] | None = None
    answers: list[str | None] | None = None
    chosen_on: bool = True  # False: reported only (SciFact test)
    golds: list[tuple[str, list[str]]] | None = None  # real documents: (document, gold phrases); no phrases: none


def collections(names: list[str], dev: Path = DEV) -> dict[str, tuple[Path, Path]]:
    """Collection name -> (corpus, index folder under `dev`)."""
    known = {
        "bundled": (ROOT / "corpus", dev / "bundled"),
        "medquad": (EVAL / "medquad-dev" / "corpus.jsonl", dev / "medquad"),
        "scifact": (EVAL / "scifact" / "corpus.jsonl", dev / "scifact"),
        "realdocs-dev": (EVAL / "realdocs-dev" / "docs", dev / "realdocs-dev"),
        "realdocs-web": (ROOT / "eval" / "realdocs-web" / "docs", dev / "realdocs-web"),
    }
    return {name: known[name] for name in names}


def question_sets(names: list[str]) -> list[QuestionSet]:
    sets = []
    if "bundled" in names:
        for path in sorted((ROOT / "corpus").glob("questions*.jsonl")):
            questions = read_questions(path)
            sets.append(
                QuestionSet(path.stem, "bundled", [q.query for q in questions], answers=[q.answer for q in questions])
            )
    for name, folder in (("realdocs-dev", EVAL / "realdocs-dev"), ("realdocs-web", ROOT / "eval" / "realdocs-web")):
        if name in names:
            rows = [json.loads(line) for line in (folder / "questions.jsonl").read_text().splitlines() if line.strip()]
            golds = [(r.get("doc") or "", r["gold"] if r["kind"] == "answerable" else []) for r in rows]
            answers = [r["gold"][0] if r["kind"] == "answerable" else None for r in rows]
            sets.append(QuestionSet(name, name, [r["q"] for r in rows], answers=answers, golds=golds))
    for name, split, chosen in (("medquad", "test", True), ("scifact", "train", True), ("scifact", "test", False)):
        if name not in names:
            continue
        folder = EVAL / ("medquad-dev" if name == "medquad" else name)
        queries, qrels = read_queries(folder / "queries.jsonl"), read_qrels(folder / "qrels" / f"{split}.tsv")
        judged = [q for q in qrels if q in queries]
        sets.append(
            QuestionSet(
                f"{name}-{split}",
                name,
                [queries[q] for q in judged],
                qrels=[qrels[q] for q in judged],
                chosen_on=chosen,
            )
        )
    return sets


def ranking_score(searcher: Searcher, qs: QuestionSet, vectors: np.ndarray) -> float:
    """MRR@10 of the answering passage (question sets) or nDCG@10 of documents (BEIR sets)."""
    total = 0.0
    for i, query in enumerate(qs.queries):
        rows = searcher.rank(clean_query(query), vectors[i]).rows
        if qs.qrels is not None:
            total += ndcg_at(documents_by_best_passage(searcher, rows), qs.qrels[i], 10)
        elif qs.answers[i]:
            rank = next((r for r, row in enumerate(rows[:10], 1) if qs.answers[i] in searcher.passages[row].text), 0)
            total += 1 / rank if rank else 0.0
    judged = len(qs.queries) if qs.qrels is not None else sum(bool(a) for a in qs.answers)
    return total / judged


def ranking_grid(defaults_only: bool = False) -> list[tuple[str, SearchSettings]]:
    if defaults_only:
        return [("previous default (passage cosine, convex 0.7)", PREVIOUS), ("current", CHOSEN)]
    grid = [("previous default (passage cosine, convex 0.7)", PREVIOUS)]
    grid += [("rrf k=60, passage cosine", replace(PREVIOUS, fusion=Fusion.RRF))]
    for sentence in (0.0, 0.3, 0.5, 0.7):
        for weight in (0.6, 0.7, 0.8):
            for slope in (0.0, 0.3):
                if (sentence, weight, slope) == (0.0, 0.7, 0.0):
                    continue
                label = f"sentence {sentence}, convex {weight}" + (f" + {slope} x (best - 0.5)" if slope else "")
                grid.append(
                    (label, SearchSettings(sentence_weight=sentence, dense_weight=weight, dense_weight_slope=slope))
                )
        grid.append((f"sentence {sentence}, rrf k=60", SearchSettings(sentence_weight=sentence, fusion=Fusion.RRF)))
    return grid


def tune_ranking(env, sets, defaults_only: bool = False) -> str:
    grid = ranking_grid(defaults_only)
    rows, scores = [], {}
    for label, settings in grid:
        values = []
        for qs in sets:
            stored, embedder, vectors = env[qs.name]
            depth = BEIR_CANDIDATES if qs.qrels is not None else settings.candidates
            values.append(ranking_score(Searcher(stored, embedder, replace(settings, candidates=depth)), qs, vectors))
        scores[label] = values
        print(f"  {label}: " + " ".join(f"{v:.4f}" for v in values), flush=True)
    base = scores[grid[0][0]]
    chosen_on = [i for i, qs in enumerate(sets) if qs.chosen_on]
    for label, settings in grid:
        values = scores[label]
        worst = min(values[i] - base[i] for i in chosen_on)
        mark = " **(default)**" if settings == CHOSEN else ""
        rows.append([label + mark, *[f"{v:.4f}" for v in values], f"{worst:+.4f}"])
    headers = ["setting", *[f"{qs.name}{'' if qs.chosen_on else ' (reported only)'}" for qs in sets]]
    return (
        "Ranking: MRR@10 of the answering passage (question sets), nDCG@10 (BEIR sets). "
        "Last column: the worst change on a set the settings are chosen on, against the previous default.\n\n"
        + table([*headers, "worst change"], rows)
    )


def tune_sentences(env, sets, defaults_only: bool = False) -> str:
    rows = []
    bundled = [qs for qs in sets if qs.answers is not None]
    grid = (
        [(CHOSEN.quantity_bonus, CHOSEN.question_penalty, CHOSEN.window)]
        if defaults_only
        else [
            (bonus, penalty, window)
            for bonus in (0.0, 0.1, 0.25)
            for penalty in (0.0, 0.1, 0.3)
            for window in (0.0, 0.02, 0.03, 0.05)
        ]
    )
    for bonus, penalty, window in grid:
        settings = SearchSettings(quantity_bonus=bonus, question_penalty=penalty, window=window)
        cells = []
        for qs in bundled:
            stored, embedder, _ = env[qs.name]
            report = evaluate_questions(
                Searcher(stored, embedder, settings), [_question(q, a) for q, a in zip(qs.queries, qs.answers)]
            )
            cells += [f"{report.sentence_accuracy:.3f}", f"{report.highlight_sentences:.2f}"]
        mark = " **(default)**" if settings == CHOSEN else ""
        rows.append([f"quantity +{bonus}, question -{penalty}, window {window}{mark}", *cells])
    headers = ["setting"] + [h for qs in bundled for h in (f"{qs.name} sentence", "sentences shown")]
    return (
        "Answer sentence: the share of on-topic questions whose answering passage is found and whose highlight "
        "holds the labelled sentence, and the sentences a highlight holds on average. Candidates are scored by "
        "context-pooled cosine.\n\n" + table(headers, rows)
    )


def _question(query, answer):
    from index.evaluate import Question

    return Question(query, answer)


def hit_rows(searcher: Searcher, qs: QuestionSet, vectors: np.ndarray, foreign: bool = False) -> np.ndarray:
    """Per question, its top hits' confidence features, whether each answers, and the question's number."""
    out = []
    for i, query in enumerate(qs.queries):
        ranking = searcher.rank(clean_query(query), vectors[i])
        rows = ranking.rows[: HITS + 1]
        x = features(
            [ranking.parts[row].dense for row in rows], [agrees(ranking, row) for row in rows], ranking.unknown
        )[:HITS]
        for r, row in enumerate(rows[:HITS]):
            label = 0 if foreign else int(_answers(searcher, qs, i, searcher.passages[row]))
            out.append([*x[r], label, i])
    return np.array(out)


def confidence_data(env, sets) -> dict[str, np.ndarray]:
    """Hits of every set the model is fitted on, and of questions asked of another collection."""
    data = {}
    by_collection = {}
    for qs in sets:
        if qs.chosen_on:
            stored, embedder, vectors = env[qs.name]
            data[qs.name] = hit_rows(Searcher(stored, embedder), qs, vectors)
            by_collection.setdefault(qs.collection, (stored, embedder))
    rng = np.random.default_rng(0)
    for collection, (stored, embedder) in by_collection.items():
        parts = []
        for qs in sets:
            if qs.collection == collection or not qs.chosen_on:
                continue
            keep = rng.choice(len(qs.queries), size=min(100, len(qs.queries)), replace=False)
            # Off-topic there: only the questions a set marks as answerable in its own collection, or any BEIR query.
            keep = [k for k in keep if qs.answers is None or qs.answers[k]]
            sub = QuestionSet(qs.name, collection, [qs.queries[k] for k in keep])
            parts.append(hit_rows(Searcher(stored, embedder), sub, embedder.encode(sub.queries), foreign=True))
        if parts:
            data[f"foreign questions on {collection}"] = np.concatenate(parts)
    return data


def fit(arrays: list[np.ndarray]) -> ConfidenceModel:
    from sklearn.linear_model import LogisticRegression

    both = np.concatenate(arrays)
    weight = np.concatenate([np.full(len(a), len(both) / len(a)) for a in arrays])
    n = len(FEATURES)
    model = LogisticRegression(C=10.0, max_iter=2000).fit(both[:, :n], both[:, n], sample_weight=weight)
    return ConfidenceModel(tuple(float(w) for w in model.coef_[0]), float(model.intercept_[0]))


def tune_confidence(data: dict[str, np.ndarray], collection_of: dict[str, str]) -> tuple[ConfidenceModel, str]:
    n = len(FEATURES)
    rng = np.random.default_rng(0)
    folds = {name: rng.permutation(int(a[:, n + 1].max()) + 1) % 5 for name, a in data.items()}
    predicted = {name: np.zeros(len(a)) for name, a in data.items()}
    for fold in range(5):
        train = [a[folds[name][a[:, n + 1].astype(int)] != fold] for name, a in data.items()]
        model = fit(train)
        for name, a in data.items():
            test = folds[name][a[:, n + 1].astype(int)] == fold
            predicted[name][test] = _predict(model, a[test, :n])
    left_out = {name: np.full(len(a), np.nan) for name, a in data.items()}
    for collection in sorted({collection_of[name] for name in data}):
        others = [a for name, a in data.items() if collection_of[name] != collection]
        if not others:
            continue  # one collection only: nothing to fit on without it
        model = fit(others)
        for name, a in data.items():
            if collection_of[name] == collection:
                left_out[name] = _predict(model, a[:, :n])
    final = fit(list(data.values()))
    rows = []
    bins = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0001)
    for name, a in data.items():
        top = a[:, 3] == 0.0  # log rank 0: the best hit of each question
        y, p, q = a[top, n], predicted[name][top], left_out[name][top]
        cells = []
        for low, high in zip(bins[:-1], bins[1:]):
            inside = (p >= low) & (p < high)
            cells.append(f"{inside.sum()}: {p[inside].mean():.2f} / {y[inside].mean():.2f}" if inside.any() else "0")
        rows.append(
            [
                name,
                len(y),
                f"{np.mean((p - y) ** 2):.3f}",
                f"{np.mean((q - y) ** 2):.3f}",
                f"{np.mean((y.mean() - y) ** 2):.3f}",
                *cells,
            ]
        )
    text = (
        "Confidence of the best hit: Brier score with 5-fold cross-validation by question, with the whole "
        "collection left out of the fit, and of always predicting the set's own rate (lower is better); "
        "then the reliability by predicted probability (questions: mean predicted / share that answer).\n\n"
        + table(
            ["set", "questions", "Brier (5-fold)", "Brier (collection left out)", "Brier (base rate)"]
            + [f"p in [{lo:.1f}, {min(hi, 1):.1f})" for lo, hi in zip(bins[:-1], bins[1:])],
            rows,
        )
        + f"\n\nFitted on all: weights {dict(zip(FEATURES, np.round(final.weights, 3)))}, "
        f"intercept {final.intercept:.3f}."
    )
    return final, text


def _predict(model: ConfidenceModel, x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(x @ np.asarray(model.weights) + model.intercept)))


def tune_verdict(env, sets, defaults_only: bool = False, model: ConfidenceModel | None = None) -> str:
    rows = []
    grid = (
        [(CHOSEN.answer_threshold, CHOSEN.confident)]
        if defaults_only
        else [
            (threshold, confident) for threshold in (0.35, 0.40) for confident in (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
        ]
    )
    for threshold, confident in grid:
        settings = SearchSettings(answer_threshold=threshold, confident=confident)
        cells = []
        for qs in sets:
            if not qs.chosen_on:
                continue
            stored, embedder, vectors = env[qs.name]
            searcher = Searcher(stored, embedder, settings, confidence=model)
            decided = trusted = 0
            for i, query in enumerate(qs.queries):
                answer = searcher.answer(clean_query(query), vectors[i], k=5)
                answerable = qs.qrels is not None or bool(qs.answers[i])
                top_answers = bool(answer.hits) and _answers(searcher, qs, i, answer.hits[0].passage)
                decided += answer.answered == answerable
                trusted += answer.answered == top_answers
            cells += [f"{decided / len(qs.queries):.3f}", f"{trusted / len(qs.queries):.3f}"]
        mark = " **(default)**" if settings == CHOSEN else ""
        rows.append([f"refuse below cosine {threshold}, answered at confidence {confident}{mark}", *cells])
    headers = [h for qs in sets if qs.chosen_on for h in (f"{qs.name} decided", "trusted")]
    return (
        "Verdict: per set, the share of questions decided right (answered when the set says the collection "
        "answers it; every BEIR query is), and the share trusted right (answered exactly when the best hit "
        "does answer: an unsure verdict over a wrong first hit counts as right).\n\n"
        + table(["setting", *headers], rows)
    )


def _answers(searcher: Searcher, qs: QuestionSet, i: int, passage) -> bool:
    """Whether `passage` answers question i of `qs`."""
    if qs.qrels is not None:
        return any(qs.qrels[i].get(loc.doc_id, 0) > 0 for loc in passage.locations)
    if qs.golds is not None:  # as realdocs' score.py judges: the right document, a gold phrase in the text
        document, phrases = qs.golds[i]
        return Path(passage.location.source).name == Path(document).name and any(
            _words(g) in _words(passage.text) for g in phrases
        )
    return bool(qs.answers[i]) and qs.answers[i] in passage.text


def _words(text: str) -> str:
    return " " + " ".join(re.findall(r"[a-z0-9]+", text.lower())) + " "


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="bundled,medquad,scifact", help="collections to use (comma-separated)")
    parser.add_argument("--write", action="store_true", help=f"save the fitted confidence model to {BUNDLED}")
    parser.add_argument("--record", action="store_true", help="store the tables in bench/RESULTS.md")
    parser.add_argument(
        "--only", default="ranking,sentences,confidence,verdict", help="sections to run (comma-separated)"
    )
    parser.add_argument(
        "--dev", type=Path, default=DEV, help="folder of the development indexes (one per backend; default data/dev)"
    )
    parser.add_argument("--defaults", action="store_true", help="score the default settings only, without the grids")
    args = parser.parse_args()
    names = [n.strip() for n in args.sets.split(",") if n.strip()]

    embedder = MemoEmbedder(embedder_for(Config.resolve()))
    stores = {}
    for name, (corpus, index) in collections(names, args.dev).items():
        report = build(corpus, index, embedder)
        print(f"{name}: {report.passages} passages ({report.embedded} embedded now)", flush=True)
        stores[name] = load(index, model=embedder.name)
    sets = question_sets(names)
    env = {
        qs.name: (stores[qs.collection], embedder, embedder.encode([clean_query(q) or "-" for q in qs.queries]))
        for qs in sets
    }
    only = set(args.only.split(","))
    sections, model = [], None
    if "ranking" in only:
        sections.append(tune_ranking(env, sets, args.defaults))
    if "sentences" in only:
        sections.append(tune_sentences(env, sets, args.defaults))
    if "confidence" in only:
        collection_of = {qs.name: qs.collection for qs in sets} | {f"foreign questions on {c}": c for c in stores}
        model, text = tune_confidence(confidence_data(env, sets), collection_of)
        sections.append(text)
    if "verdict" in only:
        sections.append(tune_verdict(env, sets, args.defaults, model))  # with the model just fitted, if any
    body = "\n\n".join(sections)
    if args.record:
        record("Tuning on the development sets", body)
    else:
        print(body)
    if args.write and model is not None:
        BUNDLED.write_text(json.dumps(model.to_json(), indent=1) + "\n", encoding="utf-8")
        print(f"wrote {BUNDLED}")


if __name__ == "__main__":
    main()
