"""`casework train doctype` trains from a labelled CSV and the pipeline then uses the model."""

from __future__ import annotations

import csv
from pathlib import Path

from tests.e2e.test_cli_pipeline import run, run_json

COMPLAINTS = ["the rude agent kept me waiting", "service was awful and nobody called back",
              "staff were rude on the phone", "waiting weeks with no reply is awful"]
ARREARS = ["I fell behind on the instalments", "the instalment this month will be late",
           "can I spread the instalments over longer", "behind with instalments since my job ended"]


def test_train_doctype_from_csv_then_pipeline_uses_it(tmp_path: Path, user_env: dict[str, str]) -> None:
    labelled = tmp_path / "labelled.csv"
    with labelled.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["narrative", "kind"])
        for i in range(6):
            for t in COMPLAINTS:
                w.writerow([f"{t} ({i})", "complaint"])
            for t in ARREARS:
                w.writerow([f"{t} ({i})", "arrears"])
    bad = run(user_env, "train", "doctype", str(labelled), check=False)
    assert bad.returncode == 2 and "narrative" in bad.stderr, "a wrong column name is named with the real ones"
    trained = run(user_env, "train", "doctype", str(labelled), "--text-column", "narrative", "--label-column", "kind")
    assert "2 types" in trained.stdout
    assert (Path(user_env["CASEWORK_DATA_DIR"]) / "models" / "doctype.joblib").is_file()

    mail = tmp_path / "m.eml"
    mail.write_bytes(b"From: someone@example.net\r\nSubject: hello\r\nMessage-ID: <t1@example.net>\r\n\r\n"
                     b"I am behind with the instalments again, sorry.\r\n")
    report = run_json(user_env, "ingest", str(mail), "--json")
    assert report["results"][0]["doc_type"] == "arrears"
    item = run_json(user_env, "item", "show", report["results"][0]["item_id"], "--json")
    assert item["decision"]["evidence"]["doc_type"]["method"] == "model"
