"""Signing in through a real OpenID Connect provider (PyPI ``oidc-provider-mock``, authlib-based,
on a loopback port): the authorization-code flow with PKCE and a nonce, the ID token verified
against the provider's keys, and the claim that names the casework user.  A casework app of its
own (no pipeline) under uvicorn; the person at the provider is played by httpx posting the
provider's consent form, and once by Chromium clicking through it."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from api.settings import OidcSettings, Settings, WebSettings
from api.wiring import open_runtime
from casestore import users
from tests.connectors.conftest import free_port
from tests.web.conftest import serve_app

PROVIDER_USERS = [
    {"sub": "u-1", "preferred_username": "olive", "email": "olive@example.com"},
    {"sub": "u-2", "preferred_username": "Pat", "email": "pat@example.com"},  # casework has "pat"
    {"sub": "u-3", "preferred_username": "quentin", "email": "q@example.com"},  # no casework user
    {"sub": "u-4", "preferred_username": "ronja", "email": "r@example.com"},  # disabled in casework
    {"sub": "u-5", "preferred_username": "robot", "email": "robot@example.com"},  # an integration account
]


@dataclass
class Site:
    url: str
    provider: str


def _provider(port: int) -> Iterator[str]:
    args = [str(Path(sys.executable).with_name("oidc-provider-mock")), "-H", "127.0.0.1", "-p", str(port),
            "--require-nonce", "true"]
    for claims in PROVIDER_USERS:
        args += ["--user-claims", json.dumps(claims)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/.well-known/openid-configuration", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            pytest.fail("the OpenID Connect provider did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    provider_gen = _provider(free_port())
    provider = next(provider_gen)
    oidc = OidcSettings(issuer=provider, client_id="casework", client_secret=SecretStr("s3cret"),
                        label="Sign in with Example ID")
    rt = open_runtime(Settings(data_dir=tmp_path_factory.mktemp("oidc") / "data", web=WebSettings(oidc=oidc)))
    with rt.sessions() as s, s.begin():
        for name, role in (("olive", "agent"), ("pat", "supervisor"), ("ronja", "agent"), ("robot", "integration")):
            users.add_user(s, name=name, role=role, teams=["complaints"])
        users.get_user(s, name="ronja").disabled = True
    url, stop = serve_app(rt)
    yield Site(url=url, provider=provider)
    stop()
    rt.close()
    provider_gen.close()


def _through_provider(client: httpx.Client, site: Site, sub: str, next_url: str = "/") -> httpx.Response:
    """Start at casework, consent at the provider as ``sub``, and return casework's answer to the
    callback (not followed)."""
    start = client.get(site.url + "/login/oidc", params={"next": next_url})
    assert start.status_code in (302, 303, 307), start.text
    authorize = start.headers["location"]
    assert authorize.startswith(site.provider)
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"] and query["nonce"] and query["state"], "PKCE, nonce, state"
    consent = client.post(authorize, data={"sub": sub})
    assert consent.status_code in (302, 303), consent.text
    back = consent.headers["location"]
    assert back.startswith(site.url + "/login/oidc/callback")
    return client.get(back)


def test_the_sign_in_page_offers_the_provider(site: Site) -> None:
    page = httpx.get(site.url + "/login")
    assert page.status_code == 200 and "Sign in with Example ID" in page.text
    assert 'href="/login/oidc?next=/"' in page.text or 'href="/login/oidc?next=%2F"' in page.text


def test_a_known_user_signs_in_and_lands_where_they_were_going(site: Site) -> None:
    with httpx.Client() as client:
        done = _through_provider(client, site, "u-1", next_url="/search")
        assert done.status_code == 303 and done.headers["location"] == "/search"
        assert "cw_session" in client.cookies
        home = client.get(site.url + "/")
        assert home.status_code == 200 and "olive" in home.text
        # the session is an ordinary workbench session: sign-out needs the page's CSRF token
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', home.text)
        assert csrf is not None
        assert client.post(site.url + "/logout", data={"csrf_token": csrf.group(1)}).status_code == 303
        assert client.get(site.url + "/").status_code == 303


def test_names_match_case_insensitively_when_unambiguous(site: Site) -> None:
    with httpx.Client() as client:
        assert _through_provider(client, site, "u-2").status_code == 303
        assert "pat" in client.get(site.url + "/").text


@pytest.mark.parametrize(("sub", "reason"), [
    ("u-3", "there is no casework user 'quentin'"),
    ("u-4", "'ronja' is disabled"),
    ("u-5", "integration account"),
])
def test_provider_users_without_a_casework_user_are_refused(site: Site, sub: str, reason: str) -> None:
    with httpx.Client() as client:
        refused = _through_provider(client, site, sub)
        assert refused.status_code == 403 and reason in html.unescape(refused.text)
        assert "cw_session" not in client.cookies
        assert client.get(site.url + "/").status_code == 303, "not signed in"


def test_a_callback_with_a_forged_or_replayed_state_is_refused(site: Site) -> None:
    with httpx.Client() as client:
        start = client.get(site.url + "/login/oidc")
        authorize = start.headers["location"]
        back = client.post(authorize, data={"sub": "u-1"}).headers["location"]
        forged = re.sub(r"state=[^&]+", "state=forged", back)
        assert client.get(forged).status_code == 400
        assert "cw_session" not in client.cookies
    with httpx.Client() as attacker:  # a callback URL carried to another browser (login CSRF)
        assert attacker.get(back).status_code == 400
        assert "cw_session" not in attacker.cookies
    with httpx.Client() as client:
        assert _through_provider(client, site, "u-1").status_code == 303
    with httpx.Client() as client:  # the provider says no
        start = client.get(site.url + "/login/oidc")
        denied = client.post(start.headers["location"], data={"action": "deny"})
        answer = client.get(denied.headers["location"])
        assert answer.status_code == 401 and "did not sign you in" in html.unescape(answer.text)


def test_in_a_real_browser(site: Site, browser: Any) -> None:
    context = browser.new_context()  # the package's one Chromium (a second sync Playwright cannot start beside it)
    try:
        page: Any = context.new_page()
        page.goto(site.url + "/search")
        assert "/login" in page.url
        page.click("#oidc-sign-in")
        page.wait_for_url(site.provider + "/**")
        page.get_by_role("button", name="u-1").click()
        page.wait_for_url(site.url + "/search*")
        assert "olive" in page.content()
    finally:
        context.close()
