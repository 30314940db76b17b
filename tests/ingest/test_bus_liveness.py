"""Issue 15.2 and 15.3 on the embedded bus: a member busy with a long batch keeps its partitions
(its heartbeat does not depend on the handler), and a member whose process was killed is dropped
at once when its group is joined again on the same host, so a restart takes its work back in
seconds instead of waiting out the session timeout."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from ingest.bus.sqlite_log import SqliteBus
from tests.ingest.test_bus_contract import (
    PARTITIONS,
    join,
    poll_for,
    poll_until,
    publish_all,
    values,
    wait_for_assignment,
)


def test_a_long_batch_keeps_its_partitions(tmp_path: Path) -> None:
    bus = SqliteBus(tmp_path / "bus.db", partitions=PARTITIONS, session_timeout=0.5)
    try:
        busy, other = join(bus, ["t"], "g"), join(bus, ["t"], "g")
        wait_for_assignment([busy, other], "t")
        publish_all(bus, "t", [(f"k{n}", f"v{n}") for n in range(40)])
        mine = poll_for(busy, 0.5)
        assert mine
        # busy now handles its batch for four session timeouts without polling or committing;
        # meanwhile the other member polls on and must not be handed busy's records
        theirs = poll_for(other, 2.0)
        assert not set(values(mine)) & set(values(theirs))
        assert sorted(values(mine) + values(theirs)) == sorted(f"v{n}" for n in range(40))
        busy.commit(mine)
        other.commit(theirs)
        assert bus.committed("g", "t") == bus.end_offsets("t")
        other.close()
        busy.close()
    finally:
        bus.close()


MEMBER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from ingest.bus.sqlite_log import SqliteBus
    bus = SqliteBus(Path(sys.argv[1]), partitions=4, session_timeout=300)
    consumer = bus.consumer(["t"], group="g")
    consumer.poll(timeout=0.5)
    print("joined", flush=True)
    time.sleep(600)
""")


def test_a_killed_members_partitions_are_taken_back_at_once_on_restart(tmp_path: Path) -> None:
    path = tmp_path / "bus.db"
    bus = SqliteBus(path, partitions=PARTITIONS, session_timeout=300)
    try:
        publish_all(bus, "t", [(f"k{n}", f"v{n}") for n in range(40)])
        proc = subprocess.Popen([sys.executable, "-c", MEMBER, str(path)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "joined"
        proc.kill()  # kill -9: it never leaves the group
        proc.wait(10)
        restarted = join(bus, ["t"], "g")
        got = poll_until(restarted, 40, timeout=10)  # not after the 300 s session timeout
        assert sorted(values(got)) == sorted(f"v{n}" for n in range(40))
        restarted.close()
    finally:
        bus.close()
