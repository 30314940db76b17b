"""Integration drops: landing folders where third-party systems leave PDF, XML, HTML, CSV or JSON.

One folder per integration; each file is one ``file`` item. The integration's mapping says which
customer and case a file belongs to, as item metadata:

* ``filename_pattern``: a regex with named groups matched against the file name, e.g.
  ``(?P<customer_id>C-\\d+)_(?P<case_ref>[A-Z]{2}-\\d{4}-\\d+)\\.pdf``;
* ``fields``: metadata key -> where the value is inside the file: a dotted path in JSON
  (``customer.id``, ``items.0.ref``), an element path in XML (``CustomerID`` finds the first such
  element anywhere, any namespace; ``./Header/{*}Ref`` is an ElementTree path), a column in CSV
  (first data row), a ``<meta name=...>`` in HTML, a document-information key in PDF
  (``Title``, ``Subject``, ``Keywords``, ``Author``).

Keys the pipeline reads: ``sender_email``, ``sender_phone``, ``subject``, ``doc_type``,
``team``, and for the matcher ``customer_id`` (names the customer: drops are trusted),
``case_ref`` (checked like a quoted reference) and ``account_number``. A
mapped ``source_id`` (the sender system's document id) makes the key ``file:<integration>:<id>``;
otherwise the key is the content's sha256. A field that is not found is left out (logged).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from defusedxml import ElementTree

from connectors.folder import FolderWatcher, Taken
from connectors.settings import DropIntegration, WatchedFolder
from ingest.intake import TRUSTED_BY

log = logging.getLogger(__name__)


class _Meta(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.meta: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "meta":
            a = dict(attrs)
            if a.get("name") and a.get("content") is not None:
                self.meta.setdefault(str(a["name"]).lower(), str(a["content"]))


def _json_path(doc: Any, path: str) -> str | None:
    for part in path.split("."):
        if isinstance(doc, dict):
            doc = doc.get(part)
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            return None
    return None if doc is None or isinstance(doc, dict | list) else str(doc)


def _xml_path(root: Any, path: str) -> str | None:
    expr = path if "/" in path or path.startswith(".") else f".//{{*}}{path}"
    el = root if expr in (".", "") else root.find(expr)
    return el.text.strip() if el is not None and el.text and el.text.strip() else None


def extract_fields(data: bytes, ext: str, fields: dict[str, str]) -> dict[str, str]:
    """The mapped values found in the file (missing ones left out)."""
    if not fields:
        return {}
    found: dict[str, str | None] = {}
    if ext == ".json":
        doc = json.loads(data.decode("utf-8-sig"))
        found = {k: _json_path(doc, p) for k, p in fields.items()}
    elif ext == ".xml":
        root = ElementTree.fromstring(data)
        found = {k: _xml_path(root, p) for k, p in fields.items()}
    elif ext == ".csv":
        text = data.decode("utf-8-sig", errors="replace")
        row = next(csv.DictReader(io.StringIO(text)), {})
        lower = {str(k).strip().lower(): v for k, v in row.items()}
        found = {k: lower.get(p.lower()) for k, p in fields.items()}
    elif ext in (".html", ".htm"):
        parser = _Meta()
        parser.feed(data.decode("utf-8", errors="replace"))
        found = {k: parser.meta.get(p.lower()) for k, p in fields.items()}
    elif ext == ".pdf":
        import pypdfium2 as pdfium

        from ingest.extract.pdfium_lock import PDFIUM

        with PDFIUM:
            pdf = pdfium.PdfDocument(data)
            try:
                info = {str(k).lower(): str(v) for k, v in pdf.get_metadata_dict().items() if v}
            finally:
                pdf.close()
        found = {k: info.get(p.lower()) for k, p in fields.items()}
    return {k: v.strip() for k, v in found.items() if v and v.strip()}


class DropWatcher(FolderWatcher):
    kind = "drop"

    def __init__(self, integration: DropIntegration, **kwargs: Any) -> None:
        cfg = WatchedFolder(name=f"drop:{integration.name}", path=integration.path, channel="file",
                            team=integration.team, doc_type=integration.doc_type, metadata=integration.metadata,
                            extensions=integration.extensions, poll_s=integration.poll_s)
        self.integration = integration
        self.pattern = re.compile(integration.filename_pattern) if integration.filename_pattern else None
        super().__init__(Path(integration.path), config=cfg, **kwargs)

    def take(self, path: Path, rel: Path, data: bytes) -> Taken:
        meta = {**self.metadata_for(rel), "integration": self.integration.name}
        if self.pattern is not None:
            m = self.pattern.search(path.name)
            if m:
                meta.update({k: v for k, v in m.groupdict().items() if v})
            else:
                log.warning("%s: %s does not match filename_pattern", self.name, rel)
        try:
            meta.update(extract_fields(data, path.suffix.lower(), self.integration.fields))
        except Exception as exc:  # the document itself may still be readable by the pipeline
            meta["mapping_error"] = f"{type(exc).__name__}: {exc}"[:300]
            log.warning("%s: mapped fields of %s could not be read: %s", self.name, rel, exc)
        meta[TRUSTED_BY] = f"drop:{self.integration.name}"  # a configured system wrote this metadata
        missing = sorted(set(self.integration.fields) - set(meta))
        if missing:
            log.info("%s: %s has no %s", self.name, rel, ", ".join(missing))
        doc_id = meta.pop("source_id", None)
        return Taken([self.emitter.emit(
            data, channel="file", filename=path.name, source=f"drop:{self.integration.name}:{rel}",
            source_id=f"{self.integration.name}:{doc_id}" if doc_id else None, metadata=meta, defer=True)])
