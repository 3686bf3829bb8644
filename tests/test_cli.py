"""The two command lines agree: configuration from flags, then KB_* variables; exit codes; where text goes."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import partial

import pytest

from index.__main__ import main as index_main
from index.search.searcher import Searcher
from index.search.settings import SearchSettings
from ingest.__main__ import main as ingest_main
from tests.helpers import REPO


@pytest.fixture
def fake(monkeypatch, thread_counts_restored):
    monkeypatch.setenv("KB_EMBEDDER", "fake")


def run(main, argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as stopped:  # argparse
        code = stopped.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_both_clis_take_the_folders_from_the_environment(fake, tiny_corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KB_CORPUS", str(tiny_corpus))
    monkeypatch.setenv("KB_INDEX", str(tmp_path / "from-env"))
    code, out, _ = run(ingest_main, [], capsys)
    assert code == 0 and f"-> {tmp_path / 'from-env'}" in out
    code, out, _ = run(index_main, ["info"], capsys)
    assert code == 0 and f"from {tiny_corpus}" in out
    code, out, _ = run(index_main, ["query", "hip flexors"], capsys)
    assert code == 0 and out.startswith("Q: hip flexors")


def test_answering_sets_one_thread_for_the_process_once(fake, tiny_corpus, tmp_path, capsys):
    import faiss
    import torch

    run(ingest_main, ["--corpus", str(tiny_corpus), "--index", str(tmp_path / "idx")], capsys)
    faiss.omp_set_num_threads(2)
    torch.set_num_threads(2)
    assert run(index_main, ["query", "hip flexors", "--index", str(tmp_path / "idx")], capsys)[0] == 0
    assert faiss.omp_get_max_threads() == 1 and torch.get_num_threads() == 1  # set, and not restored per question


def test_flags_win_over_the_environment(fake, tiny_corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KB_INDEX", str(tmp_path / "from-env"))
    code, _, _ = run(ingest_main, ["--corpus", str(tiny_corpus), "--index", str(tmp_path / "from-flag")], capsys)
    assert code == 0 and (tmp_path / "from-flag" / "CURRENT").exists() and not (tmp_path / "from-env").exists()


def test_runtime_errors_exit_1_with_one_line_and_usage_errors_exit_2(fake, tiny_corpus, tmp_path, capsys):
    for main, argv in [
        (index_main, ["info", "--index", str(tmp_path / "none")]),
        (index_main, ["query", "hip", "--index", str(tmp_path / "none")]),
        (index_main, ["query", "--file", str(tmp_path / "missing.txt"), "--index", str(tmp_path / "none")]),
        (ingest_main, ["--corpus", str(tmp_path / "no-corpus"), "--index", str(tmp_path / "idx")]),
    ]:
        code, out, err = run(main, argv, capsys)
        assert code == 1 and out == "", argv
        assert err.startswith("error: ") and err.count("\n") == 1, err
    code, _, err = run(index_main, ["query", "--index", str(tmp_path / "none")], capsys)
    assert code == 2 and "give at least one QUESTION or --file FILE" in err
    code, _, err = run(ingest_main, ["--workers", "2"], capsys)
    assert code == 2 and "--workers needs --ray" in err


@pytest.mark.parametrize("garbage", [b"\xd6\xff", b"", b"../../etc\n"], ids=["not UTF-8", "empty", "outside"])
def test_garbage_in_current_is_one_error_line_and_ingest_rebuilds(fake, tiny_corpus, tmp_path, capsys, garbage):
    """`printf '\\xd6\\xff' > INDEX/CURRENT` and friends."""
    index_dir = tmp_path / "idx"
    argv = ["--corpus", str(tiny_corpus), "--index", str(index_dir)]
    run(ingest_main, argv, capsys)
    (index_dir / "CURRENT").write_bytes(garbage)
    for command in (["info"], ["query", "hip flexors"]):
        code, out, err = run(index_main, [*command, "--index", str(index_dir)], capsys)
        assert code == 1 and out == "", command
        assert err.startswith("error: index pointer ") and err.count("\n") == 1, err
        assert err.endswith(f"; rebuild it with: python -m ingest --index {index_dir}\n"), err
    code, out, err = run(ingest_main, argv, capsys)
    assert code == 0 and "indexed 3 documents" in out, err
    assert "note: previous index not reused: index pointer" in err
    code, out, _ = run(index_main, ["query", "hip flexors", "--index", str(index_dir)], capsys)
    assert code == 0 and out.startswith("Q: hip flexors")


def test_ingest_notes_go_to_stderr_and_the_summary_to_stdout(fake, tiny_corpus, tmp_path, capsys):
    argv = ["--corpus", str(tiny_corpus), "--index", str(tmp_path / "idx")]
    run(ingest_main, argv, capsys)
    code, out, err = run(ingest_main, argv, capsys)
    assert code == 0 and out == ""
    assert "note: index is up to date" in err


def test_info_json_is_the_manifest(fake, tiny_corpus, tmp_path, capsys):
    run(ingest_main, ["--corpus", str(tiny_corpus), "--index", str(tmp_path / "idx")], capsys)
    code, out, _ = run(index_main, ["info", "--index", str(tmp_path / "idx"), "--json"], capsys)
    record = json.loads(out)
    assert code == 0 and record["documents"] == 3 and record["model"] == "test/fake-hashing-embedder"
    assert record["index"].startswith(str(tmp_path / "idx" / "v-")) and record["vector_index"] == "Flat"


def test_eval_json_on_a_question_set_and_search_settings_stay_as_they_were(fake, tiny_corpus, tmp_path, capsys):
    run(ingest_main, ["--corpus", str(tiny_corpus), "--index", str(tmp_path / "idx")], capsys)
    (tmp_path / "q.jsonl").write_text('{"query": "kyphoplasty balloon", "answer": "Kyphoplasty inflates"}\n')
    (tmp_path / "queries.jsonl").write_text('{"_id": "q1", "text": "kyphoplasty balloon vertebra"}\n')
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tfractures.txt\t1\n")
    searchers: list[Searcher] = []

    def recording(*args) -> Searcher:
        searchers.append(Searcher(*args))
        return searchers[-1]

    evaluate = partial(index_main, make_searcher=recording)
    code, out, _ = run(
        evaluate,
        ["eval", "--questions", str(tmp_path / "q.jsonl"), "--index", str(tmp_path / "idx"), "--json"],
        capsys,
    )
    assert code == 0 and json.loads(out)["recall_at_1"] == 1.0
    code, out, _ = run(
        evaluate,
        [
            "eval",
            "--queries",
            str(tmp_path / "queries.jsonl"),
            "--qrels",
            str(tmp_path / "qrels.tsv"),
            "--index",
            str(tmp_path / "idx"),
            "--json",
        ],
        capsys,
    )
    assert code == 0 and json.loads(out)["ndcg@10"] == 1.0
    # The question set is scored as search answers; BEIR gets its own, deeper settings, set at construction.
    assert [s.settings.candidates for s in searchers] == [SearchSettings().candidates, 300]


def test_one_thread_per_question_leaves_torch_unimported_until_its_backend_loads_it():
    """Importing torch only to set its threads was 0.9 s of the 1.5 s to a first answer (bench/first_answer.py)."""
    code = (
        "import sys\n"
        "from index.config import one_thread_per_question, torch_loaded\n"
        "one_thread_per_question()\n"
        "print('torch' in sys.modules)\n"
        "import torch\n"
        "torch.set_num_threads(2)\n"
        "torch_loaded()\n"
        "print(torch.get_num_threads())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert result.stdout.split() == ["False", "1"]
