"""HTML: a page's main content, as headings, paragraphs, list items and table rows.

trafilatura finds the main content of a saved web page and leaves its site
out (menus, footers, related links, cookie banners, rating widgets); its
XML keeps headings with their level, lists and tables, and it reads the
page's title and tags (bench/RESULTS.md, "Readers compared on real
documents"). A fragment too small for it to judge (a snippet, a page of a
few lines) is read whole: the text a browser would show, a block a
paragraph.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from ingest.loaders.document import BlockKind, Document, LoadError, TextBuilder, labelled_row
from ingest.loaders.limits import MAX_HTML_ELEMENTS, TextBudget
from ingest.loaders.text import decode_text

_HEADING_LEVEL = re.compile(r"h([1-6])")
_TAGS = ("tags", "categories")
_TAG_SEPARATORS = re.compile(r"[;,]")
# A page with less visible text than this has no site around it worth leaving out:
# it is read whole (main-content extraction drops short pages' lists and lines).
WHOLE_BELOW = 1500


class _VisibleText(HTMLParser):
    """Collects the text a browser would show, a blank line between blocks."""

    HIDDEN = frozenset({"script", "style", "head", "title", "noscript", "template", "svg", "iframe"})
    BLOCKS = frozenset(
        "p div li ul ol h1 h2 h3 h4 h5 h6 tr table section article header footer nav aside main "
        "blockquote pre dd dt dl figure figcaption form hr address details summary".split()
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[list[str]] = [[]]
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in self.HIDDEN:
            self.hidden += 1
        elif tag in self.BLOCKS:
            self.blocks.append([])
        elif tag == "br":
            self.blocks[-1].append("\n")
        elif tag in ("td", "th"):
            self.blocks[-1].append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self.BLOCKS:
            self.blocks.append([])

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.blocks[-1].append(data)

    def text(self) -> str:
        paragraphs = []
        for block in self.blocks:
            lines = ("".join(block)).split("\n")
            lines = [" ".join(line.split()) for line in lines]
            joined = "\n".join(line for line in lines if line)
            if joined:
                paragraphs.append(joined)
        return "\n\n".join(paragraphs)


def read_html(data: bytes, source: str) -> Document:
    """One web page as a structured document: its main content, or all its visible text when it has no clear one.

    Raises:
        LoadError: More elements or text than a page has.
    """
    html = decode_text(data)
    budget = TextBudget(len(data))
    elements = html.count("<")
    if elements > MAX_HTML_ELEMENTS:
        raise LoadError(f"refused: {elements:,} tags, more than {MAX_HTML_ELEMENTS:,}; split it into smaller files")
    parser = _VisibleText()
    parser.feed(html)
    parser.close()
    visible = parser.text()
    if len(visible) >= WHOLE_BELOW:
        document = _main_content(html, budget, source)
        if document is not None and document.text:
            return document
    builder = TextBuilder(take=budget.take)
    for paragraph in visible.split("\n\n"):
        builder.add(BlockKind.PARAGRAPH, paragraph)
    return builder.document(source, source)


def _main_content(html: str, budget: TextBudget, source: str) -> Document | None:
    """The page's main content by trafilatura, or None when it finds none."""
    import trafilatura
    from lxml import etree

    xml = trafilatura.extract(
        html,
        output_format="xml",
        include_tables=True,
        include_comments=False,
        include_links=False,
        include_images=False,
        with_metadata=True,
    )
    if not xml:
        return None
    root = etree.fromstring(xml.encode("utf-8"), etree.XMLParser(resolve_entities=False, no_network=True))
    builder = TextBuilder(take=budget.take)
    main = root.find("main")
    _walk(main if main is not None else root, builder, 0)
    tags = tuple(t.strip() for key in _TAGS for t in _TAG_SEPARATORS.split(root.get(key) or "") if t.strip())
    return builder.document(source, source, title=" ".join((root.get("title") or "").split()), tags=tags)


def _flat(element) -> str:
    return " ".join("".join(element.itertext()).split())


def _walk(element, builder: TextBuilder, depth: int) -> None:
    for child in element:
        tag = child.tag
        if tag == "head":
            level = _HEADING_LEVEL.fullmatch(child.get("rend") or "")
            builder.add(BlockKind.HEADING, _flat(child), int(level.group(1)) if level else 2)
        elif tag == "list":
            _list(child, builder, depth + 1)
        elif tag == "table":
            _table(child, builder)
        elif tag in ("p", "quote", "code"):
            builder.add(BlockKind.PARAGRAPH, _flat(child))
        else:
            _walk(child, builder, depth)


def _list(element, builder: TextBuilder, depth: int) -> None:
    """A list's items, nested lists after their item, each written with its bullet."""
    for item in element:
        if item.tag != "item":
            continue
        nested = [child for child in item if child.tag == "list"]
        text = " ".join(
            " ".join(part.split()) for part in [item.text or "", *_texts_outside(item, nested)] if part.strip()
        )
        builder.add(BlockKind.ITEM, f"• {text}" if text else "", depth)
        for child in nested:
            _list(child, builder, depth + 1)


def _texts_outside(item, nested: list) -> list[str]:
    """The text of an item's children other than its nested lists (and each child's tail)."""
    parts = []
    for child in item:
        if child not in nested:
            parts.append("".join(child.itertext()))
        parts.append(child.tail or "")
    return parts


def _table(table, builder: TextBuilder) -> None:
    """A table a row at a time, each row with its header's labels; the header row itself is not repeated."""
    rows = [[_flat(cell) for cell in row if cell.tag == "cell"] for row in table.iter("row")]
    rows = [row for row in rows if any(row)]
    if not rows:
        return
    header, body = (rows[0], rows[1:]) if len(rows) > 1 else ([], rows)
    for row in body:
        builder.add(BlockKind.ROW, labelled_row(header, row))
