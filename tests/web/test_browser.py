"""The workbench as a person uses it, in Chromium: sign-in and sign-out, the CSRF refusal, another
team's case and documents never shown, search with a facet, triage with the keyboard, a hostile
email shown without anything running, /docs offline, and axe-core on every page."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from casestore import cases
from tests.web.conftest import CLAIM, COMPLAINT, People, Workbench, axe_violations

pytestmark = pytest.mark.timeout(120)


def _document_ids(wb: Workbench, name: str) -> list[int]:
    return [d["document_id"] for d in wb.item(name)["documents"]]


def _watch(page: Any) -> list[str]:
    """Everything that would show a script ran or was blocked: dialogs, page errors, console errors."""
    seen: list[str] = []
    page.on("dialog", lambda d: (seen.append(f"dialog: {d.message}"), d.dismiss()))
    page.on("pageerror", lambda e: seen.append(f"pageerror: {e}"))
    page.on("console", lambda m: seen.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    return seen


def test_sign_in_then_out(browser: Any, workbench: Workbench) -> None:
    context = browser.new_context(base_url=workbench.url)
    page = context.new_page()
    page.goto(f"/cases/{COMPLAINT}")
    assert page.url.startswith(workbench.url + "/login?next=")
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text().startswith("That user name and password do not match")
    page.get_by_label("Password").fill("correct horse battery staple")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{workbench.url}/cases/{COMPLAINT}")  # back where the sign-in interrupted
    cookie = next(c for c in context.cookies() if c["name"] == "cw_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r".*/login\?signed_out=1$"))
    assert "You are signed out" in page.content()
    page.goto("/")
    assert "/login" in page.url, "the session ended on the server: the old cookie opens nothing"
    context.close()


def test_a_form_without_its_csrf_token_is_refused(people: People, workbench: Workbench) -> None:
    page = people.page("alice")
    page.goto(f"/cases/{COMPLAINT}")
    page.evaluate("() => document.querySelector('#note-form input[name=csrf_token]').remove()")
    page.get_by_role("textbox", name="Note").fill("forged note")
    page.get_by_role("button", name="Add note").click()
    assert page.get_by_role("alert").inner_text().startswith("This form did not carry its security token")
    page.goto(f"/cases/{COMPLAINT}")
    assert "forged note" not in page.content()
    page.get_by_role("textbox", name="Note").fill("Called Jane back; she will send a recording.")
    page.get_by_role("button", name="Add note").click()
    page.wait_for_url(re.compile(rf".*/cases/{COMPLAINT}#timeline$"))
    assert page.locator(".entry-note").first.inner_text().count("Called Jane back") == 1
    page.close()


def test_another_team_sees_no_trace_of_the_case(people: People, workbench: Workbench) -> None:
    page = people.page("bob")  # team claims
    assert page.goto(f"/cases/{COMPLAINT}").status == 404
    assert "noise at night" not in page.content()
    for doc in _document_ids(workbench, "hostile_email") + _document_ids(workbench, "complaint_pdf"):
        for path in (f"/documents/{doc}", f"/documents/{doc}/pages/1.png", f"/documents/{doc}/original"):
            r = page.request.get(path)
            assert r.status == 404, path
            assert b"noise at night" not in r.body() and b"loud music" not in r.body()
    page.goto("/search?q=noise")
    assert COMPLAINT not in page.content() and "0 documents" in page.content()
    page.goto(f"/search?q={workbench.items['hostile_email']}")
    assert COMPLAINT not in page.content(), "typing the item id does not find it either"
    assert page.goto(f"/cases/{CLAIM}").status == 200
    page.close()


def test_search_with_a_facet(people: People, workbench: Workbench) -> None:
    page = people.page("alice")
    page.goto("/")
    page.keyboard.press("/")
    page.keyboard.type("noise")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/search\?q=noise$"))
    hits = page.locator("ol.hits > li")
    assert hits.count() >= 2 and page.locator("mark").first.inner_text().lower() == "noise"
    page.get_by_role("navigation", name="Filters").get_by_role("link", name="email", exact=True).click()
    page.wait_for_url(re.compile(r".*channel=email.*"))
    texts = [hits.nth(i).inner_text() for i in range(hits.count())]
    assert texts and all(" email " in f" {t} " for t in texts), texts
    assert all("file ·" not in t for t in texts)
    page.close()


def test_search_by_the_date_the_mail_was_sent(people: People, workbench: Workbench) -> None:
    """The "sent or scanned" range filters on the item's own date (the emails' Date header is
    2026-03-02; the PDF upload has none), typed into labelled date boxes and sent with Enter."""
    page = people.page("alice")
    page.goto("/search?q=noise")
    hits = page.locator("ol.hits > li")
    everything = [hits.nth(i).inner_text() for i in range(hits.count())]
    assert any(" file " in f" {t} " for t in everything), everything  # the PDF is there before the filter
    page.get_by_label("from", exact=True).fill("2026-03-02")
    page.get_by_label("to", exact=True).fill("2026-03-02")
    page.get_by_label("to", exact=True).press("Enter")
    page.wait_for_url(re.compile(r".*dated_from=2026-03-02.*dated_to=2026-03-02.*"))
    texts = [hits.nth(i).inner_text() for i in range(hits.count())]
    assert texts and all("sent 2026-03-02 09:30" in t for t in texts), texts
    assert len(texts) < len(everything)
    page.get_by_label("to", exact=True).fill("2026-03-01")
    page.get_by_label("to", exact=True).press("Enter")
    page.wait_for_url(re.compile(r".*dated_to=2026-03-01.*"))
    assert hits.count() == 0
    page.close()


def test_triage_attach_with_the_keyboard(people: People, workbench: Workbench) -> None:
    page = people.page("alice")
    page.goto("/")
    page.keyboard.press("g")
    page.keyboard.press("t")
    page.wait_for_url(workbench.url + "/triage")
    assert "wombat" in page.locator(".triage-doc").inner_text()
    assert COMPLAINT in page.locator(".triage-cases").inner_text()
    page.locator("body").click(position={"x": 1, "y": 1})  # nothing focused: keys go to the page
    page.keyboard.press("1")
    page.keyboard.press("a")
    page.keyboard.type("Jane's neighbour wrote about her case")
    page.keyboard.press("Enter")
    page.get_by_role("status").get_by_text(f"attached to {COMPLAINT}").wait_for()
    assert "The triage queue is empty" in page.locator("#triage-item").inner_text()
    item = workbench.item("stranger")
    assert (item["outcome"], item["case_ref"]) == ("attached", COMPLAINT)
    with workbench.rt.read_sessions() as session:
        audit = cases.case_folder(session, ref=COMPLAINT)["audit"]
    assert [a["reason"] for a in audit if a["action"] == "triage.resolved"] == ["Jane's neighbour wrote about her case"]
    page.close()


def test_a_hostile_email_is_shown_without_anything_running(people: People, workbench: Workbench) -> None:
    page = people.page("sue")
    outside: list[str] = []
    page.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/]).*"), lambda route: (outside.append(route.request.url),
                                                                              route.abort()))
    seen = _watch(page)
    body = _document_ids(workbench, "hostile_email")[0]
    response = page.goto(f"/documents/{body}")
    assert response.status == 200
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    html = page.locator(".email-html")
    assert "Still noisy" in html.inner_text()
    inner = html.inner_html()
    assert "<script" not in inner and "onerror" not in inner and "onclick" not in inner and "javascript:" not in inner
    assert "tracker.example" not in inner and page.locator(".email-html img").count() == 0
    page.locator(".email-html p", has_text="Jane").click()
    page.get_by_role("link", name="Download the original").wait_for()
    assert seen == [] and outside == []
    page.close()


def test_pdf_pages_are_rendered_and_the_original_downloads(people: People, workbench: Workbench) -> None:
    page = people.page("alice")
    doc = _document_ids(workbench, "complaint_pdf")[0]
    page.goto(f"/documents/{doc}")
    image = page.get_by_role("img", name="Page 1 of 1")
    image.wait_for()
    assert page.evaluate("(img) => img.complete && img.naturalWidth > 500", image.element_handle())
    assert "loud music" in page.locator("pre.text").inner_text()
    r = page.request.get(f"/documents/{doc}/original")
    assert r.headers["content-disposition"].startswith('attachment; filename="letter.pdf"')
    assert r.headers["x-content-type-options"] == "nosniff" and r.body().startswith(b"%PDF")
    page.close()


def test_docs_render_without_network(browser: Any, workbench: Workbench) -> None:
    context = browser.new_context(base_url=workbench.url)
    outside: list[str] = []
    context.route(re.compile(r"^(?!https?://127\.0\.0\.1[:/]).*"),
                  lambda route: (outside.append(route.request.url), route.abort()))
    page = context.new_page()
    seen = _watch(page)
    page.goto("/docs")
    page.locator(".swagger-ui .info .title", has_text="casework").wait_for()
    page.locator(".opblock-summary-path", has_text="/api/v1/search").first.wait_for()
    assert seen == []
    page.goto("/redoc")
    page.locator("h1", has_text="casework").first.wait_for()
    page.get_by_text("/api/v1/search").first.wait_for()
    # ReDoc's side menu always asks for its maker's logo from a CDN: the CSP refuses it (a console
    # message), so nothing leaves the machine.
    assert outside == []
    assert all("cdn.redoc.ly/redoc/logo-mini.svg" in m for m in seen), seen
    context.close()


PAGES = [
    ("alice", "/"), ("alice", "/cases"), ("alice", f"/cases/{COMPLAINT}"), ("alice", "/search?q=noise"),
    ("alice", "/search"), ("alice", "/triage"), ("alice", "/ops"), ("ada", "/admin/users"),
    ("bob", f"/cases/{COMPLAINT}"), ("alice", "/notifications"), ("alice", "/cases?status=ready_to_close"),
]


def test_every_page_passes_axe(browser: Any, people: People, workbench: Workbench, tmp_path: Path) -> None:
    found: dict[str, Any] = {}
    login = browser.new_context(base_url=workbench.url).new_page()
    login.goto("/login")
    found["/login"] = axe_violations(login)
    login.context.close()
    docs = {"email": _document_ids(workbench, "hostile_email")[0], "pdf": _document_ids(workbench, "complaint_pdf")[0]}
    pages = [*PAGES, ("sue", f"/documents/{docs['email']}"), ("alice", f"/documents/{docs['pdf']}")]
    signed_in: dict[str, Any] = {}
    for user, path in pages:
        page = signed_in.get(user) or signed_in.setdefault(user, people.page(user))
        page.goto(path)
        found[f"{user} {path}"] = axe_violations(page)  # the README's screenshots: test_work_browser.py
    page = signed_in["alice"]
    page.keyboard.press("?")
    page.get_by_role("dialog", name="Keyboard").wait_for()
    found["help overlay"] = axe_violations(page)
    for page in signed_in.values():
        page.close()
    assert {k: v for k, v in found.items() if v} == {}


def test_the_api_accepts_the_session_and_wants_its_csrf_header(people: People, workbench: Workbench) -> None:
    page = people.page("alice")
    page.goto(f"/cases/{COMPLAINT}")
    assert page.request.get(f"/api/v1/cases/{COMPLAINT}").json()["ref"] == COMPLAINT
    assert page.request.get(f"/api/v1/cases/{CLAIM}").status == 404
    refused = page.request.post("/api/v1/triage/nope/resolve", data={"action": "noise"})
    assert refused.status == 403 and "X-CSRF-Token" in refused.json()["detail"]
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    allowed = page.request.post("/api/v1/triage/nope/resolve", data={"action": "noise"},
                                headers={"X-CSRF-Token": token})
    assert allowed.status == 404
    own = workbench.api("GET", f"/api/v1/items/{workbench.items['complaint_pdf']}")
    assert own.status_code == 200, "bearer tokens work as before"
    page.close()
