"""Batches cut by token length (index.embed.tokens.plan_batches): every text once, padded size within the budget."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from index.embed.tokens import plan_batches


@given(st.lists(st.integers(min_value=1, max_value=256), max_size=300), st.integers(1, 4096), st.integers(1, 64))
def test_every_text_is_in_one_batch_and_batches_stay_within_the_budget(lengths, budget, texts):
    batches = plan_batches(lengths, max_tokens=budget, max_texts=texts)
    rows = np.concatenate(batches) if batches else np.zeros(0, dtype=int)
    assert sorted(rows.tolist()) == list(range(len(lengths)))
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert len(batch) <= texts
        assert len(batch) == 1 or len(batch) * longest <= budget


def test_long_texts_go_first_in_small_batches_and_short_ones_in_large_batches():
    lengths = [10] * 100 + [200] * 10
    batches = plan_batches(lengths, max_tokens=1000, max_texts=64)
    assert [len(b) for b in batches] == [5, 5, 64, 36]
    assert all(lengths[i] == 200 for i in batches[0])


def test_equal_lengths_keep_their_order():
    assert [b.tolist() for b in plan_batches([5, 5, 5, 5], max_tokens=10)] == [[0, 1], [2, 3]]
