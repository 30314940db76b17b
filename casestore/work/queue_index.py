"""Which team works which queue, with what lease: a small index built from the stored definitions.

Tasks carry only their queue's name; the queue's team, lease and the roles that may work it come
from the case types that define it (``case_type_versions``).  Building the index parses every
stored definition, so it is cached per database and rebuilt only when the table changes (one
``count(*), max(loaded_at)`` per call tells).  When two types define the same queue, the
definition loaded last wins and a warning says where they disagree.

Queue leases are wall time (``"30m"``, ``"1h 30m"``, ``"2h"``; units d, h, m, s), not working time.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from casestore.errors import InvalidInput
from casestore.work.actor import Actor
from casestore.work.definitions import CaseType
from casestore.work.models import CaseTypeVersion

log = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(minutes=30)
_UNITS = {"d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1), "s": timedelta(seconds=1)}
_TOKEN = re.compile(r"\s*(\d+)\s*([a-z])\s*")


def parse_lease(text: str) -> timedelta:
    """A lease length such as "30m", "1h 30m" or "2h" (wall time); InvalidInput if not understood."""
    lowered, pos, total, seen = text.lower(), 0, timedelta(0), set()
    while pos < len(lowered):
        match = _TOKEN.match(lowered, pos)
        if match is None or match.group(2) not in _UNITS or match.group(2) in seen:
            raise InvalidInput(f"lease {text!r} is not understood: use whole numbers with units d, h, m, s, "
                               'each once, e.g. "30m" or "1h 30m"')
        seen.add(match.group(2))
        total += int(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if total <= timedelta(0):
        raise InvalidInput(f"lease {text!r} must be longer than zero, e.g. \"30m\"")
    return total


@dataclass(frozen=True)
class QueueInfo:
    name: str
    team: str
    title: str
    lease: timedelta
    roles: frozenset[str]  # the roles that may ``work_task`` in the case types defining this queue


@dataclass(frozen=True)
class QueueIndex:
    queues: dict[str, QueueInfo]

    def get(self, name: str) -> QueueInfo | None:
        return self.queues.get(name)

    def workable_by(self, actor: Actor) -> list[QueueInfo]:
        """The queues get-next looks at for ``actor``: a team of theirs works it and their role may work tasks."""
        if actor.disabled:
            return []
        teams = set(actor.teams)
        return [q for name, q in sorted(self.queues.items()) if q.team in teams and actor.role in q.roles]

    def lease_of(self, name: str) -> timedelta:
        info = self.queues.get(name)
        return info.lease if info is not None else DEFAULT_LEASE


def build_index(definitions: Iterable[CaseType]) -> QueueIndex:
    """The index of these definitions, later ones winning where two define the same queue."""
    queues: dict[str, QueueInfo] = {}
    for case_type in definitions:
        roles = frozenset(role for role, actions in case_type.roles.items() if "work_task" in actions)
        for queue in case_type.queues:
            try:
                lease = parse_lease(queue.lease)
            except InvalidInput as exc:
                log.warning("case type %s v%d: queue %s: %s; using %s", case_type.name, case_type.version,
                            queue.name, exc, DEFAULT_LEASE)
                lease = DEFAULT_LEASE
            known = queues.get(queue.name)
            if known is not None and known.team != queue.team:
                log.warning("queue %s is worked by team %s in one case type and %s in %s v%d; using %s",
                            queue.name, known.team, queue.team, case_type.name, case_type.version, queue.team)
            merged_roles = roles | known.roles if known is not None and known.team == queue.team else roles
            queues[queue.name] = QueueInfo(name=queue.name, team=queue.team, title=queue.title or queue.name,
                                           lease=lease, roles=merged_roles)
    return QueueIndex(queues)


_cache: dict[str, tuple[tuple[int, datetime | None], QueueIndex]] = {}
_cache_lock = threading.Lock()
_keys: WeakKeyDictionary[Engine, str] = WeakKeyDictionary()  # rendering the URL cost 2 % of a get-next


def _key_of(engine: Engine) -> str:
    """The cache's key for ``engine``'s database: its URL (engines on one database share the index)."""
    key = _keys.get(engine)
    if key is None:
        key = _keys[engine] = engine.url.render_as_string(hide_password=True)
    return key


Stamp = tuple[int, datetime | None]


def index_stamp(session: Session) -> Stamp:
    """What tells whether the stored definitions changed: their count and latest load time."""
    count, latest = session.execute(
        select(func.count(), func.max(CaseTypeVersion.loaded_at)).select_from(CaseTypeVersion)
    ).one()
    return int(count), latest


def cached_queue_index(session: Session) -> tuple[Stamp, QueueIndex] | None:
    """The index last built for the database ``session`` talks to, with the stamp it was built
    at, without reading the store (the caller checks the stamp, as ``casework_get_next`` does)."""
    return cached_index_of(session.get_bind().engine)


def cached_index_of(engine: Engine) -> tuple[Stamp, QueueIndex] | None:
    """``cached_queue_index`` for the database ``engine`` talks to."""
    key = _key_of(engine)
    with _cache_lock:
        return _cache.get(key)


def queue_index(session: Session, stamp: Stamp | None = None) -> QueueIndex:
    """The index for the database ``session`` talks to (cached until ``case_type_versions`` changes).
    ``stamp`` (from ``index_stamp`` or read together with something else) spares a query."""
    stamp = stamp if stamp is not None else index_stamp(session)
    key = _key_of(session.get_bind().engine)
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    rows = session.execute(
        select(CaseTypeVersion.definition).order_by(CaseTypeVersion.loaded_at, CaseTypeVersion.name,
                                                    CaseTypeVersion.version)
    ).scalars()
    definitions = []
    for definition in rows:
        try:
            definitions.append(CaseType.model_validate(definition))
        except ValueError as exc:  # a stored definition this code cannot read: its queues are skipped
            log.error("a stored case-type definition does not validate, its queues are skipped: %s", exc)
    index = build_index(definitions)
    with _cache_lock:
        _cache[key] = (stamp, index)
    log.debug("queue index rebuilt: %d queues from %d definitions", len(index.queues), stamp[0])
    return index
