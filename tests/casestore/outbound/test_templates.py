"""Templates: per case type and channel, in Jinja2's sandbox, strict about missing fields."""

from __future__ import annotations

from pathlib import Path

import pytest

from casestore.outbound.errors import TemplateProblem
from casestore.outbound.models import CHANNELS
from casestore.outbound.templates import Templates, split_subject

CONTEXT = {"case": {"ref": "CW-2025-000001-X", "subject": "noise", "case_type": "complaint", "status": "open",
                    "team": "complaints", "opened_at": "2025-03-01"},
           "customer": {"name": "Jane Doe"}, "agent": {"name": "alice"},
           "team": {"name": "complaints", "from_address": "c@x.example", "signature": "Example Ltd"},
           "today": "1 March 2025", "fields": {"decision": "We uphold your complaint."}}


@pytest.mark.parametrize("name", ["acknowledgement", "request_for_information", "outcome"])
@pytest.mark.parametrize("channel", CHANNELS)
def test_every_shipped_template_renders_for_every_channel(name: str, channel: str) -> None:
    rendered = Templates().render(name, case_type="general_enquiry", channel=channel, context=CONTEXT)
    assert "CW-2025-000001-X" in rendered.body + rendered.subject
    assert (rendered.subject != "") == (channel == "email")


def test_a_case_type_template_wins_over_the_default_and_a_configured_folder_over_the_shipped(tmp_path: Path) -> None:
    shipped = Templates()
    complaint = shipped.render("outcome", case_type="complaint", channel="letter", context=CONTEXT).body
    general = shipped.render("outcome", case_type="claim", channel="letter", context=CONTEXT).body
    assert "ombudsman" in complaint and "ombudsman" not in general
    (tmp_path / "default").mkdir()
    (tmp_path / "default" / "outcome.sms.j2").write_text("Ours: {{ case.ref }}")
    (tmp_path / "default" / "chaser.sms.j2").write_text("Any news on {{ case.ref }}?")
    mine = Templates([tmp_path])
    assert mine.render("outcome", case_type="claim", channel="sms", context=CONTEXT).body == "Ours: CW-2025-000001-X\n"
    names = {(t.name, t.channel) for t in mine.available(case_type="complaint")}
    assert {("chaser", "sms"), ("outcome", "letter"), ("acknowledgement", "email")} <= names


def test_the_sandbox_refuses_reaching_into_python(tmp_path: Path) -> None:
    (tmp_path / "default").mkdir()
    (tmp_path / "default" / "evil.sms.j2").write_text("{{ case.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(TemplateProblem, match=r"sandbox|does not have"):
        Templates([tmp_path]).render("evil", case_type="x", channel="sms", context=CONTEXT)


def test_missing_fields_and_bad_names_are_refused_with_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "default").mkdir()
    (tmp_path / "default" / "typo.sms.j2").write_text("Dear {{ customer.nmae }}")
    (tmp_path / "default" / "broken.sms.j2").write_text("{% if %}")
    t = Templates([tmp_path])
    with pytest.raises(TemplateProblem, match="does not have"):
        t.render("typo", case_type="x", channel="sms", context=CONTEXT)
    with pytest.raises(TemplateProblem, match="does not parse at line 1"):
        t.render("broken", case_type="x", channel="sms", context=CONTEXT)
    with pytest.raises(TemplateProblem, match=r"choose one of: .*acknowledgement"):
        t.render("nope", case_type="x", channel="sms", context=CONTEXT)
    with pytest.raises(TemplateProblem, match="not a template name"):
        t.render("../../etc/passwd", case_type="x", channel="sms", context=CONTEXT)


def test_an_email_is_a_subject_line_then_the_body() -> None:
    r = split_subject("Subject: Hello there\n\nLine one\nLine two\n")
    assert r.subject == "Hello there" and r.body == "Line one\nLine two\n"
    with pytest.raises(TemplateProblem, match="Subject"):
        split_subject("Hello there\n\nbody")
