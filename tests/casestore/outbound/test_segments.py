"""SMS segments as carriers count them: GSM-7 160/153 with two-septet escapes, else UCS-2 70/67."""

from __future__ import annotations

from casestore.outbound.segments import count


def test_gsm_texts() -> None:
    assert count("").segments == 0
    assert count("a" * 160) == count("a" * 160) and count("a" * 160).segments == 1
    assert count("a" * 161).segments == 2
    assert count("a" * 306).segments == 2 and count("a" * 307).segments == 3
    euro = count("€" * 80)  # each takes two septets
    assert euro.encoding == "GSM-7" and euro.units == 160 and euro.segments == 1
    assert count("a" * 152 + "€").segments == 1  # 154 septets fit one SMS
    assert count("a" * 159 + "€").segments == 2  # 161 do not; and the escape pair is not split
    assert count("a" * 152 + "€" + "a" * 153).segments == 3


def test_anything_outside_gsm_sends_the_whole_text_as_ucs2() -> None:
    polish = count("Łódź " + "a" * 65)
    assert polish.encoding == "UCS-2" and polish.units == 70 and polish.segments == 1
    assert count("Ł" + "a" * 70).segments == 2
    emoji = count("🙂" * 35)  # surrogate pairs: two units each, never split
    assert emoji.units == 70 and emoji.segments == 1
    assert count("aa" + "🙂" * 66).segments == 3  # 134 units, but no segment may end in half an emoji
