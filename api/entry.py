"""The `casework` command's entry point (``python -m api`` and the installed script): the command
line is imported with the cycle collector off, then its objects are frozen (``ingest.heap``)."""

from __future__ import annotations

from ingest.heap import settled, start_up


def main() -> None:
    start_up()
    from api.cli import main as cli_main

    settled()
    cli_main()
