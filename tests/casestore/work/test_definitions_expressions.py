"""CEL conditions of case-type definitions: evaluated correctly, names checked, never Python."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

import pytest
from celpy import InterpretedRunner

from casestore.errors import CaseStoreError
from casestore.work.expressions import ConditionError, ConditionFailed, compile_condition

CONTEXT: dict[str, Any] = {
    "case": {"ref": "CW-2026-000042", "type": "complaint", "status": "in_progress", "urgency": 60,
             "subject": "Unhappy with my claim", "team": "complaints", "doc_type": "complaint", "channel": "email"},
    "customer": {"known": True, "name": "Ada Lovelace", "email": "ada@example.com", "phone": None,
                 "postcode": "SW1A 1AA"},
    "tasks": {"assess": "investigate", "acknowledge": "acknowledged"},
}


@pytest.mark.parametrize(("text", "expected"), [
    ('case.status == "in_progress"', True),
    ('case.status != "in_progress"', False),
    ("case.urgency > 50", True),
    ("case.urgency >= 61", False),
    ('case.urgency > 50 && case.channel == "sms"', False),
    ('case.urgency > 90 || case.doc_type == "complaint"', True),
    ("!customer.known", False),
    ("customer.phone == null", True),
    ("customer.email != null", True),
    ('customer.postcode.startsWith("SW1")', True),
    ('case.subject.contains("claim")', True),
    ('case.subject.matches("(?i)unhappy")', True),
    ("size(case.ref) == 14", True),
    ('case.status in ["open", "in_progress"]', True),
    ('tasks.assess == "investigate"', True),
    ('tasks["acknowledge"] == "acknowledged"', True),
    ("tasks.decide == null", True),  # not completed: null, not an error
    ('tasks.decide == "upheld" || tasks.decide == "partially_upheld"', False),
    ('case.urgency > 50 ? tasks.assess == "investigate" : false', True),
    ('["a", "bb"].all(x, size(x) > 0) && [1, 2, 3].exists(n, n == case.urgency / 30)', True),
    ("case.team == null", False),
])
def test_conditions_evaluate(text: str, expected: bool) -> None:
    assert compile_condition(text).evaluate(CONTEXT) is expected


def test_missing_fields_are_null_and_tasks_read_are_listed() -> None:
    cond = compile_condition('tasks.assess == "investigate" && case.team == null')
    assert cond.tasks == {"assess"}
    assert cond.evaluate({"case": {"status": "open"}}) is False  # no tasks given: assess is null
    assert cond.evaluate({"tasks": {"assess": "investigate"}}) is True  # no case given: team is null


@pytest.mark.parametrize(("text", "fragment"), [
    ("foo == 1", "unknown name 'foo'"),
    ("case.staus == \"open\"", "case has no field 'staus'"),
    ("customer.address == null", "customer has no field 'address'"),
    ("case", "use a field of case"),
    ('"assess" in tasks', "use a field of tasks"),
    ("has(customer.email)", "has() is not needed"),
    ("tasks[case.ref] == null", "needs a quoted name"),
    ("lower(case.status) == \"x\"", "unknown function lower()"),
    ("case.status.lower() == \"x\"", "unknown function .lower()"),
    ("[1].exists(case, case > 0)", "'case' cannot be a macro variable"),
    ("case.ref.length == 3", "case.ref is a plain value"),
    ("case.ref.__class__ == null", "names with __ are not allowed"),
    ("google.protobuf.Int32Value{value: 1} == 1", "message types"),
    (".case.status == \"open\"", "qualified names are not supported"),
    ("case.status ==", "CEL syntax error"),
    ("case.status = \"open\"", "CEL syntax error"),
    ("", "empty"),
    ("x" * 2001, "at most 2000"),
])
def test_bad_conditions_are_refused_with_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(ConditionError) as info:
        compile_condition(text)
    assert fragment in str(info.value)
    assert info.value.http_status == 422 and info.value.exit_code == 2
    assert isinstance(info.value, CaseStoreError)


@pytest.mark.parametrize(("text", "fragment"), [
    ("case.status", "gave a string, not true or false"),
    ("customer.phone", "gave null"),
    ("case.urgency + 1", "gave a int"),
    ('case.urgency > "10"', "values of different types"),
    ('customer.phone.startsWith("07")', "values of different types"),  # a method on null
    ("case.urgency / 0 == 1", "divide by zero"),
])
def test_runtime_errors_and_non_bool_results_are_typed(text: str, fragment: str) -> None:
    cond = compile_condition(text)
    with pytest.raises(ConditionFailed) as info:
        cond.evaluate(CONTEXT)
    assert fragment in str(info.value)
    assert not type(info.value).__module__.startswith("celpy")


def test_a_value_celpy_cannot_take_is_a_typed_error() -> None:
    with pytest.raises(ConditionFailed):
        compile_condition('case.subject == "x"').evaluate({"case": {"subject": object()}})  # type: ignore[dict-item]


def test_compiled_conditions_are_cached() -> None:
    assert compile_condition("case.urgency > 7") is compile_condition("case.urgency > 7")


def test_conditions_never_run_python(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The interpreting runner walks the tree: Python's eval, exec and compile are never called, and
    Python written as CEL is refused or stays data."""
    marker = tmp_path / "pwned"
    for text in (f'__import__("os").system("touch {marker}")', f'os.system("touch {marker}")',
                 'exec("1")', "case.__class__ == null", "case.ref.__class__.__name__ == null"):
        with pytest.raises(ConditionError):
            compile_condition(text)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("Python eval/exec/compile called by a condition")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(builtins, "compile", forbidden)
    cond = compile_condition(f'case.subject == "__import__(\'os\').system(\'touch {marker}\')" || case.urgency > 1')
    assert isinstance(cond._program, InterpretedRunner)
    assert cond.evaluate(CONTEXT) is True
    assert cond.evaluate({"case": {"subject": f"__import__('os').system('touch {marker}')"}}) is True
    assert not marker.exists()
