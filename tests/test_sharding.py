"""Serving shards (index/search/sharded.py) answer exactly as the whole index: same hits, same scores, same spans."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from index.__main__ import main as index_main
from index.embed.fake import FakeEmbedder
from index.embed.registry import BundledModel
from index.errors import IndexDamaged
from index.search.searcher import Searcher
from index.search.sharded import ShardedSearcher
from index.store.reader import load
from index.store.shards import ShardIndex, shard_folder
from ingest.__main__ import main as ingest_main
from ingest.pipeline import build
from tests.helpers import REPO

TOPICS = ["knee cartilage", "shoulder rotator cuff", "ankle ligament", "wrist tendon", "neck muscles"]


def questions() -> list[str]:
    asked = [f"record {i} {TOPICS[i % 5]}" for i in range(0, 60, 7)]
    asked += ["spinal fusion bone grafts", "hip flexors stretch", "treatment number 42", "rest with exercise"]
    return asked + ["injuries", "patient group", "zzz unknown words", "the"]


@pytest.fixture
def corpus(tiny_corpus: Path) -> Path:
    """The tiny corpus and 60 records in two files, many of them tied on BM25 and on the fake vectors."""
    for name, start in (("a.jsonl", 0), ("b.jsonl", 30)):
        records = [
            {
                "_id": f"r{i}",
                "text": f"Record {i} is about {TOPICS[i % 5]} injuries in patient group {i % 4}. "
                f"Treatment number {i * 7 % 50} combines rest with exercise {i % 3}.",
            }
            for i in range(start, start + 30)
        ]
        (tiny_corpus / name).write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    return tiny_corpus


def assert_same_answers(index_dir: Path, shards: int, embedder, asked: list[str], k: int = 10) -> None:
    whole = Searcher(load(index_dir), embedder)
    sharded = ShardedSearcher.load(index_dir, shards, embedder)
    for question in asked:
        for sources in (None, frozenset({"a.jsonl"}), frozenset({"b.jsonl", "fractures.txt"})):
            # Dataclass equality: every passage, rank, score, span and confidence, to the bit.
            assert sharded.search(question, k, sources) == whole.search(question, k, sources, suggest=False), (
                question,
                sources,
            )


@pytest.mark.parametrize("shards", [1, 3, 4])
def test_sharded_search_equals_the_whole_index(corpus, tmp_path, shards):
    build(corpus, tmp_path / "idx", FakeEmbedder(), shards=shards)
    stored = load(tmp_path / "idx")
    assert stored.manifest.shards == shards
    parts = [ShardIndex.load(stored.path, s, shards) for s in range(shards)]
    assert sorted(np.concatenate([p.rows for p in parts]).tolist()) == list(range(len(stored.passages)))
    assert_same_answers(tmp_path / "idx", shards, FakeEmbedder(), questions())


def test_shard_bm25_keeps_the_whole_collections_weights(corpus, tmp_path):
    build(corpus, tmp_path / "idx", FakeEmbedder(), shards=4)
    stored = load(tmp_path / "idx")
    for shard in range(4):
        part = ShardIndex.load(stored.path, shard, 4)
        for question in questions():
            assert np.array_equal(part.keyword.scores(question), stored.keyword.scores(question)[part.rows])


def test_the_manifest_lists_every_shard_file_and_a_damaged_one_is_refused(corpus, tmp_path):
    build(corpus, tmp_path / "idx", FakeEmbedder(), shards=2)
    version = load(tmp_path / "idx").path
    manifest = json.loads((version / "manifest.json").read_text())
    on_disk = {p.relative_to(version).as_posix() for p in (version / "shards").rglob("*") if p.is_file()}
    assert on_disk and on_disk <= set(manifest["files"])
    with pytest.raises(IndexDamaged, match=r"has 2 shards, not 3; rebuild it with: .* --shards 3"):
        ShardIndex.load(version, 0, 3)
    passages = shard_folder(version, 1) / "passages.jsonl"
    passages.write_text(passages.read_text().replace("Record", "Recorb"))
    ShardIndex.load(version, 0, 2)  # the other shard is sound
    with pytest.raises(IndexDamaged, match=r"passages.jsonl does not match its manifest"):
        ShardIndex.load(version, 1, 2)


def test_a_rebuild_keeps_the_shard_count_unless_told(corpus, tmp_path, capsys):
    index_dir = tmp_path / "idx"
    args = ["--corpus", str(corpus), "--index", str(index_dir)]
    assert ingest_main(args + ["--shards", "3"]) == 0
    (corpus / "knees.txt").write_text("Knee pain after running often comes from the kneecap.", encoding="utf-8")
    assert ingest_main(args) == 0  # as the app rebuilds: the layout being served stays
    assert load(index_dir).manifest.shards == 3
    assert ingest_main(args + ["--shards", "3"]) == 0
    assert "index is up to date" in capsys.readouterr().err
    assert ingest_main(args + ["--shards", "2"]) == 0  # nothing changed but the layout: published again
    assert load(index_dir).manifest.shards == 2
    assert ingest_main(args + ["--shards", "0"]) == 0
    assert load(index_dir).manifest.shards == 0 and not (load(index_dir).path / "shards").exists()
    assert ingest_main(args + ["--shards", "500"]) == 1
    assert "would hold no passage" in capsys.readouterr().err


@pytest.mark.model
def test_sharded_search_equals_the_whole_index_with_the_real_model(tmp_path):
    """The bundled corpus, both question sets, four shards: the real vector space, with its own near-ties."""
    build(REPO / "corpus", tmp_path / "idx", BundledModel(), shards=4)
    asked = [
        json.loads(line)["query"]
        for name in ("questions.jsonl", "questions-everyday.jsonl")
        for line in (REPO / "corpus" / name).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    model = BundledModel()
    whole = Searcher(load(tmp_path / "idx"), model)
    sharded = ShardedSearcher.load(tmp_path / "idx", 4, model)
    for question in asked:
        assert sharded.search(question, 10) == whole.search(question, 10, suggest=False), question  # no did-you-mean


def test_serving_on_ray_refuses_an_index_without_those_shards_before_starting_ray(corpus, tmp_path, capsys):
    index_dir = tmp_path / "idx"
    base = ["serve", "--index", str(index_dir), "--ray", "--shards", "4"]
    assert index_main(base) == 1
    assert f"no index found in {index_dir}" in capsys.readouterr().err
    build(corpus, index_dir, FakeEmbedder(), shards=2)
    assert index_main(base) == 1
    assert "has 2 shards, not 4; rebuild it with: " in capsys.readouterr().err
    assert "ray" not in sys.modules or not __import__("ray").is_initialized()
