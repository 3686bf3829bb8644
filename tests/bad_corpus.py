"""A corpus folder full of files that go wrong, beside good ones.

Shared by tests/test_bad_files.py and the peak-memory measurement, which
ingests in a fresh process so `ru_maxrss` is the build's own peak:
`python -m tests.bad_corpus make DIR` then `python -m tests.bad_corpus
ingest DIR --index IDX` (from the repository folder). Each
good file holds one sentence with a made-up word found nowhere else, so a
search for that word proves the file is in the index; each bad file maps to
the words its skip reason must contain.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

from tests.helpers import write_pdf

# source -> (made-up word, sentence that holds it)
GOOD = {
    "good.txt": ("zorbulent", "Zorbulent hip flexors lift the knee toward the body."),
    "notes with spaces.md": ("quillimar", "# Notes\n\nQuillimar stretches relax the lower back."),
    "café ünïcode 日本語.txt": ("vantrelle", "Vantrelle exercises help the café owner’s spine."),
    "cp1252.txt": ("brummock", "The “brummock” brace – worn daily – supports the neck."),
    "latin1.txt": ("glissonde", "Glissonde Ångström señor façade: the knee heals."),
    "utf16.txt": ("trombelix", "Trombelix massage eases the shoulder 😀 muscles."),
    "good.pdf": ("pellimore", "Pellimore rehabilitation restores ankle strength."),
    "good.docx": ("snorquel", "Snorquel splints protect the wrist."),
    "big.txt": ("farrowind", "Farrowind cycling builds the thigh muscles."),
    "long line.txt": ("mellinox", "mellinox"),
    "records.jsonl": ("crandavel", "Crandavel rowing strengthens the upper back."),
    # A run of letters the tokenizer counts as one token, a titled record whose
    # answer starts with its title, and a record whose _id is another file's path.
    "letters.txt": ("quandrix", "Quandrix header sentence about nothing."),
    "titled.jsonl": ("ozzlewick", "Ozzlewick okapi are relatives of giraffes that live in the rainforest."),
    "uploads/collision.jsonl": ("zebrafrond", "Zebrafrond stripes fool the biting flies."),
}
LETTER_RUN = 1_000_000  # letters after the header sentence of letters.txt
ENCODINGS = {"cp1252.txt": "cp1252", "latin1.txt": "latin-1", "utf16.txt": "utf-16"}
# source -> words the skip reason must contain
BAD = {
    "empty.txt": "file is empty",
    "binary.txt": "binary file",
    "corrupt.pdf": "corrupt or unreadable PDF",
    "locked.pdf": "encrypted PDF",
    "scanned.pdf": "no text layer",
    "empty.docx": "file is empty",
    "blank.docx": "no text found",
    "records.jsonl:2": "invalid JSON record",
    "loop.txt": "cannot read",
    "bad \\xe9name.txt": "not valid UTF-8",
    "pipe.txt": "not a regular file",
    "zero.txt": "link points outside the corpus",  # /dev/zero: reading it would never end
    "leak.txt": "link points outside the corpus",  # /etc/passwd: never served
    "uploads/collision.jsonl:2": "duplicate record id 'good.txt' (first on line 1)",
}
UNREADABLE = "secret.txt"  # made unreadable by the test (chmod, or a simulated PermissionError as root)


def filler(size: int, seed: int = 0) -> str:
    """About `size` characters of varied prose-like text: sentences and paragraphs of made-up words."""
    rng = random.Random(seed)
    vocabulary = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 10))) for _ in range(5000)]
    sentences, total = [], 0
    while total < size:
        words = rng.choices(vocabulary, k=rng.randint(5, 25))
        sentence = " ".join(words).capitalize() + "."
        sentences.append(sentence + ("\n\n" if rng.random() < 0.15 else " "))
        total += len(sentence) + 1
    return "".join(sentences)


def make_bad_corpus(root: Path, big_mb: float = 50) -> Path:
    """Write the corpus into `root` (created) and return it."""
    import docx
    from pypdf import PdfWriter

    root.mkdir(parents=True, exist_ok=True)
    for source in ("good.txt", "notes with spaces.md", "café ünïcode 日本語.txt"):
        (root / source).write_text(GOOD[source][1], encoding="utf-8")
    for source, encoding in ENCODINGS.items():
        (root / source).write_bytes(GOOD[source][1].encode(encoding))
    write_pdf(root / "good.pdf", [GOOD["good.pdf"][1]])
    document = docx.Document()
    document.add_paragraph(GOOD["good.docx"][1])
    document.save(root / "good.docx")
    # The made-up word sits at the very end, so the whole file must have been read.
    (root / "big.txt").write_text(filler(int(big_mb * 2**20)) + "\n\n" + GOOD["big.txt"][1], encoding="utf-8")
    # One line of 1 MB: no line break, no sentence end, the made-up word in the middle.
    half = filler(2**19, seed=1).replace(".", "").replace("\n", " ")
    (root / "long line.txt").write_text(half + " mellinox " + half, encoding="utf-8")
    records = [
        json.dumps({"_id": "r1", "title": "Rowing", "text": GOOD["records.jsonl"][1]}),
        '{"_id": "r2", "text": "cut off in the mid',
        json.dumps({"_id": "r3", "title": "", "text": "Lone surrogate \ud800 from a JSON escape."}),
    ]
    (root / "records.jsonl").write_text("\n".join(records) + "\n", encoding="utf-8")
    (root / "letters.txt").write_text(GOOD["letters.txt"][1] + " " + "a" * LETTER_RUN, encoding="utf-8")
    titled = {"_id": "okapi-1", "title": "Okapi", "text": GOOD["titled.jsonl"][1]}
    (root / "titled.jsonl").write_text(json.dumps(titled) + "\n", encoding="utf-8")
    (root / "uploads").mkdir()  # records whose _id is another file's path, as anyone could upload
    collision = [
        {"_id": "good.txt", "title": "", "text": GOOD["uploads/collision.jsonl"][1]},
        {"_id": "good.txt", "title": "", "text": "Zebras never sleep; they are striped horses that fly at night."},
    ]
    (root / "uploads" / "collision.jsonl").write_text("\n".join(json.dumps(r) for r in collision), encoding="utf-8")

    (root / "empty.txt").write_bytes(b"")
    (root / "binary.txt").write_bytes(bytes(random.Random(2).randrange(256) for _ in range(4096)))
    (root / "corrupt.pdf").write_bytes(b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\ntrailer garbage")
    write_pdf(root / "plain.pdf.tmp", ["Secret text."])
    writer = PdfWriter(clone_from=root / "plain.pdf.tmp")
    writer.encrypt("secret")
    with open(root / "locked.pdf", "wb") as out:
        writer.write(out)
    (root / "plain.pdf.tmp").unlink()
    scanned = PdfWriter()
    scanned.add_blank_page(width=612, height=792)
    with open(root / "scanned.pdf", "wb") as out:
        scanned.write(out)
    (root / "empty.docx").write_bytes(b"")
    docx.Document().save(root / "blank.docx")
    os.symlink("loop.txt", root / "loop.txt")  # points at itself
    os.symlink(".", root / "folder loop")  # a folder link back to the corpus
    os.mkfifo(root / "pipe.txt")  # reading it would wait for a writer forever
    os.symlink("/dev/zero", root / "zero.txt")  # reading it would never end
    os.symlink("/etc/passwd", root / "leak.txt")
    (root / b"bad \xe9name.txt".decode("utf-8", "surrogateescape")).write_text("Badly named.", encoding="utf-8")
    (root / UNREADABLE).write_text("Nobody may read this.", encoding="utf-8")
    (root / UNREADABLE).chmod(0)
    return root


# One short paragraph as Word writes it: revision ids, paragraph and run properties around a few words.
_WORD_PARAGRAPH = (
    '<w:p w:rsidR="00B21F4C" w:rsidRDefault="00B21F4C" w:rsidP="00B21F4C"><w:pPr><w:spacing w:after="0" '
    'w:line="240" w:lineRule="auto"/><w:jc w:val="both"/><w:rPr><w:rFonts w:ascii="Calibri" w:hAnsi="Calibri" '
    'w:cs="Calibri"/><w:color w:val="1F1F1F"/><w:sz w:val="22"/><w:szCs w:val="22"/><w:lang w:val="en-GB"/>'
    '</w:rPr></w:pPr><w:r w:rsidRPr="00C83A1E"><w:rPr><w:rFonts w:ascii="Calibri" w:hAnsi="Calibri" '
    'w:cs="Calibri"/><w:b/><w:color w:val="1F1F1F"/><w:sz w:val="22"/><w:szCs w:val="22"/><w:lang w:val="en-GB"/>'
    '</w:rPr><w:t xml:space="preserve">Note {n}: </w:t></w:r><w:r w:rsidRPr="00C83A1E"><w:rPr><w:rFonts '
    'w:ascii="Calibri" w:hAnsi="Calibri" w:cs="Calibri"/><w:color w:val="1F1F1F"/><w:sz w:val="22"/>'
    '<w:szCs w:val="22"/><w:lang w:val="en-GB"/></w:rPr><w:t>the knee bends.</w:t></w:r></w:p>'
)


def write_paragraphs_docx(path: Path, paragraphs: int, words: int = 0, vocabulary: int = 20_000) -> None:
    """A valid .docx of `paragraphs` short paragraphs, written as a stream (a small file that expands to far more XML).

    A million of them is about 900 MB of XML in a file of a few MB: python-docx
    read it in 161 s and 3.6 GB before the loader refused such files unread.
    With `words` made-up words (of `vocabulary` different ones) in each
    paragraph the XML compresses less: 10 of 20,000 about 17-fold, under the
    zip ratio guard, as issue 23's N1 file; 200 of 2 makes mostly text.
    """
    import io
    import zipfile

    import docx

    rng = random.Random(3)
    vocabulary = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9))) for _ in range(vocabulary)]
    paragraph = _WORD_PARAGRAPH.replace("the knee bends.", "{words}") if words else _WORD_PARAGRAPH

    def text(n: int) -> str:
        return paragraph.format(n=n, words=" ".join(rng.choices(vocabulary, k=words)))

    template = io.BytesIO()
    docx.Document().save(template)
    with zipfile.ZipFile(template) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in source.infolist():
            if info.filename != "word/document.xml":
                out.writestr(info, source.read(info))
                continue
            head, _, tail = source.read(info).decode("utf-8").partition("<w:body>")
            with out.open(info.filename, "w", force_zip64=True) as xml:
                xml.write((head + "<w:body>").encode("utf-8"))
                block = 1000
                for first in range(0, paragraphs, block):
                    chunk = "".join(text(n) for n in range(first, min(first + block, paragraphs)))
                    xml.write(chunk.encode("utf-8"))
                xml.write(tail[tail.index("<w:sectPr") :].encode("utf-8"))


def pdf_of(objects: list[bytes]) -> bytes:
    """A PDF of these objects (object 1 the catalog), with a correct cross-reference table."""
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


_CATALOG = b"<< /Type /Catalog /Pages 2 0 R >>"
_FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
_PAGE = (
    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >>%s >> /Contents 5 0 R >>"
)
_TEXT = b"BT /F1 12 Tf 72 720 Td (The knee bends and heals.) Tj ET"


def _stream(data: bytes, extra: bytes = b"") -> bytes:
    import zlib

    packed = zlib.compress(data, 9)
    return b"<< /Length %d /Filter /FlateDecode%s >>\nstream\n" % (len(packed), extra) + packed + b"\nendstream"


def _pages(pages: int) -> bytes:
    return b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join([b"4 0 R"] * pages), pages)


def write_hostile_pdfs(folder: Path) -> dict[str, str]:
    """Issue 23's hostile PDFs in `folder`; returns each name and the start of what reading it gives.

    A page tree whose node is its own kid, a form XObject that draws itself,
    100,000 nested arrays, a content stream of 1 GB of spaces in 1 MB, 20,000
    pages, and 2,000 pages sharing one content stream of 57 MB in a file of
    under 200 KB (PDFium parses it again for every page, about 14 bytes of
    memory for each byte).
    """
    import zlib

    folder.mkdir(parents=True, exist_ok=True)
    loop = [_CATALOG, b"<< /Type /Pages /Kids [2 0 R 4 0 R] /Count 2 >>", _FONT, _PAGE % b"", _stream(_TEXT)]
    form = (
        b"<< /Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources << /XObject << /X1 6 0 R >> "
        b"/Font << /F1 3 0 R >> >> /Length 30 >>\nstream\nBT /F1 12 Tf (x) Tj ET /X1 Do  \nendstream"
    )
    xobject = [_CATALOG, _pages(1), _FONT, _PAGE % b" /XObject << /X1 6 0 R >>", _stream(_TEXT + b" /X1 Do"), form]
    depth = 100_000
    nested = [_CATALOG[:-2] + b"/Junk " + b"[" * depth + b"]" * depth + b" >>", _pages(1), _FONT, _PAGE % b""]
    nested.append(_stream(_TEXT))
    deflate = zlib.compressobj(9)
    spaces = b"".join(deflate.compress(b" " * 2**20) for _ in range(1024)) + deflate.flush()
    bomb = [_CATALOG, _pages(1), _FONT, _PAGE % b""]
    bomb.append(b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(spaces) + spaces + b"\nendstream")
    many = [_CATALOG, _pages(20_000), _FONT, _PAGE % b"", _stream(_TEXT)]
    line = b"BT /F1 12 Tf 72 720 Td (knee) Tj ET\n"
    shared = [_CATALOG, _pages(2000), _FONT, _PAGE % b"", _stream(line * (57 * 2**20 // len(line)))]
    files = {
        "page-tree-loop.pdf": (loop, "corrupt or unreadable PDF: page 2"),
        "self-drawing-xobject.pdf": (xobject, "text"),
        "nested-arrays.pdf": (nested, "text"),
        "flate-1gb.pdf": (bomb, "refused: a content stream at byte"),
        "20000-pages.pdf": (many, "refused: 20,000 pages, more than 5,000"),
        "shared-57mb-stream.pdf": (shared, "refused: a content stream at byte"),
    }
    for name, (objects, _) in files.items():
        (folder / name).write_bytes(pdf_of(objects))
    return {name: expected for name, (_, expected) in files.items()}


def own_peak_rss() -> int:
    """This process's peak resident memory in KiB since it started its program (VmHWM).

    Unlike `ru_maxrss`, which Linux carries across exec from the process that
    forked it, this is reset by exec: the figure is the child's own.
    """
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def measure_ingest(corpus: Path, index_dir: Path) -> dict:
    """Ingest `corpus` with the fake embedder in this process; seconds and peak RSS (run it in a fresh process)."""
    import resource
    import time

    from index.embed.fake import FakeEmbedder
    from ingest.pipeline import build

    start = resource.getrusage(resource.RUSAGE_SELF)
    began = time.perf_counter()
    report = build(corpus, index_dir, FakeEmbedder())
    seconds = time.perf_counter() - began
    end = resource.getrusage(resource.RUSAGE_SELF)
    cpu = end.ru_utime + end.ru_stime - start.ru_utime - start.ru_stime
    return {  # ru_maxrss is in KiB on Linux
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "peak_rss_mb": round(end.ru_maxrss / 1024, 1),
        "own_peak_rss_mb": round(own_peak_rss() / 1024, 1),
        "rss_at_start_mb": round(start.ru_maxrss / 1024, 1),
        "documents": report.documents,
        "passages": report.passages,
        "skipped": len(report.skipped),
    }


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(
        description="Make the bad-files corpus or the .docx bomb beside a good file, or ingest one and print its cost."
    )
    parser.add_argument("command", choices=("make", "ingest", "docx"))
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--index", type=Path, help="ingest: the index folder")
    parser.add_argument("--big-mb", type=float, default=50, help="make: size of big.txt in MB (default: 50)")
    parser.add_argument("--paragraphs", type=int, default=1_000_000, help="docx: paragraphs (default: 1,000,000)")
    args = parser.parse_args()
    if args.command == "make":
        make_bad_corpus(args.corpus, args.big_mb)
    elif args.command == "docx":  # CORPUS/many-paragraphs.docx beside a small good file
        args.corpus.mkdir(parents=True, exist_ok=True)
        (args.corpus / "good.txt").write_text(GOOD["good.txt"][1], encoding="utf-8")
        write_paragraphs_docx(args.corpus / "many-paragraphs.docx", args.paragraphs)
    else:
        print(json.dumps(measure_ingest(args.corpus, args.index)))
