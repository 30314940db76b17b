"""Recovering a message's header block that the standard parser would lose whole.

Python's parser ends the header block at the first line that is neither a field (``Name:``) nor
a continuation (leading white space), and reads everything after it as body.  Two damages seen in
real mail make it lose every header that way:

* a junk line before the headers (an mbox ``>From`` line, a transfer program's banner, a stray
  word): the parser sees no header at all, so there is no sender and no subject;
* a long header wrapped without the leading white space that folding requires (a broken client or
  a gateway that re-wraps at 76 characters): every header after the wrap is lost.

Mature parsers (MimeKit, mail-parser on top of Python, Thunderbird's) read such a block
leniently: junk before the first field is skipped, and a line without a colon *between* two fields
continues the field above.  ``repair_header_block`` does that before the standard parser runs,
and says what it changed.  A line without a colon that is followed by no further field is where
the body starts (a missing blank line), which the standard parser already handles.
"""

from __future__ import annotations

import re

_FIELD = re.compile(rb"^[!-9;-~]{1,76}[ \t]*:")  # a field name (printable, no colon), optional space, colon
_MBOX = re.compile(rb"^From \S")
_KNOWN = re.compile(
    rb"^(from|to|cc|subject|date|message-id|received|return-path|sender|reply-to|mime-version|content-type|"
    rb"delivered-to|x-[\w-]+)[ \t]*:", re.I,
)
_BLANK_LINE = re.compile(rb"(?:^|\n)\r?\n")
_MAX_HEAD = 1 << 20  # a header block longer than 1 MiB is not repaired
_MAX_JUNK = 3  # lines skipped before the first field; more than that is not a damaged header block


def _is_blank(line: bytes) -> bool:
    return line in (b"\n", b"\r\n", b"\r", b"")


def repair_header_block(data: bytes) -> tuple[bytes, list[str]]:
    """``data`` with its header block made readable, and a note per repair (empty if none was needed).

    The bytes are returned unchanged unless the header block holds a line the parser would stop at
    and a real header field follows it; never fails.
    """
    blank = _BLANK_LINE.search(data, 0, _MAX_HEAD)
    cut = blank.end() if blank is not None else min(len(data), _MAX_HEAD)
    lines, tail = data[:cut].splitlines(keepends=True), data[cut:]  # only the head is split: mail can be large
    end = next((i for i, line in enumerate(lines) if _is_blank(line)), len(lines))
    head = lines[:end]
    if all(_FIELD.match(line) or line[:1] in (b" ", b"\t") or (i == 0 and _MBOX.match(line))
           for i, line in enumerate(head)):
        return data, []
    notes: list[str] = []
    first_field = next((i for i, line in enumerate(head) if _FIELD.match(line)), None)
    if first_field is None:
        return data, []
    fixed: list[bytes] = []
    if first_field == 1 and _MBOX.match(head[0]):
        fixed.append(head[0])  # an mbox separator: the parser reads it as the envelope line
    elif first_field > 0:
        if first_field > _MAX_JUNK or not any(_KNOWN.match(line) for line in head[first_field:]):
            return data, []
        notes.append(f"skipped {first_field} line(s) before the header fields")
    last_field = max(i for i, line in enumerate(head) if _FIELD.match(line))
    joined = 0
    body_from: int | None = None
    for i in range(first_field, len(head)):
        line = head[i]
        if _FIELD.match(line) or line[:1] in (b" ", b"\t"):
            fixed.append(line)
            continue
        if i < last_field:
            fixed.append(b" " + line.lstrip())  # a wrap without white space: continues the field above
            joined += 1
            continue
        body_from = i  # no field follows: the body starts here (no blank line was written)
        break
    if joined:
        notes.append(f"joined {joined} header line(s) wrapped without leading white space")
    if not notes:
        return data, []
    rest = lines[end:] if body_from is None else [b"\n", *head[body_from:], *lines[end:]]
    return b"".join(fixed + rest) + tail, notes
