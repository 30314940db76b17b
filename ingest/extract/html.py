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
    title = re.search(r"<title[^>]*>(.*?)</title>", markup[:65536], re.I | re.S)
    fields: dict[str, object] = {"charset": codec}
    if title:
        fields["title"] = html_to_text(title.group(1))
    part = ctx.part(
        0, "file", text=text, filename=filename, content_type=content_type or "text/html",
        blob_sha256=blob, fields=fields,
    )
    islands = [
        fold(1 + i, "attachment", xml.encode("utf-8"), filename=f"{name}.xml", content_type="application/xml",
             ctx=ctx, fields={"embedded_in": "html script"})
        for i, (name, xml) in enumerate(xml_islands(markup)[: max(ctx.limits.max_parts - 1, 0)])
    ]
    return Extraction(parts=[part, *islands], warnings=ctx.warnings)


_SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script\s*>", re.I | re.S)
_ATTR = re.compile(r"""\b(id|type)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.I)
_DATA_TYPES = {"text/plain", "text/xml", "application/xml", "application/hl7-v3+xml"}
_XML_START = re.compile(r"\s*(?:<\?xml[^>]*\?>\s*)?(?:<!--.*?-->\s*|<!DOCTYPE[^>\[]*(?:\[.*?\])?\s*>\s*)*<[A-Za-z_]",
                        re.S | re.I)


def xml_islands(markup: str) -> list[tuple[str, str]]:
    """XML documents carried as data in ``<script type="text/plain|…xml">`` blocks (a Blue Button
    health record puts its whole C-CDA there): (the block's id or "script-N", the XML)."""
    found: list[tuple[str, str]] = []
    for n, m in enumerate(_SCRIPT.finditer(markup), 1):
        attrs = {a.group(1).lower(): next(g for g in a.groups()[1:] if g is not None)
                 for a in _ATTR.finditer(m.group(1))}
        body = m.group(2)
        if attrs.get("type", "").strip().lower() in _DATA_TYPES and _XML_START.match(body):
            found.append((re.sub(r"[^\w.-]", "_", attrs.get("id") or f"script-{n}")[:60], body.strip()))
    return found
