"""Files that are small to send and costly to read, as an outside probe sent them: a DOCX
of 50,000 empty paragraphs (~40 KB), a DOCX of 50,000 short paragraphs (~700 KB), a PDF of
50,000 empty pages, a PDF of many pages of text (slow to lay out) and a DOCX that unpacks
to far more than it weighs."""

from __future__ import annotations

import io
import zipfile

PARAGRAPH = (
    "Paragraph {i} of the shipping log, entry {j}: crate {k} left the north dock on time, "
    "signed by clerk {k}."
)


def docx_of_paragraphs(count: int, text: str = "") -> bytes:
    """A DOCX of `count` paragraphs (python-docx's template), each `text` formatted with i,
    j, k (empty paragraphs when `text` is empty)."""
    import docx
    from docx.oxml.ns import qn
    from lxml import etree

    document = docx.Document()
    body = document.element.body
    section = body[-1]  # the section properties stay last
    body.remove(section)
    for i in range(count):
        paragraph = etree.SubElement(body, qn("w:p"))
        if text:
            run = etree.SubElement(paragraph, qn("w:r"))
            etree.SubElement(run, qn("w:t")).text = text.format(
                i=i, j=i * 7919 % 100_003, k=i * 31 % 997
            )
    body.append(section)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def docx_unpacking_to(megabytes: int) -> bytes:
    """A DOCX with one paragraph whose archive also holds a part of `megabytes` MB of zeros
    (compressed to a few hundred KB)."""
    out = io.BytesIO(docx_of_paragraphs(1, "A short note."))
    with zipfile.ZipFile(out, "a", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/media/padding.bin", bytes(megabytes << 20))
    return out.getvalue()


def pdf_of_pages(count: int, lines_per_page: int = 0) -> bytes:
    """A PDF of `count` letter pages written by hand: empty, or with `lines_per_page` lines
    of Helvetica text each (pdfminer lays out every line: slow to read in bulk)."""
    out = bytearray(b"%PDF-1.4\n")
    offsets: list[int] = []

    def add(body: bytes) -> None:
        offsets.append(len(out))
        out.extend(b"%d 0 obj\n%s\nendobj\n" % (len(offsets), body))

    font = 3 + count * (2 if lines_per_page else 1)
    add(b"<< /Type /Catalog /Pages 2 0 R >>")
    step = 2 if lines_per_page else 1
    kids = b" ".join(b"%d 0 R" % (3 + i * step) for i in range(count))
    add(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, count))
    for page in range(count):
        if not lines_per_page:
            add(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>")
            continue
        resources = b"/Resources << /Font << /F1 %d 0 R >> >>" % font
        add(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] %s /Contents %d 0 R >>"
            % (resources, len(offsets) + 2)
        )
        lines = b"".join(
            b"1 0 0 1 50 %d Tm (Page %d line %d of the long report.) Tj\n"
            % (750 - 14 * n, page + 1, n + 1)
            for n in range(lines_per_page)
        )
        stream = b"BT /F1 11 Tf\n" + lines + b"ET"
        add(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    if lines_per_page:
        add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    table = len(out)
    out.extend(b"xref\n0 %d\n0000000000 65535 f \n" % (len(offsets) + 1))
    out.extend(b"".join(b"%010d 00000 n \n" % offset for offset in offsets))
    trailer = b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
    out.extend(trailer % (len(offsets) + 1, table))
    return bytes(out)
