"""tesseract's TSV output turned into text (lines and paragraphs) and word-confidence figures."""

from __future__ import annotations

from dataclasses import dataclass

LOW_CONFIDENCE = 60  # tesseract word confidence (0-100) below which a word is counted as doubtful


@dataclass(frozen=True)
class OcrText:
    """Text of one page, with how sure tesseract was of its words."""

    text: str
    words: int
    mean_confidence: float  # 0-100; 0 when there are no words
    low_confidence_words: int  # words with confidence below LOW_CONFIDENCE

    def fields(self) -> dict[str, object]:
        return {
            "ocr_words": self.words,
            "ocr_mean_confidence": round(self.mean_confidence, 1),
            "ocr_low_confidence_words": self.low_confidence_words,
        }


EMPTY = OcrText(text="", words=0, mean_confidence=0.0, low_confidence_words=0)


def parse_tsv(tsv: str) -> OcrText:
    """Rebuild the text from TSV rows: words of a line joined by spaces, a blank line between paragraphs."""
    paragraphs: list[list[str]] = []
    lines: dict[tuple[str, ...], list[str]] = {}
    order: list[tuple[str, ...]] = []
    confidences: list[float] = []
    for row in tsv.splitlines()[1:]:
        cols = row.split("\t")
        if len(cols) < 12 or cols[0] != "5":  # level 5 = word
            continue
        word = cols[11].strip()
        try:
            confidence = float(cols[10])
        except ValueError:
            continue
        if not word or confidence < 0:
            continue
        confidences.append(confidence)
        key = tuple(cols[1:5])  # page, block, paragraph, line
        if key not in lines:
            lines[key] = []
            order.append(key)
        lines[key].append(word)
    previous: tuple[str, ...] | None = None
    for key in order:
        if previous is None or key[:3] != previous[:3]:
            paragraphs.append([])
        paragraphs[-1].append(" ".join(lines[key]))
        previous = key
    if not confidences:
        return EMPTY
    return OcrText(
        text="\n\n".join("\n".join(p) for p in paragraphs),
        words=len(confidences),
        mean_confidence=sum(confidences) / len(confidences),
        low_confidence_words=sum(1 for c in confidences if c < LOW_CONFIDENCE),
    )


def combine(pages: list[OcrText]) -> OcrText:
    """Figures over several pages (text joined by form feeds)."""
    words = sum(p.words for p in pages)
    mean = sum(p.mean_confidence * p.words for p in pages) / words if words else 0.0
    return OcrText(
        text="\f".join(p.text for p in pages),
        words=words,
        mean_confidence=mean,
        low_confidence_words=sum(p.low_confidence_words for p in pages),
    )
