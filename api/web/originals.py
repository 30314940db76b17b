"""A document's original, made safe to show in a page: PDF pages and image frames (TIFF faxes too)
rendered to PNG, an email's HTML body sanitised, and the bytes to download.

- The kind is read from the bytes (``%PDF``, what Pillow can open, an RFC 822 message), never
  from the sender's content type.
- PDF pages are rendered with pypdfium2 under the process's one PDFium lock; every image is
  re-encoded to PNG by Pillow, so no original image bytes (an SVG, a polyglot) reach the browser
  inline.
- Email HTML goes through nh3 (ammonia): no script, no event handler, no style or form; images
  keep only ``data:`` sources (remote images would tell the sender the mail was read, and
  ``cid:`` parts are listed as attachments instead).
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass
from email.message import Message
from typing import Literal

import nh3
import pypdfium2 as pdfium
from PIL import Image, ImageSequence, UnidentifiedImageError

from ingest.blobs import BlobStore
from ingest.extract.email import parse_message
from ingest.extract.html import decode_html
from ingest.extract.pdfium_lock import PDFIUM

log = logging.getLogger(__name__)

Kind = Literal["pdf", "image", "email", "none"]
MAX_PAGES = 200  # pages shown inline; the rest are in the download
RENDER_WIDTH = 1100  # pixels across a rendered page
MAX_IMAGE_PIXELS = 80_000_000
_IMG_TAG = re.compile(r"<img\b[^>]*>")
_IMG_ATTRS = {"src", "alt", "width", "height", "title"}


@dataclass(frozen=True)
class Original:
    kind: Kind
    sha256: str | None
    pages: int


def kind_of(data: bytes) -> Kind:
    if data[:1024].lstrip().startswith(b"%PDF") or b"%PDF-" in data[:1024]:
        return "pdf"
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        return "image"
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        pass
    head = data[:4096].lower()
    if b"\nsubject:" in b"\n" + head or (b"\nfrom:" in b"\n" + head and b"\ncontent-type:" in b"\n" + head):
        return "email"
    return "none"


def _pdf_pages(data: bytes) -> int:
    with PDFIUM:
        try:
            doc = pdfium.PdfDocument(data)
        except pdfium.PdfiumError:
            return 0
        try:
            return len(doc)
        finally:
            doc.close()


def _image_frames(data: bytes) -> int:
    with Image.open(io.BytesIO(data)) as image:
        return int(getattr(image, "n_frames", 1))


def describe(blobs: BlobStore, sha256: str | None) -> Original:
    """What the blob is and how many pages it shows as (cached per blob: blobs never change)."""
    if not sha256:
        return Original(kind="none", sha256=None, pages=0)
    kind, pages = _cached_description(blobs, sha256)
    return Original(kind=kind, sha256=sha256, pages=pages)


_descriptions: dict[str, tuple[Kind, int]] = {}


def _cached_description(blobs: BlobStore, sha256: str) -> tuple[Kind, int]:
    found = _descriptions.get(sha256)
    if found is not None:
        return found
    data = blobs.read(sha256)
    kind = kind_of(data)
    pages = 0
    if kind == "pdf":
        pages = _pdf_pages(data)
        kind = "pdf" if pages else "none"
    elif kind == "image":
        pages = _image_frames(data)
    if len(_descriptions) > 4096:
        _descriptions.clear()
    _descriptions[sha256] = (kind, pages)
    return kind, pages


def page_png(blobs: BlobStore, original: Original, page: int) -> bytes:
    """Page ``page`` (0-based) of a PDF or image original as PNG; IndexError past the last page."""
    if original.sha256 is None or not 0 <= page < min(original.pages, MAX_PAGES):
        raise IndexError(page)
    data = blobs.read(original.sha256)
    image = _pdf_page(data, page) if original.kind == "pdf" else _image_frame(data, page)
    if image.width > RENDER_WIDTH:
        image = image.resize((RENDER_WIDTH, max(1, image.height * RENDER_WIDTH // image.width)))
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False)
    return out.getvalue()


def _pdf_page(data: bytes, number: int) -> Image.Image:
    with PDFIUM:
        doc = pdfium.PdfDocument(data)
        try:
            page = doc[number]
            try:
                width = page.get_width() or 612
                bitmap = page.render(scale=min(3.0, RENDER_WIDTH / width))
                try:
                    image: Image.Image = bitmap.to_pil().copy()
                finally:
                    bitmap.close()
            finally:
                page.close()
        finally:
            doc.close()
    return image


def _image_frame(data: bytes, number: int) -> Image.Image:
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    with Image.open(io.BytesIO(data)) as image:
        for index, frame in enumerate(ImageSequence.Iterator(image)):
            if index == number:
                converted = frame.convert("L" if frame.mode in ("1", "L", "I;16") else "RGB")
                return converted.copy()
    raise IndexError(number)


# -- email -------------------------------------------------------------------------------------


def email_html(data: bytes) -> str | None:
    """The message's HTML body, sanitised; None when it has none (then its text is shown)."""
    message = parse_message(data)
    part = _html_body(message)
    if part is None:
        return None
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return None
    markup, _ = decode_html(payload, part.get_content_charset())
    return sanitise_html(markup)


def _html_body(message: Message) -> Message | None:
    for part in message.walk():
        if part.get_content_type() == "text/html" and part.get_content_disposition() != "attachment":
            return part
        if part is not message and part.get_content_type() in ("message/rfc822", "message/global"):
            return None  # a forwarded message's body is not this message's body
    return None


def _keep_attribute(element: str, attribute: str, value: str) -> str | None:
    if element == "img" and attribute == "src":
        return value if value.strip().lower().startswith("data:image/") else None
    return value


def sanitise_html(markup: str) -> str:
    """HTML safe to put in a page: nh3's allow-list (no script, style, iframe, form, event handler
    or ``javascript:`` URL), images only from ``data:`` URLs, links opened without a referrer."""
    attributes = {tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()}
    attributes["img"] = _IMG_ATTRS
    clean = nh3.clean(markup, tags=set(nh3.ALLOWED_TAGS), attributes=attributes, attribute_filter=_keep_attribute,
                      url_schemes={"http", "https", "mailto", "data"}, link_rel="noopener noreferrer nofollow",
                      strip_comments=True)
    return _IMG_TAG.sub(_image_tag, clean)


def _image_tag(match: re.Match[str]) -> str:
    """An image whose source was dropped goes; one without a text alternative gets an empty one."""
    tag = match.group(0)
    if " src=" not in tag:
        return ""
    return tag if " alt=" in tag else tag[:4] + ' alt=""' + tag[4:]

