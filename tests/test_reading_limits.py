"""A file skipped for a reading limit (its pages, the reading time) is judged again from its
record: not read again while the limit stays, read again without --force once the limit is
raised, as a file skipped for its size is."""

from __future__ import annotations

from pathlib import Path

import pytest

from bombs import pdf_of_pages
from docqa import isolation
from docqa.config import Settings
from docqa.indexing.build import IndexReport, update_index
from docqa.indexing.manifest import compare_corpus
from docqa.indexing.store import read_manifest
from docqa.isolation import Bounds
from fakes import tiny_settings, use_fake_embedder

BRIEF = "SUMMIT\n\nThe summit took place in Vilnius in July 2023 after long talks.\n"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The brief and a 3-page PDF, with a page limit of 2."""
    use_fake_embedder(monkeypatch)
    settings = tiny_settings(tmp_path, {"brief.txt": BRIEF}, max_pages=2)
    (settings.corpus_dir / "report.pdf").write_bytes(pdf_of_pages(3, 20))
    return settings


def report_line(report: IndexReport, name: str) -> tuple[str, str]:
    (record,) = [r for r in report.documents if r.name == name]
    return record.status, record.reason


def test_a_pdf_skipped_for_its_pages_leaves_the_index_fresh_and_is_not_read_again(
    settings: Settings,
) -> None:
    first = update_index(settings)
    assert report_line(first, "report.pdf") == (
        "skipped",
        "its 3 pages are over the limit of 2 (DOCQA_MAX_PAGES)",
    )
    assert compare_corpus(read_manifest(first.folder), settings) == []
    assert not update_index(settings).rebuilt


def test_raising_the_page_limit_reads_a_skipped_pdf_again_without_force(
    settings: Settings,
) -> None:
    first = update_index(settings)
    raised = settings.model_copy(update={"max_pages": 10})
    reasons = compare_corpus(read_manifest(first.folder), raised)
    assert reasons == ["report.pdf was skipped for DOCQA_MAX_PAGES 2, now 10: it is read again"]
    report = update_index(raised)
    assert report_line(report, "report.pdf")[0] == "indexed"
    assert report.embedded_documents == 1


def slow_pdf_bounds(settings: Settings, size: int) -> Bounds:
    """Reading bounds in which only the PDF (over 1 KB) has DOCQA_READ_TIMEOUT_S: the brief
    reads within a minute whatever the setting."""
    return Bounds(settings.read_timeout_s if size > 1_000 else 60.0)


def test_raising_the_reading_time_limit_reads_a_skipped_file_again_without_force(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(isolation, "reading_bounds", slow_pdf_bounds)
    hurried = settings.model_copy(update={"max_pages": 10, "read_timeout_s": 0.01})
    first = update_index(hurried)
    status, reason = report_line(first, "report.pdf")
    assert (status, reason.split(" (")[0]) == ("skipped", "reading took over 0.01 s")
    assert not update_index(hurried).rebuilt  # the same limit: not read again
    report = update_index(hurried.model_copy(update={"read_timeout_s": 60.0}))
    assert report_line(report, "report.pdf")[0] == "indexed"
