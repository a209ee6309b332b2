"""Time the source viewer's page images through the HTTP app (in process): each page of a
generated PDF served the first time (rendered) and again (from the cache), and the process's
resident memory before and after random page requests.

    .venv/bin/python scripts/bench_viewer.py [--pages 20] [--requests 200]

The PDF is written with fpdf2 (the test extra): text pages with a heading and paragraphs.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from docqa.config import Settings
from docqa.indexing.corpus import document_id
from docqa.service import create_app

PARAGRAPH = (
    "The harbour commission met on the first Monday of the month to review the state of the "
    "piers, the dredging of the channel and the accounts of the ferry service. "
)


def write_pdf(path: Path, pages: int) -> None:
    """A PDF of `pages` A4 pages, each a heading and a page of wrapped paragraphs."""
    from fpdf import FPDF

    pdf = FPDF()
    for number in range(1, pages + 1):
        pdf.add_page()
        pdf.set_font("Helvetica", "B", size=16)
        pdf.cell(0, 10, f"Chapter {number}")
        pdf.ln(14)
        pdf.set_font("Helvetica", size=11)
        for paragraph in range(6):
            pdf.multi_cell(0, 6, f"{paragraph + 1}. " + PARAGRAPH * 3)
            pdf.ln(4)
    pdf.output(str(path))


def resident_mb() -> float:
    """This process's resident memory (Linux /proc), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed_get(client: TestClient, url: str) -> float:
    """Milliseconds to GET `url` (which must answer 200)."""
    started = time.perf_counter()
    response = client.get(url)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise SystemExit(f"GET {url}: {response.status_code} {response.text[:200]}")
    return elapsed


def run(pages: int, requests: int) -> None:
    """Print the figures for a PDF of `pages` pages and `requests` random page requests."""
    with tempfile.TemporaryDirectory(prefix="docqa-bench-viewer-") as folder:
        root = Path(folder)
        corpus = root / "corpus"
        corpus.mkdir()
        settings = Settings(
            corpus_dir=corpus, index_dir=root / "index", allowed_hosts=["testserver"]
        )
        with TestClient(create_app(settings)) as client:
            while client.get("/health").status_code != 200:  # an empty library: ready at once
                time.sleep(0.1)
            write_pdf(corpus / "bench.pdf", pages)  # shown from the folder, not indexed
            url = f"/documents/{document_id('bench.pdf')}/pages"
            start = resident_mb()
            timed_get(client, f"{url}/1")  # imports pypdfium2 and Pillow once
            client.app.state.viewer.pages.entries.clear()  # type: ignore[attr-defined]
            first = [timed_get(client, f"{url}/{n}") for n in range(1, pages + 1)]
            cached = [timed_get(client, f"{url}/{n}") for n in range(1, pages + 1)]
            before = resident_mb()
            rng = random.Random(7)
            chosen = [rng.randint(1, pages) for _ in range(requests)]
            spread = [timed_get(client, f"{url}/{n}") for n in chosen]
            after = resident_mb()
            kept = client.app.state.viewer.pages.size()  # type: ignore[attr-defined]
    print(f"PDF of {pages} pages, page images through GET /documents/{{id}}/pages/{{n}}")
    print(
        f"  first time (rendered):   median {statistics.median(first):6.1f} ms, "
        f"max {max(first):6.1f} ms"
    )
    print(
        f"  again (from the cache):  median {statistics.median(cached):6.1f} ms, "
        f"max {max(cached):6.1f} ms"
    )
    print(f"  {requests} random pages:       median {statistics.median(spread):6.1f} ms")
    print(
        f"  resident memory: {start:.1f} MB before any page, {before:.1f} MB before the "
        f"{requests} requests, {after:.1f} MB after ({after - before:+.1f} MB); "
        f"the page cache holds {kept / 1e6:.2f} MB"
    )


def main() -> None:
    """Parse the options and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=20, help="pages of the generated PDF")
    parser.add_argument("--requests", type=int, default=200, help="random page requests")
    options = parser.parse_args()
    run(options.pages, options.requests)


if __name__ == "__main__":
    main()
