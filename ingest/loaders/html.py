"""HTML: the text a browser would show, a blank line between blocks."""

from __future__ import annotations

from html.parser import HTMLParser

from ingest.loaders.limits import TextBudget
from ingest.loaders.text import decode_text


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


def read_html(data: bytes) -> str:
    parser = _VisibleText()
    parser.feed(decode_text(data))
    parser.close()
    return TextBudget(len(data)).take(parser.text())
