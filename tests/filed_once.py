"""The "nothing lost, nothing done twice" check of the crash, outage and scale-out tests, in one place.

``assert_filed_once(engine, item_ids)`` reads the store (SQLite or PostgreSQL) and asserts that
each item was filed exactly once: one ``items`` row, one ``item.filed`` audit event, its
documents once each, and no ``item_failures`` row (nothing dead-lettered on its way).  With
``only=True`` the store holds nothing else: no item (and no filing event) outside ``item_ids``,
for tests that own their store.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, Engine, bindparam, text


def _per_item(conn: Connection, sql: str, ids: list[str]) -> dict[str, int]:
    rows = conn.execute(text(sql).bindparams(bindparam("ids", expanding=True)), {"ids": ids})
    return {str(item_id): int(n) for item_id, n in rows}


def assert_filed_once(engine: Engine, item_ids: Iterable[str], *, documents_per_item: int = 1,
                      only: bool = False) -> None:
    """Each of ``item_ids`` filed exactly once (see the module docstring)."""
    ids = sorted(set(item_ids))
    assert ids, "no items to check"
    with engine.connect() as conn:
        items = _per_item(conn, "SELECT item_id, count(*) FROM items WHERE item_id IN :ids GROUP BY item_id", ids)
        docs = _per_item(conn, "SELECT item_id, count(*) FROM documents WHERE item_id IN :ids GROUP BY item_id", ids)
        filed = _per_item(conn, "SELECT item_id, count(*) FROM audit_events WHERE action = 'item.filed' "
                                "AND item_id IN :ids GROUP BY item_id", ids)
        failed = _per_item(conn, "SELECT item_id, count(*) FROM item_failures WHERE item_id IN :ids "
                                 "GROUP BY item_id", ids)
        if only:
            all_items = int(conn.execute(text("SELECT count(*) FROM items")).scalar_one())
            all_filed = int(conn.execute(text("SELECT count(*) FROM audit_events WHERE action = 'item.filed'"))
                            .scalar_one())
            all_failed = int(conn.execute(text("SELECT count(*) FROM item_failures")).scalar_one())
    missing = [i for i in ids if i not in items]
    assert not missing, f"{len(missing)} of {len(ids)} items not filed, e.g. {missing[:3]}"
    assert items == dict.fromkeys(ids, 1), "an item row twice"
    assert filed == dict.fromkeys(ids, 1), {i: n for i, n in filed.items() if n != 1} or "an item.filed event missing"
    assert docs == dict.fromkeys(ids, documents_per_item), (
        f"documents per item not {documents_per_item} (filed twice or missing): "
        f"{ {i: docs.get(i, 0) for i in ids if docs.get(i, 0) != documents_per_item} }")
    assert failed == {}, f"dead-lettered on the way: {failed}"
    if only:
        assert (all_items, all_filed, all_failed) == (len(ids), len(ids), 0), (
            f"the store holds other items: {all_items} items, {all_filed} filing events, {all_failed} failures "
            f"for {len(ids)} items sent")
