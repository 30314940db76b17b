"""The generated mailroom day through the real pipeline pieces: prints JSON lines with the
auto-attach precision and recall, items filed in another customer's case, the share of right
new-case/triage/noise outcomes, and matching time per item.

    python -m benchmarks.mailroom [--seed N] [--scale K] [--scans N]
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

from casestore.db import make_engine, session_factory, upgrade
from classify.matcher import Matcher
from tests.classify.mailroom import generate_day, make_people, rates, run_day, seed_store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--scale", type=int, default=1, help="multiplies the email and form items")
    parser.add_argument("--scans", type=int, default=24, help="scanned letters (OCR ~1.5 s each)")
    parser.add_argument("--customers", type=int, default=120)
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
        start = time.perf_counter()
        outcomes = run_day(items, sessions, Matcher(), Path(tmp) / "blobs")
        total = time.perf_counter() - start
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
    print(json.dumps({"metric": "match_ms_per_item", "median": round(r["match_ms_median"], 2),
                      "p95": round(r["match_ms_p95"], 2)}))
    for wrong in r["wrong"]:
        print(json.dumps({"wrong": wrong}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
