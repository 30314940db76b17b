"""Hostile files built in the tests, small on disk: Flate bombs, pages the size of a field, huge images.

``SECURITY.md`` (section "Hostile files") records what each did to ``casework ingest`` before and after.
"""

from __future__ import annotations

import binascii
import zlib

_BLOCK = 1 << 20


def pdf(objects: list[bytes]) -> bytes:
    """A PDF whose object ``n`` is ``objects[n - 1]`` (object 1 the catalog), with a correct xref table."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def stream(extra: bytes, raw: bytes) -> bytes:
    return b"<< /Length %d %s>>\nstream\n" % (len(raw), extra) + raw + b"\nendstream"


def deflated_spaces(size: int) -> bytes:
    """``size`` bytes of spaces (a valid, empty content stream) as a zlib stream, about 1,000 to 1.

    Built without compressing ``size`` bytes: after a full flush a deflate block does not refer back,
    so one 1 MiB block is compressed once and repeated; the Adler-32 checksum is computed as usual.
    """
    block = b" " * _BLOCK
    raw = zlib.compressobj(9, zlib.DEFLATED, -15)
    encoded = raw.compress(block) + raw.flush(zlib.Z_FULL_FLUSH)
    end = raw.flush()
    checksum = 1
    for _ in range(size // _BLOCK):
        checksum = zlib.adler32(block, checksum)
    return b"\x78\xda" + encoded * (size // _BLOCK) + end + checksum.to_bytes(4, "big")


def _one_page(contents: bytes, media_box: bytes = b"0 0 612 792") -> bytes:
    return pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [%s] /Contents 4 0 R >>" % media_box,
        contents,
    ])


def flate_bomb(inflated: int) -> bytes:
    """One page whose content stream inflates to ``inflated`` bytes (2 GiB: a 2 MiB file)."""
    return _one_page(stream(b"/Filter /FlateDecode ", deflated_spaces(inflated)))


def hex_flate_bomb(inflated: int) -> bytes:
    """The same bomb behind an ASCIIHex filter, which the in-process stream check does not see through."""
    raw = binascii.hexlify(deflated_spaces(inflated)) + b">"
    return _one_page(stream(b"/Filter [/ASCIIHexDecode /FlateDecode] ", raw))


def text_page(text: bytes = b"Hello from a small page") -> bytes:
    content = b"BT /F1 12 Tf 72 700 Td (%s) Tj ET" % text
    return pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        stream(b"", content),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ])


def big_pages(inches: float, *, pages: int = 1, user_unit: float | None = None) -> bytes:
    """``pages`` blank pages of ``inches`` x ``inches`` PDF units / 72 (200: the largest PDF allows), a few
    hundred bytes; ``user_unit`` sets ``/UserUnit`` (PDF 1.6: the size of a unit in 1/72 inch)."""
    size = round(inches * 72)
    unit = b"/UserUnit %g " % user_unit if user_unit else b""
    kids = b" ".join(b"%d 0 R" % (3 + n) for n in range(pages))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages)]
    objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] %s>>" % (size, size, unit)] * pages
    return pdf(objects)


def blank_png(width: int, height: int, *, rows_per_block: int = 120) -> bytes:
    """A white RGB PNG of ``width`` x ``height`` built without holding its pixels (12,000 x 12,000: 440 KB
    on disk, 432 MB decoded), the same repeated-block way as ``deflated_spaces``."""
    row = b"\x00" + b"\xff" * (3 * width)  # filter byte "none", then the pixels
    block = row * rows_per_block
    raw = zlib.compressobj(9, zlib.DEFLATED, -15)
    encoded = raw.compress(block) + raw.flush(zlib.Z_FULL_FLUSH)
    tail_rows = height % rows_per_block
    tail = raw.compress(row * tail_rows) + raw.flush() if tail_rows else raw.flush()
    checksum = 1
    for _ in range(height // rows_per_block):
        checksum = zlib.adler32(block, checksum)
    checksum = zlib.adler32(row * tail_rows, checksum)
    data = b"\x78\xda" + encoded * (height // rows_per_block) + tail + checksum.to_bytes(4, "big")

    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
