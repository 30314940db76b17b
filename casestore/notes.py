"""Notes agents add to a case."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from casestore import audit
from casestore.cases import get_case
from casestore.errors import InvalidInput
from casestore.models import Note, utcnow
from casestore.validation import required

log = logging.getLogger(__name__)

MAX_NOTE_CHARS = 100_000


def add_note(session: Session, *, ref: str, author: str, body: str) -> Note:
    """Add a note to the case ``ref`` (audit 'note.added'); NotFound for an unknown case."""
    clean_author = required("author", author, max_len=100)
    text = (body or "").strip()
    if not text:
        raise InvalidInput("a note needs a body; write something")
    if len(text) > MAX_NOTE_CHARS:
        raise InvalidInput(f"the note is {len(text)} characters long; the limit is {MAX_NOTE_CHARS}")
    case = get_case(session, ref=ref)
    now = utcnow()
    note = Note(case_id=case.id, author=clean_author, body=text, created_at=now)
    session.add(note)
    case.updated_at = now
    session.flush()
    audit.record(session, actor=clean_author, action="note.added", case=case, details={"note_id": note.id})
    log.debug("note %s added to %s by %s", note.id, case.ref, clean_author)
    return note
