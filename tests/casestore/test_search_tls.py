"""A secured search server (OpenSearch's security plugin: HTTPS with a private CA, basic auth),
reached with the search settings' user, password and CA file. The server is osmem behind a loopback
TLS proxy that asks for a password, as the security plugin does (test setup only; see conftest)."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import ssl
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from osmem_server import OsmemServer

from api.settings import Settings
from casestore.search.errors import InvalidSearch, SearchError, SearchUnavailable
from casestore.search.factory import ServerAccess, open_search_index
from tests.casestore.conftest import _EsCompatProxy, _ProxyHandler

USER, PASSWORD = "admin", "Secret-pass-123"


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None, signer: ec.EllipticCurvePrivateKey,
          *, ca: bool) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        loopback = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
        builder = builder.add_extension(x509.SubjectAlternativeName([loopback]), critical=False)
    return builder.sign(signer, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) as PEM files."""
    where = tmp_path_factory.mktemp("pki")
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _cert("casework test CA", ca_key, None, ca_key, ca=True)
    server = _cert("127.0.0.1", server_key, ca.subject, ca_key, ca=False)
    paths = where / "ca.pem", where / "server.pem", where / "server-key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    return paths


class _AuthHandler(_ProxyHandler):
    def _forward(self) -> None:
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="security"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super()._forward()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward


@pytest.fixture(scope="module")
def secured_url(pki: tuple[Path, Path, Path]) -> Iterator[str]:
    """https://127.0.0.1:PORT: TLS with the test CA's certificate, basic auth required, osmem behind."""
    server = OsmemServer.start(japanese=False, addr="127.0.0.1:0")
    proxy = _EsCompatProxy(server.url)
    proxy.RequestHandlerClass = _AuthHandler
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki[1], pki[2])
    proxy.socket = context.wrap_socket(proxy.socket, server_side=True)
    thread = threading.Thread(target=proxy.serve_forever, name="tls-proxy", daemon=True)
    thread.start()
    yield f"127.0.0.1:{proxy.server_address[1]}"
    proxy.shutdown()
    proxy.server_close()
    server.close()


@pytest.mark.parametrize("kind", ["opensearch", "elasticsearch"])
def test_the_user_password_and_ca_file_reach_a_secured_server(
        kind: str, secured_url: str, pki: tuple[Path, Path, Path], tmp_path: Path) -> None:
    name = f"cw-tls-{uuid.uuid4().hex[:8]}"
    index = open_search_index(f"{kind}+https://{secured_url}/{name}", tmp_path,
                              ServerAccess(username=USER, password=PASSWORD, ca_certs=str(pki[0])))
    try:
        assert bool(index.client.indices.exists(index=name)) is True  # type: ignore[attr-defined]  # created through it
    finally:
        index.close()


@pytest.mark.parametrize("kind", ["opensearch", "elasticsearch"])
def test_an_unknown_ca_or_a_wrong_password_is_refused(
        kind: str, secured_url: str, pki: tuple[Path, Path, Path], tmp_path: Path) -> None:
    url = f"{kind}+https://{secured_url}/cw-tls-refused"
    with pytest.raises(SearchUnavailable, match=r"(?i)certificate verify failed"):
        open_search_index(url, tmp_path, ServerAccess(username=USER, password=PASSWORD))  # the system's CAs
    with pytest.raises(SearchError, match=r"refused to create the index.*401"):
        open_search_index(url, tmp_path, ServerAccess(username=USER, password="wrong", ca_certs=str(pki[0])))


def test_settings_carry_the_access_and_a_missing_ca_file_says_so(
        monkeypatch: pytest.MonkeyPatch, secured_url: str, pki: tuple[Path, Path, Path], tmp_path: Path) -> None:
    monkeypatch.setenv("CASEWORK_SEARCH__URL", f"opensearch+https://{secured_url}")
    monkeypatch.setenv("CASEWORK_SEARCH__USERNAME", USER)
    monkeypatch.setenv("CASEWORK_SEARCH__PASSWORD", PASSWORD)
    monkeypatch.setenv("CASEWORK_SEARCH__CA_CERTS", str(pki[0]))
    settings = Settings()
    index = open_search_index(settings.search.url, tmp_path, settings.search.access())
    assert index.client.indices.exists(index="casework-documents") is True  # type: ignore[attr-defined]
    index.close()
    with pytest.raises(InvalidSearch, match="does not exist"):
        open_search_index(settings.search.url, tmp_path, ServerAccess(ca_certs=str(tmp_path / "missing.pem")))
