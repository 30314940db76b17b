"""The generated mailroom day through the real pipeline pieces: prints JSON lines with the
auto-attach precision and recall, items filed in another customer's case, the share of right
new-case/triage/noise outcomes, and matching time per item.

Issue 11 shapes join the day: forms and letters quoting a case beside the customer's own
details in layouts the agreement check was not tuned to (``tests/classify/forms.py``, with
negatives quoting someone else's case), files with nobody to answer (``tests/classify/nobody.py``),
and new people who write twice: their first mail and, after it is filed through the real
classify and file stages, a follow-up without a reference (joined their first case or not).

    python -m benchmarks.mailroom [--seed N] [--scale K] [--scans N] [--forms N] [--nobody N] [--writers N]
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from casestore import cases, items
from casestore.db import make_engine, session_factory, upgrade
from classify.matcher import Matcher
from ingest.messages import ClassifiedItem
from ingest.pipeline import ClassifyStage, FileStage
from tests.classify.forms import HELD_OUT, generate_forms
from tests.classify.mailroom import (
    Expected,
    MailItem,
    Outcome,
    extract_item,
    generate_day,
    make_people,
    rates,
    run_day,
    seed_store,
)
from tests.classify.mailroom_render import email_bytes
from tests.classify.nobody import generate_nobody


def writers_twice(sessions: sessionmaker[Session], blob_dir: Path, n: int) -> dict[str, float]:
    """``n`` new people each send a complaint, filed through the real classify and file stages;
    then each sends a follow-up without a reference.  Share of follow-ups filed in their own
    first case, and of first cases that show a customer."""
    def mail(name: str, sender: str, subject: str, body: str) -> MailItem:
        data, _ = email_bytes(sender=sender, subject=subject, body=body)
        return MailItem(name, "writer", "email", data, f"{name}.eml", "message/rfc822", Expected("?"))

    def file(batch: list[MailItem]) -> list[tuple[str, str | None]]:
        extracted = [extract_item(i, blob_dir) for i in batch]
        outputs = ClassifyStage(matcher=Matcher(), sessions=sessions).handle_batch(extracted)
        classified = [m for _, _, m in outputs if isinstance(m, ClassifiedItem)]
        assert len(classified) == len(extracted), "an item went to the dead letters"
        FileStage(sessions=sessions).handle_batch(classified)
        with sessions() as session:
            known = items.outcomes(session, item_ids=[c.item_id for c in classified])
        return [(known[c.item_id]["outcome"], known[c.item_id]["case_ref"]) for c in classified]

    firsts = file([mail(f"w1-{i}", f"Nia Writer{i} <nia.writer{i}@new.example>", "Complaint",
                        f"Dear Sir,\n\nI want to complain about the missed visit. Unacceptable.\n\nNia Writer{i}")
                   for i in range(n)])
    seconds = file([mail(f"w2-{i}", f"nia.writer{i}@new.example", "Any news?",
                         "Hello,\n\nIs there any news on my case? I am still waiting.\n\nNia") for i in range(n)])
    with sessions() as session:
        with_customer = sum(1 for _, ref in firsts if ref and cases.get_case(session, ref=ref).customer_id is not None)
    joined = sum(1 for (_, first), (outcome, ref) in zip(firsts, seconds, strict=True)
                 if outcome == "attached" and ref == first)
    return {"follow_ups_in_first_case": joined / n if n else 1.0,
            "first_cases_with_customer": with_customer / n if n else 1.0}


def shape_rates(outcomes: list[Outcome], prefix: str) -> dict[str, float]:
    mine = [o for o in outcomes if o.item.kind.startswith(prefix)]
    r = rates(mine)
    return {"items": len(mine), "attach_precision": round(r["attach_precision"], 4),
            "attach_recall": round(r["attach_recall"], 4), "other_outcomes_right": round(r["other_outcomes_right"], 4)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--scale", type=int, default=1, help="multiplies the email and form items")
    parser.add_argument("--scans", type=int, default=24, help="scanned letters (OCR ~1.5 s each)")
    parser.add_argument("--customers", type=int, default=120)
    parser.add_argument("--forms", type=int, default=60, help="issue 11 forms quoting own case")
    parser.add_argument("--nobody", type=int, default=6, help="issue 11 rounds of files with nobody to answer")
    parser.add_argument("--writers", type=int, default=12, help="issue 11 new people who write twice")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'casework.db'}")
        upgrade(engine)
        sessions = session_factory(engine)
        people = make_people(rng, args.customers)
        with sessions() as session, session.begin():
            seed_store(session, people, rng)
        items = generate_day(people, rng, scans=args.scans, scale=args.scale)
        items += generate_forms(people, rng, n=args.forms, layouts=HELD_OUT, negatives=args.forms // 3)
        items += generate_nobody(rng, n=args.nobody)
        start = time.perf_counter()
        outcomes = run_day(items, sessions, Matcher(), Path(tmp) / "blobs")
        total = time.perf_counter() - start
        twice = writers_twice(sessions, Path(tmp) / "blobs", args.writers)
        engine.dispose()
    r = rates(outcomes)
    print(json.dumps({"benchmark": "mailroom", "items": r["items"], "by_kind": r["by_kind"],
                      "seconds_total_with_extraction": round(total, 2)}))
    print(json.dumps({"metric": "attach_precision", "value": round(r["attach_precision"], 4), "goal": ">= 0.995"}))
    print(json.dumps({"metric": "attach_recall", "value": round(r["attach_recall"], 4), "goal": ">= 0.95"}))
    print(json.dumps({"metric": "filed_in_other_customers_case", "value": r["filed_in_other_customers_case"],
                      "goal": "0"}))
    print(json.dumps({"metric": "new_case_triage_noise_right", "value": round(r["other_outcomes_right"], 4),
                      "goal": ">= 0.90"}))
    for prefix in ("form-", "nobody-", "new-writer-"):
        print(json.dumps({"shape": prefix.rstrip("-"), **shape_rates(outcomes, prefix)}))
    print(json.dumps({"shape": "writes-twice", "people": args.writers, **twice}))
    print(json.dumps({"metric": "match_ms_per_item", "median": round(r["match_ms_median"], 2),
                      "p95": round(r["match_ms_p95"], 2)}))
    for wrong in r["wrong"]:
        print(json.dumps({"wrong": wrong}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
