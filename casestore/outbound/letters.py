"""Letters as PDF (fpdf2): A4, the address where a window envelope shows it.

The layout follows DIN 5008 form B, whose window (DIN C5/C6 and DL envelopes with a window on
the left) sits 20 mm from the left edge and 45 mm from the top, 85 mm wide and 45 mm high; the
letter is folded at the marks 105 mm and 210 mm from the top.  In the window: one small line
with our return address, then the recipient's name and address lines (at most
``MAX_ADDRESS_LINES``), all inside ``ADDRESS_BOX``.  To the right, outside the window: the date
and the case reference.  The body starts below the address field and runs onto further pages,
each with a footer "page N of M" and the reference.

Text is set in DejaVu Sans (a TrueType font with Latin, Greek and Cyrillic) when it is
installed (Debian ``fonts-dejavu-core``) or ``CASEWORK_OUTBOUND__LETTER_FONT`` names a font file;
otherwise in the PDF core font Helvetica, which has Latin-1 only: other characters are printed
as '?', and a warning says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # fpdf2 (with fontTools) takes ~0.5 s to import: only when a letter is made
    from fpdf import FPDF

log = logging.getLogger(__name__)

PAGE_W, PAGE_H = 210.0, 297.0  # A4, mm
WINDOW = (20.0, 45.0, 85.0, 45.0)  # x, y, width, height (mm from the top left): DIN 5008 form B
ADDRESS_BOX = (25.0, 47.0, 75.0, 41.0)  # where we print: 5 mm in from the window's left, 2 mm from its edges
RETURN_LINE_H = 4.0
ADDRESS_LINE_H = 4.6
MAX_ADDRESS_LINES = 7
INFO_X = 125.0
BODY_TOP = 103.0
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 25.0, 20.0, 20.0, 25.0
FOLD_MARKS = (105.0, 210.0)
HOLE_MARK = 148.5
DEFAULT_FONTS = (Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
                 Path("/usr/share/fonts/dejavu/DejaVuSans.ttf"))


@dataclass(frozen=True)
class Letter:
    address_lines: tuple[str, ...]
    body: str
    case_ref: str
    date: datetime
    return_address: str = ""
    title: str = ""


def find_font(configured: str = "") -> Path | None:
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise FileNotFoundError(f"CASEWORK_OUTBOUND__LETTER_FONT={configured!r} is not a file; "
                                    "give a TrueType font file, or leave it empty")
        return path
    return next((p for p in DEFAULT_FONTS if p.is_file()), None)


def _letter_pdf(ref: str, family: str) -> Any:
    from fpdf import FPDF

    class LetterPdf(FPDF):
        def footer(self) -> None:
            self.set_y(-15)
            self.set_font(family, size=8)
            self.cell(0, 5, f"Page {self.page_no()} of {{nb}}    Reference {ref}", align="C")

    return LetterPdf(orientation="P", unit="mm", format="A4")


def _fit(text: str, unicode_font: bool) -> str:
    if unicode_font:
        return text
    return text.encode("latin-1", "replace").decode("latin-1")


def render_letter(letter: Letter, *, font: Path | None) -> bytes:
    """The letter as PDF bytes (same letter and font: same bytes)."""
    family = "letter" if font is not None else "helvetica"
    pdf = _letter_pdf(letter.case_ref, family)
    pdf.set_creation_date(letter.date)
    pdf.set_title(letter.title or f"Letter {letter.case_ref}")
    pdf.set_creator("casework")
    unicode_font = font is not None
    if font is not None:
        pdf.add_font(family, "", str(font))
    elif any(ord(ch) > 0xFF for ch in letter.body + "".join(letter.address_lines)):
        log.warning("letter %s has characters outside Latin-1 and no Unicode font is installed: they print as '?'; "
                    "install fonts-dejavu-core or set CASEWORK_OUTBOUND__LETTER_FONT", letter.case_ref)
    pdf.set_margins(MARGIN_LEFT, MARGIN_TOP, MARGIN_RIGHT)
    pdf.set_auto_page_break(auto=True, margin=MARGIN_BOTTOM)
    pdf.add_page()
    _marks(pdf)
    x, y, w, _ = ADDRESS_BOX
    if letter.return_address:
        pdf.set_font(family, size=7)
        pdf.set_xy(x, y)
        pdf.cell(w, RETURN_LINE_H, _fit(letter.return_address, unicode_font)[:90])
    pdf.set_font(family, size=10)
    lines = [ln for ln in letter.address_lines if ln.strip()][:MAX_ADDRESS_LINES]
    for n, line in enumerate(lines):
        pdf.set_xy(x, y + RETURN_LINE_H + 1.0 + n * ADDRESS_LINE_H)
        pdf.cell(w, ADDRESS_LINE_H, _fit(line.strip(), unicode_font)[:60])
    pdf.set_font(family, size=9)
    for n, line in enumerate((letter.date.strftime("%d %B %Y").lstrip("0"), f"Our reference: {letter.case_ref}")):
        pdf.set_xy(INFO_X, 50.0 + n * 5.0)
        pdf.cell(PAGE_W - MARGIN_RIGHT - INFO_X, 5.0, _fit(line, unicode_font), align="R")
    pdf.set_font(family, size=11)
    pdf.set_xy(MARGIN_LEFT, BODY_TOP)
    pdf.multi_cell(PAGE_W - MARGIN_LEFT - MARGIN_RIGHT, 5.5, _fit(letter.body.rstrip(), unicode_font))
    return bytes(pdf.output())


def _marks(pdf: FPDF) -> None:
    pdf.set_line_width(0.2)
    for y in FOLD_MARKS:
        pdf.line(4.0, y, 8.0, y)
    pdf.line(4.0, HOLE_MARK, 10.0, HOLE_MARK)
