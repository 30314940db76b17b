"""OCR seconds per page, casework against raw tesseract; text-layer PDF pages/s; OCR word accuracy.

    python -m benchmarks.ocr_throughput [--corpus ../shared/corpus] [--rounds 1]

In the same run and on the same pages, with one process per core (a process pool) and
OMP_THREAD_LIMIT=1 in both cases:
- raw: ``tesseract IMG stdout`` on the image file as it is;
- casework: decoding with Pillow, square pixels and DPI check, deskew, tesseract with word
  confidences (TSV), and orientation detection plus a second reading for pages that read badly.
Goal: casework at most 1.15 times raw. Also text-layer PDF pages per second (pypdfium2, OCR off)
over corpus/pdf, and word accuracy of casework's OCR on pages whose text is known: text PDFs
rendered at 300 dpi and OCRed, their words compared with the text layer's.
Prints one JSON line per figure; figures go to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pypdfium2 as pdfium

from ingest.blobs import FileBlobStore
from ingest.errors import BadInput
from ingest.extract import ExtractLimits, extract
from ingest.extract.ocr import CORES, OcrSettings
from ingest.extract.scan_ocr import read_page
from ingest.extract.scan_prep import open_frames

DEFAULT_CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
# single-page document scans that raw tesseract reads as they are
PAGES = [
    "libtiffnet__CCITT_1_slerexe_business_letter_g4.tif",
    "libtiffnet__CCITT_3_french_invoice_form_g4.tif",
    "libtiffnet__fax2d_1990_real_fax_g3.tif",
    "leptonica__feyn_skewed_page_g4.tif",
    "leptonica__us_patent_scan_300dpi.png",
    "ocrmypdf__typewriter_text.png",
    "tesseract__unlv_8071_093_landscape_black_border.tif",
    "tesseract__unlv_8087_054_magazine_page.tif",
]
# text PDFs whose text layer is correct: rendered, OCRed, and compared word for word
KNOWN_TEXT = [
    ("pdfplumber__scotus_court_transcript_p1.pdf", 0),
    ("pdfplumber__fr_proces_verbal_minutes.pdf", 0),
    ("pdfplumber__invoice_line_items_itext.pdf", 0),
]
_WORD = re.compile(r"\w+", re.UNICODE)


def _raw(path: str) -> float:
    start = time.perf_counter()
    subprocess.run(["tesseract", path, "stdout"], capture_output=True, check=True,
                   env={**os.environ, "OMP_THREAD_LIMIT": "1"})
    return time.perf_counter() - start


def _casework(path: str) -> float:
    start = time.perf_counter()
    _fmt, _count, frames = open_frames(Path(path).read_bytes(), max_pixels=ExtractLimits().max_image_pixels)
    reading = read_page(1, next(frames), OcrSettings())
    if reading.error:
        raise RuntimeError(f"{path}: {reading.error}")
    return time.perf_counter() - start


def _timed_pool(function: object, paths: list[str]) -> float:
    with ProcessPoolExecutor(max_workers=CORES) as pool:
        list(pool.map(_warm, range(CORES)))  # start the workers before timing
        start = time.perf_counter()
        list(pool.map(function, paths))  # type: ignore[arg-type]
        return time.perf_counter() - start


def _warm(_: int) -> None:
    return None


def ocr_speed(corpus: Path, rounds: int) -> list[dict[str, object]]:
    paths = [str(corpus / "scans" / name) for name in PAGES] * rounds
    raw = _timed_pool(_raw, paths)
    ours = _timed_pool(_casework, paths)
    n = len(paths)
    return [
        {"figure": "ocr_raw_tesseract_seconds_per_page", "value": round(raw / n, 3), "pages": n, "processes": CORES},
        {"figure": "ocr_casework_seconds_per_page", "value": round(ours / n, 3), "pages": n, "processes": CORES},
        {"figure": "ocr_casework_vs_raw_ratio", "value": round(ours / raw, 3), "goal": 1.15},
    ]


def text_layer_speed(corpus: Path) -> dict[str, object]:
    limits = ExtractLimits(ocr_enabled=False)
    pages = 0
    elapsed = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        blobs = FileBlobStore(Path(tmp))
        for path in sorted((corpus / "pdf").glob("*.pdf")):
            data = path.read_bytes()
            start = time.perf_counter()
            try:
                result = extract(data, filename=path.name, content_type=None, blobs=blobs, limits=limits)
            except BadInput:
                continue
            elapsed += time.perf_counter() - start
            fields = result.parts[0].fields
            pages += int(fields.get("pages", 0)) - len(fields.get("pages_without_text", []))
    return {"figure": "pdf_text_layer_pages_per_second", "value": round(pages / elapsed, 1), "pages": pages}


def _words(text: str) -> Counter[str]:
    return Counter(w.lower() for w in _WORD.findall(text))


def word_accuracy(corpus: Path) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    found_all = truth_all = 0
    for name, number in KNOWN_TEXT:
        doc = pdfium.PdfDocument(str(corpus / "pdf" / name))
        try:
            page = doc[number]
            textpage = page.get_textpage()
            truth = _words(textpage.get_text_range())
            textpage.close()
            image = page.render(scale=300 / 72, grayscale=True).to_pil()
            image.info["dpi"] = (300, 300)
            page.close()
        finally:
            doc.close()
        reading = read_page(number + 1, image, OcrSettings())
        ocr = _words(reading.ocr.text)
        found = sum(min(count, ocr[word]) for word, count in truth.items())
        total = sum(truth.values())
        found_all += found
        truth_all += total
        out.append({"figure": "ocr_word_accuracy", "page": f"{name}#{number + 1}", "value": round(found / total, 4),
                    "words": total, "mean_confidence": round(reading.ocr.mean_confidence, 1)})
    out.append({"figure": "ocr_word_accuracy_overall", "value": round(found_all / truth_all, 4), "words": truth_all})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--rounds", type=int, default=1, help="times each page is read (more: steadier figures)")
    args = parser.parse_args()
    for figure in [*ocr_speed(args.corpus, args.rounds), text_layer_speed(args.corpus), *word_accuracy(args.corpus)]:
        print(json.dumps(figure), flush=True)


if __name__ == "__main__":
    main()
