"""Plain text of an RTF document (Outlook rich-text bodies): control words dropped, escapes decoded."""

from __future__ import annotations

import re

_TOKEN = re.compile(rb"\\([a-z]{1,32})(-?\d{1,10})? ?|\\'([0-9a-f]{2})|\\([^a-z])|([{}])|[\r\n]+|([^\\{}\r\n]+)", re.I)
_SKIP_DESTINATIONS = {
    b"fonttbl", b"colortbl", b"stylesheet", b"info", b"pict", b"object", b"header", b"footer",
    b"listtable", b"listoverridetable", b"rsidtbl", b"xmlnstbl", b"themedata", b"datastore", b"latentstyles",
    b"generator", b"filetbl", b"revtbl", b"mmathPr",
}
_BREAKS = {b"par": "\n", b"line": "\n", b"tab": "\t", b"cell": "\t", b"row": "\n", b"page": "\f"}


def rtf_to_text(data: bytes, codepage: str = "cp1252") -> str:
    match = re.search(rb"\\ansicpg(\d+)", data[:2000])
    if match:
        codepage = f"cp{int(match.group(1))}"
    out: list[str] = []
    stack: list[bool] = []
    skipping = False
    pending = bytearray()
    uc_skip = 0

    def flush() -> None:
        if pending:
            try:
                out.append(pending.decode(codepage, "replace"))
            except LookupError:
                out.append(pending.decode("cp1252", "replace"))
            pending.clear()

    for m in _TOKEN.finditer(data):
        word, arg, hexcode, symbol, brace, text = m.groups()
        if brace == b"{":
            stack.append(skipping)
        elif brace == b"}":
            flush()
            skipping = stack.pop() if stack else False
        elif skipping:
            continue
        elif symbol == b"*" or (word and word in _SKIP_DESTINATIONS):
            flush()
            skipping = True
        elif hexcode:
            if uc_skip:
                uc_skip -= 1
                continue
            pending.append(int(hexcode, 16))
        elif word == b"u" and arg:
            flush()
            out.append(chr(int(arg) % 65536))
            uc_skip = 1
        elif word:
            flush()
            out.append(_BREAKS.get(word, ""))
        elif symbol:
            flush()
            out.append({b"~": "\u00a0", b"-": "", b"_": "-"}.get(symbol, symbol.decode("latin-1")))
        elif text:
            if uc_skip:
                uc_skip, text = uc_skip - 1, text[1:]
            flush()
            out.append(text.decode(codepage, "replace"))
    flush()
    return re.sub(r"\n{3,}", "\n\n", "".join(out)).strip()


_LZFU_DICTIONARY = (
    b"{\\rtf1\\ansi\\mac\\deff0\\deftab720{\\fonttbl;}{\\f0\\fnil \\froman \\fswiss \\fmodern \\fscript "
    b"\\fdecor MS Sans SerifSymbolArialTimes New RomanCourier{\\colortbl\\red0\\green0\\blue0\r\n\\par "
    b"\\pard\\plain\\f0\\fs20\\b\\i\\u\\tab\\tx"
)


def decompress_rtf(data: bytes) -> bytes:
    """Outlook's compressed RTF (MS-OXRTFCP: "LZFu", or "MELA" for stored uncompressed)."""
    if len(data) < 16:
        raise ValueError("compressed RTF shorter than its header")
    size = int.from_bytes(data[0:4], "little")
    raw_size = int.from_bytes(data[4:8], "little")
    magic = data[8:12]
    if magic == b"MELA":
        return data[16 : 16 + raw_size]
    if magic != b"LZFu":
        raise ValueError(f"not compressed RTF (magic {magic!r})")
    ring = bytearray(4096)
    ring[: len(_LZFU_DICTIONARY)] = _LZFU_DICTIONARY
    write = len(_LZFU_DICTIONARY)
    out = bytearray()
    pos, end = 16, min(len(data), size + 4)
    while pos < end:
        flags = data[pos]
        pos += 1
        for bit in range(8):
            if pos >= end:
                break
            if flags & (1 << bit):
                if pos + 1 >= end:
                    return bytes(out)
                reference = (data[pos] << 8) | data[pos + 1]
                pos += 2
                offset, length = reference >> 4, (reference & 0xF) + 2
                if offset == write:
                    return bytes(out)
                for i in range(length):
                    byte = ring[(offset + i) % 4096]
                    out.append(byte)
                    ring[write] = byte
                    write = (write + 1) % 4096
            else:
                byte = data[pos]
                pos += 1
                out.append(byte)
                ring[write] = byte
                write = (write + 1) % 4096
    return bytes(out)
