"""The shared object store, tried as an operator would: `casework ingest` with
CASEWORK_BLOBS__URL=s3://... keeps every blob (the email and its attachment, the latter stored by
the extract stage's own process) in the bucket and none in the data directory, and the CLI reads
the text back."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

import boto3

from tests.s3_server import S3_TEST_KEYS

CASEWORK = [sys.executable, "-m", "api"]


def test_ingest_keeps_every_blob_in_the_configured_bucket(tmp_path: Path, user_env: dict[str, str],
                                                          s3_server: str, s3_bucket: str) -> None:
    env = {**user_env, "CASEWORK_BLOBS__URL": f"s3://{s3_bucket}/casework", "CASEWORK_BLOBS__ENDPOINT_URL": s3_server,
           "CASEWORK_BLOBS__REGION": S3_TEST_KEYS["region"],
           "CASEWORK_BLOBS__ACCESS_KEY_ID": S3_TEST_KEYS["access_key_id"],
           "CASEWORK_BLOBS__SECRET_ACCESS_KEY": S3_TEST_KEYS["secret_access_key"],
           "CASEWORK_WORKER__STAGE_PROCESSES": "processes"}  # the stages in children, as `serve` runs them
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "Ann Lee <ann@example.net>", "cases@casework.example", "My meter reading"
    msg["Message-ID"] = "<s3-1@example.net>"
    msg.set_content("Please find my meter reading attached.")
    msg.add_attachment(b"Meter 4471 reads 012345 on 1 March", maintype="text", subtype="plain", filename="meter.txt")
    mail = tmp_path / "in" / "meter.eml"
    mail.parent.mkdir()
    mail.write_bytes(msg.as_bytes())

    ingest = subprocess.run([*CASEWORK, "ingest", str(mail), "--json"], env=env, capture_output=True, text=True,
                            timeout=300)
    assert ingest.returncode == 0, ingest.stderr
    result = json.loads(ingest.stdout)["results"][0]
    assert result["outcome"] == "new_case", result
    shown = subprocess.run([*CASEWORK, "item", "show", result["item_id"], "--json"], env=env, capture_output=True,
                           text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "012345" in json.loads(shown.stdout)["text"]

    client = boto3.client("s3", endpoint_url=s3_server, region_name=S3_TEST_KEYS["region"],
                          aws_access_key_id=S3_TEST_KEYS["access_key_id"],
                          aws_secret_access_key=S3_TEST_KEYS["secret_access_key"])
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket).get("Contents", [])]
    names = {key.rsplit("/", 1)[1] for key in keys}
    assert hashlib.sha256(msg.as_bytes()).hexdigest() in names, "the email itself (put by the CLI)"
    assert hashlib.sha256(b"Meter 4471 reads 012345 on 1 March").hexdigest() in names, \
        "the attachment (put by the extract stage's process)"
    assert all(key.startswith("casework/") for key in keys)
    assert not (Path(env["CASEWORK_DATA_DIR"]) / "blobs").exists(), "no blob in the data directory"
