"""SQLite writers of one process take turns on a mutex instead of sleeping in the busy handler."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import event, text

from casestore import db
from casestore.db import make_engine


def test_a_second_writer_waits_for_its_turn_not_in_the_busy_handler(tmp_path: Path) -> None:
    path = tmp_path / "turns.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    impatient = make_engine(f"sqlite:///{path}")  # another engine on the same file, in this process
    # the busy handler alone would give up after 20 ms (set after the store's own pragmas)
    event.listen(impatient, "connect", lambda dbapi_conn, _: dbapi_conn.execute("PRAGMA busy_timeout = 20"))
    done: list[str] = []

    def second_writer() -> None:
        with impatient.begin() as c:
            c.execute(text("INSERT INTO t VALUES (2)"))
        done.append("second")

    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        thread = threading.Thread(target=second_writer)
        thread.start()
        time.sleep(0.3)  # far past the second writer's busy timeout: it must be waiting on the turn
        assert done == []
    thread.join(30)
    assert done == ["second"]
    with engine.connect() as conn:
        assert [r[0] for r in conn.execute(text("SELECT n FROM t ORDER BY n"))] == [1, 2]
    engine.dispose()
    impatient.dispose()


def test_readers_take_no_turn_and_writers_give_theirs_back(tmp_path: Path) -> None:
    path = tmp_path / "turns.db"
    engine = make_engine(f"sqlite:///{path}")
    turn = db._WriterTurn.of(str(path))
    with engine.begin():
        assert turn.locked()
    assert not turn.locked()
    with engine.execution_options(sqlite_begin="DEFERRED").begin():
        assert not turn.locked()
    try:
        with engine.begin():
            raise ValueError("rolled back")
    except ValueError:
        pass
    assert not turn.locked()
    engine.dispose()
