"""Many rows into one table through the DB-API's ``executemany``, for bulk loads.

SQLAlchemy's ORM and Core inserts spend tens of microseconds of Python per row (parameter
construction and type processing per column); at a million rows that is most of an import.
``BulkInsert`` compiles the INSERT once for the connection's dialect (placeholders, casts) and
hands rows that are already in the driver's form to the driver's ``executemany``.  Values go
through the column types' own bind processors (``processor``), so what is stored is what the
ORM would have stored (UTC timestamps, JSON text on SQLite, ``Jsonb`` on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Table, insert

Processor = Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


class BulkInsert:
    """``INSERT INTO table (columns) VALUES (...)`` for rows given as tuples in ``columns`` order."""

    def __init__(self, conn: Connection, table: Table, columns: Sequence[str]) -> None:
        dialect = conn.dialect
        self.table = table
        self.columns = tuple(columns)
        compiled = insert(table).compile(dialect=dialect, column_keys=list(self.columns), for_executemany=True)
        self.sql = compiled.string
        self._positional = bool(compiled.positional)
        if self._positional:
            order = list(compiled.positiontup or ())
            if sorted(order) != sorted(self.columns):
                raise ValueError(f"INSERT INTO {table.name} binds {order}, not {list(self.columns)}")
            self._order = [self.columns.index(name) for name in order]
            self._reorder = self._order != list(range(len(self.columns)))
        self._processors: dict[str, Processor | None] = {
            name: table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in self.columns
        }

    def processor(self, column: str) -> Processor:
        """The column type's bind processor for this dialect (identity if it has none)."""
        return self._processors[column] or _same

    def value(self, column: str, value: Any) -> Any:
        """One value in the driver's form (for values shared by every row of a batch)."""
        proc = self._processors[column]
        return value if proc is None or value is None else proc(value)

    def execute(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert ``rows`` (values already converted with ``processor``/``value``) in one executemany."""
        if not rows:
            return
        if self._positional:
            params: list[Any] = (
                [tuple(row[i] for i in self._order) for row in rows] if self._reorder else list(rows))
        else:
            params = [dict(zip(self.columns, row, strict=True)) for row in rows]
        conn.exec_driver_sql(self.sql, params)
