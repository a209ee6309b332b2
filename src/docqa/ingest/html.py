"""HTML: parsed by BeautifulSoup (lxml parser); headings h1-h6, paragraphs and list items,
tables one row per line. Page chrome (nav, script, style, footer, aside, forms) is dropped;
entities are decoded by the parser."""

from __future__ import annotations

from typing import Any

from docqa.ingest.base import Extracted, Part, assemble

CHROME = frozenset(
    "head script style noscript template nav footer aside form button select svg iframe "
    "canvas object embed".split()
)
CHROME_ROLES = frozenset({"navigation", "contentinfo", "banner", "search", "complementary"})
HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
BLOCKS = frozenset(
    "html body main article section div p ul ol li dl dt dd blockquote figure figcaption "
    "address header hgroup details summary center hr".split()
)


def _soup(markup: bytes | str) -> Any:
    from bs4 import BeautifulSoup

    return BeautifulSoup(markup, "lxml")


def _is_chrome(tag: Any) -> bool:
    return (
        tag.name in CHROME
        or tag.get("role") in CHROME_ROLES
        or tag.has_attr("hidden")
        or tag.get("aria-hidden") == "true"
    )


def table_rows(table: Any) -> str:
    """A table as text: one row per line, cells separated by ' | '."""
    rows = []
    for tr in table.find_all("tr"):
        cells = [" ".join(cell.get_text(" ").split()) for cell in tr.find_all(["th", "td"])]
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)


class _Walker:
    """Collects the visible text of an element tree as headings and paragraphs, in order."""

    def __init__(self) -> None:
        self.parts: list[Part] = []
        self.inline: list[str] = []

    def flush(self) -> None:
        text = "".join(self.inline)
        self.inline = []
        if text.strip():
            self.parts.append(Part("paragraph", " ".join(text.split())))

    def walk(self, node: Any) -> None:
        from bs4 import Comment, NavigableString, ProcessingInstruction
        from bs4.element import Declaration, Doctype

        for child in node.children:
            if isinstance(child, NavigableString):
                if not isinstance(child, Comment | ProcessingInstruction | Declaration | Doctype):
                    self.inline.append(str(child))
            elif _is_chrome(child):
                continue
            elif child.name in HEADINGS:
                self.flush()
                self.parts.append(Part("heading", child.get_text(" ")))
            elif child.name == "table":
                self.flush()
                self.parts.append(Part("paragraph", table_rows(child)))
            elif child.name == "br":
                self.inline.append(" ")
            elif child.name == "pre":
                self.flush()
                self.parts.append(Part("paragraph", child.get_text()))
            elif child.name in BLOCKS:
                self.flush()
                self.walk(child)
                self.flush()
            else:
                self.walk(child)


def html_parts(markup: bytes | str) -> list[Part]:
    """The headings and paragraphs of an HTML page, without markup or page chrome."""
    walker = _Walker()
    walker.walk(_soup(markup))
    walker.flush()
    return walker.parts


def visible_text(markup: str) -> str:
    """The visible text of an HTML fragment on one line (for HTML inside Markdown)."""
    return " ".join(part.text for part in html_parts(markup))


def read(data: bytes) -> Extracted:
    """Parse an HTML page (its encoding from the BOM, meta charset or detection)."""
    from bs4 import UnicodeDammit

    detected = UnicodeDammit(data, is_html=True)
    if detected.unicode_markup is None:
        from docqa.ingest.base import SkippedFileError

        raise SkippedFileError("binary data, not HTML")
    return assemble(html_parts(detected.unicode_markup), encoding=detected.original_encoding)
