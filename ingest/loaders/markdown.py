"""Markdown: parsed (markdown-it-py, CommonMark with tables), read as a person reads the rendered page.

Headings become sections, bullets and numbers list items, table rows carry
their header's labels, and a link or an emphasis is just its text. YAML
front matter is the document's metadata (title, tags), never its text: a
`also_called:` line is not an answer.
"""

from __future__ import annotations

import re

from ingest.loaders.document import BlockKind, Document, TextBuilder, labelled_row
from ingest.loaders.limits import TextBudget
from ingest.loaders.text import decode_text

_TAG = re.compile(r"<[^>]*>")
_METADATA_TAGS = ("tags", "keywords")


def read_markdown(data: bytes, source: str) -> Document:
    """One markdown file as a structured document.

    Args:
        data: The file's bytes.
        source: Its path relative to the corpus.
    """
    from markdown_it import MarkdownIt
    from mdit_py_plugins.front_matter import front_matter_plugin

    parser = MarkdownIt("commonmark").enable("table").use(front_matter_plugin)
    tokens = parser.parse(decode_text(data))
    builder = TextBuilder(take=TextBudget(len(data)).take)
    reader = _Reader(builder)
    title, tags = "", ()
    for token in tokens:
        if token.type == "front_matter":
            title, tags = front_matter(token.content)
        else:
            reader.feed(token)
    return builder.document(source, source, title=title, tags=tags)


def front_matter(text: str) -> tuple[str, tuple[str, ...]]:
    """The title and tags a YAML front matter declares (nothing when it is not a mapping or not YAML)."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return "", ()
    if not isinstance(data, dict):
        return "", ()
    title = data.get("title")
    tags: list[str] = []
    for key in _METADATA_TAGS:
        value = data.get(key)
        if isinstance(value, str):
            tags.extend(part.strip() for part in value.split(","))
        elif isinstance(value, list):
            tags.extend(str(part).strip() for part in value if isinstance(part, str | int | float))
    return (" ".join(str(title).split()) if isinstance(title, str | int | float) else ""), tuple(t for t in tags if t)


class _Reader:
    """Walks markdown-it's token stream and adds one block per heading, paragraph, list item or table row."""

    def __init__(self, builder: TextBuilder) -> None:
        self.builder = builder
        self.lists: list[list[int]] = []  # per open list: [next number] for ordered, [] for bullets
        self.item_started = False  # the current list item's first paragraph has its bullet
        self.heading = 0
        self.header: list[str] = []
        self.cells: list[str] = []
        self.in_head = False
        self.in_cell = False

    def feed(self, token) -> None:
        kind = token.type
        if kind == "heading_open":
            self.heading = int(token.tag[1:])
        elif kind in ("bullet_list_open", "ordered_list_open"):
            start = token.attrGet("start")
            self.lists.append([int(start) if start else 1] if kind == "ordered_list_open" else [])
        elif kind in ("bullet_list_close", "ordered_list_close"):
            self.lists.pop()
        elif kind == "list_item_open":
            self.item_started = False
        elif kind == "inline":
            self._inline(token)
        elif kind in ("fence", "code_block"):
            self.builder.add(BlockKind.PARAGRAPH, token.content)
        elif kind == "html_block":
            self.builder.add(BlockKind.PARAGRAPH, _TAG.sub(" ", token.content))
        else:
            self._table(token)

    def _table(self, token) -> None:
        kind = token.type
        if kind == "thead_open":
            self.in_head, self.header = True, []
        elif kind == "thead_close":
            self.in_head = False
        elif kind == "tr_open":
            self.cells = []
        elif kind in ("th_open", "td_open"):
            self.in_cell = True
            self.cells.append("")
        elif kind in ("th_close", "td_close"):
            self.in_cell = False
        elif kind == "tr_close":
            if self.in_head:
                self.header = self.cells
            else:
                self.builder.add(BlockKind.ROW, labelled_row(self.header, self.cells))

    def _inline(self, token) -> None:
        text = inline_text(token)
        if self.in_cell:
            self.cells[-1] = text
        elif self.heading:
            self.builder.add(BlockKind.HEADING, text, self.heading)
            self.heading = 0
        elif self.lists:
            self.builder.add(BlockKind.ITEM, text if self.item_started else f"{self._marker()} {text}", len(self.lists))
            self.item_started = True
        else:
            self.builder.add(BlockKind.PARAGRAPH, text)

    def _marker(self) -> str:
        counter = self.lists[-1]
        if not counter:
            return "•"
        number = counter[0]
        counter[0] += 1
        return f"{number}."


def inline_text(token) -> str:
    """The visible text of an inline token: links as their text, code as written, breaks as spaces."""
    parts = []
    for child in token.children or ():
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "html_inline":
            parts.append(" ")
        elif child.type == "image":
            parts.append(child.content)
    return "".join(parts)
