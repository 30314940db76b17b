"""AcroForm field values of a PDF (name -> value), read through PDFium's form API."""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

_MAX_FIELDS = 1000


def _utf16(getter: Callable[[Any, int], int]) -> str:
    size = getter(None, 0)
    if size <= 2:
        return ""
    buffer = ctypes.create_string_buffer(size)
    getter(ctypes.cast(buffer, ctypes.POINTER(ctypes.c_ushort)), size)
    return buffer.raw[: size - 2].decode("utf-16-le", errors="replace")


def _getter(function: Callable[..., int], env: Any, annot: Any) -> Callable[[Any, int], int]:
    def get(buffer: Any, size: int) -> int:
        return int(function(env, annot, buffer, size))

    return get


def form_fields(doc: pdfium.PdfDocument) -> dict[str, str]:
    """Filled-in form values by field name. The document must have had ``init_forms()`` called
    before its pages were loaded; without a form environment this returns nothing."""
    env = getattr(doc, "formenv", None)
    if env is None:
        return {}
    values: dict[str, str] = {}
    for number in range(len(doc)):
        page = doc[number]
        try:
            count = pdfium_c.FPDFPage_GetAnnotCount(page.raw)
            for i in range(count):
                annot = pdfium_c.FPDFPage_GetAnnot(page.raw, i)
                if not annot:
                    continue
                try:
                    if pdfium_c.FPDFAnnot_GetSubtype(annot) != pdfium_c.FPDF_ANNOT_WIDGET:
                        continue
                    name = _utf16(_getter(pdfium_c.FPDFAnnot_GetFormFieldName, env.raw, annot))
                    value = _utf16(_getter(pdfium_c.FPDFAnnot_GetFormFieldValue, env.raw, annot))
                    if name and value.strip() and value.strip() != "Off":
                        values.setdefault(name, value.strip())
                finally:
                    pdfium_c.FPDFPage_CloseAnnot(annot)
                if len(values) >= _MAX_FIELDS:
                    return values
        finally:
            page.close()
    return values
