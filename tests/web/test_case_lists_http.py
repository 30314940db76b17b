"""The case list and saved views over HTTP against the running workbench: the page and
``GET /api/v1/cases`` show the same visible cases; a view saved on the page is on the start page,
opens with its filters, and is nobody else's."""

from __future__ import annotations

import html
import re

import httpx

from tests.web.conftest import CLAIM, COMPLAINT, Workbench
from tests.web.test_pages_http import _sign_in


def _csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text[:500]
    return found.group(1)


def test_the_case_list_shows_only_visible_cases_on_the_page_and_the_api(workbench: Workbench) -> None:
    with httpx.Client(base_url=workbench.url) as alice:
        assert _sign_in(alice, "alice").status_code == 303
        page = alice.get("/cases")
        assert page.status_code == 200 and COMPLAINT in page.text and CLAIM not in page.text
        assert 'id="no-cases"' in alice.get("/cases", params={"text": CLAIM}).text, "not found by its reference"
        api = alice.get("/api/v1/cases", params={"status": "active"}).json()
        assert COMPLAINT in [c["ref"] for c in api["cases"]] and CLAIM not in [c["ref"] for c in api["cases"]]
        bad = alice.get("/cases", params={"status": "lost"})
        assert bad.status_code == 422 and "no case status" in html.unescape(bad.text)
    robot = workbench.api("GET", "/api/v1/cases", params={"text": "water"}).json()  # the integration sees both teams
    assert [c["ref"] for c in robot["cases"]] == [CLAIM]


def test_a_saved_view_is_kept_shown_and_private(workbench: Workbench) -> None:
    with httpx.Client(base_url=workbench.url) as alice:
        _sign_in(alice, "alice")
        listed = alice.get("/cases", params={"status": "active", "sort": "urgency", "text": "noise"})
        refused = alice.post("/cases/views", data={"name": "Noisy", "status": "active"})
        assert refused.status_code == 403, "a form without its CSRF token is refused"
        saved = alice.post("/cases/views", data={"csrf_token": _csrf(listed), "name": "Noisy <b>now</b>",
                                                 "status": "active", "sort": "urgency", "text": "noise"})
        assert saved.status_code == 303
        view_url = saved.headers["location"]
        view_id = int(re.search(r"view=(\d+)", view_url).group(1))  # type: ignore[union-attr]
        shown = alice.get(view_url)
        assert shown.status_code == 200 and "The view was saved" in shown.text
        assert "Noisy &lt;b&gt;now&lt;/b&gt;" in shown.text and "<b>now</b>" not in shown.text
        assert COMPLAINT in shown.text and 'value="noise"' in shown.text
        assert f'href="/cases?view={view_id}"' in alice.get("/").text, "listed on the start page"
        api_views = alice.get("/api/v1/views").json()
        assert [v["filters"] for v in api_views] == [{"status": "active", "text": "noise", "sort": "urgency"}]
        assert [c["ref"] for c in alice.get("/api/v1/cases", params={"view": view_id}).json()["cases"]] == [COMPLAINT]
    with httpx.Client(base_url=workbench.url) as bob:
        _sign_in(bob, "bob")
        assert bob.get(view_url).status_code == 404
        assert bob.get("/api/v1/cases", params={"view": view_id}).status_code == 404
        page = bob.get("/cases")
        assert bob.post(f"/cases/views/{view_id}/delete", data={"csrf_token": _csrf(page)}).status_code == 404
    with httpx.Client(base_url=workbench.url) as alice:
        _sign_in(alice, "alice")
        page = alice.get(view_url)
        deleted = alice.post(f"/cases/views/{view_id}/delete", data={"csrf_token": _csrf(page)})
        assert deleted.status_code == 303 and alice.get("/api/v1/views").json() == []
