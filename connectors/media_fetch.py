"""Fetching media a webhook names (Twilio ``MediaUrl{i}``, a fax provider's ``media_url``) without
letting the webhook point casework at internal addresses (server-side request forgery).

Every hop, the first URL and each redirect, is checked before anything connects:

- its host must be on the policy's allow-list (``api.twilio.com``, ``*.twiliocdn.com``: exact names
  or ``*.`` suffixes; an empty list allows any host) and the URL must be ``https`` and carry no
  user:password;
- the host is resolved once, and if any address it resolves to is not a public unicast address
  (private, loopback, link-local, carrier-grade NAT, multicast, reserved), the fetch is refused;
- the connection goes to the address that was checked (the URL's host is swapped for it, with the
  name kept in ``Host`` and, for https, in the TLS server name and certificate check), so a DNS
  answer that changes between the check and the connect (DNS rebinding) cannot swap it;
- redirects are followed by hand, each re-checked the same way (up to ``max_redirects``);
- the credentials go only to the policy's ``credential_hosts`` (the first URL's host when that is
  empty) over https: never to a redirect target elsewhere;
- the body is capped at ``max_bytes`` (a bigger ``Content-Length`` is refused before reading) and
  the whole fetch at ``timeout_s``.

``allow_private`` lifts the address check and allows plain http: an escape hatch for tests and
for an on-premises provider stand-in, never for the internet-facing default. Environment proxy
variables are ignored (a proxy would connect to a name we did not check).

``MediaRefused`` means this URL is never fetched (a retry cannot help); ``MediaUnavailable`` means
the provider did not deliver it now (connection error, timeout, an HTTP error answer).
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import socket
import ssl
import time
from dataclasses import dataclass

import httpx

from ingest.errors import BadInput, Unavailable

log = logging.getLogger(__name__)

REDIRECTS = (301, 302, 303, 307, 308)


class MediaRefused(BadInput):
    """The media URL, or a redirect from it, is not one casework fetches; the reason says which rule."""


class MediaUnavailable(Unavailable):
    """The provider did not deliver the media (network error, timeout, error status); try again later."""

    http_status = 502


@dataclass(frozen=True)
class FetchPolicy:
    hosts: tuple[str, ...] = ()
    redirect_hosts: tuple[str, ...] = ()
    credential_hosts: tuple[str, ...] = ()
    auth: tuple[str, str] | None = None
    allow_private: bool = False
    max_bytes: int = 10 * 1024 * 1024
    timeout_s: float = 20.0
    max_redirects: int = 5
    verify: ssl.SSLContext | bool = True  # the TLS trust: the system's CAs unless a context is given


@dataclass(frozen=True)
class Media:
    data: bytes
    content_type: str
    url: str


def host_allowed(host: str, patterns: tuple[str, ...]) -> bool:
    """``host`` equals a pattern, or ends in ``.suffix`` for a pattern ``*.suffix`` (case-insensitive)."""
    host = host.lower().rstrip(".")
    for pattern in patterns:
        p = pattern.lower().strip().rstrip(".")
        if p.startswith("*.") and host.endswith(p[1:]) and len(host) > len(p) - 1:
            return True
        if host == p:
            return True
    return False


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """A public unicast address (an IPv4-mapped IPv6 address is judged as the IPv4 one)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def resolve_checked(host: str, port: int, *, allow_private: bool) -> str:
    """The address to connect to for ``host``; MediaRefused if any of its addresses is not public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise MediaUnavailable(f"cannot resolve {host}: {exc}") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses:
        raise MediaUnavailable(f"{host} has no address")
    if not allow_private:
        for address in addresses:
            if not is_public(address):
                raise MediaRefused(f"{host} resolves to {address}, a private, loopback, link-local or reserved "
                                   "address: media is fetched only from public addresses")
    return str(addresses[0])


def _check_url(url: httpx.URL, allowed: tuple[str, ...], policy: FetchPolicy, what: str) -> str:
    if url.scheme not in ("https", "http") or (url.scheme == "http" and not policy.allow_private):
        raise MediaRefused(f"{what} {url.scheme}://{url.host} is not https")
    if url.userinfo:
        raise MediaRefused(f"{what} carries a user name or password in the URL")
    host = url.host
    if not host:
        raise MediaRefused(f"{what} has no host")
    if allowed and not host_allowed(host, allowed):
        raise MediaRefused(f"{what} host {host} is not on the allow-list ({', '.join(allowed)})")
    return host


def fetch(url: str, policy: FetchPolicy) -> Media:
    """GET ``url`` under ``policy``: the body, its content type and the URL that answered."""
    try:
        current = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise MediaRefused(f"the media URL is not a URL: {exc}") from None
    deadline = time.monotonic() + policy.timeout_s
    credential_hosts = policy.credential_hosts or ((current.host,) if current.host else ())
    timeout = httpx.Timeout(policy.timeout_s)
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False, verify=policy.verify) as http:
        for hop in range(policy.max_redirects + 1):
            what = "the media URL" if hop == 0 else "a redirect to"
            allowed = policy.hosts if hop == 0 else (policy.hosts + policy.redirect_hosts if policy.hosts else ())
            host = _check_url(current, allowed, policy, what)
            port = current.port or (443 if current.scheme == "https" else 80)
            address = resolve_checked(host, port, allow_private=policy.allow_private)
            headers = {"Host": current.netloc.decode("ascii")}
            if policy.auth is not None and host_allowed(host, credential_hosts) and (
                    current.scheme == "https" or policy.allow_private):
                user, password = policy.auth
                headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            extensions = {"sni_hostname": host} if current.scheme == "https" else {}
            request = http.build_request("GET", current.copy_with(host=address), headers=headers,
                                         extensions=extensions)
            try:
                response = http.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise MediaUnavailable(f"could not fetch {host}: {type(exc).__name__}: {exc}") from None
            try:
                if response.status_code in REDIRECTS:
                    location = response.headers.get("location", "")
                    if not location:
                        raise MediaUnavailable(f"{host} answered {response.status_code} without a Location")
                    current = current.join(location)
                    continue
                if response.status_code >= 400:
                    raise MediaUnavailable(f"{host} answered {response.status_code} for the media")
                return Media(_read_capped(response, policy, deadline), _content_type(response), str(current))
            finally:
                response.close()
    raise MediaRefused(f"more than {policy.max_redirects} redirects")


def _read_capped(response: httpx.Response, policy: FetchPolicy, deadline: float) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > policy.max_bytes:
        raise MediaRefused(f"media of {declared} bytes is over the limit of {policy.max_bytes}")
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > policy.max_bytes:
                raise MediaRefused(f"media over the limit of {policy.max_bytes} bytes")
            if time.monotonic() > deadline:
                raise MediaUnavailable(f"media not received within {policy.timeout_s:g} s")
            chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise MediaUnavailable(f"media transfer broke off: {type(exc).__name__}: {exc}") from None
    return b"".join(chunks)


def _content_type(response: httpx.Response) -> str:
    return response.headers.get("content-type", "application/octet-stream").split(";")[0].strip()
