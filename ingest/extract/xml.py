"""XML documents: the text of every element, read with defusedxml (no entities, no external references).

Recognised formats also get structure (``structured_fields``): e-invoices (UBL, CII) with their embedded
attachments as child parts, camt bank statements and C-CDA clinical documents. XML that is not
well-formed (often a truncated file) is refused with the parser's reason, line and column.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from typing import Any

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden

from ingest.errors import BadInput
from ingest.extract.context import ExtractContext
from ingest.extract.html import extract_html
from ingest.extract.result import Extraction
from ingest.extract.sniff import from_name
from ingest.extract.text import extract_text, normalise_newlines
from ingest.extract.xml_attachments import attachment_parts
from ingest.extract.xml_camt import statement_fields
from ingest.extract.xml_ccda import ccda_fields
from ingest.extract.xml_invoice import embedded_files, invoice_fields
from ingest.extract.xml_paths import local, namespace

log = logging.getLogger(__name__)

_BASE64_RUN = re.compile(r"^[A-Za-z0-9+/=\s]{512,}$")
_START_TAG = re.compile(rb"<[A-Za-z_][\w.:-]*[\s>/]")


def _element_text(root: ET.Element) -> tuple[str, list[str]]:
    """One line per text-bearing element; long base64 payloads are left out (and named)."""
    lines: list[str] = []
    skipped: list[str] = []
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue  # comments, processing instructions
        for chunk in (element.text, element.tail):
            if chunk and chunk.strip():
                value = chunk.strip()
                if _BASE64_RUN.match(value):
                    skipped.append(local(element.tag))
                    continue
                lines.append(" ".join(value.split()))
    return "\n".join(lines), skipped


def parse_xml(data: bytes) -> ET.Element:
    """Parse with every entity feature refused; BadInput says why."""
    try:
        root: ET.Element = SafeET.fromstring(
            data, forbid_dtd=False, forbid_entities=True, forbid_external=True
        )
    except EntitiesForbidden as exc:
        raise BadInput(
            f"XML declares entities ({exc.name!r}); entity expansion is refused because it can be used "
            "as a memory bomb. Ask the sender for the document without a DTD internal subset"
        ) from None
    except ExternalReferenceForbidden as exc:
        raise BadInput(
            f"XML refers to an external resource ({exc.sysid or exc.pubid!r}); external entities are "
            "refused for safety"
        ) from None
    except (DTDForbidden, DefusedXmlException) as exc:
        raise BadInput(f"XML uses a refused feature: {exc}") from None
    return root


def claims_to_be_xml(data: bytes, filename: str | None, content_type: str | None) -> bool:
    """An XML name or content type, or (with no other name) an XML declaration or namespace in the head.

    Only then is a parse failure the file's fault; other markup was sniffed as XML for its '<'.
    """
    named = from_name(filename, content_type)
    if named is not None:
        return named == "xml"
    head = _head(data)
    return head.startswith(b"<?xml") or b"xmlns" in head[:2048]


def _head(data: bytes) -> bytes:
    head = data[:4096]
    for bom, codec in ((b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if head.startswith(bom):
            return head[2:].decode(codec, "ignore").encode("utf-8")
    return head.removeprefix(b"\xef\xbb\xbf").lstrip()


def structured_fields(root: ET.Element) -> tuple[dict[str, Any], list[str]]:
    """What the recognised formats hold: fields['invoice'] (UBL, CII), ['statement'] (camt), ['ccda']."""
    fields: dict[str, Any] = {}
    warnings: list[str] = []
    invoice = invoice_fields(root)
    if invoice is not None:
        fields["invoice"] = invoice
        if not invoice["number"]:
            warnings.append(f"{invoice['syntax']} {invoice['document']} has no document number")
    statement, statement_warnings = statement_fields(root)
    if statement is not None:
        fields["statement"] = statement
        warnings += statement_warnings
    ccda = ccda_fields(root)
    if ccda is not None:
        fields["ccda"] = ccda
    return fields, warnings


def extract_xml(
    data: bytes, *, filename: str | None, content_type: str | None, blob: str | None, ctx: ExtractContext
) -> Extraction:
    try:
        root = parse_xml(data)
    except ET.ParseError as exc:
        if not claims_to_be_xml(data, filename, content_type):
            # sniffed as XML only for its leading '<': HTML-like markup, '<<' PostScript dictionaries
            markup = _START_TAG.match(_head(data)) is not None
            ctx.warn(f"not XML after all ({exc}); read as {'HTML' if markup else 'plain text'}")
            reader = extract_html if markup else extract_text
            return reader(data, filename=filename, content_type=None, blob=blob, ctx=ctx)
        raise BadInput(
            f"XML is not well-formed ({exc}); it is probably cut off or damaged. Ask the sender to send it again"
        ) from None
    text, skipped = _element_text(root)
    fields: dict[str, Any] = {"root": local(root.tag), "well_formed": True}
    ns = namespace(root.tag)
    if ns:
        fields["namespace"] = ns
    if skipped:
        fields["skipped_binary_elements"] = sorted(set(skipped))
        ctx.warn(f"XML: left out base64 content of {len(skipped)} element(s): {', '.join(sorted(set(skipped)))}")
    structure, warnings = structured_fields(root)
    fields.update(structure)
    for warning in warnings:
        ctx.warn(warning)
    part = ctx.part(
        0, "file", text=normalise_newlines(text), filename=filename,
        content_type=content_type or "application/xml", blob_sha256=blob, fields=fields,
    )
    children = attachment_parts(embedded_files(root), 1, ctx)
    return Extraction(parts=[part, *children], warnings=ctx.warnings)
