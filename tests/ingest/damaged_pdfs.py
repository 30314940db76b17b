"""Damaged PDFs built in the tests: cut short, a broken cross-reference table, a page count the page
tree does not hold, page-tree entries that point nowhere or at something that is not a page.

Each page of ``letter`` says which page it is ("Page 2 of the letter ..."), so a test sees which
pages were kept.
"""

from __future__ import annotations

from tests.ingest.hostile_files import pdf, stream

_FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def _page(content: int) -> bytes:
    return (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            b"/Contents %d 0 R >>" % content)


def letter(pages: int, *, count: int | None = None, extra_kids: bytes = b"", broken: tuple[int, ...] = ()) -> bytes:
    """A PDF of ``pages`` text pages; ``count`` overrides the page tree's /Count, ``extra_kids`` is
    appended to its /Kids, and the 1-based pages in ``broken`` are replaced by a dictionary that is
    not a page."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"", _FONT]
    kids = []
    for n in range(1, pages + 1):
        page_object = len(objects) + 1
        kids.append(b"%d 0 R" % page_object)
        objects.append(b"<< /Tipe /Bogus >>" if n in broken else _page(page_object + 1))
        objects.append(stream(b"", b"BT /F1 12 Tf 72 720 Td (Page %d of the letter from George Green, "
                                    b"account 22142500) Tj ET" % n))
    objects[1] = b"<< /Type /Pages /Kids [%s%s] /Count %d >>" % (b" ".join(kids), extra_kids,
                                                                  pages if count is None else count)
    return pdf(objects)


def tiny_bogus_count() -> bytes:
    """A 300-odd byte PDF, no cross-reference table, whose one page tree claims 2^31 pages."""
    return (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
            b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 2147483648>>endobj\n"
            b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]/Resources<</Font<</F1 5 0 R>>>>"
            b"/Contents 4 0 R>>endobj\n"
            b"4 0 obj<</Length 58>>stream\nBT /F1 12 Tf 72 720 Td (Page 1 of the letter, 22142500) Tj ET\n"
            b"endstream endobj\n"
            b"5 0 obj<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>endobj\n"
            b"trailer<</Root 1 0 R>>\n%%EOF\n")


def corrupt_xref(data: bytes) -> bytes:
    """Every offset of the cross-reference table wrong (readers must rebuild it by scanning)."""
    at = data.rindex(b"xref")
    return data[:at] + data[at:].replace(b"0000000", b"9999999")


def truncated(data: bytes, cut: int) -> bytes:
    """The file without its last ``cut`` bytes, as a transfer that stopped early leaves it."""
    return data[:-cut]
