"""Alembic environment for the case store.

At runtime ``casestore.db.upgrade(engine)`` passes an open connection in
``config.attributes["connection"]``.  Developers may also run the alembic command with the
shipped ini: ``alembic -c casestore/migrations/alembic.ini -x url=sqlite:///casework.db upgrade head``
(or set ``CASEWORK_DATABASE_URL``).
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy.engine import Connection

from casestore.db import make_engine
from casestore.models import Base
from casestore.search import models as _search_models  # noqa: F401 - so does the search outbox
from casestore.work import models as _work_models  # noqa: F401 - the work tables belong to the same history

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = (
        context.get_x_argument(as_dictionary=True).get("url")
        or os.environ.get("CASEWORK_DATABASE_URL")
        or config.get_main_option("sqlalchemy.url")
    )
    if not url:
        raise SystemExit("no database URL: pass -x url=... or set CASEWORK_DATABASE_URL")
    return url


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.begin() as conn:
            _configure(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
