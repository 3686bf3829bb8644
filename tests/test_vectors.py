"""The vector cache: vectors by passage id, reused from the live index, only unseen passages embedded."""

from __future__ import annotations

import numpy as np

from index.embed.fake import FakeEmbedder
from index.records import Location, Passage, text_id
from index.search.sentences import answer_candidates
from index.store.reader import load
from ingest.pipeline import build
from ingest.vectors import VectorCache


def passage(text: str) -> Passage:
    return Passage(text_id(text), text, (Location("d", "d.txt", 0, len(text), 1),))


TWO_SENTENCES = "Knee cartilage wears down with age and running. Cycling spares the knees of most runners."
ONE_SENTENCE = "Wrist splints ease carpal tunnel symptoms at night."


def test_without_a_live_index_every_passage_is_embedded_once_with_its_candidates(fake_embedder):
    passages = [passage(TWO_SENTENCES), passage(ONE_SENTENCE)]
    result = VectorCache(fake_embedder).vectors(passages)
    # One pass per passage: the candidates' vectors come from the same call, not from embedding them again.
    assert result.reused == 0 and result.embedded == fake_embedder.encoded == 2
    np.testing.assert_array_equal(result.passages, FakeEmbedder().encode([p.text for p in passages]))
    assert result.sentences.starts.tolist() == [0, 2, 3]  # every passage keeps a vector per candidate
    spans = answer_candidates(TWO_SENTENCES)
    np.testing.assert_array_equal(result.sentences.of(0), FakeEmbedder().encode([TWO_SENTENCES[s:e] for s, e in spans]))
    np.testing.assert_array_equal(result.sentences.of(1), FakeEmbedder().encode([ONE_SENTENCE]))


def test_passages_the_live_index_holds_are_reused_by_id(tiny_corpus, tmp_path, fake_embedder):
    build(tiny_corpus, tmp_path / "idx", fake_embedder)
    live = load(tmp_path / "idx")
    known = live.passages[1]
    fresh = passage(TWO_SENTENCES)
    cache = VectorCache(fake_embedder, live)
    assert known.id in cache and fresh.id not in cache
    fake_embedder.encoded = 0
    progress = []
    result = cache.vectors([fresh, known], progress=lambda done, total: progress.append((done, total)))
    assert result.reused == 1 and fake_embedder.encoded == result.embedded == 1  # only the new passage
    assert progress[0] == (0, 1) and progress[-1] == (1, 1)
    np.testing.assert_array_equal(result.passages[1], live.dense.vectors([1])[0])
    np.testing.assert_array_equal(result.sentences.of(1), np.asarray(live.sentences.of(1), dtype=np.float32))
    np.testing.assert_array_equal(result.passages[0], FakeEmbedder().encode([TWO_SENTENCES])[0])
