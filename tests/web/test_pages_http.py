"""The workbench over plain HTTP against the running server: sign-in throttling and its CSRF
token, safe redirects, Secure cookies behind TLS, disabled users, security headers."""

from __future__ import annotations

import re

import httpx

from casestore import users
from tests.web.conftest import COMPLAINT, PASSWORD, Workbench


def _login_form(client: httpx.Client) -> str:
    page = client.get("/login")
    found = re.search(r'name="login_token" value="([^"]+)"', page.text)
    assert found
    return found.group(1)


def _sign_in(client: httpx.Client, name: str, password: str = PASSWORD, next_url: str = "/",
             **headers: str) -> httpx.Response:
    token = _login_form(client)
    return client.post("/login", data={"name": name, "password": password, "next": next_url, "login_token": token},
                       headers=headers)


def test_repeated_failures_get_429_with_a_message(workbench: Workbench) -> None:
    with httpx.Client(base_url=workbench.url) as client:
        users_before = [_sign_in(client, "sue", "wrong password!").status_code for _ in range(5)]
        assert users_before == [401] * 5
        refused = _sign_in(client, "sue", PASSWORD)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
        assert "too many failed sign-ins for this user name" in refused.text
        assert "cw_session" not in refused.cookies
    with workbench.rt.sessions() as s, s.begin():
        from casestore.signin import throttle

        throttle.clear(s, user_name="sue")


def test_the_sign_in_form_needs_its_own_token(workbench: Workbench) -> None:
    with httpx.Client(base_url=workbench.url) as client:
        _login_form(client)
        forged = client.post("/login", data={"name": "alice", "password": PASSWORD, "login_token": "guess"})
        assert forged.status_code == 403 and "cw_session" not in forged.cookies


def test_next_only_leads_to_this_site(workbench: Workbench) -> None:
    for target, expected in (("//evil.example/x", "/"), ("https://evil.example/", "/"), ("/\\evil.example", "/"),
                             (f"/cases/{COMPLAINT}?kind=note", f"/cases/{COMPLAINT}?kind=note")):
        with httpx.Client(base_url=workbench.url) as client:
            r = _sign_in(client, "alice", next_url=target)
            assert r.status_code == 303 and r.headers["location"] == expected, target


def test_the_cookie_is_secure_behind_tls_and_lax_always(workbench: Workbench) -> None:
    with httpx.Client(base_url=workbench.url) as client:
        plain = _sign_in(client, "alice").headers["set-cookie"]
    with httpx.Client(base_url=workbench.url) as client:  # a TLS-terminating proxy on loopback says https
        tls = _sign_in(client, "alice", **{"X-Forwarded-Proto": "https"}).headers["set-cookie"]
    for cookie in (plain, tls):
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" in tls and "Secure" not in plain


def test_disabling_a_user_ends_their_session_at_once(workbench: Workbench) -> None:
    with workbench.rt.sessions() as s, s.begin():
        users.add_user(s, name="dora", role="agent", teams=["complaints"])
        from casestore.signin.passwords import set_password

        set_password(s, name="dora", password=PASSWORD)
    with httpx.Client(base_url=workbench.url) as client:
        assert _sign_in(client, "dora").status_code == 303
        assert client.get(f"/cases/{COMPLAINT}").status_code == 200
        with workbench.rt.sessions() as s, s.begin():
            users.get_user(s, name="dora").disabled = True
        r = client.get(f"/cases/{COMPLAINT}")
        assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_every_page_sends_a_strict_csp(workbench: Workbench) -> None:
    with httpx.Client(base_url=workbench.url) as client:
        login = client.get("/login")
        _sign_in(client, "alice")
        for response in (login, client.get("/"), client.get(f"/cases/{COMPLAINT}"), client.get("/search?q=x"),
                         client.get("/triage"), client.get("/ops"), client.get("/cases/NOPE-1")):
            csp = response.headers["content-security-policy"]
            assert "default-src 'self'" in csp and "script-src 'self';" in csp and "unsafe" not in csp
            assert response.headers["x-content-type-options"] == "nosniff"
        hx = client.get(f"/cases/{COMPLAINT}/timeline", headers={"HX-Request": "true"})
        assert hx.status_code == 200
    with httpx.Client(base_url=workbench.url) as anonymous:
        hx = anonymous.get(f"/cases/{COMPLAINT}/timeline", headers={"HX-Request": "true"})
        assert hx.status_code == 401 and hx.headers["hx-redirect"].startswith("/login")


def test_an_item_id_typed_into_search_finds_the_item(workbench: Workbench) -> None:
    item_id = workbench.items["complaint_pdf"]
    with httpx.Client(base_url=workbench.url) as client:
        _sign_in(client, "alice")
        page = client.get("/search", params={"q": item_id}).text
        assert item_id in page and f'href="/cases/{COMPLAINT}"' in page and "/documents/" in page


def test_operations_shows_intake_dead_letters_and_backlog(workbench: Workbench) -> None:
    from datetime import UTC, datetime, time

    from casestore import intake_stats, items

    today = datetime.combine(datetime.now(UTC).date(), time(), tzinfo=UTC)
    with workbench.rt.sessions() as s, s.begin():
        before = intake_stats.failed_since(s, since=today)  # other modules' dead letters of today
        items.record_failure(s, item_id="dead0001-0000-0000-0000-000000000000", stage="extract",
                             error_class="BadInput", message="PDF is encrypted and no configured password opens it",
                             source="/srv/drop/scan-17.pdf")
    with httpx.Client(base_url=workbench.url) as client:
        _sign_in(client, "alice")
        page = client.get("/ops").text
    intake = page[page.index('id="intake-title"'):page.index('id="conn-title"')]
    assert re.search(r'<th scope="row">email</th>(<td class="num">\d+</td>){5}', intake)
    assert f"Failed today (dead-lettered): <strong>{before + 1}</strong>" in page
    dead = page[page.index('id="dead-title"'):page.index('id="backlog-title"')]
    assert "scan-17.pdf" in dead and "<td>extract</td>" in dead and "PDF is encrypted" in dead
    assert "dead0001" in dead
