"""Does an item's text agree with one customer's own record?

The check a person makes when a letter quotes a case reference: open the case, look at its
customer, and look for that customer's own details in the letter, whatever the layout
("Customer: George Green", "Acct no.\\n2214 2500", a greeting, a signature, a table row).
Unlike the entity finders, which must find identifiers anywhere without knowing whose they
are, this searches for *known* values, so labels and layout do not matter:

* account number: letters and digits compared without separators (``2214 2500``,
  ``22-14-25-00``, or broken over two lines), OCR look-alikes accepted in either direction (O/0, I/l/1, S/5, B/8, Z/2,
  G/6); the digit run of a prefixed number (``104233`` for ``ACC-104233``) when it has six
  digits or more;
* email address (case-insensitive) and phone number (national significant digits, any
  separators or one line break, OCR look-alikes, with or without the country code or trunk zero);
* surname (one OCR edit allowed from five letters) next to the first name or its initial
  (``George Green``, ``G. Green``, ``Mr G Green``, ``GREEN, George``, or the first name at the
  end of one line and the surname on the next), to the postcode (spacing, a line break, case and
  look-alikes tolerated) or to the first line of the address.  Digits that OCR reads for
  letters inside a name (``Wi1s0n``) are read back as letters.

A first name alone, a postcode alone or a surname alone never agrees.
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers
from rapidfuzz import fuzz
from rapidfuzz.distance import OSA

from classify.lookup import CustomerView
from classify.refcheck import OCR_TO_DIGIT

__all__ = ["OWN_RECORD_SIGNALS", "record_agreement"]

# Signals that only the customer's own papers carry: they count even when the sender is
# someone else we know (see the matcher's rule 2).
OWN_RECORD_SIGNALS = frozenset({"account_number", "name_postcode", "name_address"})

_DIGIT_LOOKALIKES: dict[str, str] = {}
for _ch in "OoDQIli|!SsBZzGbgqT":
    _d = _ch.translate(OCR_TO_DIGIT)
    _DIGIT_LOOKALIKES[_d] = _DIGIT_LOOKALIKES.get(_d, "") + _ch
_LETTER_LOOKALIKES = {"O": "0", "D": "0", "Q": "0", "I": "1l|", "L": "1", "S": "5", "B": "8", "Z": "2", "G": "6",
                      "T": "7"}
_BREAK = r"[ \t]*\r?\n[ \t]*"  # a value carried over to the next line (a narrow cell, a wrapped line)
_SEP = rf"(?:[ \t./-]|-?{_BREAK})?"
_TITLES = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "rev"})
# A word of a name; digits that OCR reads for letters may stand inside it (``Wi1s0n``) and at its
# start before a letter (``0liver``).
_WORD = re.compile(r"(?:[A-Za-z]|[0158](?=[A-Za-z]))[A-Za-z0-9'\u2019]*(?:-[A-Za-z][A-Za-z0-9'\u2019]*)*\.?")
_LEADING_DIGIT_TO_LETTER = str.maketrans({"0": "O", "1": "I", "5": "S", "8": "B"})
_DIGIT_TO_LETTER = str.maketrans({"0": "o", "1": "l", "5": "s", "8": "b", "6": "g", "2": "z"})
_EDGE_L = r"(?<![A-Za-z0-9])"
_EDGE_R = r"(?![A-Za-z0-9])"


def _char_class(ch: str) -> str:
    """A regex class for one character of a known identifier, with its OCR look-alikes."""
    if ch.isdigit():
        return "[" + re.escape(ch + _DIGIT_LOOKALIKES.get(ch, "")) + "]"
    up = ch.upper()
    return "[" + re.escape(up + up.lower() + _LETTER_LOOKALIKES.get(up, "")) + "]"


@lru_cache(maxsize=4096)
def _identifier_pattern(compact: str) -> re.Pattern[str]:
    body = _SEP.join(_char_class(ch) for ch in compact)
    return re.compile(_EDGE_L + body + _EDGE_R)


def _compact(value: str) -> str:
    return "".join(ch for ch in value.upper() if ch.isalnum())


def _account_agrees(account: str, text: str) -> bool:
    compact = _compact(account)
    if len(compact) < 5 or sum(ch.isdigit() for ch in compact) < 4:
        return False
    if _identifier_pattern(compact).search(text):
        return True
    digits = re.fullmatch(r"[A-Z]+(\d{6,})", compact)
    return bool(digits and _identifier_pattern(digits.group(1)).search(text))


def _postcode_agrees(postcode: str, text: str) -> bool:
    compact = _compact(postcode)
    if len(compact) < 5:
        return False
    outward, inward = compact[:-3], compact[-3:]
    pattern = (_EDGE_L + "".join(_char_class(c) for c in outward) + rf"(?:[ \t]{{0,2}}|{_BREAK})"
               + "".join(_char_class(c) for c in inward) + _EDGE_R)
    return re.search(pattern, text) is not None


def _email_agrees(email: str, text: str) -> bool:
    e = email.strip().lower()
    return bool(e) and re.search(r"(?<![\w.+-])" + re.escape(e) + r"(?![\w-])", text.lower()) is not None


def _phone_agrees(phone: str, text: str, region: str) -> bool:
    try:
        number = phonenumbers.parse(phone, region)
    except phonenumbers.NumberParseException:
        return False
    nsn = phonenumbers.national_significant_number(number)
    if len(nsn) < 7:
        return False
    body = rf"(?:[ \t().-]{{0,2}}|{_BREAK})".join(_char_class(d) for d in nsn)  # OCR look-alikes, wraps
    prefix = rf"(?:\+?{number.country_code}[ \t().-]{{0,2}}(?:\(0\)[ \t]?)?|0[ \t().-]{{0,2}})?"
    return re.search(r"(?<!\d)" + prefix + body + r"(?!\d)", text) is not None


def _same_word(known: str, seen: str) -> bool:
    """Names compared case-insensitively, one OCR edit (or two letters swapped) allowed from five letters."""
    a, b = known.lower(), seen.lower().rstrip(".").translate(_DIGIT_TO_LETTER)
    if len(a) >= 5:
        return OSA.distance(a, b, score_cutoff=1) <= 1
    return a == b


def _nearer_first(seen: str, first: str, surname: str) -> bool:
    """``seen`` reads as the first name rather than the surname (both compared as ``_same_word``)."""
    if not first or first.lower() == surname.lower():
        return False
    b = seen.lower().translate(_DIGIT_TO_LETTER)
    return bool(OSA.distance(first.lower(), b) < OSA.distance(surname.lower(), b))


def _name_parts(name: str) -> tuple[str, str] | None:
    words = [w for w in re.findall(r"[A-Za-z][A-Za-z'\u2019-]*", name) if w.lower() not in _TITLES]
    if len(words) < 2:
        return None
    return words[0], words[-1]


def _as_letters(word: str) -> str:
    """A name word with OCR digits read back as letters (a capital at the start: ``0liver``)."""
    return word[:1].translate(_LEADING_DIGIT_TO_LETTER) + word[1:]


def _surname_hits(surname: str, text: str, first: str = "") -> list[tuple[list[str], list[str]]]:
    """Where the surname is written as a name (capitalised or in capitals): the words before it
    and after it (up to three each, nothing but spaces between them; a comma right after the
    surname is kept as a word, for ``GREEN, George``).  One line break may stand among the words
    before it when the surname ends its line: a name broken over two lines of a narrow cell
    (``Applicant Nigel`` / ``Atkinson``).  A word nearer to the first name than to the surname
    is the first name (``Robert`` is not one OCR edit from ``Roberts`` when the customer is
    Robert Roberts)."""
    words = [(m.start(), m.end(), m.group(0)) for m in _WORD.finditer(text)]
    hits = []
    for i, (_, end, word) in enumerate(words):
        bare = _as_letters(word.rstrip("."))
        if not bare[:1].isupper() or not _same_word(surname, bare) or _nearer_first(bare, first, surname):
            continue
        before: list[str] = []
        j = i
        # a break only when the surname ends its line, as a wrapped value does ("Green Lane is closed" does not)
        may_break = re.match(r"[ \t.,]*(?:\r?\n|$)", text[end:]) is not None
        while j > 0 and len(before) < 3:
            gap = text[words[j - 1][1]:words[j][0]]
            if not re.fullmatch(r"[ \t]+", gap):
                if not may_break or not re.fullmatch(_BREAK, gap):
                    break
                may_break = False
            j -= 1
            before.insert(0, words[j][2])
        after: list[str] = []
        if i + 1 < len(words) and re.fullmatch(r",[ \t]*", text[end:words[i + 1][0]]):
            after = [",", words[i + 1][2]]
        hits.append((before, after))
    return hits


def _first_name_next_to(first: str, before: list[str], after: list[str]) -> bool:
    """``George Green``, ``G. Green``, ``Mr G Green``, ``George A. Green``; or ``GREEN, George``."""
    for word in reversed(before):
        bare = word.rstrip(".")
        if _same_word(first, bare) or (len(bare) == 1 and bare.upper() == first[0].upper()):
            return True
        if not (len(bare) == 1 or bare.lower() in _TITLES):  # only initials and titles may stand between
            break
    if after:
        bare = after[1].rstrip(".")
        return _same_word(first, bare) or (len(bare) == 1 and bare.upper() == first[0].upper())
    return False


_STREET_WORDS = {"road": "rd", "street": "st", "avenue": "ave", "av": "ave", "lane": "ln", "drive": "dr",
                 "close": "cl", "crescent": "cres", "place": "pl", "court": "ct", "gardens": "gdns", "square": "sq",
                 "terrace": "ter", "terr": "ter", "grove": "gr", "park": "pk", "way": "wy"}


def _street(value: str) -> str:
    """Lower case, punctuation gone, the usual abbreviations for street words."""
    words = re.findall(r"[a-z0-9]+", value.lower())
    return " ".join(_STREET_WORDS.get(w, w) for w in words)


def _address_agrees(address: str, text: str) -> bool:
    """The first line of the address: its house number exactly, the street OCR-tolerantly
    (``Rd`` for ``Road`` and the like)."""
    line = re.split(r"[,\n]", address)[0].strip()
    m = re.match(r"(?i)(?:flat|apartment|unit)?\s*(\d+[A-Za-z]?)[,\s]+(.+)", line)
    if m is None:
        return len(line) >= 8 and fuzz.partial_ratio(_street(line), _street(text)) >= 90
    number, street = m.group(1), _street(m.group(2))
    if len(street) < 4:
        return False
    for hit in re.finditer(_EDGE_L + re.escape(number) + _EDGE_R, text):
        window = _street(text[hit.end():hit.end() + len(m.group(2)) + 8])
        if window and fuzz.partial_ratio(street, window) >= 85:
            return True
    return False


def record_agreement(customer: CustomerView, text: str, *, phone_region: str = "GB",
                     own_only: bool = False) -> list[str]:
    """The signals by which ``text`` agrees with ``customer``'s own record ([] if none).

    ``own_only``: only the signals that the customer's own papers carry (``OWN_RECORD_SIGNALS``),
    for when the sender is known to be someone else."""
    signals: list[str] = []
    if customer.account_number and _account_agrees(customer.account_number, text):
        signals.append("account_number")
    parts = _name_parts(customer.name or "")
    if parts is not None:
        first, surname = parts
        hits = _surname_hits(surname, text, first)
        if hits:
            if customer.postcode and _postcode_agrees(customer.postcode, text):
                signals.append("name_postcode")
            elif customer.address and _address_agrees(customer.address, text):
                signals.append("name_address")
            if not own_only:
                for before, after in hits:
                    if _first_name_next_to(first, before, after):
                        signals.append("full_name")
                        break
    if not own_only:
        if customer.email and _email_agrees(customer.email, text):
            signals.append("content_email")
        if customer.phone and _phone_agrees(customer.phone, text, phone_region):
            signals.append("content_phone")
    return signals
