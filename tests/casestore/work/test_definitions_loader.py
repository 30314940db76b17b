"""The definitions loader: shipped case types load clean; broken ones are refused with file and line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from casestore.work.calendar_config import SHIPPED_CALENDARS, load_calendars
from casestore.work.definitions import CaseType
from casestore.work.loader import (
    SHIPPED_DIR,
    DefinitionError,
    digest_of,
    load_case_type_file,
    load_case_types,
    load_definitions,
)

SHIPPED_TYPES = {"complaint", "claim", "application", "arrears", "change_of_details", "general"}
CLASSIFIER_DOC_TYPES = ("complaint", "claim", "application", "arrears", "change_of_details", "cancellation",
                        "general_enquiry")  # classify.doctype.DOC_TYPES (casestore may not import classify)

# A small valid definition; each broken case below changes one piece of it.  The line a problem must
# be reported on carries the marker "#<".
BASE = """\
name: demo
version: 1
roles:
  agent: [work_task, add_note]
  supervisor: [work_task, reassign]
queues:
  - name: q
    team: t
  - name: senior
    team: t
clocks:
  - name: resolution
    duration: 5d
    stop_on: [task:b, case_closed]
escalations:
  - clock: resolution
    on: breach
    actions:
      - raise_urgency: 10
stages:
  - name: s1
    tasks:
      - name: a
        queue: q
        codes: [done, later]
        status_on_complete:
          later: awaiting_customer
        checklist:
          - name: item
            label: An item
      - name: b
        queue: q
        after: [a]
        codes: [done]
      - name: reply
        queue: q
        required: false
        max_repeats: 5
        codes: [read]
  - name: s2
    tasks:
      - name: c
        queue: q
        codes: [done]
completion_codes: [resolved, withdrawn]
on_customer_reply:
  review_task: reply
"""

# (id, text to replace in BASE, replacement with "#<" on the expected line, what the message must say);
# several edits are given as tuples.
BROKEN: list[tuple[str, str | tuple[str, ...], str | tuple[str, ...], str]] = [
    ("name differs from file", "name: demo\n", "name: other #<\n", "differs from the file name 'demo'"),
    ("unknown queue", "      - name: c\n        queue: q\n", "      - name: c\n        queue: nowhere #<\n",
     "unknown queue 'nowhere'"),
    ("unknown task in after", "after: [a]", "after: [zz] #<", "unknown task 'zz'"),
    ("after names another stage's task", "      - name: c\n        queue: q\n",
     "      - name: c\n        after: [a] #<\n        queue: q\n",
     "of stage 's1': after may only name tasks of the same"),
    ("cycle in after", ("        codes: [done, later]\n", "after: [a]"),
     ("        after: [b]\n        codes: [done, later]\n", "after: [a] #<"), "cycle (a -> b -> a"),
    ("task after itself", "after: [a]", "after: [b] #<", "waits for itself"),
    ("required task after an optional one", ("        codes: [done, later]\n", "after: [a]"),
     ("        codes: [done, later]\n        required: false\n", "after: [a] #<"),
     "waits for 'a', which is not required"),
    ("conditional task after an unrelated conditional one",
     ("        codes: [done, later]\n", "        after: [a]\n"),
     ("        codes: [done, later]\n        required: false\n        required_if: case.urgency > 5\n",
      "        after: [a] #<\n        required: false\n        required_if: case.urgency > 9\n"),
     "waits for 'a', which is not required"),
    ("required task with when", "        after: [a]\n", "        after: [a]\n        when: case.urgency > 5 #<\n",
     "required task 'b' has a when condition"),
    ("required_if on a required task", "        after: [a]\n",
     "        after: [a]\n        required_if: case.urgency > 5 #<\n", "set required: false"),
    ("when differs from required_if", "        required: false\n        max_repeats: 5\n",
     "        required: false\n        max_repeats: 5\n        required_if: case.urgency > 5\n"
     "        when: case.urgency > 9 #<\n", "when that differs from its required_if"),
    ("status_on_complete names a code the task lacks", "          later: awaiting_customer\n",
     "          later: awaiting_customer\n          gone: pending #<\n", "names code 'gone'"),
    ("unknown status", "later: awaiting_customer", "later: waiting #<", "unknown status 'waiting'"),
    ("sets_status unknown", "        after: [a]\n", "        after: [a]\n        sets_status: sleeping #<\n",
     "status 'sleeping' is not one of"),
    ("repeat_on a code the task lacks", "        codes: [read]\n",
     "        codes: [read]\n        repeat_on: [again] #<\n", "repeat_on names code 'again'"),
    ("repeat_on with max_repeats 1", "        after: [a]\n        codes: [done]\n",
     "        after: [a]\n        codes: [done]\n        repeat_on: [done] #<\n", "set max_repeats to 2 or more"),
    ("unknown role", "  supervisor: [work_task, reassign]\n", "  clerk: [work_task] #<\n", "unknown role 'clerk'"),
    ("unknown action", "  agent: [work_task, add_note]\n", "  agent: [work_task, fly] #<\n", "'fly' is not allowed"),
    ("bad duration", "duration: 5d", "duration: 5 days #<", "duration '5 days'"),
    ("zero duration", "duration: 5d", "duration: 0h #<", "is zero"),
    ("lease in days (wall time)", "    team: t\n  - name: senior", "    team: t\n    lease: 1d #<\n  - name: senior",
     "wall time"),
    ("CEL syntax error", "        max_repeats: 5\n", "        max_repeats: 5\n        when: case.urgency = 5 #<\n",
     "CEL syntax error"),
    ("CEL unknown variable", "        max_repeats: 5\n",
     "        max_repeats: 5\n        when: user.name == \"x\" #<\n", "unknown name 'user'"),
    ("CEL reads an unknown task", "        max_repeats: 5\n",
     "        max_repeats: 5\n        when: tasks.zz == \"done\" #<\n", "there is no task 'zz'"),
    ("escalation on an unknown clock", "  - clock: resolution\n", "  - clock: response #<\n",
     "unknown clock 'response'"),
    ("escalation moves to an unknown queue", "      - raise_urgency: 10\n",
     "      - raise_urgency: 10\n        move_to_queue: elsewhere #<\n", "unknown queue 'elsewhere'"),
    ("escalation notifies an unknown role", "      - raise_urgency: 10\n",
     "      - raise_urgency: 10\n        notify_role: manager #<\n", "unknown role 'manager'"),
    ("escalation action that does nothing", "      - raise_urgency: 10\n", "      - unassign: false #<\n",
     "does nothing"),
    ("clock stops on an unknown task", "stop_on: [task:b, case_closed]", "stop_on: [task:zz, case_closed] #<",
     "names no task"),
    ("clock starts on an unknown event", "    duration: 5d\n", "    duration: 5d\n    start_on: sometime #<\n",
     "unknown event 'sometime'"),
    ("clock pauses in an unknown status", "    duration: 5d\n", "    duration: 5d\n    pause_in: [lunch] #<\n",
     "unknown status 'lunch'"),
    ("duplicate queue", "  - name: senior\n", "  - name: q #<\n", "queue 'q' is defined twice"),
    ("duplicate task across stages", "      - name: c\n", "      - name: a #<\n", "task 'a' is defined twice"),
    ("duplicate checklist item", "            label: An item\n",
     "            label: An item\n          - name: item #<\n            label: Again\n",
     "checklist item 'item' is defined twice"),
    ("duplicate completion code", "completion_codes: [resolved, withdrawn]",
     "completion_codes: [resolved, resolved] #<", "completion code 'resolved' is defined twice"),
    ("duplicate YAML key", "version: 1\n", "version: 1\nversion: 2 #<\n", "version is given twice"),
    ("YAML syntax error", "  - name: s2\n", "  - name: s2\n   bad: [ #<\n", "YAML syntax"),
    ("unknown field", "        after: [a]\n", "        after: [a]\n        queu: q #<\n", "unknown field 'queu'"),
    ("missing field", ("      - name: c\n", "        codes: [done]\ncompletion_codes"),
     ("      - name: c #<\n", "completion_codes"), "codes is missing"),
    ("bad name", "  - name: s2\n", "  - name: Stage-Two #<\n", "not a valid name"),
    ("after not a list", "after: [a]", "after: a #<", "give a list"),
    ("review task unknown", "  review_task: reply\n", "  review_task: nobody #<\n", "unknown task 'nobody'"),
    ("review task required", ("        required: false\n        max_repeats: 5\n", "  review_task: reply\n"),
     ("        max_repeats: 5\n", "  review_task: reply #<\n"), "review task 'reply' is required"),
    ("review task not repeatable", ("        max_repeats: 5\n", "  review_task: reply\n"),
     ("", "  review_task: reply #<\n"), "review task 'reply' has max_repeats 1"),
    ("review task with after", ("        max_repeats: 5\n", "  review_task: reply\n"),
     ("        max_repeats: 5\n        after: [a]\n", "  review_task: reply #<\n"), "has after or when"),
    ("close_when_done with an unknown code", "completion_codes: [resolved, withdrawn]\n",
     "completion_codes: [resolved, withdrawn]\nclose_when_done: fixed #<\n", "code 'fixed', which is not a completion"),
    ("close_when_done rule with an unknown code", "completion_codes: [resolved, withdrawn]\n",
     "completion_codes: [resolved, withdrawn]\nclose_when_done:\n  - code: fixd #<\n    when: tasks.c == \"done\"\n",
     "code 'fixd', which is not a completion"),
    ("close_when_done reads an unknown task", "completion_codes: [resolved, withdrawn]\n",
     "completion_codes: [resolved, withdrawn]\nclose_when_done:\n  - code: resolved\n    when: tasks.zz == \"x\" #<\n",
     "there is no task 'zz'"),
    ("close_when_done rule without when before another", "completion_codes: [resolved, withdrawn]\n",
     "completion_codes: [resolved, withdrawn]\nclose_when_done:\n  - code: resolved #<\n  - code: withdrawn\n",
     "rules after it are never consulted"),
]


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _marker_line(text: str) -> int | None:
    for n, line in enumerate(text.splitlines(), 1):
        if "#<" in line:
            return n
    return None


def test_the_base_snippet_is_valid(tmp_path: Path) -> None:
    loaded = load_case_type_file(_write(tmp_path, "demo.yaml", BASE))
    assert loaded.name == "demo" and loaded.version == 1 and loaded.version_line == 2
    assert loaded.case_type.escalations[0].on == "breach"  # "on:" stays a key, not YAML 1.1's True


@pytest.mark.parametrize(("old", "new", "fragment"), [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN])
def test_broken_definitions_are_refused_with_file_and_line(tmp_path: Path, old: str | tuple[str, ...],
                                                           new: str | tuple[str, ...], fragment: str) -> None:
    text = BASE
    for before, after in zip((old,) if isinstance(old, str) else old, (new,) if isinstance(new, str) else new,
                             strict=True):
        assert text.count(before) == 1, f"each edit must change exactly one place: {before!r}"
        text = text.replace(before, after)
    path = _write(tmp_path, "demo.yaml", text)
    with pytest.raises(DefinitionError) as info:
        load_case_type_file(path)
    problems = info.value.problems
    matching = [p for p in problems if fragment in p.message]
    assert matching, f"no problem says {fragment!r}: {[str(p) for p in problems]}"
    problem = matching[0]
    assert problem.file == str(path)
    expected_line = _marker_line(text)
    if expected_line is not None:
        assert problem.line == expected_line, str(problem)
    assert str(problem).startswith(f"{path}:{problem.line}: ")
    assert info.value.exit_code == 2 and info.value.http_status == 422


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = BASE.replace("after: [a]", "after: [zz]").replace("duration: 5d", "duration: soon")
    with pytest.raises(DefinitionError) as info:
        load_case_type_file(_write(tmp_path, "demo.yaml", text))
    messages = " | ".join(p.message for p in info.value.problems)
    assert "unknown task 'zz'" in messages and "'soon'" in messages


def test_shipped_definitions_load_clean_with_the_shipped_calendars() -> None:
    defs = load_definitions(SHIPPED_DIR, calendars=load_calendars(SHIPPED_CALENDARS))
    assert set(defs.types) == SHIPPED_TYPES
    for loaded in defs.types.values():
        ct = loaded.case_type
        assert loaded.source == SHIPPED_DIR / f"{ct.name}.yaml"
        assert ct.clocks and ct.escalations and ct.on_customer_reply.review_task
        assert any(t.checklist for s in ct.stages for t in s.tasks)
        assert {"agent", "supervisor", "admin"} <= set(ct.roles)
    for doc_type in CLASSIFIER_DOC_TYPES:
        assert defs.mapping.case_type_for(doc_type) in SHIPPED_TYPES
    assert defs.mapping.case_type_for("complaint") == "complaint"
    assert defs.mapping.case_type_for("cancellation") == "general"
    assert defs.mapping.case_type_for("something_new") == "general"
    assert defs.mapping.case_type_for(None) == "general"
    complaint = defs.types["complaint"].case_type
    assert {c.name: c.duration for c in complaint.clocks} == {"acknowledgement": "4h", "final_response": "40d"}


def test_digest_ignores_layout_and_defaults_but_not_content(tmp_path: Path) -> None:
    first = load_case_type_file(_write(tmp_path / "a", "demo.yaml", BASE))
    relaid = BASE.replace("version: 1\n", "# a comment\nversion: 1\ncalendar: default\n")
    second = load_case_type_file(_write(tmp_path / "b", "demo.yaml", relaid))
    changed = load_case_type_file(_write(tmp_path / "c", "demo.yaml", BASE.replace("duration: 5d", "duration: 6d")))
    assert first.digest == second.digest != changed.digest
    assert first.digest == digest_of(CaseType.model_validate(first.case_type.model_dump()))
    assert len(first.digest) == 64


def test_a_broken_file_refuses_the_whole_folder(tmp_path: Path) -> None:
    folder = tmp_path / "defs"
    shutil.copytree(SHIPPED_DIR, folder)
    broken = folder / "claim.yaml"
    broken.write_text(broken.read_text().replace("queue: claims_payments", "queue: claims_paymentz"))
    with pytest.raises(DefinitionError) as info:
        load_case_types(folder)
    assert [p.file for p in info.value.problems] == [str(broken)]
    assert "unknown queue 'claims_paymentz'" in info.value.problems[0].message


def test_unknown_calendar_is_refused_when_calendars_are_known(tmp_path: Path) -> None:
    text = BASE.replace("version: 1\n", "version: 1\ncalendar: mars #<\n")
    path = _write(tmp_path / "defs", "demo.yaml", text)
    load_case_type_file(path)  # calendars unknown: not checked
    with pytest.raises(DefinitionError) as info:
        load_case_type_file(path, calendars=load_calendars(SHIPPED_CALENDARS))
    assert info.value.problems[0].line == 3 and "unknown calendar 'mars'" in info.value.problems[0].message


@pytest.mark.parametrize(("mapping", "line", "fragment"), [
    ("complaint: demo\nclaim: claims\ndefault: demo\n", 2, "unknown case type 'claims'"),
    ("complaint: demo\n", 1, "no default"),
    ("complaint: demo\nComplaint-Type: demo\ndefault: demo\n", 2, "not a document type name"),
    ("- demo\n", 1, "document type: case type lines"),
    ("complaint: [demo]\ndefault: demo\n", 1, "give a case type name"),
])
def test_broken_mappings_are_refused(tmp_path: Path, mapping: str, line: int, fragment: str) -> None:
    folder = tmp_path / "defs"
    _write(folder, "demo.yaml", BASE)
    path = _write(folder, "mapping.yaml", mapping)
    with pytest.raises(DefinitionError) as info:
        load_definitions(folder)
    problem = next(p for p in info.value.problems if fragment in p.message)
    assert (problem.file, problem.line) == (str(path), line)


def test_without_a_mapping_each_doc_type_opens_its_namesake(tmp_path: Path) -> None:
    folder = tmp_path / "defs"
    _write(folder, "demo.yaml", BASE)
    with pytest.raises(DefinitionError) as info:  # no general.yaml to fall back on
        load_definitions(folder)
    assert "no mapping.yaml and no general.yaml" in info.value.problems[0].message
    _write(folder, "general.yaml", BASE.replace("name: demo", "name: general"))
    mapping = load_definitions(folder).mapping
    assert mapping.case_type_for("demo") == "demo" and mapping.case_type_for("complaint") == "general"


def test_folder_problems(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="is not a folder"):
        load_definitions(tmp_path / "missing")
    with pytest.raises(DefinitionError, match="holds no case-type definitions"):
        load_definitions(tmp_path)
    _write(tmp_path / "two", "demo.yaml", BASE)
    _write(tmp_path / "two", "demo.yml", BASE)
    with pytest.raises(DefinitionError, match="a second definition of 'demo'"):
        load_definitions(tmp_path / "two")


@pytest.mark.parametrize(("content", "fragment"), [
    (b"", "the file is empty"),
    (b"- just\n- a list\n", "a mapping of fields"),
    (b"name: demo\nversion: \xff\n", "not UTF-8"),
    (b"a: &x [1]\nb: *x\n<<: {c: 1}\n", "merge keys"),
    (b"name: !!python/object:os.system x\n", "YAML"),
    (b"a: &x [*x]\n", "an alias inside itself"),
    (b"a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     b"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
     b"e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n",
     "more than 100000 YAML nodes"),
])
def test_files_that_are_not_definitions(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "demo.yaml"
    path.write_bytes(content)
    with pytest.raises(DefinitionError) as info:
        load_case_type_file(path)
    assert any(fragment in p.message for p in info.value.problems), [str(p) for p in info.value.problems]


def test_on_complete_templates_are_checked_when_the_known_templates_are_given(tmp_path: Path) -> None:
    from casestore.outbound.templates import Templates

    text = BASE.replace("          later: awaiting_customer\n",
                        "          later: awaiting_customer\n        on_complete:\n          - code: later\n"
                        "            send: {template: chase, channel: email} #<\n")
    path = _write(tmp_path, "demo.yaml", text)
    load_case_type_file(path)  # without the known templates (None) the name is not checked
    with pytest.raises(DefinitionError) as info:
        load_case_type_file(path, templates=Templates())
    [problem] = info.value.problems
    assert problem.line == _marker_line(text) and "no email template 'chase' for case type 'demo'" in problem.message
    ours = tmp_path / "templates" / "demo"
    ours.mkdir(parents=True)
    (ours / "chase.sms.j2").write_text("Please reply.\n")  # the channel counts: an SMS does not do
    with pytest.raises(DefinitionError):
        load_case_type_file(path, templates=Templates([tmp_path / "templates"]))
    (ours / "chase.email.j2").write_text("Subject: Still waiting\n\nPlease reply.\n")
    assert load_case_type_file(path, templates=Templates([tmp_path / "templates"])).name == "demo"
    defs = load_definitions(SHIPPED_DIR, calendars=load_calendars(SHIPPED_CALENDARS), templates=Templates())
    assert set(defs.types) == SHIPPED_TYPES  # the shipped types send shipped templates only
