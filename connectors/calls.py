"""Telephone call records: CSV, JSON or JSON Lines exports from a telephony system.

Each record becomes one ``call`` item: a JSON document ``{call_id, caller, callee, started_at,
duration_s, agent, notes, recording_url, record}`` (``record`` is the row as exported), with
``sender_phone``, ``agent``, ``started_at``, ``duration_s``, ``recording_url``, ``call_id`` and
``subject`` in its metadata. Columns are found by common names (``caller``/``from``/``ani``,
``start_time``/``calldate``, ``duration``/``billsec``, ``recording_url``/``recordingfile``, ...),
case-insensitively; ``columns`` in the settings names any others. The idempotency key is
``call:<call_id>``, or ``call:sha256(caller|start|duration)`` when the export has no id. A bad
row (no caller and no id, unreadable duration) is reported in ``.done/<file>.errors.txt`` and
counted as failed; the other rows flow.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.folder import FolderWatcher, Taken
from connectors.settings import CallSettings, WatchedFolder
from ingest.errors import BadInput
from ingest.intake import TRUSTED_BY

ALIASES: dict[str, tuple[str, ...]] = {
    "call_id": ("call_id", "callid", "id", "call_sid", "callsid", "uniqueid", "uuid", "call_uuid"),
    "caller": ("caller", "caller_number", "from", "from_number", "ani", "caller_id", "callerid", "src", "number"),
    "callee": ("callee", "to", "to_number", "called", "dnis", "dst"),
    "started_at": ("started_at", "start_time", "start", "time", "calldate", "call_date", "date", "timestamp",
                   "datetime"),
    "duration_s": ("duration_s", "duration", "duration_seconds", "billsec", "talk_time", "length"),
    "agent": ("agent", "agent_name", "agent_id", "user", "handled_by", "operator"),
    "notes": ("notes", "note", "comment", "comments", "summary", "wrapup", "description"),
    "recording_url": ("recording_url", "recording", "recording_link", "recordingurl", "recordingfile"),
}
_HMS = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{2})$")


def parse_records(data: bytes, ext: str) -> Iterator[dict[str, Any]]:
    text = data.decode("utf-8-sig", errors="replace")
    if ext in (".json",):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadInput(f"call records are not valid JSON: {exc}") from None
        if isinstance(doc, dict):
            doc = next((v for v in doc.values() if isinstance(v, list)), [doc])
        if not isinstance(doc, list):
            raise BadInput("call records JSON must be a list of objects (or an object holding one)")
        yield from ({"_row": i, **r} if isinstance(r, dict) else {"_row": i, "_bad": r} for i, r in enumerate(doc, 1))
    elif ext in (".jsonl", ".ndjson"):
        for i, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    obj = {"_bad": f"not JSON ({exc})"}
                yield {"_row": i, **obj} if isinstance(obj, dict) else {"_row": i, "_bad": obj}
    else:
        sample = text[:8192]
        try:
            dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t|")
        except csv.Error:
            dialect = csv.excel
        for i, row in enumerate(csv.DictReader(io.StringIO(text), dialect=dialect), 2):
            yield {"_row": i, **{k: v for k, v in row.items() if k is not None}}


def duration_seconds(value: Any) -> int | None:
    if value in (None, ""):
        return None
    text = str(value).strip()
    m = _HMS.match(text)
    if m:
        return int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + int(m.group(3))
    return int(float(text))  # ValueError for anything else


def normalise(record: Mapping[str, Any], columns: Mapping[str, str]) -> dict[str, Any]:
    lower = {str(k).strip().lower(): v for k, v in record.items() if not str(k).startswith("_")}
    out: dict[str, Any] = {}
    for field, names in ALIASES.items():
        names = (columns[field].lower(), *names) if field in columns else names
        out[field] = next((str(lower[n]).strip() for n in names if lower.get(n) not in (None, "")), "")
    if "_bad" in record:
        raise ValueError(f"not a record: {record['_bad']!r}")
    if not out["caller"] and not out["call_id"]:
        raise ValueError("no caller number and no call id")
    try:
        out["duration_s"] = duration_seconds(out["duration_s"])
    except ValueError:
        raise ValueError(f"duration {out['duration_s']!r} is not seconds or [h:]mm:ss") from None
    out["record"] = {k: v for k, v in record.items() if not str(k).startswith("_")}
    return out


def start_time(value: str) -> datetime | None:
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


class CallRecordsWatcher(FolderWatcher):
    kind = "calls"

    def __init__(self, settings: CallSettings, **kwargs: Any) -> None:
        cfg = WatchedFolder(name="calls", path=settings.path, channel="call", team=settings.team,
                            extensions=[".csv", ".json", ".jsonl", ".ndjson"], poll_s=settings.poll_s)
        self.columns = settings.columns
        super().__init__(Path(settings.path), config=cfg, **kwargs)

    def take(self, path: Path, rel: Path, data: bytes) -> Taken:
        taken = Taken()
        base = self.metadata_for(rel)
        for record in parse_records(data, path.suffix.lower()):
            row = record.get("_row")
            try:
                call = normalise(record, self.columns)
            except ValueError as exc:
                message = f"row {row}: {exc}"
                self.emitter.failed(f"{rel} {message}", str(exc))
                taken.errors.append(message)
                continue
            ident = call["call_id"] or hashlib.sha256(
                f"{call['caller']}|{call['started_at']}|{call['duration_s']}".encode()).hexdigest()
            meta = {**base, TRUSTED_BY: f"calls:{self.name}", "call_id": call["call_id"],
                    "sender_phone": call["caller"], "agent": call["agent"],
                    "started_at": call["started_at"], "recording_url": call["recording_url"],
                    "duration_s": "" if call["duration_s"] is None else str(call["duration_s"]),
                    "subject": f"Call from {call['caller'] or 'unknown number'}"}
            body = json.dumps(call, ensure_ascii=False, indent=2, default=str).encode()
            taken.emitted.append(self.emitter.emit(
                body, channel="call", filename=f"call-{ident[:40]}.json", source=f"calls:{rel}#row{row}",
                source_id=ident, content_type="application/json", metadata={k: v for k, v in meta.items() if v},
                source_time=start_time(call["started_at"]), defer=True))
        if not taken.emitted and taken.errors:
            raise BadInput(f"no usable call record in {rel}: " + "; ".join(taken.errors[:5]))
        return taken
