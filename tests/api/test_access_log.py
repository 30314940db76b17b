"""`casework serve`'s access log (api.access_log): what a line says, that query values stay out of
it, that a failed request is logged as the 500 the server answers, and that an orderly stop writes
every waiting line.  The middleware is driven as the ASGI server drives it; the lines reach a real
logger."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from api.access_log import ACCESS_LOGGER, AccessLines, AccessLog, Message, Receive, Scope, Send, shown_path
from api.log_setup import make_formatter


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def collected() -> Iterator[Collect]:
    logger = logging.getLogger(ACCESS_LOGGER)
    handler = Collect()
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.INFO
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


async def answer(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["path"] == "/boom":
        raise RuntimeError("boom")
    await send({"type": "http.response.start", "status": 201 if scope["method"] == "POST" else 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def request(
    app: AccessLog, method: str, path: str, query: bytes = b"", client: Any = ("10.1.2.3", 5555)
) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "query_string": query,
        "client": client,
        "headers": [],
    }
    asyncio.run(app(scope, receive, send))
    return sent


def test_a_line_names_client_method_path_status_and_duration(collected: Collect) -> None:
    lines = AccessLines(interval_s=3600)
    app = AccessLog(answer, lines)
    sent = request(app, "POST", "/api/v1/work/next")
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"], "passed on unchanged"
    assert collected.records == [], "nothing is written on the request's own path"
    lines.close()
    (record,) = collected.records
    assert record.name == ACCESS_LOGGER and record.levelno == logging.INFO
    assert record.args is not None and record.msg.startswith("%s")  # %-style: arguments, not a built string
    message = record.getMessage()
    assert message.startswith('10.1.2.3:5555 - "POST /api/v1/work/next" 201 '), message
    assert message.endswith(" ms")
    fields = record.__dict__
    assert (fields["client"], fields["method"], fields["path"], fields["status"]) == (
        "10.1.2.3:5555",
        "POST",
        "/api/v1/work/next",
        201,
    )
    assert fields["duration_ms"] >= 0


def test_query_values_never_reach_the_log(collected: Collect) -> None:
    lines = AccessLines(interval_s=3600)
    request(AccessLog(answer, lines), "GET", "/api/v1/search", b"q=Jane+Smith&limit=5&token=s3cret")
    lines.close()
    message = collected.records[0].getMessage()
    assert '"GET /api/v1/search?q&limit&token" 200' in message, message
    for secret in ("Jane", "Smith", "s3cret", "5"):
        assert secret not in message.split('"')[1]


def test_control_characters_in_a_path_cannot_forge_a_line() -> None:
    assert shown_path("/a\nINFO forged", b"") == "/a%0AINFO%20forged"
    assert shown_path("/x", b"a\r\nb=1&&c") == "/x?a%0D%0Ab&c"
    assert shown_path("/plain/path-1.2_3~", b"") == "/plain/path-1.2_3~"


def test_a_request_that_fails_before_answering_is_logged_as_500(collected: Collect) -> None:
    lines = AccessLines(interval_s=3600)
    with pytest.raises(RuntimeError):
        request(AccessLog(answer, lines), "GET", "/boom", client=None)
    lines.close()
    assert collected.records[0].getMessage().startswith('- - "GET /boom" 500 ')


def test_the_thread_writes_waiting_lines_without_a_stop(collected: Collect) -> None:
    lines = AccessLines(interval_s=0.01)
    try:
        request(AccessLog(answer, lines), "GET", "/health")
        for _ in range(500):
            if collected.records:
                break
            asyncio.run(asyncio.sleep(0.01))
        assert len(collected.records) == 1
    finally:
        lines.close()
    assert len(collected.records) == 1, "written once"


def test_lines_beyond_the_bound_are_dropped_and_counted(collected: Collect, caplog: pytest.LogCaptureFixture) -> None:
    lines = AccessLines(interval_s=3600, max_pending=2)
    app = AccessLog(answer, lines)
    for _ in range(5):
        request(app, "GET", "/health")
    with caplog.at_level(logging.WARNING, logger="api.access_log"):
        lines.close()
    assert len(collected.records) == 2
    assert any("3 line(s) dropped" in r.getMessage() for r in caplog.records)


def test_the_json_format_carries_the_fields_and_the_request_time(collected: Collect) -> None:
    lines = AccessLines(interval_s=3600)
    request(AccessLog(answer, lines), "DELETE", "/api/v1/tasks/7")
    ended = lines._pending[0][0]
    lines.close()
    line = json.loads(make_formatter("json").format(collected.records[0]))
    assert (line["logger"], line["level"], line["method"], line["path"], line["status"]) == (
        ACCESS_LOGGER,
        "INFO",
        "DELETE",
        "/api/v1/tasks/7",
        200,
    )
    assert collected.records[0].created == ended


def test_switched_off_by_its_logger_level(collected: Collect) -> None:
    logging.getLogger(ACCESS_LOGGER).setLevel(logging.WARNING)
    lines = AccessLines(interval_s=3600)
    request(AccessLog(answer, lines), "GET", "/health")
    assert lines.drain() == 0
    lines.close()
    assert collected.records == []
