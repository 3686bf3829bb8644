"""Ingest on Ray gives the same index as the local pipeline, even when a worker dies mid-run."""

from __future__ import annotations

import json
import os
import signal
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import ray

from index.embed.fake import FakeEmbedder, SlowFakeEmbedder
from index.records import Settings
from index.retrievers import dense
from index.retrievers.parts import IvfPlan, add_part, assemble, load_mmap
from index.search.searcher import Searcher
from index.search.sharded import ShardedSearcher
from index.store.reader import load
from ingest.__main__ import main
from ingest.distributed import RayExecutor, build_on_ray
from ingest.pipeline import build, executor_map
from tests.helpers import wait_for

pytestmark = pytest.mark.ray

QUESTIONS = ["spinal fusion bone grafts", "hip flexors stretch", "record 7 knee cartilage", "kyphoplasty balloon"]
TOPICS = ["knee cartilage", "shoulder rotator cuff", "ankle ligament", "wrist tendon", "neck muscles"]


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray instance for the module: its workers import the installed project (and `index.embed.fake`)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no reporting over the network
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        object_store_memory=200 * 2**20,
    )
    yield
    ray.shutdown()


@pytest.fixture
def ray_corpus(tiny_corpus: Path) -> Path:
    """The tiny corpus plus 40 JSONL records, a repeated record id, a blank record, an unreadable file, a link out."""
    records = [
        {
            "_id": f"r{i}",
            "title": f"Record {i}",
            "text": f"Record {i} is about {TOPICS[i % 5]} injuries in "
            f"patient group {i}. Treatment number {i * 7} combines rest with exercise {i % 3}.",
        }
        for i in range(40)
    ]
    records += [{"_id": "r3", "title": "", "text": "a second record with a repeated id"}, {"_id": "blank", "text": " "}]
    (tiny_corpus / "records.jsonl").write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    (tiny_corpus / "broken.pdf").write_bytes(b"not a pdf at all")
    os.symlink("/etc/passwd", tiny_corpus / "leak.txt")  # never read, on Ray either
    return tiny_corpus


def assert_same_index(a_dir: Path, b_dir: Path) -> None:
    a, b = load(a_dir), load(b_dir)
    assert a.passages == b.passages
    assert np.array_equal(a.dense.vectors(), b.dense.vectors())
    assert a.documents == b.documents
    assert a.manifest.skipped == b.manifest.skipped
    assert a.manifest.model == b.manifest.model
    for question in QUESTIONS:
        embedder = FakeEmbedder()
        assert Searcher(a, embedder).search(question, k=5) == Searcher(b, embedder).search(question, k=5)


def test_ray_build_matches_local_build(ray_cluster, ray_corpus, tmp_path):
    events = []
    report = build_on_ray(
        ray_corpus, tmp_path / "ray", FakeEmbedder, workers=2, batch_size=3, progress=lambda *e: events.append(e)
    )
    local = build(ray_corpus, tmp_path / "local", FakeEmbedder())
    assert report.published and report.passages == local.passages > 40
    assert report.embedded == local.embedded and report.skipped == local.skipped
    reasons = {s.reason.split(" '")[0] for s in report.skipped}
    assert reasons >= {"duplicate record id", "link points outside the corpus"}
    assert not any("root:" in p.text for p in load(tmp_path / "ray").passages)
    assert_same_index(tmp_path / "ray", tmp_path / "local")
    embeds = [e for e in events if e[0] == "embed"]
    # One pass per passage (its answer sentences are pooled from it): progress counts passages.
    assert embeds[-1][1] == embeds[-1][2] == report.embedded
    assert len(embeds) > 2  # one update per completed batch, not one at the end


def test_ray_build_writes_the_same_serving_shards_as_the_local_build(ray_cluster, ray_corpus, tmp_path):
    build_on_ray(ray_corpus, tmp_path / "ray", FakeEmbedder, workers=2, shards=4)
    build(ray_corpus, tmp_path / "local", FakeEmbedder(), shards=4)
    on_ray, local = load(tmp_path / "ray"), load(tmp_path / "local")
    assert on_ray.manifest.shards == local.manifest.shards == 4
    shard_files = {name: sha for name, sha in local.manifest.files.items() if name.startswith("shards/")}
    assert len(shard_files) > 4 * 5
    assert {name: on_ray.manifest.files[name] for name in shard_files} == shard_files  # byte for byte
    sharded = ShardedSearcher.load(tmp_path / "ray", 4, FakeEmbedder())
    for question in QUESTIONS:
        assert sharded.search(question, k=5) == Searcher(local, FakeEmbedder()).search(question, k=5)


def test_ray_update_reuses_vectors_and_equals_a_full_rebuild(ray_cluster, ray_corpus, tmp_path):
    build(ray_corpus, tmp_path / "inc", FakeEmbedder())
    (ray_corpus / "knees.txt").write_text("Knee pain after running often comes from the kneecap.", encoding="utf-8")
    report = build_on_ray(ray_corpus, tmp_path / "inc", FakeEmbedder, workers=1)
    assert report.embedded == 1 and report.reused == report.passages - 1
    again = build_on_ray(ray_corpus, tmp_path / "inc", FakeEmbedder, workers=1)
    assert not again.published and "up to date" in again.notes[0]
    build(ray_corpus, tmp_path / "full", FakeEmbedder())
    assert_same_index(tmp_path / "inc", tmp_path / "full")


def test_killed_embedding_worker_loses_and_duplicates_nothing(ray_cluster, ray_corpus, tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    killed: list[int] = []

    def kill_first_worker_mid_batch() -> None:
        # A worker leaves its pid, then sleeps inside the batch.
        busy = wait_for(lambda: list(pids.iterdir()), timeout=120, interval=0.02, what="a worker inside a batch")
        pid = int(busy[0].name)
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    killer = threading.Thread(target=kill_first_worker_mid_batch)
    killer.start()
    factory = partial(SlowFakeEmbedder, pid_dir=str(pids), delay=0.3)
    report = build_on_ray(ray_corpus, tmp_path / "ray", factory, workers=2, batch_size=2)
    killer.join()
    local = build(ray_corpus, tmp_path / "local", FakeEmbedder())

    assert killed, "no worker was killed"
    with pytest.raises(ProcessLookupError):
        os.kill(killed[0], 0)
    assert {int(p.name) for p in pids.iterdir()} - set(killed), "no worker embedded after the kill"
    assert report.passages == local.passages and report.embedded == local.embedded
    assert_same_index(tmp_path / "ray", tmp_path / "local")


def test_large_collection_adds_its_index_parts_in_ray_tasks(ray_cluster, tmp_path, monkeypatch):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rng = np.random.default_rng(0)
    words = [f"{stem}{n}" for stem in ("spine", "hip", "knee", "disc", "nerve", "bone") for n in range(40)]
    records = [{"_id": f"r{i}", "text": " ".join(rng.choice(words, 12)) + "."} for i in range(1100)]
    (corpus / "records.jsonl").write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    parts_added: list[int] = []
    ray_map = RayExecutor.map

    def recording_map(self, function, items):
        if getattr(function, "args", ()) == (add_part,):  # executor_map's partial(_call, add_part)
            parts_added.append(len(items))
        return ray_map(self, function, items)

    monkeypatch.setattr(dense, "PART_ROWS", 300)
    monkeypatch.setattr(RayExecutor, "map", recording_map)
    settings = Settings(exact_search_limit=1000)
    report = build_on_ray(corpus, tmp_path / "ray", FakeEmbedder, workers=2, settings=settings)
    build(corpus, tmp_path / "local", FakeEmbedder(), settings)
    assert report.passages == 1100 and parts_added == [4]  # 300 + 300 + 300 + 200 rows, one Ray task each
    assert load(tmp_path / "ray").manifest.vector_index == "IVF66,SQ8"
    assert_same_index(tmp_path / "ray", tmp_path / "local")


def test_more_workers_than_cpus_is_a_clear_error(ray_cluster, tiny_corpus, tmp_path, capsys):
    code = main(["--corpus", str(tiny_corpus), "--index", str(tmp_path / "idx"), "--ray", "--workers", "9"])
    assert code == 1
    assert "--workers must be between 1 and the cluster's 2 CPUs, got 9" in capsys.readouterr().err
    assert not (tmp_path / "idx" / "CURRENT").exists()


def test_parts_added_by_ray_tasks_merge_to_the_serial_result(ray_cluster, tmp_path):
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((1200, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    parts = np.array_split(vectors, 3)
    plan = IvfPlan(lists=8, sample=800)
    on_ray = load_mmap(
        assemble(parts, tmp_path / "ray", plan, map_fn=executor_map(RayExecutor(FakeEmbedder, 1))), probes=4
    )
    serial = load_mmap(assemble(parts, tmp_path / "serial", plan), probes=4)
    assert on_ray.ntotal == serial.ntotal == 1200
    d_ray, i_ray = on_ray.search(vectors[:50], 10)
    d_serial, i_serial = serial.search(vectors[:50], 10)
    assert np.array_equal(i_ray, i_serial) and np.allclose(d_ray, d_serial)


def test_workers_without_ray_is_refused(tiny_corpus, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--corpus", str(tiny_corpus), "--index", str(tmp_path / "idx"), "--workers", "2"])
    assert "--workers needs --ray" in capsys.readouterr().err
