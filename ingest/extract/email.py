"""Email (RFC 5322/MIME, also broken): part 0 is the body, then one Part per attachment; header fields.

Parsed with the standard library (``policy.default``), but every header and body is decoded by our
own charset code, so raw 8-bit headers, unknown or mislabelled charsets and bad transfer encodings
degrade to best-effort text rather than errors.
"""

from __future__ import annotations

import binascii
import logging
import re
from collections.abc import Iterator
from email import policy
from email.headerregistry import BaseHeader
from email.message import Message
from email.parser import BytesParser
from email.policy import Compat32, EmailPolicy
from email.utils import collapse_rfc2231_value

from ingest.extract.charsets import decode_text, detect_codec
from ingest.extract.context import ExtractContext
from ingest.extract.email_flags import classify
from ingest.extract.email_headers import (
    RAW_8BIT,
    addresses,
    decode_words,
    header_date,
    header_text,
    message_ids,
    raw_header,
    unescape_raw,
)
from ingest.extract.folding import fold
from ingest.extract.header_repair import repair_header_block
from ingest.extract.html import decode_html, html_to_text
from ingest.extract.result import Extraction
from ingest.extract.text import normalise_newlines
from ingest.messages import EmailHeaders, Part

log = logging.getLogger(__name__)

_BODY_TYPES = {"text/plain", "text/html", "text/enriched", "text/richtext", "text/x-moz-deleted"}
_SIGNATURES = {
    "application/pkcs7-signature", "application/x-pkcs7-signature", "application/pgp-signature",
}
_FORWARDS = {"message/rfc822", "message/global", "message/news"}
_HEADER_BLOCKS = {"text/rfc822-headers", "message/rfc822-headers", "message/global-headers"}
_UU_BLOCK = re.compile(r"^begin [0-7]{3,4} (?P<name>[^\n]+)\n(?P<body>.*?)^end[ \t]*$", re.M | re.S)


def normalise_line_endings(data: bytes) -> bytes:
    """Mail stored with bare CR (old Mac) line endings is turned into LF so the parser sees lines."""
    bare_cr = data.count(b"\r") - data.count(b"\r\n")
    if bare_cr > data.count(b"\n"):
        return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return data


def _param(part: Message, name: str, header: str = "content-type") -> str | None:
    value = part.get_param(name, header=header)
    if value is None:
        return None
    text = collapse_rfc2231_value(value) if isinstance(value, tuple) else str(value)
    return text.strip() or None


class _RawValues(Compat32):
    """compat32 that hands header values back as stored (raw bytes as surrogate escapes), not as
    ``Header`` objects of charset unknown-8bit."""

    def header_fetch_parse(self, name: str, value: str) -> str:
        return value


_RAW_VALUES = _RawValues()


def _raw_param(part: Message, name: str, header: str, fallback_charset: str | None) -> str | None:
    """A parameter read from the header's raw text, as the parser stored it: ``policy.default``
    decodes parameters itself and turns raw 8-bit bytes into U+FFFD, and decodes RFC 2231 values with
    the narrow codec the label names (Shift_JIS loses what only CP932 has).  The compat32 message
    class keeps both the raw bytes and the RFC 2231 pieces, which our charset code then decodes."""
    raw = raw_header(part, header)
    if raw is None:
        return None
    holder = Message(policy=_RAW_VALUES)
    holder[header] = raw
    value = holder.get_param(name, header=header)
    if value is None:
        return None
    if isinstance(value, tuple):  # RFC 2231: (charset, language, percent-decoded text as Latin-1)
        charset, _language, text = value
        data = text.encode("latin-1", "surrogateescape") if isinstance(text, str) else b""
        return decode_text(data, charset or fallback_charset)[0].strip() or None
    return unescape_raw(str(value), fallback_charset).strip().strip('"').strip() or None


def _filename(part: Message, fallback_charset: str | None) -> str | None:
    name = (_raw_param(part, "filename", "content-disposition", fallback_charset)
            or _raw_param(part, "name", "content-type", fallback_charset))
    if not name:
        return None
    return " ".join(decode_words(name).split()) or None


def _declared_type(part: Message) -> str | None:
    """The content type the sender declared, or None when the header is missing or unparseable."""
    raw = raw_header(part, "content-type")
    if not raw or not re.match(r"\s*[\w.+-]+/[\w.+-]+", raw):
        return None
    return part.get_content_type()


def _payload_bytes(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload
    raw = part.as_bytes(policy=policy.compat32) if hasattr(part, "as_bytes") else b""
    return raw.split(b"\n\n", 1)[1] if b"\n\n" in raw else raw


def _text_of(part: Message, data: bytes, ctype: str, fallback_charset: str | None = None) -> str:
    charset = _param(part, "charset")
    if charset is None and fallback_charset is not None and not data.isascii():
        charset = detect_codec(data, [fallback_charset])  # undeclared 8-bit text: as the headers are, if it fits
    if ctype == "text/html":
        markup, _codec = decode_html(data, charset)
        return html_to_text(markup)
    text, _codec = decode_text(data, charset)
    text = normalise_newlines(text)
    if ctype in ("text/enriched", "text/richtext"):
        text = re.sub(r"<[^<>]{1,40}>", "", text).replace("<<", "<")
    return text


_STUB_WORDS = 40  # a plain alternative this short may be a stub (_Walker._stub_beside_html)
_STUB_NEW_WORDS = 15  # ... when the HTML has at least this many words it lacks


class _Walker:
    """Walks the MIME tree once: body texts of the top-level message, and a flat list of attachments."""

    def __init__(self, ctx: ExtractContext, fallback_charset: str | None) -> None:
        self.ctx = ctx
        self.fallback = fallback_charset
        self.attachments: list[Part] = []
        self.dropped = 0

    def _room(self) -> bool:
        if 1 + len(self.attachments) < self.ctx.limits.max_parts:
            return True
        self.dropped += 1
        return False

    def _attach(self, data: bytes, *, filename: str | None, content_type: str | None, level: int) -> None:
        if not self._room():
            return
        index = 1 + len(self.attachments)
        if level > self.ctx.limits.max_depth:
            sha = self.ctx.blobs.put(data).sha256 if data else None
            self.attachments.append(self.ctx.part(
                index, "attachment", filename=filename, content_type=content_type, blob_sha256=sha,
                error=f"nested more than {self.ctx.limits.max_depth} levels deep (max_depth); stored unread",
            ))
            return
        self.attachments.append(
            fold(index, "attachment", data, filename=filename, content_type=content_type, ctx=self.ctx)
        )

    def walk(self, part: Message, level: int, body: list[str] | None) -> None:
        """``body`` collects the inline texts of the message being read; None means alternatives
        already represented (their texts are skipped, their attachments kept)."""
        if level > self.ctx.limits.max_depth + 1:
            if self._room():
                self.attachments.append(self.ctx.part(
                    1 + len(self.attachments), "attachment", content_type=part.get_content_type(),
                    error=f"MIME structure nested more than {self.ctx.limits.max_depth} levels deep "
                    "(max_depth); this branch was not read",
                ))
            return
        ctype = part.get_content_type()
        if ctype in _FORWARDS and part.is_multipart():
            self._forward(part, level)
            return
        if ctype.startswith("multipart/") and not part.is_multipart():
            recovered = _recover_multipart(part, ctype)
            if recovered is None:
                return  # an empty multipart: nothing was there
            part = recovered
            ctype = part.get_content_type()
        if part.is_multipart() and ctype.startswith("multipart/"):
            children = [c for c in part.get_payload() if isinstance(c, Message)]
            if ctype == "multipart/alternative":
                self._alternative(children, level, body)
            else:
                for child in children:
                    self.walk(child, level + 1, body)
            return
        if ctype in _SIGNATURES:
            return  # a signature is not a document
        filename = _filename(part, self.fallback)
        disposition = (part.get_content_disposition() or "").lower()
        data = _payload_bytes(part)
        if ctype in _BODY_TYPES and body is not None and not filename and disposition != "attachment":
            text = _text_of(part, data, ctype, self.fallback)
            if ctype == "text/plain":
                text = self._uudecoded(text, level)
            body.append(text)
            return
        if ctype in _BODY_TYPES and body is None and not filename and disposition != "attachment":
            return
        if ctype.startswith("message/") and not data.strip():
            return
        if (ctype.startswith("message/") and ctype not in _FORWARDS) or ctype in _HEADER_BLOCKS:
            # delivery-status, disposition-notification, returned headers: header blocks to read as text
            self._attach_text(data, filename=filename or ctype.split("/", 1)[1], content_type=ctype)
            return
        self._attach(data, filename=filename, content_type=_declared_type(part), level=level)

    def _attach_text(self, data: bytes, *, filename: str, content_type: str) -> None:
        if not self._room():
            return
        text = normalise_newlines(decode_text(data)[0])
        self.attachments.append(self.ctx.part(
            1 + len(self.attachments), "attachment", text=text, filename=filename,
            content_type=content_type, blob_sha256=self.ctx.blobs.put(data).sha256,
        ))

    def _alternative(self, children: list[Message], level: int, body: list[str] | None) -> None:
        """The plain-text alternative is read, unless it is empty or a stub that only points at
        the HTML ("This message is in HTML format; see below", "View it in your browser"), which
        holds what the sender wrote: then the richer alternative is read instead."""
        plain = [c for c in children if c.get_content_type() == "text/plain" and not c.is_multipart()]
        chosen: Message | None = None
        if body is not None and plain:
            text = _text_of(plain[0], _payload_bytes(plain[0]), "text/plain", self.fallback)
            if text.strip() and not self._stub_beside_html(text, children):
                body.append(text)
                chosen = plain[0]
        for child in reversed(children):
            if chosen is None and body is not None and child.get_content_type() != "text/plain":
                chosen = child
                self.walk(child, level + 1, body)
        for child in children:
            if child is not chosen and child.is_multipart():
                self.walk(child, level + 1, None)  # attachments inside the other alternatives

    def _stub_beside_html(self, plain: str, children: list[Message]) -> bool:
        """True when ``plain`` is short and an HTML alternative says mostly other things.

        Mail clients derive the plain part from the HTML, so most of the HTML's words are in it; a
        form mailer or a marketing tool writes a line or two instead ("see the form below").  A
        stub: under ``_STUB_WORDS`` words, while the HTML has at least ``_STUB_NEW_WORDS`` distinct
        words the plain part lacks, more than half of its own.  Only a short plain part is
        compared, so an ordinary message's HTML is never converted."""
        if len(plain.split()) >= _STUB_WORDS:
            return False
        html = next((c for c in children if c.get_content_type() == "text/html" and not c.is_multipart()), None)
        if html is None:
            return False
        said = {w.casefold() for w in re.findall(r"\w+", plain)}
        html_words = {w.casefold() for w in re.findall(r"\w+", _text_of(html, _payload_bytes(html), "text/html",
                                                                       self.fallback))}
        new = html_words - said
        return len(new) >= _STUB_NEW_WORDS and 2 * len(new) > len(html_words)

    def _forward(self, part: Message, level: int) -> None:
        inner = part.get_payload(0)
        if not isinstance(inner, Message) or not self._room():
            return
        index = 1 + len(self.attachments)
        placeholder = self.ctx.part(index, "attachment", error="forwarded message being read")
        self.attachments.append(placeholder)
        try:
            raw = inner.as_bytes(policy=policy.compat32)
        except (UnicodeError, LookupError, ValueError, RecursionError):  # recursion: nested hundreds deep
            raw = b""
        sha = self.ctx.blobs.put(raw).sha256 if raw else None
        texts: list[str] = []
        if level > self.ctx.limits.max_depth:
            text, error = "", f"forwarded message nested more than {self.ctx.limits.max_depth} levels deep"
        else:
            self.walk(inner, level + 1, texts)
            text, error = _join(texts), None
        summary = _summary(inner, self.fallback)
        subject = header_text(inner, "subject", self.fallback)
        self.attachments[index - 1] = self.ctx.part(
            index, "attachment", text=(summary + "\n\n" + text).strip() if text or summary else "",
            error=error, filename=_filename(part, self.fallback) or (subject or "forwarded message") + ".eml",
            content_type=part.get_content_type(), blob_sha256=sha,
            fields={"forwarded": True, "subject": subject,
                    "message_id": next(iter(message_ids(raw_header(inner, "message-id"))), None)},
        )

    def _uudecoded(self, text: str, level: int) -> str:
        """Uuencoded files inside a plain-text body become attachments (and leave the body)."""
        if "\nbegin " not in "\n" + text:
            return text
        for match in list(_UU_BLOCK.finditer(text)):
            data = bytearray()
            try:
                for line in match.group("body").splitlines():
                    if line.strip() and line.strip() != "`":
                        data += binascii.a2b_uu(line)
            except binascii.Error:
                continue
            self._attach(bytes(data), filename=match.group("name").strip(), content_type=None, level=level + 1)
            text = text.replace(match.group(0), f"[uuencoded file {match.group('name').strip()}]")
        return text


def _recover_multipart(part: Message, ctype: str) -> Message | None:
    """A multipart whose declared boundary never occurs: re-read it with the first '--' line found."""
    data = _payload_bytes(part)
    if not data.strip():
        return None
    for line in data.splitlines():
        if line.startswith(b"--") and len(line.strip()) > 3:
            boundary = line.strip()[2:]
            head = b'Content-Type: %s; boundary="%s"\n\n' % (ctype.encode(), boundary.replace(b'"', b""))
            recovered = BytesParser(policy=_message_policy()).parsebytes(head + data)
            if recovered.is_multipart():
                return recovered
            break
    text_part = BytesParser(policy=_message_policy()).parsebytes(b"Content-Type: text/plain\n\n" + data)
    return text_part


def _join(texts: list[str]) -> str:
    return "\n\n".join(t.strip("\n") for t in texts if t.strip())


def _summary(msg: Message, fallback: str | None) -> str:
    lines = []
    for name in ("From", "To", "Date", "Subject"):
        value = header_text(msg, name, fallback)
        if value:
            lines.append(f"{name}: {value}")
    return "\n".join(lines)


def _walk(msg: Message) -> Iterator[Message]:
    """``msg.walk()`` without recursion (the standard library's nests a generator per MIME level)."""
    stack = [msg]
    while stack:
        part = stack.pop()
        yield part
        if part.is_multipart():
            stack.extend(reversed([c for c in part.get_payload() if isinstance(c, Message)]))


def _declared_charsets(msg: Message) -> list[str]:
    found: list[str] = []
    for part in _walk(msg):
        charset = _param(part, "charset")
        if charset and charset not in found:
            found.append(charset)
    return found


def _raw_8bit_sample(msg: Message) -> bytes:
    """Every header value (of every part) that holds raw 8-bit bytes, as those bytes."""
    values = [str(v) for part in _walk(msg) for _k, v in part.raw_items()]
    return b"\n".join(v.encode("utf-8", "surrogateescape") for v in values
                      if RAW_8BIT.search(v))


def header_charset(msg: Message) -> str | None:
    """The charset to read raw 8-bit header bytes and file names in (``detect_codec`` on all of
    them at once: a longer sample than one subject), else the first charset the message declares."""
    declared = _declared_charsets(msg)
    sample = _raw_8bit_sample(msg)
    return (detect_codec(sample, declared) if sample else None) or (declared[0] if declared else None)


def email_headers(msg: Message, body: str, fallback: str | None) -> EmailHeaders:
    sender_field = None
    for field in ("from", "sender", "reply-to"):  # From unusable (absent, empty, no address): who else wrote
        sender = addresses(msg, field, fallback)
        if sender:
            sender_field = field
            break
    from_name, from_addr = sender[0] if sender else ("", None)
    subject = header_text(msg, "subject", fallback)
    flags = classify(msg, from_addr=from_addr, from_name=from_name, subject=subject, body=body)
    auto_submitted = header_text(msg, "auto-submitted") or None
    return EmailHeaders(
        from_addr=from_addr,
        from_name=from_name or None,
        sender_field=sender_field,
        to=[a for _, a in addresses(msg, "to", fallback)],
        cc=[a for _, a in addresses(msg, "cc", fallback)],
        subject=subject,
        date=header_date(msg),
        message_id=next(iter(message_ids(raw_header(msg, "message-id"))), None),
        in_reply_to=next(iter(message_ids(raw_header(msg, "in-reply-to"))), None),
        references=message_ids(header_text(msg, "references")),
        auto_submitted=auto_submitted,
        is_bounce=flags.is_bounce,
        is_auto_reply=flags.is_auto_reply,
        is_bulk=flags.is_bulk,
        original_message_id=flags.original_message_id,
        spam_verdict=flags.spam_verdict,
    )


_LINE_BREAK = re.compile(r"\n|\r")
_MEMO_MAX_CHARS = 256  # a parsed header holds a parse tree far larger than its text: memoise short ones


class _ParsedOncePolicy(EmailPolicy):
    """``policy.default``, but a header field is parsed once per message, not on every access:
    the standard library re-parses Content-Type each time a part is asked for its type, charset or
    filename (nine times for a plain one-part message, half the cost of extracting it).  Parsed
    header objects are immutable, so equal raw values may share one.  The memo belongs to one
    message (``parse_message`` makes a fresh policy), so it dies with it."""

    def header_fetch_parse(self, name: str, value: str) -> str:
        if hasattr(value, "name"):
            return value
        value = "".join(_LINE_BREAK.split(value))  # as EmailPolicy does
        memo: dict[tuple[str, str], BaseHeader] | None = self.__dict__.get("_memo")
        if memo is None or len(value) > _MEMO_MAX_CHARS:
            return self.header_factory(name, value)
        key = (name.lower(), value)
        parsed = memo.get(key)
        if parsed is None:
            parsed = memo[key] = self.header_factory(name, value)
        return parsed


def _message_policy() -> _ParsedOncePolicy:
    policy = _ParsedOncePolicy()
    object.__setattr__(policy, "_memo", {})  # policies are read-only by design; this one carries a memo
    return policy


def parse_message(data: bytes) -> Message:
    """The message, its header block read leniently (``repair_header_block``) where the standard
    parser would lose it."""
    repaired, _notes = repair_header_block(normalise_line_endings(data))
    return BytesParser(policy=_message_policy()).parsebytes(repaired)


def extract_email(
    data: bytes, *, filename: str | None, content_type: str | None, blob: str | None, ctx: ExtractContext
) -> Extraction:
    try:
        return _extract_email(data, ctx)
    except RecursionError:
        # Python's email parser recurses once per MIME level: a mail nested hundreds deep (message/rfc822
        # in message/rfc822 ...) cannot be parsed at all. Keep its headers; its body is refused with the
        # same reason as any branch nested deeper than max_depth.
        log.warning("email nested too deeply for the MIME parser; reading its headers only")
        ctx.warnings.clear()
        msg = BytesParser(policy=_message_policy()).parsebytes(normalise_line_endings(data), headersonly=True)
        error = (f"MIME structure nested more than {ctx.limits.max_depth} levels deep (max_depth); "
                 "the body was not read (headers only)")
        body = ctx.part(0, "body", error=error, content_type="text/plain")
        return Extraction(parts=[body], email=email_headers(msg, "", None), warnings=[error])


def _extract_email(data: bytes, ctx: ExtractContext) -> Extraction:
    for note in repair_header_block(normalise_line_endings(data))[1]:
        ctx.warn(f"email header block damaged (read leniently): {note}")
    msg = parse_message(data)
    fallback = header_charset(msg)
    walker = _Walker(ctx, fallback)
    texts: list[str] = []
    walker.walk(msg, ctx.depth, texts)
    if walker.dropped:
        ctx.warn(f"email has more attachments than max_parts={ctx.limits.max_parts}; {walker.dropped} not read")
    defects = sorted({type(d).__name__ for p in _walk(msg) for d in p.defects})
    if defects:
        ctx.warn(f"email has MIME defects (read anyway): {', '.join(defects)}")
    body_text = _join(texts)
    headers = email_headers(msg, body_text, fallback)
    error = None
    if not body_text.strip():
        error = "email has no text body" + (" (only attachments)" if walker.attachments else "")
    body = ctx.part(0, "body", text=body_text, error=error, content_type="text/plain",
                    fields={"defects": defects} if defects else {})
    return Extraction(parts=[body, *walker.attachments], email=headers, warnings=ctx.warnings)
