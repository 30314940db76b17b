"""The media fetch guard (issue 16, point 1) against a real HTTP server on loopback.

The server stands in for an internal page: every refused fetch must leave its connection count at
zero. Loopback is allowed only where a test says so explicitly (``allow_private``), as a stand-in
for a provider's public host.
"""

from __future__ import annotations

import base64
import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

from connectors.fax import fetch_media as fax_media
from connectors.media_fetch import FetchPolicy, MediaRefused, MediaUnavailable, fetch, host_allowed, is_public
from connectors.settings import FaxSettings, TwilioSettings
from connectors.twilio_sms import media_policy
from tests.connectors.standin import stand_in

SID, TOKEN = "AC" + "1" * 32, "secret-auth-token"
AUTH = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
ADMIN = (200, "text/plain", b"admin panel config")


@pytest.mark.parametrize("path", ["http://127.0.0.1:{port}/admin", "https://127.0.0.1:{port}/admin",
                                  "https://localhost:{port}/admin", "http://[::ffff:127.0.0.1]:{port}/admin",
                                  "https://api.twilio.com@127.0.0.1:{port}/admin"])
def test_twilio_default_policy_never_connects_to_an_internal_address(path: str) -> None:
    with stand_in({("GET", "/admin"): ADMIN}) as internal:
        port = internal.url.rsplit(":", 1)[1]
        policy = media_policy(TwilioSettings(account_sid=SID, auth_token=TOKEN))
        with pytest.raises(MediaRefused):
            fetch(path.format(port=port), policy)
        assert internal.connections == 0 and internal.requests == []


def test_an_allowed_name_that_resolves_to_loopback_is_refused_before_connecting() -> None:
    with stand_in({("GET", "/admin"): ADMIN}) as internal:
        port = internal.url.rsplit(":", 1)[1]
        policy = FetchPolicy(hosts=("localhost",), auth=(SID, TOKEN))  # on the list, but not a public address
        with pytest.raises(MediaRefused, match="loopback"):
            fetch(f"https://localhost:{port}/admin", policy)
        with pytest.raises(MediaRefused):  # the fax default: no host list, any https host, public addresses only
            fax_media(FaxSettings(), f"https://127.0.0.1:{port}/admin")
        assert internal.connections == 0


def test_allowed_fetch_sends_credentials_to_the_api_host_only_and_rechecks_each_redirect() -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"x" * 100
    with stand_in({}) as provider:
        port = provider.url.rsplit(":", 1)[1]
        provider.routes.update({("GET", "/Media/ME1"): (307, "", b"/cdn-hop"),  # relative, same host
                                ("GET", "/cdn-hop"): (302, "", f"http://localhost:{port}/cdn/ME1".encode()),
                                ("GET", "/cdn/ME1"): (200, "image/png", png)})
        policy = FetchPolicy(hosts=("127.0.0.1",), redirect_hosts=("localhost",), credential_hosts=("127.0.0.1",),
                             auth=(SID, TOKEN), allow_private=True)
        got = fetch(f"{provider.url}/Media/ME1", policy)
        assert got.data == png and got.content_type == "image/png"
        assert got.url == f"http://localhost:{port}/cdn/ME1"
        seen = [(r.path, r.headers.get("Authorization"), r.headers.get("Host")) for r in provider.requests]
        assert seen == [("/Media/ME1", AUTH, f"127.0.0.1:{port}"), ("/cdn-hop", AUTH, f"127.0.0.1:{port}"),
                        ("/cdn/ME1", None, f"localhost:{port}")], "credentials only to the API host"


def test_a_redirect_off_the_allow_list_is_not_followed() -> None:
    with stand_in({}) as provider:
        port = provider.url.rsplit(":", 1)[1]
        provider.routes[("GET", "/Media/ME2")] = (302, "", f"http://localhost:{port}/internal".encode())
        policy = FetchPolicy(hosts=("127.0.0.1",), auth=(SID, TOKEN), allow_private=True)
        with pytest.raises(MediaRefused, match="not on the allow-list"):
            fetch(f"{provider.url}/Media/ME2", policy)
        assert [r.path for r in provider.requests] == ["/Media/ME2"]


def test_size_cap_and_error_answers() -> None:
    with stand_in({("GET", "/big"): (200, "image/png", b"x" * 5000), ("GET", "/down"): (503, "text/plain", b"")}) as p:
        policy = FetchPolicy(hosts=("127.0.0.1",), allow_private=True, max_bytes=4000)
        with pytest.raises(MediaRefused, match="over the limit"):
            fetch(f"{p.url}/big", policy)
        with pytest.raises(MediaUnavailable, match="503"):
            fetch(f"{p.url}/down", policy)
        with pytest.raises(MediaRefused, match="not https"):
            fetch(f"{p.url}/big", FetchPolicy(hosts=("127.0.0.1",)))


@pytest.mark.parametrize(("address", "public"), [
    ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("224.0.0.1", False),
    ("::1", False), ("fe80::1", False), ("fd00::1", False), ("::ffff:127.0.0.1", False), ("::ffff:10.0.0.1", False),
    ("54.172.60.1", True), ("2600:1f18::1", True)])
def test_which_addresses_count_as_public(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


def test_host_patterns() -> None:
    assert host_allowed("media.twiliocdn.com", ("*.twiliocdn.com",))
    assert host_allowed("API.Twilio.com.", ("api.twilio.com",))
    assert not host_allowed("twiliocdn.com.evil.example", ("*.twiliocdn.com",))
    assert not host_allowed("eviltwiliocdn.com", ("*.twiliocdn.com",))
    assert not host_allowed("api.twilio.com.evil.example", ("api.twilio.com",))


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_https_goes_to_the_checked_address_and_verifies_the_certificate_for_the_name(tmp_path: Path) -> None:
    """The connection is pinned to the address that was checked, while TLS still names the host
    (server name indication) and checks the certificate against it."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    names: list[str | None] = []

    def remember(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        names.append(name)

    server_ctx.sni_callback = remember  # type: ignore[assignment]
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    hosts: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            try:
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    hosts.append(next(h for h in tls.recv(65536).split(b"\r\n") if h.lower().startswith(b"host:")))
                    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 2\r\n\r\nok")
            except (OSError, StopIteration):
                conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        trusting = ssl.create_default_context(cafile=str(cert))
        policy = FetchPolicy(hosts=("localhost",), allow_private=True, verify=trusting)
        assert fetch(f"https://localhost:{port}/m", policy).data == b"ok"
        assert names == ["localhost"] and hosts == [f"Host: localhost:{port}".encode()]
        with pytest.raises(MediaUnavailable, match="CERTIFICATE_VERIFY_FAILED"):  # the system's CAs: not trusted
            fetch(f"https://localhost:{port}/m", FetchPolicy(hosts=("localhost",), allow_private=True))
        with pytest.raises(MediaUnavailable, match="CERTIFICATE_VERIFY_FAILED"):  # not the name on the certificate
            fetch(f"https://127.0.0.1:{port}/m", FetchPolicy(hosts=("127.0.0.1",), allow_private=True,
                                                              verify=trusting))
    finally:
        listener.close()
