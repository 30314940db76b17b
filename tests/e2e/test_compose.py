"""docker-compose.yml is for users (no Docker engine here): check it parses, names real images,
and that every command it runs is a real `casework` command."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.main import get_command

from api.cli import app

ROOT = Path(__file__).resolve().parents[2]


def test_compose_file_is_valid_and_runs_real_commands() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "kafka", "api", "worker-extract", "worker-classify", "worker-file",
            "worker-sender"} <= set(services)
    cli = get_command(app)
    for name, svc in services.items():
        assert svc.get("image") or svc.get("build"), name
        command = svc.get("command")
        if not command:
            continue
        assert command[0] == "casework", name
        sub = cli.commands[command[1]]  # type: ignore[attr-defined]
        if command[1] == "worker":
            assert command[2] in ("extract", "classify", "file", "sender")
        assert sub is not None
    env = services["worker-file"]["environment"]
    assert env["CASEWORK_BUS__URL"].startswith("kafka://")
    assert env["CASEWORK_DB__URL"].startswith("postgresql+psycopg://")
    for copied in ("connectors", "ingest", "classify", "casestore", "api"):
        assert f"COPY {copied} {copied}" in (ROOT / "Dockerfile").read_text()
