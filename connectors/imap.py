"""IMAP: every new message in the watched folders of each account becomes an ``email`` item.

One watcher (thread, connection) per account and folder. New mail is noticed with IDLE where
the server offers it (and ``idle`` is on), re-issued every ``idle_timeout_s``; otherwise the
folder is polled every ``poll_s``. Messages are fetched with ``BODY.PEEK[]`` (fetching does not
mark them read) in UID order, 20 at a time; once a batch is published (one flush), the watcher
records its last UID under the folder's UIDVALIDITY in ``DATA_DIR/connectors/imap.db``, then
applies the action (``seen``, ``flag``, ``move``, ``delete`` or ``none``). A restart resumes after the last UID, so
nothing is fetched twice; a changed UIDVALIDITY starts the folder again from the beginning, and
the Message-ID keys already published keep those messages from being published twice.

The idempotency key is the Message-ID (``email:msgid:...``), the same key SMTP and
``casework ingest`` give that message; a message without one is keyed by
``email:uid:ACCOUNT/FOLDER/UIDVALIDITY/UID``. Connection errors reconnect with exponential
backoff (``backoff_initial_s`` doubling to ``backoff_max_s``).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from datetime import datetime
from typing import Any

from imapclient import IMAPClient  # type: ignore[import-untyped,unused-ignore]

from connectors.emit import Emitter
from connectors.metrics import Registry
from connectors.settings import ImapAccount, ImapSettings
from connectors.state import StateStore
from ingest.blobs import BlobStore
from ingest.bus.port import Bus
from ingest.intake import email_message_id

log = logging.getLogger(__name__)

FETCH_BATCH = 20


class ImapFolderWatcher:
    kind = "imap"

    def __init__(self, account: ImapAccount, folder: str, *, bus: Bus, blobs: BlobStore, state: StateStore,
                 stop: threading.Event | None = None, registry: Registry | None = None,
                 backoff_initial_s: float = 1.0, backoff_max_s: float = 300.0) -> None:
        self.account = account
        self.folder = folder
        self.state = state
        self.stop = stop or threading.Event()
        self.name = f"imap:{account.name}:{folder}"
        self.emitter = Emitter(self.name, bus=bus, blobs=blobs, state=state, registry=registry, kind=self.kind)
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.mode = "poll"
        self._client: Any = None

    @property
    def stats(self) -> Any:
        return self.emitter.stats

    # -- connection and loop ----------------------------------------------------------------
    def run(self) -> None:
        delay = self.backoff_initial_s
        while not self.stop.is_set():
            try:
                client = self._connect()
            except Exception as exc:
                self.stats.set_state("reconnecting", f"{type(exc).__name__}: {exc}")
                log.warning("%s: cannot connect to %s:%d (%s); retrying in %.1fs", self.name, self.account.host,
                            self.account.port, exc, delay)
                self.stop.wait(delay)
                delay = min(delay * 2, self.backoff_max_s)
                continue
            delay = self.backoff_initial_s
            try:
                self.stats.set_state("running")
                self._watch(client)
            except Exception as exc:
                self.stats.set_state("reconnecting", f"{type(exc).__name__}: {exc}")
                log.warning("%s: connection lost (%s: %s); reconnecting in %.1fs", self.name, type(exc).__name__,
                            exc, delay)
                self.stop.wait(delay)
                delay = min(delay * 2, self.backoff_max_s)
            finally:
                self._close(client)
        self.stats.set_state("stopped")

    def _connect(self) -> Any:
        a = self.account
        context = ssl.create_default_context() if (a.ssl or a.starttls) else None
        client = IMAPClient(a.host, port=a.port, ssl=a.ssl, ssl_context=context, timeout=a.timeout_s)
        client.normalise_times = False
        if a.starttls:
            client.starttls(context)
        client.login(a.username, a.password)
        if a.after == "move" and not client.folder_exists(a.move_to):
            client.create_folder(a.move_to)
        self._client = client
        log.info("%s: connected to %s:%d as %s", self.name, a.host, a.port, a.username)
        return client

    @staticmethod
    def _close(client: Any) -> None:
        try:
            client.logout()
        except Exception:
            try:
                client.shutdown()
            except Exception:
                log.debug("closing an IMAP connection that was already gone", exc_info=True)

    def _watch(self, client: Any) -> None:
        info = client.select_folder(self.folder)
        uidvalidity = int(info[b"UIDVALIDITY"])
        idle = self.account.idle and b"IDLE" in client.capabilities()
        self.mode = "idle" if idle else "poll"
        log.info("%s: watching with %s", self.name, self.mode.upper())
        self.process_new(client, uidvalidity)
        while not self.stop.is_set():
            if idle:
                self._idle_once(client)
            else:
                self.stop.wait(self.account.poll_s)
                client.noop()
            if not self.stop.is_set():
                self.process_new(client, uidvalidity)

    def _idle_once(self, client: Any) -> None:
        """Wait in IDLE until the server reports something, ``idle_timeout_s`` passes or we stop."""
        client.idle()
        started = time.monotonic()
        try:
            if _arrived_before_idle(client):
                return
            while not self.stop.is_set() and time.monotonic() - started < self.account.idle_timeout_s:
                if client.idle_check(timeout=1.0):
                    break
        finally:
            client.idle_done()

    # -- messages ---------------------------------------------------------------------------
    def _state_key(self, uidvalidity: int) -> str:
        return f"last_uid:{self.account.name}/{self.folder}/{uidvalidity}"

    def process_new(self, client: Any, uidvalidity: int) -> int:
        """Publish every message after the last recorded UID; returns how many were published."""
        key = self._state_key(uidvalidity)
        last = int(self.state.get(key, "0") or 0)
        uids = sorted(u for u in client.search(["UID", f"{last + 1}:*"]) if u > last)
        done = 0
        for start in range(0, len(uids), FETCH_BATCH):
            batch = uids[start:start + FETCH_BATCH]
            fetched = client.fetch(batch, ["BODY.PEEK[]", "INTERNALDATE"])
            got = [uid for uid in batch if fetched.get(uid, {}).get(b"BODY[]") is not None]
            for uid in batch:
                if uid not in got:
                    log.warning("%s: UID %d vanished before it could be fetched", self.name, uid)
            for uid in got:
                self._publish(uid, uidvalidity, bytes(fetched[uid][b"BODY[]"]), fetched[uid].get(b"INTERNALDATE"))
            self.emitter.commit()  # one flush per fetched batch; then the UIDs, then the actions
            self.state.put(key, str(batch[-1]))
            for uid in got:
                self._after(client, uid)
            done += len(got)
        return done

    def _publish(self, uid: int, uidvalidity: int, data: bytes, internal: datetime | None) -> None:
        where = f"{self.account.name}/{self.folder}/{uidvalidity}/{uid}"
        meta = {"mailbox": f"{self.account.name}/{self.folder}", "imap_uid": str(uid),
                "imap_uidvalidity": str(uidvalidity)}
        if self.account.team:
            meta["team"] = self.account.team
        source_time = internal if internal is not None and internal.tzinfo is not None else None
        try:
            self.emitter.emit(data, channel="email", filename=f"imap-{uidvalidity}-{uid}.eml",
                              source=f"imap:{where}", source_id=None if email_message_id(data) else f"uid:{where}",
                              content_type="message/rfc822", metadata=meta, source_time=source_time, defer=True)
        except Exception as exc:
            if getattr(exc, "retryable", True):
                self.emitter.rollback_to()
                raise  # bus or store not answering: reconnect later and fetch it again
            self.emitter.failed(f"message {where}", exc)

    def _after(self, client: Any, uid: int) -> None:
        a = self.account
        if a.after == "seen":
            client.add_flags([uid], [b"\\Seen"])
        elif a.after == "flag":
            client.add_flags([uid], [a.flag.encode()])
        elif a.after == "move":
            if b"MOVE" in client.capabilities():
                client.move([uid], a.move_to)
            else:
                client.copy([uid], a.move_to)
                client.delete_messages([uid])
                client.uid_expunge([uid])
        elif a.after == "delete":
            client.delete_messages([uid])
            if b"UIDPLUS" in client.capabilities():
                client.uid_expunge([uid])
            else:
                client.expunge()


def _arrived_before_idle(client: Any) -> bool:
    """Whether the server reported new mail while IDLE was starting.

    imapclient's ``idle()`` reads the server's first line; an ``EXISTS`` sent just before the
    ``+ idling`` continuation lands in imaplib's ``untagged_responses`` and never reaches
    ``idle_check``. Without this look, such a message would wait for the next IDLE restart.
    """
    pending = getattr(getattr(client, "_imap", None), "untagged_responses", None)
    if not isinstance(pending, dict):
        return False
    found = bool(pending.pop("EXISTS", None)) | bool(pending.pop("RECENT", None))
    return found


def imap_watchers(settings: ImapSettings, *, bus: Bus, blobs: BlobStore, state: StateStore,
                  stop: threading.Event, registry: Registry | None = None) -> list[ImapFolderWatcher]:
    return [ImapFolderWatcher(account, folder, bus=bus, blobs=blobs, state=state, stop=stop, registry=registry,
                              backoff_initial_s=settings.backoff_initial_s, backoff_max_s=settings.backoff_max_s)
            for account in settings.accounts for folder in account.folders]
