"""Issue 11 (4-6): mail reading through `casework ingest`, on real bounce sets and built shapes.

Prints JSON lines: bounce recall (outcome noise) on flufl.bounce's 115 real bounces and the
corpus's bounces, false noise on the corpus's genuine mail and on people writing about failed
deliveries, header recovery (sender and subject right) on damaged header blocks, and charset
results (subject and attachment name right) on raw 8-bit headers, plus ingest seconds.

    python -m benchmarks.mail_reading [--corpus ../shared/corpus]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from casestore.models import Document, Item
from tests.ingest.bounce_samples import NOT_BOUNCES, flufl_samples
from tests.ingest.test_mail_reading import BOUNCE_SHAPES, GENUINE

PHRASES = [("請求書について", "cp932"), ("①番の請求書", "cp932"), ("領収書の再発行", "cp932"),
           ("关于发票的问题", "gb18030"), ("报价单", "gb18030"), ("退款申请", "gb18030"),
           ("Réclamation été", "cp1252"), ("Müller Straße", "cp1252"), ("Ärger mit der Rechnung", "cp1252"),
           ("Счёт за май", "cp1251"), ("Жалоба на доставку", "cp1251"), ("견적서 요청", "cp949")]
NOT_GENUINE = ("bounce", "autoreply", "arf_", "mdn_", "delay_warning", "malformed_2")


def header_shapes() -> dict[str, tuple[bytes, str, str]]:
    """name -> (raw mail, expected sender, expected subject)."""
    shapes: dict[str, tuple[bytes, str, str]] = {}
    for n in range(10):
        who, subject = f"writer{n}@example.com", f"Question {n} about my account and the letter you sent"
        head, tail = subject[:20], subject[20:]
        wrapped = f"Subject: {head}\n{tail.strip()}\n".encode()
        shapes[f"wrap{n}"] = (b"Received: from mx\n" + wrapped + f"From: <{who}>\nDate: Mon, 2 Mar 2026 "
                              f"10:00:00 +0000\n\nbody {n}\n".encode(), who, subject)
        shapes[f"junk{n}"] = (f"junk line {n}\nFrom: {who}\nSubject: {subject}\n\nbody\n".encode(), who, subject)
        shapes[f"mbox{n}"] = (f">From {who} Mon Mar  2 10:00:00 2026\nFrom: {who}\nSubject: {subject}\n\n"
                              f"body\n".encode(), who, subject)
        shapes[f"crlf{n}"] = ((f"junk\r\nFrom: {who}\r\nSubject: {head}\r\n{tail.strip()}\r\nTo: x@y.example\r\n"
                               f"\r\nbody\r\n").encode(), who, subject)
        shapes[f"replyto{n}"] = (f"From: undisclosed-recipients:;\nReply-To: {who}\nSubject: {subject}\n\nb\n"
                                 .encode(), who, subject)
        shapes[f"nosubject{n}"] = (f"From: {who}\nDate: Mon, 2 Mar 2026 10:00:00 +0000\n\nb {n}\n".encode(), who, "")
    return shapes


def charset_shapes() -> dict[str, tuple[bytes, str, str]]:
    """name -> (raw mail, expected subject, expected attachment name)."""
    shapes = {}
    for n, (text, codec) in enumerate(PHRASES):
        raw = (b"From: a@example.com\nSubject: " + text.encode(codec) + b"\nContent-Type: multipart/mixed; "
               b"boundary=B\n\n--B\nContent-Type: text/plain\n\nhi\n--B\nContent-Type: text/plain; name=\""
               + (text + ".txt").encode(codec) + b"\"\nContent-Disposition: attachment\n\nhello\n--B--\n")
        shapes[f"cs{n}_{codec}"] = (raw, text, text + ".txt")
    return shapes


def ingest(env: dict[str, str], folder: Path) -> tuple[dict[str, Any], float]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "api", "ingest", str(folder), "--json"], env=env,
                          capture_output=True, text=True, timeout=3600, check=False)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"casework ingest failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout), seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--corpus", type=Path,
                        default=Path(__file__).resolve().parents[1].parent / "shared" / "corpus")
    args = parser.parse_args(argv)
    flufl = flufl_samples()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")}
        env["CASEWORK_DATA_DIR"] = str(root / "data")
        env.setdefault("OMP_THREAD_LIMIT", "1")
        sets: dict[str, dict[str, bytes]] = {"flufl": {}, "corpus": {}, "shapes": {}}
        if flufl is not None:
            sets["flufl"] = {f.name.replace(".txt", ".eml"): f.read_bytes() for f in sorted(flufl.glob("*.txt"))}
        if (args.corpus / "email").is_dir():
            sets["corpus"] = {p.name: p.read_bytes() for p in sorted((args.corpus / "email").glob("*.eml"))}
        headers, charsets = header_shapes(), charset_shapes()
        shapes = {**{f"bounce_{i}.eml": raw for i, raw in enumerate(BOUNCE_SHAPES.values())},
                  **{f"genuine_{i}.eml": raw for i, raw in enumerate(GENUINE.values())},
                  **{f"{k}.eml": v[0] for k, v in headers.items()}, **{f"{k}.eml": v[0] for k, v in charsets.items()}}
        sets["shapes"] = shapes
        results: dict[str, dict[str, Any]] = {}
        for name, files in sets.items():
            folder = root / name
            folder.mkdir()
            for file, raw in files.items():
                (folder / file).write_bytes(raw)
            if not files:
                continue
            report, seconds = ingest(env, folder)
            print(json.dumps({"benchmark": "mail_reading", "set": name, "files": len(files),
                              "seconds": round(seconds, 1), "per_item_ms": round(1000 * seconds / len(files), 1)}))
            for r in report["results"]:
                results[f"{name}/{Path(r['source']).name}"] = r
            shutil.rmtree(folder)
        engine = create_engine(f"sqlite:///{root / 'data' / 'casework.db'}")
        with Session(engine) as session:
            items = {i.item_id: i for i in session.scalars(select(Item))}
            names = {d.item_id: d.filename for d in session.scalars(select(Document).where(Document.part_index == 1))}
        engine.dispose()

    def outcome(key: str) -> str:
        return str(results.get(key, {}).get("outcome"))

    def item(key: str) -> Item | None:
        return items.get(str(results.get(key, {}).get("item_id")))

    bounces = [f"flufl/{n}" for n in sets["flufl"] if n.replace(".eml", ".txt") not in NOT_BOUNCES]
    corpus_bounces = [f"corpus/{n}" for n in sets["corpus"]
                      if ("bounce" in n and "not_bounce" not in n) or "malformed_2" in n]
    shape_bounces = [f"shapes/bounce_{i}.eml" for i in range(len(BOUNCE_SHAPES))]
    genuine = [f"corpus/{n}" for n in sets["corpus"]
               if "not_bounce" in n or not any(t in n for t in NOT_GENUINE)]
    genuine += [f"shapes/genuine_{i}.eml" for i in range(len(GENUINE))]
    genuine += [f"shapes/{k}.eml" for k in headers] + [f"shapes/{k}.eml" for k in charsets]
    for label, keys in (("flufl.bounce", bounces), ("corpus", corpus_bounces), ("built shapes", shape_bounces)):
        missed = [k for k in keys if outcome(k) != "noise"]
        recall = round(1 - len(missed) / max(1, len(keys)), 4)
        print(json.dumps({"metric": "bounce_recall", "set": label, "value": recall,
                          "bounces": len(keys), "missed": missed, "goal": ">= 0.99"}))
    noise = [k for k in genuine if outcome(k) == "noise"]
    print(json.dumps({"metric": "false_noise", "genuine": len(genuine), "called_noise": noise, "goal": "0"}))
    right = [k for k, (_raw, who, subject) in headers.items()
             if (i := item(f"shapes/{k}.eml")) is not None and i.sender == who and (i.subject or "") == subject]
    print(json.dumps({"metric": "header_recovery", "value": round(len(right) / len(headers), 4), "shapes": len(headers),
                      "wrong": sorted(set(headers) - set(right))}))
    subj = [k for k, (_raw, s, _n) in charsets.items() if (i := item(f"shapes/{k}.eml")) is not None and i.subject == s]
    att = [k for k, (_raw, _s, n) in charsets.items()
           if names.get(str(results.get(f"shapes/{k}.eml", {}).get("item_id"))) == n]
    print(json.dumps({"metric": "charset_subjects", "value": round(len(subj) / len(charsets), 4),
                      "shapes": len(charsets), "wrong": sorted(set(charsets) - set(subj))}))
    print(json.dumps({"metric": "charset_attachment_names", "value": round(len(att) / len(charsets), 4),
                      "wrong": sorted(set(charsets) - set(att))}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
