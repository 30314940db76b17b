"""XML documents: the text of every element, read with defusedxml (no entities, no external references)."""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden

from ingest.errors import BadInput
from ingest.extract.context import ExtractContext
from ingest.extract.html import html_to_text
from ingest.extract.result import Extraction
from ingest.extract.text import normalise_newlines

log = logging.getLogger(__name__)

_BASE64_RUN = re.compile(r"^[A-Za-z0-9+/=\s]{512,}$")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1] if tag.startswith("{") else tag


def _namespace(tag: str) -> str | None:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else None


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
                    skipped.append(_local(element.tag))
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


def extract_xml(
    data: bytes, *, filename: str | None, content_type: str | None, blob: str | None, ctx: ExtractContext
) -> Extraction:
    try:
        root = parse_xml(data)
    except ET.ParseError as exc:
        # Not well-formed (often truncated): keep what a person would read, and say so.
        ctx.warn(f"XML is not well-formed ({exc}); text was taken leniently, structure is lost")
        from ingest.extract.html import decode_html

        markup, _codec = decode_html(data)
        text = html_to_text(markup)
        part = ctx.part(
            0, "file", text=text, filename=filename, content_type=content_type or "application/xml",
            blob_sha256=blob, fields={"well_formed": False},
        )
        return Extraction(parts=[part], warnings=ctx.warnings)
    text, skipped = _element_text(root)
    fields: dict[str, object] = {"root": _local(root.tag), "well_formed": True}
    namespace = _namespace(root.tag)
    if namespace:
        fields["namespace"] = namespace
    if skipped:
        fields["skipped_binary_elements"] = sorted(set(skipped))
        ctx.warn(f"XML: left out base64 content of {len(skipped)} element(s): {', '.join(sorted(set(skipped)))}")
    part = ctx.part(
        0, "file", text=normalise_newlines(text), filename=filename,
        content_type=content_type or "application/xml", blob_sha256=blob, fields=fields,
    )
    return Extraction(parts=[part], warnings=ctx.warnings)
