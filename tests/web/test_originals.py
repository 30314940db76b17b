"""What the viewer shows of an original: TIFF fax pages and PDF pages as PNG, sanitised email
HTML, and search snippets whose only markup is our own <mark>."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from api.web.originals import describe, email_html, page_png, sanitise_html
from api.web.pages.search import highlight
from ingest.blobs import FileBlobStore
from tests.classify.mailroom_render import pdf_form


def _tiff(pages: int) -> bytes:
    frames = [Image.new("1", (1728, 1100), 1) for _ in range(pages)]
    out = io.BytesIO()
    frames[0].save(out, format="TIFF", compression="group4", save_all=True, append_images=frames[1:])
    return out.getvalue()


def test_fax_and_pdf_pages_render_to_png(tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path)
    fax = describe(blobs, blobs.put(_tiff(3)).sha256)
    assert (fax.kind, fax.pages) == ("image", 3)
    png = page_png(blobs, fax, 2)
    assert png.startswith(b"\x89PNG") and Image.open(io.BytesIO(png)).width == 1100
    with pytest.raises(IndexError):
        page_png(blobs, fax, 3)
    pdf = describe(blobs, blobs.put(pdf_form(["Dear casework,", "a letter."])).sha256)
    assert (pdf.kind, pdf.pages) == ("pdf", 1)
    assert Image.open(io.BytesIO(page_png(blobs, pdf, 0))).size[0] == 1100
    text = describe(blobs, blobs.put(b"just some words").sha256)
    assert (text.kind, text.pages) == ("none", 0)
    with pytest.raises(IndexError):
        page_png(blobs, text, 0)


def test_email_html_keeps_text_and_drops_everything_active() -> None:
    hostile = ('<p onclick="alert(1)">Hello <b>Jane</b></p><script>alert(1)</script><img src=x onerror=alert(1)>'
               '<img src="https://tracker.example/p.png"><img src="data:image/png;base64,iVBORw0KGgo=">'
               '<a href="javascript:alert(1)">x</a><a href="https://example.org/">site</a><style>p{}</style>'
               '<iframe src="https://evil.example"></iframe><form action="/logout"><button>go</button></form>')
    clean = sanitise_html(hostile)
    assert "<p>Hello <b>Jane</b></p>" in clean
    for bad in ("script", "onerror", "onclick", "tracker.example", "javascript:", "<style", "<iframe", "<form",
                'src="x"'):
        assert bad not in clean, bad
    assert '<img alt="" src="data:image/png;base64,iVBORw0KGgo=">' in clean
    assert 'href="https://example.org/" rel="noopener noreferrer nofollow"' in clean
    message = (b"From: a@example.com\r\nSubject: hi\r\nMIME-Version: 1.0\r\n"
               b"Content-Type: multipart/alternative; boundary=b\r\n\r\n"
               b"--b\r\nContent-Type: text/plain\r\n\r\nplain\r\n"
               b"--b\r\nContent-Type: text/html; charset=iso-8859-1\r\n\r\n"
               b"<p>Gr\xfc\xdfe<script>x()</script></p>\r\n--b--\r\n")
    assert email_html(message) == "<p>Grüße</p>"
    assert email_html(b"From: a@example.com\r\nSubject: plain\r\n\r\njust text\r\n") is None


def test_snippets_carry_only_our_own_mark() -> None:
    snippet = 'a &lt;script&gt;alert(1)&lt;/script&gt; and <b>noise</b> &amp; &lt;b&gt;more&lt;/b&gt;'
    assert str(highlight(snippet)) == ("a &lt;script&gt;alert(1)&lt;/script&gt; and <mark>noise</mark> &amp; "
                                       "&lt;b&gt;more&lt;/b&gt;")
