"""IMAP against a real dovecot: IDLE and polling, UID state across restarts, actions, reconnect."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient  # type: ignore[import-untyped,unused-ignore]

from connectors.imap import ImapFolderWatcher
from connectors.metrics import Registry
from connectors.settings import ImapAccount
from connectors.state import StateStore
from ingest.blobs import FileBlobStore
from ingest.bus.sqlite_log import SqliteBus
from tests.connectors.conftest import free_port, raw_items, wait_until
from tests.connectors.dovecot import PASSWORD, USER, Dovecot, start_dovecot


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    server = start_dovecot(free_port())
    yield server
    server.stop()


def mail(n: int, message_id: bool = True) -> bytes:
    mid = f"Message-ID: <m{n}@example.org>\r\n" if message_id else ""
    return (f"From: jane@example.org\r\nTo: {USER}\r\nSubject: letter {n}\r\n{mid}"
            f"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\nHello number {n}\r\n").encode()


def imap(server: Dovecot) -> IMAPClient:
    c = IMAPClient("127.0.0.1", port=server.port, ssl=False)
    c.login(USER, PASSWORD)
    return c


def account(server: Dovecot, folder: str, **kw: object) -> ImapAccount:
    return ImapAccount.model_validate({"name": "cases", "host": "127.0.0.1", "port": server.port, "ssl": False,
                                       "username": USER, "password": PASSWORD, "folders": [folder],
                                       "idle_timeout_s": 5, "poll_s": 0.2, "timeout_s": 5, **kw})


def start(w: ImapFolderWatcher) -> threading.Thread:
    t = threading.Thread(target=w.run, daemon=True)
    t.start()
    return t


def test_idle_delivers_new_mail_once_and_restart_does_not_refetch(
        dovecot: Dovecot, tmp_path: Path, bus: SqliteBus, blobs: FileBlobStore, registry: Registry) -> None:
    c = imap(dovecot)
    c.create_folder("Idle")
    c.append("Idle", mail(1))
    c.append("Idle", mail(2, message_id=False))
    state_path = tmp_path / "connectors" / "imap.db"
    stop = threading.Event()
    w = ImapFolderWatcher(account(dovecot, "Idle", after="seen"), "Idle", bus=bus, blobs=blobs,
                          state=StateStore(state_path), stop=stop, registry=registry)
    t = start(w)
    try:
        wait_until(lambda: w.stats.received == 2, what="the two waiting messages")
        assert w.mode == "idle"
        c.append("Idle", mail(3))  # arrives while the watcher is in IDLE
        wait_until(lambda: w.stats.received == 3, what="mail appended during IDLE")
    finally:
        stop.set()
        t.join(10)
    items = raw_items(bus)
    keys = sorted(i.idempotency_key for i in items)
    c.select_folder("Idle")
    uidvalidity = c.folder_status("Idle", ["UIDVALIDITY"])[b"UIDVALIDITY"]
    assert keys == ["email:msgid:m1@example.org", "email:msgid:m3@example.org",
                    f"email:uid:cases/Idle/{uidvalidity}/2"]
    assert all(i.channel == "email" and i.metadata["mailbox"] == "cases/Idle" for i in items)
    assert all(b"\\Seen" in flags for flags in c.get_flags(c.search(["ALL"])).values())

    # a restart with the same state file fetches nothing again, even with the messages marked unread
    c.remove_flags(c.search(["ALL"]), [b"\\Seen"])
    stop2 = threading.Event()
    w2 = ImapFolderWatcher(account(dovecot, "Idle", after="seen"), "Idle", bus=bus, blobs=blobs,
                           state=StateStore(state_path), stop=stop2, registry=Registry())
    t2 = start(w2)
    try:
        c.append("Idle", mail(4))
        wait_until(lambda: w2.stats.received == 1, what="only the new message after a restart")
    finally:
        stop2.set()
        t2.join(10)
    assert len(raw_items(bus)) == 4 and w2.stats.duplicates == 0
    c.logout()


def test_polling_moves_processed_mail_and_same_message_id_is_not_republished(
        dovecot: Dovecot, tmp_path: Path, bus: SqliteBus, blobs: FileBlobStore, registry: Registry) -> None:
    c = imap(dovecot)
    c.create_folder("Poll")
    c.append("Poll", mail(10))
    c.append("Poll", mail(10))  # the same message twice (a re-send): one item
    stop = threading.Event()
    w = ImapFolderWatcher(account(dovecot, "Poll", idle=False, after="move", move_to="Done"), "Poll", bus=bus,
                          blobs=blobs, state=StateStore(tmp_path / "imap.db"), stop=stop, registry=registry)
    t = start(w)
    try:
        wait_until(lambda: w.stats.received + w.stats.duplicates == 2, what="both copies")
        assert w.mode == "poll"
        wait_until(lambda: c.folder_status("Done", ["MESSAGES"])[b"MESSAGES"] == 2, what="moved to Done")
    finally:
        stop.set()
        t.join(10)
    assert c.folder_status("Poll", ["MESSAGES"])[b"MESSAGES"] == 0
    [item] = raw_items(bus)
    assert item.idempotency_key == "email:msgid:m10@example.org" and w.stats.duplicates == 1
    c.logout()


def test_reconnects_with_backoff_when_the_server_is_not_there_yet(
        tmp_path: Path, bus: SqliteBus, blobs: FileBlobStore, registry: Registry) -> None:
    port = free_port()
    acct = ImapAccount(name="late", host="127.0.0.1", port=port, ssl=False, username=USER, password=PASSWORD,
                       folders=["INBOX"], after="flag", timeout_s=2)
    stop = threading.Event()
    w = ImapFolderWatcher(acct, "INBOX", bus=bus, blobs=blobs, state=StateStore(tmp_path / "imap.db"), stop=stop,
                          registry=registry, backoff_initial_s=0.1, backoff_max_s=0.4)
    t = start(w)
    server = None
    try:
        wait_until(lambda: w.stats.state == "reconnecting", what="a failed first connection")
        server = start_dovecot(port)
        c = imap(server)
        c.append("INBOX", mail(20))
        wait_until(lambda: w.stats.received == 1, timeout=30, what="the message once the server is up")
        c.select_folder("INBOX")
        wait_until(lambda: b"\\Flagged" in next(iter(c.get_flags(c.search(["ALL"])).values())), what="flagged")
        assert w.stats.state == "running"
        c.logout()
    finally:
        stop.set()
        t.join(10)
        if server is not None:
            server.stop()
