"""`casework serve`: the API, the drop-folder connector and, on the embedded default, every stage."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

import uvicorn
from rich.console import Console
from uvicorn.config import LOGGING_CONFIG

from api.access_log import AccessLines, AccessLog
from api.app import create_app
from api.clock_worker import ClockLoop
from api.config_watch import start_watch
from api.disk_wait import open_when_space
from api.log_setup import uvicorn_log_config
from api.metrics import serve_metrics
from api.outbound_parts import SenderThread
from api.settings import Settings
from api.stage_processes import StageProcesses
from api.wiring import open_runtime
from casestore.search.outbox import OutboxLoop
from connectors.folder import FolderWatcher
from connectors.runner import start_connectors
from ingest.pipeline import PipelineRunner

log = logging.getLogger(__name__)


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def run_server(settings: Settings, *, host: str, port: int) -> None:
    logging.getLogger().setLevel(logging.INFO)
    rt = open_when_space(settings.data_dir, lambda: open_runtime(settings), host=host, port=port)
    if rt is None:  # stopped while the disk was full
        return
    runner: PipelineRunner | StageProcesses | None = None
    if settings.serve.run_pipeline and settings.is_embedded_bus:
        if settings.worker.stage_processes == "threads":
            runner = PipelineRunner(rt.pipeline_parts())
        else:
            runner = StageProcesses(settings)
    clock_loop: ClockLoop | None = None
    if settings.serve.run_pipeline and settings.is_embedded_bus and settings.clock.in_serve:
        clock_loop = ClockLoop(rt.sessions, interval_s=settings.clock.interval_s, batch=settings.clock.batch)
    stop = threading.Event()
    watcher = FolderWatcher(settings.drop_dir, bus=rt.bus, blobs=rt.blobs, poll_s=settings.serve.drop_poll_s, stop=stop)

    sender = SenderThread(rt, stop) if settings.outbound.run_sender else None
    search_loop: OutboxLoop | None = None
    if settings.search.outbox_in_serve:  # index updates that could not be written when they were made
        search_loop = OutboxLoop(rt.search_drainer, poll_s=settings.search.outbox_poll_s,
                                 grace_s=settings.search.outbox_grace_s, stop=stop)

    def health_extra() -> dict[str, Any]:
        states = runner.states() if runner is not None else {}
        if clock_loop is not None:
            states["clock"] = "running" if clock_loop.alive() else "stopped"
        extra: dict[str, Any] = {"pipeline": states}
        if sender is not None:
            extra["outbox_sender"] = sender.state()
        if search_loop is not None:
            extra["search_outbox_loop"] = search_loop.state()
        return extra

    watch = start_watch(rt, stop)  # calendars and case types changed while serving: loaded again
    app = create_app(rt, health_extra=health_extra)
    access_lines: AccessLines | None = None
    asgi: Any = app
    if settings.serve.access_log:  # ours, not uvicorn's: kept off the request's path (api.access_log)
        access_lines = AccessLines()
        # around the whole app, not one of its middlewares: get-next's fast path (api.get_next_fast)
        # answers in front of the app's middleware stack, and its requests are logged too
        asgi = AccessLog(app, lines=access_lines)
    if settings.metrics.port:  # the same series as /metrics, without a token, for Prometheus
        serve_metrics(app.state.metrics_registry, host=settings.metrics.host, port=settings.metrics.port)
    watcher_thread = threading.Thread(target=watcher.run, name="connector-folder", daemon=True)
    if runner is not None:
        runner.start()
    if clock_loop is not None:
        clock_loop.start()
    watcher_thread.start()
    if sender is not None:
        sender.start()
    if search_loop is not None:
        search_loop.start()
    connector_threads = start_connectors(settings.connectors, bus=rt.bus, blobs=rt.blobs,
                                         data_dir=settings.data_dir, stop=stop)
    banner = [
        f"casework serving on http://{host}:{port}  (API docs: http://{host}:{port}/docs)",
        f"  data: {settings.data_dir.resolve()}   bus: {settings.bus.url}   "
        f"pipeline: {'in this process' if runner else 'in casework worker processes'}",
        f"  drop files into {settings.drop_dir.resolve()} to ingest them; or run "
        "`casework ingest FILE` in another terminal",
        "  next: `casework import customers FILE`, `casework user add NAME --role agent`, "
        "`casework token create NAME`",
    ]
    if settings.log.format == "json":  # a log collector gets the banner as log lines, not console text
        for line in banner:
            log.info("%s", line.strip())
    else:
        console = Console(stderr=True)
        for line in banner:
            console.print(line)
    # uvicorn stops serving on SIGTERM and then re-raises the signal with the handler it found at
    # start: make that handler an orderly exit, so the cleanup below runs (consumers leave their
    # groups at once instead of holding partitions until their session times out).
    signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        trusted = settings.serve.trusted_proxies  # forwarded headers are believed from these peers only
        uvicorn.run(asgi, host=host, port=port, log_level="info", proxy_headers=bool(trusted),
                    access_log=False,
                    forwarded_allow_ips=trusted or None,
                    log_config=uvicorn_log_config() if settings.log.format == "json" else LOGGING_CONFIG)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    finally:
        stop.set()
        if runner is not None:
            runner.close()
        if clock_loop is not None:
            clock_loop.close()
        if watch is not None:
            watch.close()
        watcher_thread.join(5)
        if sender is not None:
            sender.join(30)
        if search_loop is not None:
            search_loop.close()
        for t in connector_threads:
            t.join(10)
        if access_lines is not None:
            access_lines.close()
        last_use = getattr(app.state, "last_use", None)  # tokens' last-use times still in memory
        if last_use is not None:
            last_use.flush(rt.engine)
        rt.close()
