"""The case types are checked against the message templates when a process loads them
(``Runtime.work``), not only by `casework casetype check`: an ``on_complete`` that sends a
template there is none of refuses the start with file:line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from api.settings import DbSettings, OutboundSettings, Settings, WorkSettings
from api.wiring import open_runtime
from casestore.work.loader import SHIPPED_DIR
from casestore.work.problems import DefinitionError


def test_a_case_type_sending_a_missing_template_is_refused_at_load(tmp_path: Path, db_url: str) -> None:
    folder = tmp_path / "defs"
    shutil.copytree(SHIPPED_DIR, folder)
    complaint = folder / "complaint.yaml"
    complaint.write_text(complaint.read_text().replace("send: {template: outcome, channel: letter}",
                                                       "send: {template: outcome, channel: sms}\n"
                                                       "          - code: final_response_sent\n"
                                                       "            send: {template: closing, channel: email}"))
    line = next(n for n, x in enumerate(complaint.read_text().splitlines(), 1) if "closing" in x)
    settings = Settings(data_dir=tmp_path / "data", db=DbSettings(url=db_url),
                        work=WorkSettings(case_types_dir=str(folder)),
                        outbound=OutboundSettings(templates_dir=str(tmp_path / "templates")))
    rt = open_runtime(settings)
    try:
        with pytest.raises(DefinitionError) as info:
            _ = rt.work
        [problem] = info.value.problems  # outcome exists for SMS too (default/outcome.sms.j2)
        assert (problem.file, problem.line) == (str(complaint), line)
        assert "no email template 'closing' for case type 'complaint'" in problem.message
        (tmp_path / "templates" / "default").mkdir(parents=True)
        (tmp_path / "templates" / "default" / "closing.email.j2").write_text("Subject: Closed\n\nThanks.\n")
        assert "complaint" in rt.work.case_types  # the configured folder's templates count
    finally:
        rt.close()
