"""HTML: parsed by BeautifulSoup (lxml parser); headings h1-h6, paragraphs and list items,
tables as one paragraph per row with its column headers (see ingest/tables.py). Entities
are decoded by the parser.

Left out: page chrome (nav, script, style, footer, aside, forms, ...), and what a browser
does not show: elements with the `hidden` attribute (not `hidden="until-found"`, which is
content a reader can reveal), `aria-hidden="true"`, an inline style `display: none` or
`visibility: hidden`, `<template>`, `<noscript>`, a `<dialog>` that is not open, and
cookie or consent banners named as such in their id, class or aria-label ("cookie-banner",
"cookie-consent", a dialog labelled "Cookie consent"). Hiding done by a style sheet rule or
a class name (`.d-none`) is not seen: only the element's own markup is read.

Table headers: the rows of `<thead>`, else the leading rows made of `<th>` cells only; a
table without either takes its first row as the header (ingest/tables.py says why). A table
used for layout (role="presentation" or "none", or headings in its cells) is no data table:
its cells are read like any other blocks.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from docqa.ingest.base import Extracted, Part, assemble
from docqa.ingest.tables import Cell, table_lines

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
LAYOUT_TABLE_PARTS = frozenset("table caption thead tbody tfoot tr th td".split())
LAYOUT_ROLES = frozenset({"presentation", "none"})
_HIDING_STYLES = frozenset(
    {("display", "none"), ("visibility", "hidden"), ("visibility", "collapse")}
)
_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
# A banner's name pairs a topic with a kind ("cookie-banner", "consent-dialog", "cookie-consent");
# "consent" alone is both and does not count: id="consent" may be a medical form's section.
_BANNER_TOPIC = re.compile(r"cookie|consent|gdpr|ccpa|onetrust|cookiebot|didomi|usercentrics")
_BANNER_KIND = re.compile(r"banner|consent|dialog|notice|popup|pop-up|modal|overlay|bar|wall")
_DIALOG_ROLES = frozenset({"dialog", "alertdialog"})
_NEVER_BANNERS = frozenset({"html", "body", "main", "article"})
_MAX_SPAN = 1000  # the HTML standard's limit on colspan; rowspan only runs to the last row
# A DOCTYPE's internal subset (`<!DOCTYPE html [ <!ENTITY x "y"> ]>`, from XHTML and XML
# tools): lxml's HTML parser ends the DOCTYPE at its first ">", and the rest leaked as text.
_INTERNAL_SUBSET = re.compile(
    r"\A(\ufeff?\s*(?:<\?.*?\?>\s*|<!--.*?-->\s*)*<!DOCTYPE\b[^\[>]*)\[.*?\]\s*>",
    re.IGNORECASE | re.DOTALL,
)


def _soup(markup: bytes | str) -> Any:
    from bs4 import BeautifulSoup

    if isinstance(markup, str):
        markup = without_internal_subset(markup)
    return BeautifulSoup(markup, "lxml")


def without_internal_subset(markup: str) -> str:
    """The page with its DOCTYPE's internal subset (entity declarations) taken out."""
    return _INTERNAL_SUBSET.sub(r"\1>", markup, count=1)


def _attribute(tag: Any, name: str) -> str:
    """An attribute's value as one lower-case string (class is a list in BeautifulSoup)."""
    value = tag.get(name)
    if value is None:
        return ""
    return " ".join(value).lower() if isinstance(value, list) else str(value).strip().lower()


def _is_chrome(tag: Any) -> bool:
    return (
        tag.name in CHROME
        or tag.get("role") in CHROME_ROLES
        or is_hidden(tag)
        or is_consent_banner(tag)
    )


def is_hidden(tag: Any) -> bool:
    """Whether the element's own markup keeps a browser from showing it."""
    if tag.has_attr("hidden") and _attribute(tag, "hidden") != "until-found":
        return True
    if _attribute(tag, "aria-hidden") == "true":
        return True
    if tag.name == "dialog" and not tag.has_attr("open"):
        return True
    return hides(_attribute(tag, "style"))


def hides(style: str) -> bool:
    """Whether an inline style sets display: none or visibility: hidden (any case, !important)."""
    for declaration in _CSS_COMMENT.sub("", style).split(";"):
        name, _, value = declaration.partition(":")
        value = "".join(value.lower().split()).removesuffix("!important")
        if (name.strip().lower(), value) in _HIDING_STYLES:
            return True
    return False


def is_consent_banner(tag: Any) -> bool:
    """A cookie or consent banner or dialog, as its id, class, role or aria-label name it."""
    if tag.name in _NEVER_BANNERS:
        return False
    names = " ".join(_attribute(tag, name) for name in ("id", "class", "aria-label"))
    topics = {match.group() for match in _BANNER_TOPIC.finditer(names)}
    if not topics:
        return False
    kinds = {match.group() for match in _BANNER_KIND.finditer(names)}
    if tag.name == "dialog" or _attribute(tag, "role") in _DIALOG_ROLES:
        kinds.add("dialog")
    if not any(topic != kind for topic in topics for kind in kinds):
        return False
    # A banner never holds the page's own content; an element that does is a page about cookies.
    return tag.find(["main", "article", "h1"]) is None


def visible_strings(node: Any) -> Iterator[str]:
    """The text pieces under a node that a browser shows, in order (walked with a stack of
    its own, so a page nested thousands of elements deep is read like any other)."""
    from bs4 import NavigableString

    stack = [iter(node.children)]
    while stack:
        child = next(stack[-1], None)
        if child is None:
            stack.pop()
        elif isinstance(child, NavigableString):
            if is_text(child):
                yield str(child)
        elif not _is_chrome(child):
            stack.append(iter(child.children))


def is_text(string: Any) -> bool:
    """Whether a string of the tree is page text (not a comment, doctype or declaration)."""
    from bs4 import Comment, ProcessingInstruction
    from bs4.element import Declaration, Doctype

    return not isinstance(string, Comment | ProcessingInstruction | Declaration | Doctype)


def text_of(node: Any, separator: str = " ") -> str:
    """The visible text under a node, its pieces joined by `separator`."""
    return separator.join(visible_strings(node))


def is_layout_table(table: Any) -> bool:
    """A table that lays a page out rather than holding data: so marked, or holding headings."""
    return _attribute(table, "role") in LAYOUT_ROLES or table.find(HEADINGS) is not None


def table_row_elements(table: Any) -> tuple[list[Any], int | None]:
    """A table's visible rows (not those of tables inside it) and how many form its header."""
    head: list[Any] = []
    body: list[Any] = []
    foot: list[Any] = []
    for child in table.find_all(recursive=False):
        if _is_chrome(child):
            continue
        if child.name == "tr":
            body.append(child)
        elif child.name in ("thead", "tbody", "tfoot"):
            group = {"thead": head, "tbody": body, "tfoot": foot}[child.name]
            group.extend(tr for tr in child.find_all("tr", recursive=False) if not _is_chrome(tr))
    if head:
        return [*head, *body, *foot], len(head)
    rows = [*body, *foot]
    leading = 0
    for tr in rows:
        cells = tr.find_all(["th", "td"], recursive=False)
        if not cells or any(cell.name != "th" for cell in cells):
            break
        leading += 1
    return rows, leading if 0 < leading < len(rows) else None


def _span(cell: Any, name: str) -> int:
    value = str(cell.get(name, "1")).strip()
    return min(max(int(value), 1), _MAX_SPAN) if value.isdigit() else 1


def table_cells(rows: list[Any]) -> list[list[Cell]]:
    """Each row's cells, a cell spanning rows (rowspan) repeated in the rows below it."""
    grid: list[list[Cell]] = []
    carried: dict[int, tuple[Cell, int]] = {}  # column -> (cell, rows it still covers)
    for tr in rows:
        cells = iter(tr.find_all(["th", "td"], recursive=False))
        row: list[Cell] = []
        column = 0
        while True:
            if column in carried:
                cell, left = carried.pop(column)
                if left > 1:
                    carried[column] = (cell, left - 1)
            elif (element := next(cells, None)) is not None:
                text = "" if _is_chrome(element) else text_of(element)
                cell = Cell(text, _span(element, "colspan"), element.name == "th")
                if _span(element, "rowspan") > 1:
                    carried[column] = (cell, _span(element, "rowspan") - 1)
            elif any(later > column for later in carried):
                cell = Cell("")
            else:
                break
            row.append(cell)
            column += cell.span
        grid.append(row)
    return grid


def table_parts(table: Any) -> Iterator[Part]:
    """A table's caption, then one row part per row with its column headers."""
    caption = table.find("caption", recursive=False)
    if caption is not None and not _is_chrome(caption):
        yield Part("paragraph", text_of(caption))
    rows, header_rows = table_row_elements(table)
    for line in table_lines(table_cells(rows), header_rows):
        yield Part("row", line)


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
        """Collect the parts under a node, depth first with a stack of its own (no recursion:
        5,000 nested `<div>` once exceeded Python's recursion limit)."""
        from bs4 import NavigableString

        stack: list[tuple[Iterator[Any], bool]] = [(iter(node.children), False)]
        while stack:
            children, is_block = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                if is_block:
                    self.flush()
            elif isinstance(child, NavigableString):
                if is_text(child):
                    self.inline.append(str(child))
            elif not _is_chrome(child) and not self.take(child):
                is_block = child.name in BLOCKS or child.name in LAYOUT_TABLE_PARTS
                if is_block:
                    self.flush()
                stack.append((iter(child.children), is_block))

    def take(self, element: Any) -> bool:
        """Collect an element that is read whole (heading, data table, line break, `pre`);
        False for one whose children are walked."""
        if element.name in HEADINGS:
            self.flush()
            self.parts.append(Part("heading", text_of(element)))
        elif element.name == "table" and not is_layout_table(element):
            self.flush()
            self.parts.extend(table_parts(element))
        elif element.name == "br":
            self.inline.append(" ")
        elif element.name == "pre":
            self.flush()
            self.parts.append(Part("paragraph", text_of(element, separator="")))
        else:
            return False
        return True


def html_parts(markup: bytes | str) -> list[Part]:
    """The headings and paragraphs of an HTML page, without markup, chrome or hidden parts."""
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
