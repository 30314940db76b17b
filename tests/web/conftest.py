"""The workbench in a real browser: ``casework serve``'s app (``create_app`` with the pipeline
running as threads, as ``serve`` runs it with ``stage_processes=threads``) on a loopback port
under uvicorn, seeded through the REST API as an integration would, and Debian's Chromium driven
by Playwright (one browser for the whole package, one set of signed-in contexts per module).

People in the seed: alice (agent, team complaints), bob (agent, team claims), sue (supervisor),
ada (admin), robot (integration, bearer token).  Each has the password ``PASSWORD``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
import uvicorn

from api.app import create_app
from api.settings import OutboundSettings, Settings, WebSettings
from api.web.assets import SOURCE_ROOT
from api.wiring import Runtime, open_runtime
from casestore import cases, customers, users
from casestore.signin.passwords import set_password
from casestore.work import overrides
from casestore.work.actor import Actor
from casestore.work.inbound import start_imported
from ingest.pipeline import PipelineRunner
from tests.classify.mailroom_render import pdf_form
from tests.connectors.conftest import free_port

PASSWORD = "correct horse battery staple"
COMPLAINT = "CM-2025-000001"  # team complaints, customer Jane Doe
CLAIM = "CM-2025-000002"  # team claims, customer Sam Poe
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
AXE_JS = SOURCE_ROOT / "node_modules" / "axe-core" / "axe.min.js"
WAIT_FILED_S = 60.0
HOSTILE_HTML = ("<html><body><h1>Still noisy</h1><p>The noise at night goes on, see CM-2025-000001.</p>"
                "<script>alert(1)</script><img src=x onerror=alert(1)>"
                "<img src=\"https://tracker.example/pixel.png\" alt=\"pixel\">"
                "<a href=\"javascript:alert(1)\">click</a><p onclick=\"alert(1)\">Jane</p></body></html>")


@dataclass
class Workbench:
    url: str
    rt: Runtime
    robot: dict[str, str]
    items: dict[str, str] = field(default_factory=dict)  # name -> item id

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return httpx.request(method, self.url + path, headers=self.robot, timeout=30, **kw)

    def item(self, name: str) -> dict[str, Any]:
        with self.rt.read_sessions() as session:
            from casestore import items

            return items.item_view(session, item_id=self.items[name])


def _email(*, sender: str, subject: str, text: str, html: str | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, "cases@casework.example", subject
    msg["Message-ID"] = f"<{abs(hash((sender, subject)))}@mail.example>"
    msg["Date"] = "Mon, 02 Mar 2026 09:30:00 +0000"
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return bytes(msg)


def _upload(wb: Workbench, name: str, data: bytes, filename: str, channel: str, meta: dict[str, str]) -> None:
    r = wb.api("POST", "/api/v1/items", files={"file": (filename, data)},
               data={"channel": channel, "metadata": json.dumps(meta), "source_id": name})
    assert r.status_code == 202, r.text
    wb.items[name] = r.json()["item_id"]


def _wait_filed(wb: Workbench) -> None:
    deadline = time.monotonic() + WAIT_FILED_S
    pending = dict(wb.items)
    while pending and time.monotonic() < deadline:
        for name, item_id in list(pending.items()):
            r = wb.api("GET", f"/api/v1/items/{item_id}")
            if r.status_code == 200 and r.json().get("outcome"):
                assert r.json()["outcome"] != "failed", r.text
                del pending[name]
        time.sleep(0.1)
    assert not pending, f"not filed within {WAIT_FILED_S} s: {pending}"


def serve_app(rt: Runtime) -> tuple[str, Callable[[], None]]:
    """``create_app(rt)`` under uvicorn on a free loopback port in a thread: (its URL, stop)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(rt), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, name="workbench-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"

    def stop() -> None:
        server.should_exit = True
        thread.join(10)

    return f"http://127.0.0.1:{port}", stop


def _seed_store(rt: Runtime) -> dict[str, str]:
    with rt.sessions() as s, s.begin():
        customers.upsert_customer(s, customer_id="C1", name="Jane Doe", email="jane@example.com",
                                  phone="+44 7700 900123", postcode="AB1 2CD", account_number="ACC-0001")
        customers.upsert_customer(s, customer_id="C2", name="Sam Poe", email="sam@example.com")
        cases.upsert_case(s, ref=COMPLAINT, customer_id="C1", case_type="complaint", status="open", opened_at=None,
                          subject="noise at night", team="complaints")
        cases.upsert_case(s, ref="CM-2024-000777", customer_id="C1", case_type="claim", status="closed",
                          opened_at=None, subject="an old claim", team="complaints")
        cases.upsert_case(s, ref=CLAIM, customer_id="C2", case_type="claim", status="open", opened_at=None,
                          subject="water damage", team="claims")
        users.add_user(s, name="robot", role="integration", teams=["complaints", "claims"])  # files for both
        for name, role, teams in (("alice", "agent", ["complaints"]), ("bob", "agent", ["claims"]),
                                  ("sue", "supervisor", []), ("ada", "admin", [])):
            users.add_user(s, name=name, role=role, teams=teams)
            set_password(s, name=name, password=PASSWORD)
        return {"Authorization": f"Bearer {users.create_token(s, name='robot')}"}


@pytest.fixture(scope="package")
def workbench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workbench]:
    # queue counts read afresh for every page: the tests assert them right after changing them
    rt = open_runtime(Settings(data_dir=tmp_path_factory.mktemp("workbench") / "data",
                               web=WebSettings(queue_counts_max_age_s=0),
                               outbound=OutboundSettings(from_address="Complaints <complaints@casework.example>",
                                                         signature="Example Ltd",
                                                         letter_return_address="Example Ltd, PO Box 1")))
    robot = _seed_store(rt)
    runner = PipelineRunner(rt.pipeline_parts())
    runner.start()
    url, stop = serve_app(rt)
    wb = Workbench(url=url, rt=rt, robot=robot)
    jane, sam = "Jane Doe <jane@example.com>", "Sam Poe <sam@example.com>"
    _upload(wb, "hostile_email", _email(sender=jane, subject=f"Re: {COMPLAINT} still noisy",
                                        text="The noise at night goes on. Jane", html=HOSTILE_HTML),
            "mail.eml", "email", {})
    _upload(wb, "complaint_pdf", pdf_form([f"Complaint {COMPLAINT}", "From Jane Doe, jane@example.com",
                                           "The noise of the neighbours' loud music every night."]),
            "letter.pdf", "file", {"sender_email": "jane@example.com"})
    _upload(wb, "claim_email", _email(sender=sam, subject=f"{CLAIM} photos", text="Zebracorn damage photos"),
            "claim.eml", "email", {})
    _upload(wb, "stranger", _email(sender="Mallory <mallory@evil.example>", subject=f"Re {COMPLAINT}",
                                   text=f"About {COMPLAINT}: music at night again, wombat."),
            "stranger.eml", "email", {})
    _wait_filed(wb)
    assert wb.item("hostile_email")["case_ref"] == COMPLAINT
    assert wb.item("claim_email")["case_ref"] == CLAIM
    assert wb.item("stranger")["outcome"] == "triage"
    yield wb
    stop()
    runner.close()
    rt.close()


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class People:
    """One signed-in browser context per person, shared by the tests of a module (each test opens
    its own page in it, so event listeners and routes do not leak between tests)."""

    def __init__(self, browser: Any, wb: Workbench) -> None:
        self.browser, self.wb = browser, wb
        self.contexts: dict[str, Any] = {}

    def page(self, name: str) -> Any:
        if name not in self.contexts:
            self.contexts[name] = sign_in(self.browser, self.wb, name).context
        return self.contexts[name].new_page()

    def close(self) -> None:
        for context in self.contexts.values():
            context.close()


@pytest.fixture(scope="module")
def people(browser: Any, workbench: Workbench) -> Iterator[People]:
    crowd = People(browser, workbench)
    yield crowd
    crowd.close()


def add_person(wb: Workbench, name: str, role: str, teams: list[str]) -> None:
    """A user with the password ``PASSWORD`` (for a module's own people)."""
    with wb.rt.sessions() as s, s.begin():
        users.add_user(s, name=name, role=role, teams=teams)
        set_password(s, name=name, password=PASSWORD)


def start_case(wb: Workbench, *, ref: str, case_type: str, team: str, customer_id: str = "C1",
               subject: str = "", urgency: int = 0) -> None:
    """A case with its type's work started (as `casework import cases` does); ``urgency`` puts its
    tasks ahead of the other cases' in get-next order."""
    setup = wb.rt.work  # loaded before the write transaction (it registers the case types)
    with wb.rt.sessions() as s, s.begin():
        case, _ = cases.upsert_case(s, ref=ref, customer_id=customer_id, case_type=case_type, status="open",
                                    opened_at=None, subject=subject or f"{case_type} {ref}", team=team)
        start_imported(s, case=case, setup=setup)
        if urgency:
            overrides.raise_urgency(s, ref=ref, urgency=urgency, actor=Actor(name="test set-up", role="system"),
                                    reason="test set-up", calendars=wb.rt.calendars)


def sign_in(browser: Any, wb: Workbench, name: str, **context_options: Any) -> Any:
    """A new browser context signed in as ``name`` (a page on the start page)."""
    context = browser.new_context(base_url=wb.url, **context_options)
    page = context.new_page()
    page.goto("/login")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(wb.url + "/")
    return page


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """Serious and critical axe-core violations of the page as it is now."""
    if page.evaluate("() => typeof window.axe") != "object":
        page.evaluate(AXE_JS.read_text())  # through the DevTools protocol: the page's CSP stays as it is
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [{"id": v["id"], "impact": v["impact"], "nodes": [n["html"][:200] for n in v["nodes"][:3]]}
            for v in result["violations"] if v["impact"] in ("serious", "critical")]
