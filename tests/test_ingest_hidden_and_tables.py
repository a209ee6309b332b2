"""HTML a browser does not show stays out of the text; DOCX and HTML tables become one
paragraph per row, each cell beside its column header."""

from __future__ import annotations

import io

import pytest

from docqa.indexing.chunking import ChunkSettings, chunk_document
from docqa.ingest import Extracted, extract
from docqa.models import Document

CONTENT = "<h1>Opening hours</h1><p>The library opens at nine.</p>"


def read_html(body: str) -> Extracted:
    return extract("page.html", f"<html><body>{body}</body></html>".encode())[1]


def paragraphs(extracted: Extracted) -> list[str]:
    """The text of every paragraph and table row (each row a block of its own kind)."""
    return [block.text for block in extracted.blocks if block.kind in ("paragraph", "row")]


def assert_blocks_slice_the_text(extracted: Extracted) -> None:
    for block in extracted.blocks:
        assert extracted.text[block.start : block.end] == block.text


# Hidden HTML


@pytest.mark.parametrize(
    "hidden",
    [
        "<div hidden>Secret draft</div>",
        "<p aria-hidden='TRUE'>Secret draft</p>",
        "<div style='display:none'>Secret draft</div>",
        "<div style='color: red; display: NONE !important'>Secret draft</div>",
        "<span style='DISPLAY :  none'>Secret draft</span>",
        "<div style='visibility:hidden'>Secret draft</div>",
        "<div style='visibility: Hidden;'>Secret draft</div>",
        "<template><p>Secret draft</p></template>",
        "<noscript>Secret draft</noscript>",
        "<dialog><p>Secret draft</p></dialog>",
    ],
)
def test_hidden_html_is_left_out_and_the_content_beside_it_kept(hidden: str) -> None:
    extracted = read_html(f"{CONTENT}{hidden}<p>Children read upstairs.</p>")
    assert "Secret" not in extracted.text
    assert paragraphs(extracted) == ["The library opens at nine.", "Children read upstairs."]


@pytest.mark.parametrize(
    "banner",
    [
        "<div id='cookie-banner'><p>We use cookies to improve your visit.</p><a>Accept</a></div>",
        "<section class='cookie-consent'><p>We use cookies.</p><button>OK</button></section>",
        "<div role='dialog' aria-label='Cookie consent'><p>We use cookies.</p></div>",
        "<div class='gdpr-notice'><p>We use cookies.</p></div>",
        "<div id='consent-banner'><p>We use cookies.</p></div>",
        "<div id='CybotCookiebotDialog'><p>We use cookies.</p></div>",
    ],
)
def test_cookie_and_consent_banners_are_left_out(banner: str) -> None:
    extracted = read_html(f"{banner}{CONTENT}")
    assert "cookies" not in extracted.text
    assert paragraphs(extracted) == ["The library opens at nine."]


@pytest.mark.parametrize(
    ("content", "kept"),
    [
        ("<section id='cookies'><h2>Cookies</h2><p>We set one.</p></section>", "We set one."),
        ("<section id='consent'><p>Patients sign a form.</p></section>", "Patients sign a form."),
        ("<div class='cookie-policy'><p>We set one cookie.</p></div>", "We set one cookie."),
        ("<main class='cookie-notice'><h1>Notice</h1><p>We set one.</p></main>", "We set one."),
        ("<div hidden='until-found'><p>Folded: we set one.</p></div>", "Folded: we set one."),
    ],
)
def test_content_about_cookies_or_consent_is_kept(content: str, kept: str) -> None:
    assert paragraphs(read_html(content)) == [kept]


def test_hidden_text_inside_headings_and_table_cells_is_left_out() -> None:
    extracted = read_html(
        "<h2>Fees<span style='display:none'> draft</span></h2>"
        "<table><tr><th>Item</th><th>Price<span hidden> (old)</span></th></tr>"
        "<tr><td>Card</td><td>5 euros<script>track()</script></td></tr>"
        "<tr style='display:none'><td>Retired</td><td>9 euros</td></tr></table>"
    )
    assert [block.text for block in extracted.blocks] == ["Fees", "Item: Card · Price: 5 euros"]


# Tables: HTML

DIRECTORY = (
    "<h2>Phone directory</h2>"
    "<table><caption>Extensions by department</caption>"
    "<thead><tr><th>Department</th><th>Extension</th><th>Head</th></tr></thead>"
    "<tbody><tr><td>Logistics</td><td>4417</td><td>Maria Olsen</td></tr>"
    "<tr><td>Finance</td><td>4420</td><td>Tom Berg</td></tr></tbody></table>"
    "<p>Call the switchboard otherwise.</p>"
)


def test_html_table_rows_are_paragraphs_with_their_column_headers() -> None:
    extracted = read_html(DIRECTORY)
    assert [(b.kind, b.text) for b in extracted.blocks] == [
        ("heading", "Phone directory"),
        ("paragraph", "Extensions by department"),
        ("row", "Department: Logistics · Extension: 4417 · Head: Maria Olsen"),
        ("row", "Department: Finance · Extension: 4420 · Head: Tom Berg"),
        ("paragraph", "Call the switchboard otherwise."),
    ]
    assert_blocks_slice_the_text(extracted)


def test_a_question_about_a_cell_finds_that_row_whole_in_one_chunk() -> None:
    rows = "".join(
        f"<tr><td>Department {i}</td><td>{4000 + i}</td><td>Head {i}</td></tr>" for i in range(60)
    )
    extracted = read_html(
        f"<h2>Directory</h2><table><tr><th>Department</th><th>Extension</th><th>Head</th></tr>"
        f"{rows}</table>"
    )
    document = Document("d.html", extracted.text, extracted.blocks, extracted.page_starts)
    chunks = chunk_document(document, ChunkSettings())
    assert len(chunks) > 1
    row = "Department: Department 41 · Extension: 4041 · Head: Head 41"
    assert sum(row in chunk.text for chunk in chunks) == 1
    assert all(chunk.text.startswith("Department: ") for chunk in chunks)


def test_html_table_without_th_takes_its_first_row_as_the_header() -> None:
    extracted = read_html(
        "<table><tr><td>Room</td><td>Seats</td></tr><tr><td>Attic</td><td>12</td></tr></table>"
    )
    assert paragraphs(extracted) == ["Room: Attic · Seats: 12"]


def test_html_table_of_row_headers_reads_as_key_and_value() -> None:
    extracted = read_html(
        "<table><tr><th>Phone</th><td>555 0100</td></tr>"
        "<tr><th>Email</th><td>desk@example.org</td></tr></table>"
    )
    assert paragraphs(extracted) == ["Phone: 555 0100", "Email: desk@example.org"]


def test_html_table_header_of_several_rows_and_a_corner_cell() -> None:
    extracted = read_html(
        "<table><tr><th></th><th colspan='2'>2024</th></tr>"
        "<tr><th></th><th>Spring</th><th>Autumn</th></tr>"
        "<tr><th>Members</th><td>120</td><td>135</td></tr></table>"
    )
    assert paragraphs(extracted) == ["Members · 2024 / Spring: 120 · 2024 / Autumn: 135"]


def test_html_cell_spanning_rows_is_repeated_in_each_and_empty_cells_left_out() -> None:
    extracted = read_html(
        "<table><tr><th>Day</th><th>Room</th><th>Talk</th><th>Note</th></tr>"
        "<tr><td rowspan='2'>Monday</td><td>Attic</td><td>Mars</td><td></td></tr>"
        "<tr><td>Hall</td><td>Venus</td><td>Bring a coat</td></tr></table>"
    )
    assert paragraphs(extracted) == [
        "Day: Monday · Room: Attic · Talk: Mars",
        "Day: Monday · Room: Hall · Talk: Venus · Note: Bring a coat",
    ]


def test_html_row_spanning_the_whole_table_is_written_alone() -> None:
    extracted = read_html(
        "<table><tr><th>Department</th><th>Extension</th></tr>"
        "<tr><td colspan='2'>North site</td></tr><tr><td>Logistics</td><td>4417</td></tr></table>"
    )
    assert paragraphs(extracted) == ["North site", "Department: Logistics · Extension: 4417"]


def test_html_table_inside_a_cell_does_not_add_rows_to_the_outer_table() -> None:
    extracted = read_html(
        "<table><tr><th>Site</th><th>Rooms</th></tr><tr><td>North</td>"
        "<td><table><tr><td>Attic</td></tr><tr><td>Hall</td></tr></table></td></tr></table>"
    )
    assert paragraphs(extracted) == ["Site: North · Rooms: Attic Hall"]


def test_html_one_row_table_is_one_line_of_its_cells() -> None:
    extracted = read_html("<table><tr><td>Open</td><td>9-17</td></tr></table>")
    assert paragraphs(extracted) == ["Open · 9-17"]


@pytest.mark.parametrize("role", ["role='presentation'", ""])
def test_html_layout_table_is_read_as_blocks_not_rows(role: str) -> None:
    extracted = read_html(
        f"<table {role}><tr><td><h2>News</h2><p>Rain today.</p><p>Sun tomorrow.</p></td>"
        "<td><p>Opening hours</p></td></tr></table>"
    )
    assert [(b.kind, b.text) for b in extracted.blocks] == [
        ("heading", "News"),
        ("paragraph", "Rain today."),
        ("paragraph", "Sun tomorrow."),
        ("paragraph", "Opening hours"),
    ]


# Tables: DOCX


def write_docx(rows: list[tuple[str, ...]], heading: str = "Phone directory") -> bytes:
    import docx

    document = docx.Document()
    document.add_heading(heading, level=2)
    table = document.add_table(rows=len(rows), cols=len(rows[0]))
    for r, cells in enumerate(rows):
        for c, text in enumerate(cells):
            table.cell(r, c).text = text
    document.add_paragraph("Call the switchboard otherwise.")
    saved = io.BytesIO()
    document.save(saved)
    return saved.getvalue()


def test_docx_table_rows_are_paragraphs_with_their_column_headers() -> None:
    data = write_docx(
        [
            ("Department", "Extension", "Head"),
            ("Logistics", "4417", "Maria Olsen"),
            ("Finance", "4420", "Tom Berg"),
        ]
    )
    extracted = extract("directory.docx", data)[1]
    assert [(b.kind, b.text) for b in extracted.blocks] == [
        ("heading", "Phone directory"),
        ("row", "Department: Logistics · Extension: 4417 · Head: Maria Olsen"),
        ("row", "Department: Finance · Extension: 4420 · Head: Tom Berg"),
        ("paragraph", "Call the switchboard otherwise."),
    ]
    assert_blocks_slice_the_text(extracted)


def test_docx_merged_cell_is_written_once_with_both_headers() -> None:
    import docx

    document = docx.Document()
    table = document.add_table(rows=2, cols=3)
    for c, text in enumerate(("Room", "Monday", "Tuesday")):
        table.cell(0, c).text = text
    table.cell(1, 0).text = "Attic"
    table.cell(1, 1).merge(table.cell(1, 2)).text = "Closed"
    saved = io.BytesIO()
    document.save(saved)
    extracted = extract("rooms.docx", saved.getvalue())[1]
    assert paragraphs(extracted) == ["Room: Attic · Monday / Tuesday: Closed"]


def test_docx_rows_marked_as_header_rows_label_the_rest() -> None:
    import docx
    from docx.oxml import OxmlElement

    document = docx.Document()
    table = document.add_table(rows=3, cols=2)
    for r, cells in enumerate((("Season", "Season"), ("Month", "Talks"), ("May", "4"))):
        for c, text in enumerate(cells):
            table.cell(r, c).text = text
    for row in table.rows[:2]:
        row._tr.get_or_add_trPr().append(OxmlElement("w:tblHeader"))
    saved = io.BytesIO()
    document.save(saved)
    extracted = extract("talks.docx", saved.getvalue())[1]
    assert paragraphs(extracted) == ["Season / Month: May · Season / Talks: 4"]


def test_docx_one_column_table_is_a_line_per_row() -> None:
    extracted = extract("list.docx", write_docx([("Telescopes",), ("Dobsonian",), ("Refractor",)]))[
        1
    ]
    assert paragraphs(extracted) == [
        "Telescopes",
        "Dobsonian",
        "Refractor",
        "Call the switchboard otherwise.",
    ]
