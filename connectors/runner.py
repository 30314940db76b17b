"""Starting the enabled connectors: threads for the pollers and listeners, routers for webhooks.

``casework serve`` calls ``start_connectors`` (one daemon thread per IMAP folder, the SMTP
listener, each watched folder, integration drop, the call-record folder and the fax spool) and
mounts ``routers`` (Twilio, fax and web-form routes) on its FastAPI app. ``casework connector
NAME`` calls ``run_connector``, which runs one of them in the foreground until ``stop`` is set;
the webhook connectors then get a small HTTP server of their own.

Each thread is supervised: if its loop dies of an unexpected error, the error is logged and
shown in ``/health`` (state ``error``) and the loop is started again after ``RESTART_DELAY_S``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from fastapi import APIRouter

from connectors.calls import CallRecordsWatcher
from connectors.drops import DropWatcher
from connectors.fax import FaxSpoolWatcher, fax_router
from connectors.folder import FolderWatcher
from connectors.imap import imap_watchers
from connectors.metrics import REGISTRY, Registry
from connectors.settings import ConnectorSettings
from connectors.smtp import SmtpReceiver
from connectors.state import StateStore
from connectors.twilio_sms import twilio_router
from connectors.webform import webform_router
from ingest.blobs import BlobStore
from ingest.bus.port import Bus

log = logging.getLogger(__name__)

RESTART_DELAY_S = 5.0
THREADED = ("imap", "smtp", "folders", "drops", "calls", "fax-spool")
WEBHOOKS = ("twilio", "fax", "webform")
CONNECTOR_NAMES = THREADED + WEBHOOKS

Job = tuple[str, Callable[[], None]]


def _jobs(settings: ConnectorSettings, *, bus: Bus, blobs: BlobStore, data_dir: Path, stop: threading.Event,
          registry: Registry, only: str | None = None) -> list[Job]:
    def state(name: str) -> StateStore:
        return StateStore.for_connector(data_dir, name)

    def want(name: str, enabled: bool) -> bool:
        return only == name or (only is None and enabled)

    jobs: list[Job] = []
    if want("imap", settings.imap.enabled):
        for w in imap_watchers(settings.imap, bus=bus, blobs=blobs, stop=stop, registry=registry,
                               state=state("imap")):
            jobs.append((w.name, w.run))
    if want("smtp", settings.smtp.enabled):
        smtp = SmtpReceiver(settings.smtp, bus=bus, blobs=blobs, stop=stop, registry=registry, state=state("smtp"))
        jobs.append(("smtp", smtp.run))
    watchers: list[FolderWatcher] = []
    if want("folders", settings.folders.enabled):
        watchers += [FolderWatcher(Path(cfg.path), config=cfg, bus=bus, blobs=blobs, stop=stop, registry=registry,
                                   state=state("folders")) for cfg in settings.folders.folders]
    if want("drops", settings.drops.enabled):
        watchers += [DropWatcher(integ, bus=bus, blobs=blobs, stop=stop, registry=registry, state=state("drops"))
                     for integ in settings.drops.integrations]
    if want("calls", settings.calls.enabled) and settings.calls.path:
        watchers.append(CallRecordsWatcher(settings.calls, bus=bus, blobs=blobs, stop=stop, registry=registry,
                                           state=state("calls")))
    if want("fax-spool", settings.fax.enabled) and settings.fax.spool_dir:
        watchers.append(FaxSpoolWatcher(settings.fax, bus=bus, blobs=blobs, stop=stop, registry=registry,
                                        state=state("fax")))
    return jobs + [(w.name, w.run) for w in watchers]


def _supervised(name: str, fn: Callable[[], None], stop: threading.Event, registry: Registry) -> Callable[[], None]:
    def loop() -> None:
        while not stop.is_set():
            try:
                fn()
                return
            except Exception as exc:
                registry.get(name).set_state("error", f"{type(exc).__name__}: {exc}")
                log.exception("connector %s stopped on an error; restarting in %.0fs", name, RESTART_DELAY_S)
                stop.wait(RESTART_DELAY_S)

    return loop


def start_connectors(settings: ConnectorSettings, *, bus: Bus, blobs: BlobStore, data_dir: Path,
                     stop: threading.Event, registry: Registry | None = None) -> list[threading.Thread]:
    """Start every enabled threaded connector; they stop when ``stop`` is set (join the threads)."""
    registry = registry or REGISTRY
    threads = []
    for name, fn in _jobs(settings, bus=bus, blobs=blobs, data_dir=Path(data_dir), stop=stop, registry=registry):
        t = threading.Thread(target=_supervised(name, fn, stop, registry), name=f"connector-{name}", daemon=True)
        t.start()
        threads.append(t)
    log.info("started %d connector thread(s)", len(threads))
    return threads


def routers(settings: ConnectorSettings, *, bus: Bus, blobs: BlobStore, data_dir: Path,
            registry: Registry | None = None, only: str | None = None) -> list[APIRouter]:
    """The webhook and form routes of the enabled connectors, to mount on the app (no auth: they
    check their own signatures and tokens)."""
    out: list[APIRouter] = []
    if only == "twilio" or (only is None and settings.twilio.enabled):
        if not settings.twilio.auth_token:
            log.warning("twilio webhook enabled without auth_token: every request will be refused (403)")
        out.append(twilio_router(settings.twilio, bus=bus, blobs=blobs, registry=registry,
                                 state=StateStore.for_connector(data_dir, "twilio")))
    if only == "fax" or (only is None and settings.fax.enabled):
        if not settings.fax.secret:
            log.warning("fax webhook enabled without a secret: every request will be refused (403)")
        out.append(fax_router(settings.fax, bus=bus, blobs=blobs, registry=registry,
                              state=StateStore.for_connector(data_dir, "fax")))
    if only == "webform" or (only is None and settings.webform.enabled):
        out.append(webform_router(settings.webform, bus=bus, blobs=blobs, registry=registry,
                                  state=StateStore.for_connector(data_dir, "webform")))
    return out


def run_connector(name: str, settings: ConnectorSettings, *, bus: Bus, blobs: BlobStore, data_dir: Path,
                  stop: threading.Event, host: str = "127.0.0.1", port: int = 8001,
                  registry: Registry | None = None, trusted_proxies: list[str] | None = None) -> None:
    """Run one connector in the foreground (``casework connector NAME``) until ``stop`` is set.

    Raises ``ValueError`` for an unknown name or one with nothing configured. ``trusted_proxies``
    (addresses or CIDRs) are the only peers whose X-Forwarded-For the webhook server believes.
    """
    registry = registry or REGISTRY
    if name not in CONNECTOR_NAMES:
        raise ValueError(f"unknown connector {name!r}: choose one of {', '.join(CONNECTOR_NAMES)}")
    if name in WEBHOOKS:
        _serve_routers(routers(settings, bus=bus, blobs=blobs, data_dir=data_dir, registry=registry, only=name),
                       host=host, port=port, stop=stop, trusted_proxies=trusted_proxies or [])
        return
    jobs = _jobs(settings, bus=bus, blobs=blobs, data_dir=Path(data_dir), stop=stop, registry=registry, only=name)
    if not jobs:
        raise ValueError(f"connector {name!r} has nothing configured (see the README's connector settings)")
    threads = [threading.Thread(target=_supervised(n, fn, stop, registry), name=f"connector-{n}", daemon=True)
               for n, fn in jobs]
    for t in threads:
        t.start()
    stop.wait()
    for t in threads:
        t.join(10)


def _serve_routers(rs: list[APIRouter], *, host: str, port: int, stop: threading.Event,
                   trusted_proxies: list[str]) -> None:
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI(title="casework connector")
    for r in rs:
        app.include_router(r)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info",
                                           proxy_headers=bool(trusted_proxies),
                                           forwarded_allow_ips=trusted_proxies or None))
    def stop_server() -> None:
        stop.wait()
        server.should_exit = True

    threading.Thread(target=stop_server, daemon=True).start()
    server.run()
