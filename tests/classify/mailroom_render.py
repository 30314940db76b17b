"""Rendering mailroom items as real bytes: emails (RFC 5322), scanned letters (Pillow, 200 dpi,
noise and skew) and born-digital PDF forms (a minimal PDF with a text layer)."""

from __future__ import annotations

import io
import random
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
DPI = 200
A4 = (1654, 2339)  # pixels at 200 dpi


def email_bytes(*, sender: str, subject: str, body: str, message_id: str | None = None,
                in_reply_to: str | None = None, auto_reply: bool = False) -> tuple[bytes, str]:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "cases@casework.example"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime(2026, 3, 2, 9, 30, tzinfo=UTC))
    mid = message_id or make_msgid(domain="mail.example")
    msg["Message-ID"] = mid
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    if auto_reply:
        msg["Auto-Submitted"] = "auto-replied"
        msg["X-Autoreply"] = "yes"
    msg.set_content(body)
    return bytes(msg), mid


def scan_png(lines: list[str], rng: random.Random) -> bytes:
    """A letter page at 200 dpi: 11 pt text, specks of noise, skewed by up to 1.5 degrees."""
    page = Image.new("L", A4, 255)
    draw = ImageDraw.Draw(page)
    font = ImageFont.truetype(FONT, 31)
    y = 180
    for line in lines:
        draw.text((170, y), line, fill=rng.randint(0, 40), font=font)
        y += 46 if line else 30
    for _ in range(2500):  # specks
        x, yy = rng.randrange(A4[0]), rng.randrange(A4[1])
        draw.point((x, yy), fill=rng.randint(0, 120))
    page = page.rotate(rng.uniform(-1.5, 1.5), resample=Image.Resampling.BILINEAR, fillcolor=255, expand=False)
    out = io.BytesIO()
    page.save(out, format="PNG", dpi=(DPI, DPI))
    return out.getvalue()


def pdf_form(lines: list[str]) -> bytes:
    """A one-page PDF with a real text layer (Helvetica), as a web form or office system writes."""
    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    ops = ["BT", "/F1 11 Tf", "14 TL", "72 770 Td"]
    for line in lines:
        ops.append(f"({esc(line)}) Tj T*")
    ops.append("ET")
    stream = "\n".join(ops).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)
