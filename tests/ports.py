"""Loopback TCP ports for the test servers (Tansu, moto, dovecot, the OpenID provider, uvicorn...).

A test asks for a free port, then starts a server that binds it a moment later.  ``bind(0)`` would
hand out a port from the kernel's ephemeral range, where, under pytest-xdist and beside other
test runs on the machine, an outgoing connection's source port or another process's ``bind(0)``
can take it in that moment.  So the ports come from below the ephemeral range
(``/proc/sys/net/ipv4/ip_local_port_range``), in a band of their own for each xdist worker
(``PYTEST_XDIST_WORKER``), picked at random in the band (another run on the machine walks its
own random sequence), and checked: not listening, and bindable without ``SO_REUSEADDR`` (so
not in TIME_WAIT from a server of an earlier test either).
"""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path

_LOWEST = 10000
_BANDS = 8  # xdist workers gw0..gw7 get disjoint bands; gw8 shares gw0's, still checked
_given: set[int] = set()  # ports this process handed out (a server may not have bound one yet)


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _band() -> range:
    top = max(_LOWEST + 2 * _BANDS * 100, _ephemeral_low())
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return range(_LOWEST, top)
    width = (top - _LOWEST) // _BANDS
    start = _LOWEST + (int(worker[2:]) % _BANDS) * width
    return range(start, start + width)


def _usable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return False  # someone listens on the wildcard address
    except OSError:
        return True


def free_port() -> int:
    """A loopback port nobody uses now, outside the ephemeral range, not handed out before by this process."""
    band = _band()
    rng = random.Random()
    for _ in range(200):
        port = rng.choice(band)
        if port not in _given and _usable(port):
            _given.add(port)
            if len(_given) > len(band) // 2:
                _given.clear()
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # a crowded band: the kernel's pick
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
