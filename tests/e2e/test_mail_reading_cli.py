"""Issue 11 (4, 5, 8) tried as a user would, through `casework ingest`: a mail whose header block is
damaged and one without a Subject reach their case with a sender, no file-name subject, and their
own date beside the time casework received them; a bounce from a less common system is noise and
opens nothing, while a person whose subject says "Delivery failure" is not; a scan keeps its
capture time."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from tests.e2e.test_cli_pipeline import CASES, CUSTOMERS, run, run_json


def test_damaged_headers_no_subject_bounce_and_own_dates(tmp_path: Path, user_env: dict[str, str]) -> None:
    env = user_env
    (tmp_path / "customers.csv").write_text(CUSTOMERS)
    (tmp_path / "cases.csv").write_text(CASES)
    run(env, "import", "customers", str(tmp_path / "customers.csv"), check=False)
    run(env, "import", "cases", str(tmp_path / "cases.csv"))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "wrapped.eml").write_bytes(
        b"X-Junk-Banner exported by MailStore\nFrom: Jane Doe <jane.doe@example.com>\n"
        b"Subject: Re: CM-2025-004817 my parcel has still not arrived and I would like\n"
        b"to know when it will\nDate: Fri, 20 Nov 2026 08:30:00 +0000\nMessage-ID: <w1@example.com>\n\n"
        b"Hello, still waiting for CM-2025-004817. Jane\n")
    (inbox / "scan_0042.eml").write_bytes(
        b"From: Jane Doe <jane.doe@example.com>\nDate: Sat, 21 Nov 2026 09:00:00 +0000\n"
        b"Message-ID: <w2@example.com>\n\nAbout CM-2025-004817: see my earlier mail. Jane\n")
    (inbox / "bounce.eml").write_bytes(
        b"From: Mailsystem <>\nSubject: Unzustellbar: Ihre Nachricht\nMessage-ID: <b1@mx.example.de>\n\n"
        b"Die Nachricht an jane.doe@example.com konnte nicht zugestellt werden.\n")
    (inbox / "person.eml").write_bytes(
        b"From: Jane Doe <jane.doe@example.com>\nSubject: Delivery failure of my parcel CM-2025-004817\n"
        b"Message-ID: <w3@example.com>\n\nThe parcel was not delivered to my address. Jane\n")
    scan = io.BytesIO()
    Image.new("L", (40, 40), 255).save(scan, format="TIFF", tiffinfo={306: "2026:11:19 16:45:10"})
    (inbox / "page.tif").write_bytes(scan.getvalue())

    report = run_json(env, "ingest", str(inbox), "--json")
    by_name = {Path(r["source"]).name: r for r in report["results"]}
    assert by_name["wrapped.eml"]["outcome"] == "attached", report
    assert by_name["scan_0042.eml"]["outcome"] == "attached", report
    assert by_name["bounce.eml"]["outcome"] == "noise", report
    assert by_name["person.eml"]["outcome"] == "attached", report  # bounce words from a person: not noise

    wrapped = run_json(env, "item", "show", by_name["wrapped.eml"]["item_id"], "--json")
    assert wrapped["sender"] == "jane.doe@example.com"
    assert wrapped["subject"].endswith("I would like to know when it will")
    assert wrapped["metadata"]["sent_at"] == "2026-11-20T08:30:00+00:00"
    untitled = run_json(env, "item", "show", by_name["scan_0042.eml"]["item_id"], "--json")
    assert untitled["subject"] in (None, "")
    assert untitled["documents"][0]["title"] == "(no subject)"

    folder = run_json(env, "case", "show", "CM-2025-004817", "--json")
    docs = {d["item_id"]: d for d in folder["documents"]}
    assert docs[by_name["wrapped.eml"]["item_id"]]["sent_at"] == "2026-11-20T08:30:00+00:00"
    assert docs[by_name["scan_0042.eml"]["item_id"]]["received_at"] != docs[by_name["scan_0042.eml"]["item_id"]][
        "sent_at"]

    page = run_json(env, "item", "show", by_name["page.tif"]["item_id"], "--json")
    assert page["metadata"]["captured_at"] == "2026-11-19T16:45:10+00:00"
