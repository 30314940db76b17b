"""HTML to the text a reader sees: no scripts, styles or markup; charset from BOM, UTF-8, meta."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from ingest.extract.charsets import bom_codec, decode_text
from ingest.extract.context import ExtractContext
from ingest.extract.folding import fold
from ingest.extract.result import Extraction

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_SKIP = {"script", "style", "template", "noscript", "svg", "object", "iframe", "head_garbage"}
_BLOCK = {
    "p", "div", "br", "tr", "li", "ul", "ol", "table", "h1", "h2", "h3", "h4", "h5", "h6", "title",
    "section", "article", "header", "footer", "blockquote", "pre", "hr", "dt", "dd", "dl", "form",
    "address", "nav", "aside", "main", "figure", "figcaption", "caption", "tbody", "thead", "center",
}
_CELL = {"td", "th"}
_VOID = {"br", "hr", "img", "meta", "link", "input", "area", "base", "col", "embed", "param", "source", "wbr"}


class _VisibleText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.skip_depth = 0
        self.pre_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip_depth += 1
        elif tag == "pre":
            self.pre_depth += 1
            self.chunks.append("\n")
        elif tag in _BLOCK:
            self.chunks.append("\n")
        elif tag in _CELL:
            self.chunks.append("\t")
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt and alt.strip() and not self.skip_depth:
                self.chunks.append(f" {alt.strip()} ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            return  # <script/> opens nothing
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif tag == "pre":
            self.pre_depth = max(0, self.pre_depth - 1)
            self.chunks.append("\n")
        elif tag in _BLOCK:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        if self.pre_depth:
            self.chunks.append(data.replace("\n", "\x00"))  # protected from whitespace folding
        else:
            self.chunks.append(data)


def html_to_text(markup: str) -> str:
    """Visible text of an HTML document or fragment, one line per block, blank runs folded."""
    parser = _VisibleText()
    parser.feed(markup)
    parser.close()
    raw = "".join(parser.chunks).replace("\xa0", " ")
    lines = []
    for line in raw.split("\n"):
        line = re.sub(r"[ \t\r\f\v]+", " ", line).strip().replace("\x00", "\n")
        lines.append(line)
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def decode_html(data: bytes, declared: str | None = None) -> tuple[str, str]:
    """Decode HTML bytes: BOM, then valid UTF-8, then the transport's charset, then <meta charset>."""
    if bom_codec(data) or declared:
        return decode_text(data, declared)
    match = _META_CHARSET.search(data[:8192])
    meta = match.group(1).decode("ascii", "ignore") if match else None
    return decode_text(data, meta)


def extract_html(
    data: bytes, *, filename: str | None, content_type: str | None, blob: str | None, ctx: ExtractContext
) -> Extraction:
    markup, codec = decode_html(data)
    text = html_to_text(markup)
    scan = _TitleAndDataScripts()
    scan.feed(markup)
    scan.close()
    fields: dict[str, object] = {"charset": codec}
    title = html_to_text("".join(scan.title)).strip()
    if title:
        fields["title"] = title
    part = ctx.part(
        0, "file", text=text, filename=filename, content_type=content_type or "text/html",
        blob_sha256=blob, fields=fields,
    )
    islands = [
        fold(1 + i, "attachment", xml.encode("utf-8"), filename=f"{name}.xml", content_type="application/xml",
             ctx=ctx, fields={"embedded_in": "html script"})
        for i, (name, xml) in enumerate(scan.xml_islands()[: max(ctx.limits.max_parts - 1, 0)])
    ]
    return Extraction(parts=[part, *islands], warnings=ctx.warnings)


_DATA_TYPES = {"text/plain", "text/xml", "application/xml", "application/hl7-v3+xml"}


class _TitleAndDataScripts(HTMLParser):
    """The first <title>, and the bodies of data <script> blocks (``type`` text/plain or XML), in
    one linear pass (regular expressions over hostile markup can take quadratic or worse time)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.title: list[str] = []
        self._in_title = False
        self._titles = 0
        self.scripts: list[tuple[str, list[str]]] = []  # (id, body chunks) of data scripts
        self._script: list[str] | None = None
        self._count = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._titles += 1
            self._in_title = self._titles == 1
        elif tag == "script":
            self._count += 1
            a = {k.lower(): (v or "") for k, v in attrs}
            if a.get("type", "").strip().lower() in _DATA_TYPES:
                self._script = []
                self.scripts.append((a.get("id") or f"script-{self._count}", self._script))

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag == "script":
            self._script = None

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        if self._script is not None:
            self._script.append(data)

    def xml_islands(self) -> list[tuple[str, str]]:
        """XML documents carried as data in ``<script type="text/plain|…xml">`` blocks (a Blue Button
        health record puts its whole C-CDA there): (the block's id, made file-name safe, the XML)."""
        found: list[tuple[str, str]] = []
        for ident, chunks in self.scripts:
            body = "".join(chunks).strip()
            if _looks_like_xml(body):
                found.append((re.sub(r"[^\w.-]", "_", ident)[:60], body))
        return found


def _looks_like_xml(text: str) -> bool:
    """Whether ``text`` starts like an XML document: an optional declaration, comments and doctype,
    then an element.  A linear scan (``str.find``), never a backtracking pattern."""
    pos = 0
    for _ in range(1000):  # prolog items; more than this is not a document we want
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if text.startswith("<?", pos):
            end, closer = text.find("?>", pos + 2), "?>"
        elif text.startswith("<!--", pos):
            end, closer = text.find("-->", pos + 4), "-->"
        elif text[pos:pos + 9].upper() == "<!DOCTYPE":
            close, bracket = text.find(">", pos), text.find("[", pos)
            end, closer = (text.find("]>", bracket), "]>") if -1 < bracket < close else (close, ">")
        else:
            return len(text) > pos + 1 and text[pos] == "<" and (text[pos + 1].isalpha() or text[pos + 1] == "_")
        if end < 0:
            return False
        pos = end + len(closer)
    return False
