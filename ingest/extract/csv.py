"""Delimited text (CSV, TSV, pipe): one record Part per row, keyed by the header row."""

from __future__ import annotations

import csv
import io
import itertools
import logging
from collections.abc import Iterator
from typing import Any

from ingest.extract.charsets import decode_text
from ingest.extract.context import ExtractContext
from ingest.extract.result import Extraction
from ingest.messages import Part

log = logging.getLogger(__name__)

_DELIMITERS = ",;\t|"
_SAMPLE = 64 * 1024


def _dialect(sample: str) -> type[csv.Dialect] | csv.Dialect:
    # the sample may end mid-record; cut it at the last line break so the sniffer sees whole lines
    cut = sample.rfind("\n")
    if cut > 0:
        sample = sample[:cut]
    try:
        return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS)
    except csv.Error:
        first = sample.split("\n", 1)[0]
        best = max(_DELIMITERS, key=first.count)
        dialect = csv.excel if best == "," or not first.count(best) else csv.excel_tab
        if best not in ",\t" and first.count(best):

            class _Custom(csv.excel):
                delimiter = best

            return _Custom
        return dialect


def _has_header(sample: str, rows: list[list[str]]) -> bool:
    if not rows:
        return False
    try:
        return csv.Sniffer().has_header(sample[: sample.rfind("\n")] if "\n" in sample else sample)
    except csv.Error:
        first = rows[0]
        return all(cell and not cell.replace(".", "").replace("-", "").isdigit() for cell in first)


def _unique(header: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    names = []
    for i, raw in enumerate(header):
        name = raw.strip() or f"column_{i + 1}"
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return names


def _ends_inside_quotes(text: str, dialect: type[csv.Dialect] | csv.Dialect) -> bool:
    """True when the text stops inside a quoted field (a file cut mid-record)."""
    quote = getattr(dialect, "quotechar", '"') or '"'
    if text.count(quote) % 2 == 0:
        return False
    try:
        for _row in csv.reader(io.StringIO(text, newline=""), dialect, strict=True):
            pass
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


def extract_csv(
    data: bytes, *, filename: str | None, content_type: str | None, blob: str | None, ctx: ExtractContext
) -> Extraction:
    text, codec = decode_text(data)
    text = text.replace("\x00", "")
    dialect = _dialect(text[:_SAMPLE])
    reader = csv.reader(io.StringIO(text, newline=""), dialect, strict=False)
    rows_iter: Iterator[list[str]] = iter(reader)
    first_rows = list(itertools.islice(rows_iter, 2))
    header_present = _has_header(text[:_SAMPLE], first_rows)
    header = _unique(first_rows[0]) if header_present and first_rows else []
    pending = first_rows[1:] if header_present else first_rows
    limit = ctx.limits.max_parts
    parts: list[Part] = []
    total = 0
    last: list[str] = []
    row_number = 1 if header_present else 0
    for row in itertools.chain(pending, rows_iter):
        row_number += 1
        if not any(cell.strip() for cell in row):
            continue
        total += 1
        last = row
        if len(parts) >= limit:
            continue  # keep counting so the warning can say how many were left
        names = header or [f"column_{i + 1}" for i in range(len(row))]
        if len(row) > len(names):
            names = names + [f"column_{i + 1}" for i in range(len(names), len(row))]
        values = dict(zip(names, row, strict=False))
        line_text = "\n".join(f"{k}: {v}" for k, v in values.items() if v.strip())
        fields: dict[str, Any] = {"row": row_number, "values": values}
        if not parts:
            fields |= {"header": header, "delimiter": getattr(dialect, "delimiter", ","), "charset": codec}
        parts.append(
            ctx.part(
                len(parts), "record", text=line_text, filename=filename,
                content_type=content_type or "text/csv", blob_sha256=blob, fields=fields,
            )
        )
    if total > limit:
        ctx.warn(
            f"CSV has {total:,} records; only the first {limit:,} were read as parts (max_parts); "
            f"{total - limit:,} were not"
        )
    if _ends_inside_quotes(text, dialect) or (header and last and len(last) < len(header)):
        ctx.warn(
            f"CSV ends in the middle of a record (file cut short?): the last record (row {row_number}) "
            "is incomplete; everything before it was read"
        )
    if not parts:
        parts.append(
            ctx.part(0, "file", filename=filename, content_type=content_type, blob_sha256=blob,
                     error="CSV has no data rows")
        )
    return Extraction(parts=parts, warnings=ctx.warnings)

