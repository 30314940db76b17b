"""Issue 15.10: `casework ingest` of scanned pages against raw tesseract on every core, same pages, same run.

    python -m benchmarks.ocr_all_cores [--pages 24] [--rounds 2] [--form files|pdf] [--ocr-processes N]

Pages: A4 letters of generated prose set in Helvetica 11 pt (fpdf2), rendered at 300 dpi
(pypdfium2), given specks and grey noise, skewed by up to 1.5 degrees and thresholded to black and
white, as a mailroom scanner writes them: one CCITT G4 TIFF per page (``--form files``, the
default) or all pages in one image-only PDF (``--form pdf``).

- raw: ``tesseract PAGE stdout`` with OMP_THREAD_LIMIT=1, one process per core (a thread pool
  starting processes), over every page; the wall time from the first start to the last end.
- casework: ``python -m api ingest FOLDER --json`` in a fresh data directory whose store was
  created beforehand (a first ingest of one small text file, untimed), as a user meets it: the
  wall time of the command, start-up, storing, extract, classify and file included.

Rounds alternate which goes first (raw, casework; casework, raw; ...) so that load from other work on
the machine falls on both.
Also the CPU seconds of each side (all its processes, tesseract included), which a loaded machine
changes far less than wall time. Prints one JSON line per round and a summary line with the median
wall-time ratio (goal <= 1.15).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
from fpdf import FPDF
from PIL import Image

CORES = os.cpu_count() or 1
_WORDS = ("account", "claim", "payment", "letter", "reference", "customer", "policy", "address", "complaint",
          "refund", "invoice", "insurance", "department", "request", "meter", "reading", "balance",
          "statement", "direct", "debit", "cancel", "renewal", "premium", "arrears", "correspondence",
          "enclosed", "regarding", "attached", "confirm", "sincerely", "faithfully", "previous", "telephone",
          "number", "postcode", "street", "road", "avenue", "manager", "service", "delivery", "damaged",
          "received", "outstanding", "amount")


def _text_pdf(pages: int, rng: random.Random) -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_margins(20, 20, 20)
    for n in range(1, pages + 1):
        pdf.add_page()
        pdf.set_font("Helvetica", size=11)
        pdf.multi_cell(0, 6, f"Mr Alan Jones, 12 Mill Lane, Exeter EX1 {n}AB\nAccount number 2214{n:04d}\n\n")
        for _ in range(6):  # about one page: a longer letter runs on, and only `pages` pages are kept
            words = [rng.choice(_WORDS) for _ in range(rng.randint(45, 70))]
            pdf.multi_cell(0, 6, " ".join(words).capitalize() + ".\n")
            pdf.ln(2)
    return bytes(pdf.output())


def _scanned(page: Image.Image, rng: random.Random) -> Image.Image:
    pixels = np.asarray(page, dtype=np.int16)
    noise = np.random.default_rng(rng.randrange(1 << 30)).normal(0, 18, pixels.shape)
    pixels = np.clip(pixels + noise, 0, 255).astype(np.uint8)
    grey = Image.fromarray(pixels, "L")
    for _ in range(4000):  # specks
        grey.putpixel((rng.randrange(grey.width), rng.randrange(grey.height)), rng.randint(0, 90))
    grey = grey.rotate(rng.uniform(-1.5, 1.5), resample=Image.Resampling.BILINEAR, fillcolor=255)
    return grey.point(lambda v: 255 if v > 150 else 0).convert("1")


def make_pages(folder: Path, pages: int, form: str, seed: int = 15) -> list[Path]:
    """Write the scanned pages (TIFF G4 per page, and for ``pdf`` one image-only PDF of them all)."""
    rng = random.Random(seed)
    doc = pdfium.PdfDocument(_text_pdf(pages, rng))
    images = []
    for n in range(pages):
        page = doc[n]
        image = page.render(scale=300 / 72, grayscale=True).to_pil().convert("L")
        page.close()
        images.append(_scanned(image, rng))
    doc.close()
    tiffs = []
    for n, image in enumerate(images, 1):
        path = folder / "pages" / f"page{n:03d}.tif"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, compression="group4", dpi=(300, 300))
        tiffs.append(path)
    if form == "pdf":
        (folder / "inbox").mkdir(exist_ok=True)
        images[0].save(folder / "inbox" / "scan.pdf", save_all=True, append_images=images[1:], resolution=300)
    else:
        (folder / "inbox").mkdir(exist_ok=True)
        for path in tiffs:
            (folder / "inbox" / path.name).write_bytes(path.read_bytes())
    return tiffs


def children_cpu() -> float:
    """CPU seconds (user + system) of every finished child process waited for, and theirs."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def raw_tesseract(pages: list[Path]) -> float:
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}

    def one(path: Path) -> None:
        subprocess.run(["tesseract", str(path), "stdout"], capture_output=True, check=True, env=env)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=CORES) as pool:
        list(pool.map(one, pages))
    return time.perf_counter() - start


def casework_ingest(inbox: Path, data_dir: Path, ocr_processes: int | None) -> tuple[float, dict[str, object]]:
    env = {**os.environ, "CASEWORK_DATA_DIR": str(data_dir)}
    env.pop("OMP_THREAD_LIMIT", None)  # the product sets it for tesseract itself
    if ocr_processes is not None:
        env["CASEWORK_EXTRACT__OCR_PROCESSES"] = str(ocr_processes)
    setup = data_dir / "setup"
    setup.mkdir(parents=True)
    (setup / "hello.txt").write_text("Hello, please call me back. Alan Jones\n")
    subprocess.run([sys.executable, "-m", "api", "ingest", str(setup), "--json"], env=env, check=True,
                   capture_output=True)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "api", "ingest", str(inbox), "--json"], env=env, check=True,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    report = json.loads(done.stdout)
    return seconds, report


def timed_raw(pages: list[Path]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of raw tesseract on every core."""
    before = children_cpu()
    seconds = raw_tesseract(pages)
    return seconds, children_cpu() - before


def timed_casework(inbox: Path, data_dir: Path, ocr_processes: int | None) -> tuple[float, float, dict[str, object]]:
    """(wall seconds, CPU seconds, --json report) of `casework ingest`; the CPU seconds include the
    untimed setup ingest of one text file (about 1-2 CPU seconds)."""
    before = children_cpu()
    seconds, report = casework_ingest(inbox, data_dir, ocr_processes)
    return seconds, children_cpu() - before, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pages", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--form", choices=("files", "pdf"), default="files")
    parser.add_argument("--ocr-processes", type=int, default=None, help="CASEWORK_EXTRACT__OCR_PROCESSES (default: "
                        "not set, one per core)")
    args = parser.parse_args()
    ratios = []
    with tempfile.TemporaryDirectory(prefix="casework-ocr-bench-") as tmp:
        base = Path(tmp)
        pages = make_pages(base, args.pages, args.form)
        for round_ in range(args.rounds):
            load = os.getloadavg()[0]
            data = base / f"data{round_}"
            if round_ % 2 == 0:
                raw, raw_cpu = timed_raw(pages)
                ours, ours_cpu, report = timed_casework(base / "inbox", data, args.ocr_processes)
            else:  # the other order: load that grows or falls during a round falls on both
                ours, ours_cpu, report = timed_casework(base / "inbox", data, args.ocr_processes)
                raw, raw_cpu = timed_raw(pages)
            failed = report.get("failed")
            ratio = ours / raw
            ratios.append(ratio)
            print(json.dumps({"round": round_ + 1, "pages": args.pages, "form": args.form, "cores": CORES,
                              "raw_tesseract_s": round(raw, 2), "casework_ingest_s": round(ours, 2),
                              "casework_reported_s": report.get("seconds"), "failed": failed,
                              "ratio": round(ratio, 3), "raw_cpu_s": round(raw_cpu, 1),
                              "casework_cpu_s": round(ours_cpu, 1), "cpu_ratio": round(ours_cpu / raw_cpu, 3),
                              "load_before": round(load, 2),
                              "load_after": round(os.getloadavg()[0], 2)}), flush=True)
    print(json.dumps({"figure": "ocr_ingest_vs_raw_all_cores_ratio", "median": round(statistics.median(ratios), 3),
                      "rounds": args.rounds, "goal": 1.15}), flush=True)


if __name__ == "__main__":
    main()
