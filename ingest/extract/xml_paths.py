"""Small helpers for reading structured XML by local element names, whatever the namespace prefix."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

_DIGITS_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})")


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1] if tag.startswith("{") else tag


def namespace(tag: str) -> str | None:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else None


def _any_ns(path: str) -> str:
    """'A/B' -> '{*}A/{*}B': ElementTree's namespace wildcard on every step."""
    steps = path.split("/")
    return "/".join(s if s in (".", "..", "*", "") or s.startswith(("{", "[")) else "{*}" + s for s in steps)


def find(element: ET.Element | None, path: str) -> ET.Element | None:
    return None if element is None else element.find(_any_ns(path))


def find_any(element: ET.Element | None, *paths: str) -> ET.Element | None:
    """The element at the first path that exists (never ``a or b``: an element without children is falsy)."""
    for path in paths:
        found = find(element, path)
        if found is not None:
            return found
    return None


def find_all(element: ET.Element | None, path: str) -> list[ET.Element]:
    return [] if element is None else element.findall(_any_ns(path))


def clean(value: str | None) -> str | None:
    """Whitespace folded; None for missing or blank values."""
    if value is None:
        return None
    folded = " ".join(value.split())
    return folded or None


def text(element: ET.Element | None, path: str = ".") -> str | None:
    """The folded text of the first element at ``path`` (all its descendants' text), or None."""
    found = element if path == "." else find(element, path)
    return None if found is None else clean("".join(found.itertext()))


def first(element: ET.Element | None, *paths: str) -> str | None:
    """The text of the first path that has one."""
    for path in paths:
        value = text(element, path)
        if value is not None:
            return value
    return None


def texts(element: ET.Element | None, path: str) -> list[str]:
    return [v for v in (text(e) for e in find_all(element, path)) if v is not None]


def attr(element: ET.Element | None, path: str, name: str) -> str | None:
    found = element if path == "." else find(element, path)
    return None if found is None else clean(found.get(name))


def iso_date(value: str | None) -> str | None:
    """'20150109', '2015-01-09', '2015-01-09T10:00:00+01:00', '20130717114446.302-0500' -> '2015-01-09'.

    Anything else is returned as written (never guessed at).
    """
    if value is None:
        return None
    for pattern in (_ISO_DATE, _DIGITS_DATE):
        match = pattern.match(value)
        if match:
            return "-".join(match.groups())
    return value
