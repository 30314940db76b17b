"""Import customers and (legacy) cases from CSV or JSON Lines, streaming, row by row.

The format is chosen by extension (.jsonl, .ndjson, .json: JSON Lines; .csv: CSV), else by the
first non-space character (``{`` means JSON Lines).  UTF-8, a byte-order mark is tolerated.  CSV
files have a header naming the columns (any order, case-insensitive):

- customers: ``customer_id,name,email,phone,address,postcode,account_number``
- cases: ``ref,customer_id,case_type,status,opened_at,subject`` and optionally ``team`` and
  ``stage`` (the stage of its case type the case is at; default the first)

Each customer written is reconciled with the prospects (``P-...``, people who wrote before the
CRM knew them) it matches: merged, or linked for a person to decide (``casestore.prospects``).
When no prospect is live as the import starts, the rows skip that look-up.

``import_cases`` takes an ``on_case`` hook, called for every case written (new or updated) with
its ``stage`` column: the CLI passes the work domain's, which gives each case its work once
(casestore's domains do not import ``work``).

Each row is written inside its own SAVEPOINT: a bad row (missing required field, bad email,
unparseable date, unknown customer, bad status, invalid JSON) is reported with its line number
and skipped, and the good rows are kept.  Re-importing updates instead of duplicating.  The
caller commits.
"""

from __future__ import annotations

import codecs
import csv
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from casestore import audit, prospects
from casestore.cases import upsert_case
from casestore.customers import upsert_customer
from casestore.errors import CaseStoreError, InvalidInput
from casestore.models import Case, Customer
from casestore.prospects import reconcile_prospects
from casestore.validation import parse_datetime, text_or_none

log = logging.getLogger(__name__)

CUSTOMER_COLUMNS = ("customer_id", "name", "email", "phone", "address", "postcode", "account_number")
CASE_COLUMNS = ("ref", "customer_id", "case_type", "status", "opened_at", "subject", "team", "stage")
JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}
_SNIFF_BYTES = 4096

Row = dict[str, str | None]


@dataclass(frozen=True)
class RowError:
    line: int
    reason: str


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    errors: list[RowError] = field(default_factory=list)
    # cases whose team, status, restriction or customer this import changed: their indexed
    # documents must follow (who may see them in search)
    visibility_changed: list[str] = field(default_factory=list)
    renamed_customers: list[str] = field(default_factory=list)  # their documents carry the old name
    prospects_merged: list[str] = field(default_factory=list)  # prospects (P-...) merged into an imported customer
    prospects_to_review: list[str] = field(default_factory=list)  # prospects linked to one for a person to decide


@dataclass(frozen=True)
class _Record:
    line: int
    row: Row | None
    error: str | None = None


def _key(name: str) -> str:
    return "_".join(name.strip().lower().replace("-", " ").split())


def _is_jsonl(path: Path, fh: BinaryIO) -> bool:
    head = fh.read(_SNIFF_BYTES)
    fh.seek(0)
    first = head.removeprefix(codecs.BOM_UTF8).lstrip()[:1]
    if first == b"[":
        raise InvalidInput(f"{path.name} holds a JSON array; write one JSON object per line (JSON Lines)")
    if path.suffix.lower() in JSONL_SUFFIXES:
        return True
    return path.suffix.lower() != ".csv" and first == b"{"


def _lines(fh: BinaryIO, bad: set[int]) -> Iterator[str]:
    """Decoded physical lines; lines that are not UTF-8 are decoded with replacements and noted."""
    for number, raw in enumerate(fh, start=1):
        data = raw.removeprefix(codecs.BOM_UTF8) if number == 1 else raw
        try:
            yield data.decode("utf-8")
        except UnicodeDecodeError:
            bad.add(number)
            yield data.decode("utf-8", errors="replace")


_NOT_UTF8 = "the line is not valid UTF-8; save the file as UTF-8 and import it again"


def _csv_records(path: Path, fh: BinaryIO, required: tuple[str, ...]) -> Iterator[_Record]:
    bad: set[int] = set()
    reader = csv.reader(_lines(fh, bad))
    header: list[str] | None = None
    last = 0
    for fields in reader:
        start, last = last + 1, reader.line_num
        if not any(f.strip() for f in fields):
            continue
        if header is None:
            header = [_key(f) for f in fields]
            missing = [c for c in required if c not in header]
            if missing:
                raise InvalidInput(
                    f"{path.name}: the header (line {start}) has no column {', '.join(missing)}; "
                    f"it needs a header row naming the columns, e.g. {','.join(required)}"
                )
            continue
        if bad.intersection(range(start, last + 1)):
            yield _Record(start, None, _NOT_UTF8)
        elif len(fields) > len(header):
            yield _Record(start, None, f"the row has {len(fields)} fields but the header names {len(header)}")
        else:
            yield _Record(start, {name: text_or_none(value) for name, value in zip(header, fields, strict=False)})
    if header is None:
        raise InvalidInput(f"{path.name} is empty; it needs a header row and data rows")


def _jsonl_value(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return text_or_none(str(value))
    raise InvalidInput(f"value {json.dumps(value)[:60]} must be text or a number")


def _jsonl_records(fh: BinaryIO) -> Iterator[_Record]:
    bad: set[int] = set()
    for number, line in enumerate(_lines(fh, bad), start=1):
        if not line.strip():
            continue
        if number in bad:
            yield _Record(number, None, _NOT_UTF8)
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            yield _Record(number, None, f"invalid JSON: {e.msg} at column {e.colno}")
            continue
        if not isinstance(obj, dict):
            yield _Record(number, None, "expected one JSON object per line, like {\"ref\": \"...\", ...}")
            continue
        try:
            yield _Record(number, {_key(str(k)): _jsonl_value(v) for k, v in obj.items()})
        except InvalidInput as e:
            yield _Record(number, None, str(e))


def _import(
    session: Session, path: Path, required: tuple[str, ...], write: Callable[[Session, Row, ImportReport], bool]
) -> ImportReport:
    report = ImportReport()
    try:
        fh = path.open("rb")
    except OSError as e:
        raise InvalidInput(f"cannot read {path}: {e.strerror}; check the path") from e
    with fh:
        records = _jsonl_records(fh) if _is_jsonl(path, fh) else _csv_records(path, fh, required)
        for record in records:
            if record.row is None:
                report.errors.append(RowError(record.line, record.error or "unreadable row"))
                continue
            try:
                with session.begin_nested():
                    created = write(session, record.row, report)
            except CaseStoreError as e:
                report.errors.append(RowError(record.line, str(e)))
                continue
            except (IntegrityError, DataError) as e:
                report.errors.append(RowError(record.line, f"the database refused the row: {e.orig}"))
                continue
            if created:
                report.created += 1
            else:
                report.updated += 1
    log.info("imported %s: %d created, %d updated, %d errors", path.name, report.created, report.updated,
             len(report.errors))
    return report


def _write_customer(session: Session, row: Row, report: ImportReport, *, reconcile: bool = True,
                    phone_region: str = "GB") -> bool:
    cid = (row.get("customer_id") or "").strip()
    before = session.scalar(select(Customer.name).where(Customer.customer_id == cid)) if cid else None
    customer, created = upsert_customer(
        session,
        customer_id=row.get("customer_id") or "",
        name=row.get("name") or "",
        email=row.get("email"),
        phone=row.get("phone"),
        address=row.get("address"),
        postcode=row.get("postcode"),
        account_number=row.get("account_number"),
        actor="import",
    )
    if before is not None and customer.name != before:
        report.renamed_customers.append(customer.customer_id)
    if not reconcile:
        return created
    session.flush()
    done = reconcile_prospects(session, customer=customer, actor="import", phone_region=phone_region)
    report.prospects_merged.extend(done.merged)
    report.prospects_to_review.extend(done.to_review)
    report.visibility_changed.extend(done.moved_cases)  # their indexed documents name the prospect
    return created


def _visibility(session: Session, ref: str) -> tuple[Any, ...] | None:
    row = session.execute(select(Case.team, Case.status, Case.restricted, Case.customer_id)
                          .where(Case.ref == ref.strip())).first()
    return None if row is None else tuple(row)


CaseHook = Callable[[Session, Case, str | None], None]  # (session, case, stage column or None)


def _write_case(session: Session, row: Row, report: ImportReport, on_case: CaseHook | None = None) -> bool:
    opened = row.get("opened_at")
    before = _visibility(session, row.get("ref") or "")
    case, created = upsert_case(
        session,
        ref=row.get("ref") or "",
        customer_id=row.get("customer_id"),
        case_type=row.get("case_type") or "",
        status=row.get("status") or "open",
        opened_at=parse_datetime(opened) if opened else None,
        subject=row.get("subject") or "",
        team=row.get("team"),
        actor="import",
    )
    if on_case is not None:
        on_case(session, case, row.get("stage"))
    if before is not None:
        session.flush()
        if _visibility(session, case.ref) != before:
            report.visibility_changed.append(case.ref)
    return created


def import_customers(session: Session, path: Path, *, phone_region: str = "GB") -> ImportReport:
    """Upsert customers by ``customer_id``; one summary audit event 'customer.imported'.
    ``phone_region``: where numbers written without +country are (prospects matched by phone)."""
    # no live prospect when the import starts: no row needs the look-up (one written meanwhile by
    # the pipeline is found by the next import, or merged by a person)
    reconcile = prospects.any_live(session)
    report = _import(session, path, ("customer_id", "name"),
                     lambda s, row, rep: _write_customer(s, row, rep, reconcile=reconcile,
                                                         phone_region=phone_region))
    audit.record(
        session, actor="import", action="customer.imported", reason=f"imported from {path.name}",
        details={"file": str(path), "created": report.created, "updated": report.updated,
                 "errors": len(report.errors), "prospects_merged": report.prospects_merged,
                 "prospects_to_review": report.prospects_to_review},
    )
    return report


def import_cases(session: Session, path: Path, *, on_case: CaseHook | None = None) -> ImportReport:
    """Upsert cases by ``ref`` (kept as given); audit 'case.imported' per new case.  ``on_case``
    runs for each case written, inside its row's SAVEPOINT (an error there rejects the row)."""
    return _import(session, path, ("ref", "case_type"),
                   lambda s, row, report: _write_case(s, row, report, on_case))
