"""Turning inbound bytes into a stored blob and a ``RawItem`` on ``intake.raw``.

Used by every way in: the connectors, ``casework ingest`` and the upload API. The idempotency
key is channel + source id (an email's Message-ID; otherwise the content's sha256), and the
item id is derived from it, so the same thing arriving twice is the same item.

Keys a *user* supplies (the upload API's ``source_id``, or a Message-ID inside an uploaded
email) are namespaced by who supplied them: ``api:user:<name, percent-encoded>:<key>``
(``upload_key_namespace``).  So no uploader can claim another source's key (the mailroom's, a
real email's Message-ID, a Twilio SID) nor another uploader's, and a "duplicate" answer only
ever names the uploader's own item.  The connectors' keys (IMAP, SMTP, Twilio, fax, drops,
folders, ``casework ingest``) have no namespace and are unchanged, so items stored before the
namespace existed are still recognised.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from urllib.parse import quote

from ingest.blobs import BlobRef, BlobStore
from ingest.bus.port import Bus
from ingest.errors import BadInput
from ingest.messages import TOPIC_RAW, Channel, RawItem, encode, item_id_for, utcnow

EMAIL_EXTENSIONS = frozenset({".eml", ".msg", ".mbox"})
SCAN_EXTENSIONS = frozenset({".tif", ".tiff", ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".pdf"})
FILE_EXTENSIONS = frozenset({".xml", ".csv", ".tsv", ".json", ".jsonl", ".html", ".htm", ".txt", ".ccd"})
CHANNELS: tuple[Channel, ...] = ("email", "scan", "file", "sms", "fax", "webform", "api", "call")
#: Metadata key set only by casework itself, for items whose metadata a configured system or an
#: integration account wrote (drops, call records, integration uploads): only then may a
#: ``customer_id`` in it identify the customer.  Anything a sender supplies under it is dropped.
TRUSTED_BY = "trusted_by"

_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(.+(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)


_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})  # controls, format (RTL overrides), surrogates, line breaks


def printable(text: str) -> str:
    """A name from the file system (or a sender) as printable UTF-8 text on one line.

    On POSIX a file name is bytes; Python hands ones that are not UTF-8 over with surrogate escapes
    (``os.fsdecode``: ``caf\\udce9.txt``), which no JSON encoder, database or UTF-8 log accepts. Those
    bytes become ``\\xe9``; control and format characters (a newline, a right-to-left override) their
    escapes, so the name stays recognisable; ordinary names, accents and all, are returned unchanged.
    """
    if text.isprintable():
        return text
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that is not an escaped byte
        raw = text.encode("utf-8", "surrogatepass")
    decoded = raw.decode("utf-8", "backslashreplace")
    return "".join(ascii(c)[1:-1] if unicodedata.category(c) in _HIDDEN else c for c in decoded)


def infer_channel(path: Path) -> Channel:
    """.eml/.msg: email; images, TIFF, PDF: scan; XML/CSV/JSON/HTML and anything else: file."""
    ext = path.suffix.lower()
    if ext in EMAIL_EXTENSIONS:
        return "email"
    if ext in SCAN_EXTENSIONS:
        return "scan"
    return "file"


def email_message_id(data: bytes) -> str | None:
    """The Message-ID from an email's header block (before the first blank line), without brackets."""
    head = re.split(rb"\r?\n\r?\n|\r\r", data[:65536], maxsplit=1)[0]
    m = _MESSAGE_ID.search(head)
    if not m:
        return None
    value = re.sub(rb"\s+", b"", m.group(1)).decode("ascii", errors="replace").strip("<>")
    return value or None


def upload_source(user: str) -> str:
    """An upload's ``source``: ``api:<user name>`` (casestore.access reads the uploader from it)."""
    return f"api:{user}"


def upload_key_namespace(user: str) -> str:
    """The namespace of the idempotency keys the user ``user`` supplies through the upload API.
    The name is percent-encoded, so no name can end where another's key begins."""
    return f"api:user:{quote(user, safe='')}"


def idempotency_key(channel: str, sha256: str, data: bytes, source_id: str | None = None,
                    namespace: str | None = None) -> str:
    """``channel:source_id``, else ``email:msgid:<Message-ID>`` for an email, else
    ``channel:sha256:<hex>``; prefixed with ``namespace:`` when one is given (user-supplied keys)."""
    key = _bare_key(channel, sha256, data, source_id)
    return f"{namespace}:{key}" if namespace else key


def _bare_key(channel: str, sha256: str, data: bytes, source_id: str | None) -> str:
    if source_id:
        return f"{channel}:{source_id}"
    if channel == "email":
        mid = email_message_id(data)
        if mid:
            return f"email:msgid:{mid}"
    return f"{channel}:sha256:{sha256}"


def make_raw_item(
    *,
    blobs: BlobStore,
    data: bytes,
    channel: Channel,
    filename: str | None,
    source: str,
    content_type: str | None = None,
    source_id: str | None = None,
    metadata: Mapping[str, str] | None = None,
    key_namespace: str | None = None,
) -> RawItem:
    """Store ``data`` and describe it as a RawItem (not yet published).  ``key_namespace``: see
    ``upload_key_namespace``; the item id is derived from the namespaced key."""
    check_channel(channel)
    return describe_raw_item(blobs.put(data), data, channel=channel, filename=filename, source=source,
                             content_type=content_type, source_id=source_id, metadata=metadata,
                             key_namespace=key_namespace)


def check_channel(channel: str) -> None:
    if channel not in CHANNELS:
        raise BadInput(f"unknown channel {channel!r}: choose one of {', '.join(CHANNELS)}")


def describe_raw_item(
    ref: BlobRef,
    data: bytes,
    *,
    channel: Channel,
    filename: str | None,
    source: str,
    content_type: str | None = None,
    source_id: str | None = None,
    metadata: Mapping[str, str] | None = None,
    key_namespace: str | None = None,
) -> RawItem:
    """The RawItem for ``data``, already stored as ``ref`` (``BlobStore.put`` or ``put_many``); names and
    metadata made ``printable``."""
    key = idempotency_key(channel, ref.sha256, data, printable(source_id) if source_id is not None else None,
                          key_namespace)
    return RawItem(
        item_id=item_id_for(key), channel=channel, received_at=utcnow(), idempotency_key=key,
        blob_sha256=ref.sha256, size=ref.size, filename=printable(filename) if filename is not None else None,
        content_type=content_type, source=printable(source),
        metadata={printable(k): printable(v) for k, v in (metadata or {}).items()},
    )


def publish_raw(bus: Bus, items: Iterable[RawItem]) -> int:
    """Publish RawItems keyed by item_id and make them durable; returns how many."""
    n = 0
    for item in items:
        bus.publish(TOPIC_RAW, key=item.item_id, value=encode(item))
        n += 1
    bus.flush()
    return n


def expand_paths(paths: Iterable[Path]) -> Iterator[Path]:
    """Files given, and every file under folders given (sorted, hidden files skipped)."""
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and not any(part.startswith(".") for part in child.relative_to(path).parts):
                    yield child
        else:
            yield path
