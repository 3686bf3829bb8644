"""Background builds: numbered, one at a time, a change during a build queued for the next, each outcome kept for who asked."""

from __future__ import annotations

import logging
import re
import threading

from index.embed.fake import FakeEmbedder
from index.store.reader import load
from ingest.jobs import BuildJob, JobState
from ingest.loaders import read_file
from ingest.logs import quiet_library_logs
from ingest.pipeline import Stage
from tests.helpers import wait_for, write_pdf


class HeldEmbedder(FakeEmbedder):
    """Embeds only once the test opens `gate`."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def encode(self, texts, progress=None):
        assert self.gate.wait(30), "the test never opened the gate"
        return super().encode(texts, progress)


def test_a_change_during_a_build_is_queued_and_built_next(tiny_corpus, tmp_path):
    embedder = HeldEmbedder()
    job = BuildJob(tiny_corpus, tmp_path / "idx", embedder)
    assert job.request() == (1, False)
    wait_for(lambda: job.state.stage is Stage.EMBED, what="the build to reach its embedding stage")
    (tiny_corpus / "knees.txt").write_text("Knee cartilage wears down with running.", encoding="utf-8")
    assert job.request() == (2, True) and job.request() == (2, True)  # one build waits, whoever asks
    assert job.state.queued and job.result(1) is None
    embedder.gate.set()
    job.wait(30)
    first, second = job.result(1), job.result(2)
    assert first is not None and second is not None and not job.state.running
    assert second.report.published and second.report.documents == 4
    assert "knees.txt" in load(tmp_path / "idx").sources
    assert job.result(3) is None


def test_progress_counts_files_and_then_texts(tiny_corpus, tmp_path):
    embedder = HeldEmbedder()
    job = BuildJob(tiny_corpus, tmp_path / "idx", embedder)
    job.request()
    wait_for(lambda: job.state.stage is Stage.EMBED, what="the build to reach its embedding stage")
    state = job.state
    assert (state.files_done, state.files_total) == (3, 3) and state.total > 0
    embedder.gate.set()
    job.wait(30)


def test_nothing_changed_is_a_finished_build_that_published_nothing(tiny_corpus, tmp_path):
    job = BuildJob(tiny_corpus, tmp_path / "idx", FakeEmbedder())
    job.request()
    job.wait(30)
    run, _ = job.request()
    job.wait(30)
    assert not job.result(run).report.published and job.result(run).error is None


def test_a_failed_build_keeps_its_message_and_logs_the_traceback(tmp_path, caplog):
    job = BuildJob(tmp_path / "missing", tmp_path / "idx", FakeEmbedder())
    run, _ = job.request()
    job.wait(30)
    result = job.result(run)
    assert "does not exist" in result.error and "Traceback" not in result.error
    assert any(record.exc_info for record in caplog.records if record.name == "ingest.jobs")


def test_rate_and_time_left_come_from_the_stage_so_far(stopped_clock):
    now = stopped_clock
    state = JobState(running=True, stage=Stage.EMBED, done=50, total=150, stage_started=now - 10)
    assert state.rate == 5 and state.seconds_left == 20
    assert JobState(running=True, stage=Stage.READ, done=0, total=3, stage_started=now).seconds_left is None


def test_reader_libraries_warnings_stay_out_of_the_console_and_a_damaged_pdf_is_still_read(tmp_path, caplog):
    from ingest.logs import NOISY

    pdf = tmp_path / "odd.pdf"
    write_pdf(pdf, ["Hip flexors lift the knee."])
    pdf.write_bytes(re.sub(rb"startxref\n\d+", b"startxref\n5", pdf.read_bytes()))  # a wrong pointer, repaired
    quiet_library_logs()
    for name in NOISY:
        logging.getLogger(name).warning("worked around something")
    with caplog.at_level(logging.WARNING):
        (document,) = read_file(pdf, tmp_path)
        for name in NOISY:
            logging.getLogger(name).warning("worked around something")
    assert document.text == "Hip flexors lift the knee."
    assert not [r for r in caplog.records if r.name.split(".")[0] in NOISY]
    assert {"trafilatura", "RapidOCR"} <= set(NOISY)
