"""Questions asked together share a model pass (index/embed/batching.py): same vectors, fewer passes, no wait alone."""

from __future__ import annotations

import itertools
import json
import threading

import numpy as np
import pytest

from index.config import Config
from index.embed.batching import PASS_OVERHEAD, BatchingEmbedder, encode_together, group_by_length
from index.embed.fake import FakeEmbedder
from index.serve.app import LocalBackend
from tests.helpers import REPO, wait_for

# Questions of four words each: one length, so a pass over any of them is one call of the model.
QUESTIONS = [f"why does my {part} hurt" for part in ("hip", "knee", "back", "neck", "wrist", "ankle", "elbow", "jaw")]


class GatedEmbedder(FakeEmbedder):
    """The fake, recording each call's texts; while `gate` is closed, a call waits inside the model."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[str]] = []
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.fail = False

    def encode(self, texts, progress=None):
        self.calls.append(list(texts))
        self.entered.set()
        assert self.gate.wait(30), "the test never opened the gate"
        if self.fail:
            raise RuntimeError("the model broke")
        return super().encode(texts, progress)


def ask_together(batching: BatchingEmbedder, model: GatedEmbedder, texts: list[str]) -> dict[str, object]:
    """Each text asked from a thread of its own, all started at once; the first pass is held until the rest have queued.

    Returns:
        Each text's vector, or the exception its call raised.
    """
    results: dict[str, object] = {}
    start = threading.Barrier(len(texts))

    def ask(text: str) -> None:
        start.wait()
        try:
            results[text] = batching.encode([text])
        except Exception as exc:
            results[text] = exc

    threads = [threading.Thread(target=ask, args=(text,)) for text in texts]
    for thread in threads:
        thread.start()
    wait_for(model.entered.is_set, what="the first pass to start")
    wait_for(lambda: batching.counts.waited == len(texts) - 1, what="every other question to queue behind it")
    model.gate.set()
    for thread in threads:
        thread.join(30)
    return results


def test_questions_asked_together_get_the_vectors_of_separate_calls_from_fewer_passes():
    model = GatedEmbedder()
    batching = BatchingEmbedder(model, max_batch=16)

    results = ask_together(batching, model, QUESTIONS)

    alone = FakeEmbedder()
    for text in QUESTIONS:
        assert np.array_equal(results[text], alone.encode([text]))
    # The first pass held one question; all the others queued meanwhile and went through the next one.
    assert len(model.calls) == 2 and sorted(len(call) for call in model.calls) == [1, len(QUESTIONS) - 1]
    assert sorted(itertools.chain.from_iterable(model.calls)) == sorted(QUESTIONS)
    assert (batching.counts.passes, batching.counts.texts, batching.counts.largest) == (2, 8, 7)


def test_a_pass_takes_at_most_max_batch_questions():
    model = GatedEmbedder()
    batching = BatchingEmbedder(model, max_batch=3)

    results = ask_together(batching, model, QUESTIONS)

    assert all(isinstance(vector, np.ndarray) for vector in results.values())
    assert [len(call) for call in model.calls] == [1, 3, 3, 1]


def test_a_lone_question_runs_at_once_without_waiting():
    model = GatedEmbedder()
    model.gate.set()
    batching = BatchingEmbedder(model)

    vector = batching.encode(["why does my hip hurt"])

    assert np.array_equal(vector, FakeEmbedder().encode(["why does my hip hurt"]))
    # It led its own pass: it never queued, so it never entered the wait.
    assert batching.counts.waited == 0
    assert (batching.counts.passes, model.calls) == (1, [["why does my hip hurt"]])


def test_an_error_in_a_pass_reaches_every_question_in_it_and_the_next_question_is_answered():
    model = GatedEmbedder()
    model.fail = True
    batching = BatchingEmbedder(model)

    results = ask_together(batching, model, QUESTIONS)

    assert all(isinstance(error, RuntimeError) and str(error) == "the model broke" for error in results.values())
    model.fail = False
    assert np.array_equal(batching.encode(["hip"]), FakeEmbedder().encode(["hip"]))  # nothing left stuck
    assert batching.counts.waited == len(QUESTIONS) - 1


def test_many_texts_in_one_call_go_straight_to_the_model():
    model = GatedEmbedder()
    model.gate.set()
    batching = BatchingEmbedder(model)

    vectors = batching.encode(QUESTIONS[:3])

    assert np.array_equal(vectors, FakeEmbedder().encode(QUESTIONS[:3]))
    assert model.calls == [QUESTIONS[:3]] and batching.counts.passes == 0


def test_the_wrapper_is_the_models_vector_space():
    batching = BatchingEmbedder(FakeEmbedder())
    model = FakeEmbedder()

    assert (batching.name, batching.dimensions, batching.max_tokens) == (model.name, model.dimensions, model.max_tokens)
    assert batching.count_tokens("why does my hip hurt") == model.count_tokens("why does my hip hurt")
    with pytest.raises(ValueError, match="max_batch must be at least 1, got 0"):
        BatchingEmbedder(model, max_batch=0)


def cost(lengths: list[int], groups: list[list[int]], overhead: int) -> int:
    return sum(overhead + len(group) * max(lengths[i] for i in group) for group in groups)


def cheapest_by_brute_force(lengths: list[int], overhead: int) -> int:
    """The oracle: every way to cut the length-sorted texts into runs, weighed."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    costs = []
    for cuts in itertools.product((False, True), repeat=len(order) - 1):
        groups, current = [], [order[0]]
        for cut, i in zip(cuts, order[1:]):
            if cut:
                groups.append(current)
                current = []
            current.append(i)
        groups.append(current)
        costs.append(cost(lengths, groups, overhead))
    return min(costs)


@pytest.mark.parametrize("seed", range(20))
def test_grouping_by_length_is_the_cheapest_cut(seed):
    rng = np.random.default_rng(seed)
    lengths = [int(n) for n in rng.integers(4, 40, size=int(rng.integers(1, 11)))]

    groups = group_by_length(lengths)

    assert sorted(itertools.chain.from_iterable(groups)) == list(range(len(lengths)))
    assert cost(lengths, groups, PASS_OVERHEAD) == cheapest_by_brute_force(lengths, PASS_OVERHEAD)


def test_short_and_long_questions_go_in_separate_calls_and_similar_ones_together():
    assert group_by_length([6, 30]) == [[0], [1]]
    assert group_by_length([14, 10, 12]) == [[1, 2, 0]]
    assert group_by_length([]) == []


def test_encode_together_keeps_each_text_in_its_row():
    texts = ["hip", "why does my lower back hurt when I sit all day at work", "knee pain", "neck"]
    model = FakeEmbedder()

    assert np.array_equal(encode_together(model, texts), FakeEmbedder().encode(texts))


def test_the_api_batches_questions_unless_told_not_to(tmp_path):
    batched = LocalBackend(Config(index=tmp_path, embedder="fake"))._open_embedder()
    alone = LocalBackend(Config(index=tmp_path, embedder="fake", batch_questions=1))._open_embedder()

    assert isinstance(batched, BatchingEmbedder) and batched.max_batch == 16
    assert isinstance(alone, FakeEmbedder)


def test_batching_is_set_from_the_environment():
    assert Config.resolve(environ={}).batch_questions == 16
    assert Config.resolve(environ={"KB_BATCH_QUESTIONS": "4"}).batch_questions == 4
    assert Config.resolve(environ={"KB_BATCH_QUESTIONS": "0"}).batch_questions == 1
    with pytest.raises(ValueError, match=r"KB_BATCH_QUESTIONS must be a whole number, 0 or more; got 'many'"):
        Config.resolve(environ={"KB_BATCH_QUESTIONS": "many"})


def bundled_questions() -> list[str]:
    return [
        json.loads(line)["query"]
        for name in ("questions.jsonl", "questions-everyday.jsonl")
        for line in (REPO / "corpus" / name).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


@pytest.mark.model
def test_the_bundled_model_gives_questions_asked_together_their_vectors_alone():
    from index.embed.registry import BundledModel

    sample_questions = bundled_questions()
    model = BundledModel()
    alone = np.concatenate([model.encode([q]) for q in sample_questions])
    batching = BatchingEmbedder(model)
    results: dict[int, np.ndarray] = {}
    start = threading.Barrier(8)

    def ask(worker: int) -> None:
        start.wait()
        for i in range(worker, len(sample_questions), 8):
            results[i] = batching.encode([sample_questions[i]])[0]

    threads = [threading.Thread(target=ask, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    # Padding is masked, so a question's vector does not depend on its neighbours in a pass: equal to the bit.
    assert np.array_equal(np.stack([results[i] for i in range(len(sample_questions))]), alone)
    assert np.array_equal(encode_together(model, sample_questions), alone)
