"""Conditions of case-type definitions (``when``, ``required_if``): CEL, checked when loaded.

CEL (the Common Expression Language) is evaluated by ``cel-python`` (import ``celpy``) with its
*interpreting* runner, which walks the parse tree: no Python ``eval``/``exec`` is ever involved
(celpy's other runner transpiles to Python and ``exec``-s it; it is not used here).

The variables a condition may name, and nothing else:

``case``
    ``ref`` (str), ``type`` (str, the case type), ``status`` (str, one of the work statuses),
    ``urgency`` (int), ``subject`` (str or null), ``team`` (str or null), ``doc_type`` (str or
    null: the type of the document that opened the case), ``channel`` (str or null: email, scan,
    sms, ...).
``customer``
    ``known`` (bool: the case has an identified customer), ``name``, ``email``, ``phone``,
    ``postcode`` (str or null).
``tasks``
    task name -> the completion code of that task's last completed iteration, or ``null`` while
    it has not completed: ``tasks.assess == "uphold"``, ``tasks.contact != null``.  Only
    ``tasks.NAME`` and ``tasks["NAME"]`` are allowed (the loader checks each NAME is a task of
    the type); ``has()`` and ``in`` on these variables are refused because every field is
    always present (null when unknown).

Every field of ``case`` and ``customer`` is always present: a field the caller leaves out is
null.  A condition must evaluate to a bool; anything else, or a runtime error (comparing an
int with a string, a method on null), raises ``ConditionFailed``.  The standard CEL functions
and macros (``size``, ``startsWith``, ``matches``, ``int``, ``all``, ``exists``, ...) are
allowed; unknown functions are refused when the condition is compiled.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import celpy
import lark
from celpy import celtypes
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError, CELSyntaxError, CELUnsupportedError, base_functions

from casestore.errors import CaseStoreError

CASE_FIELDS: tuple[str, ...] = ("ref", "type", "status", "urgency", "subject", "team", "doc_type", "channel")
CUSTOMER_FIELDS: tuple[str, ...] = ("known", "name", "email", "phone", "postcode")
VARIABLES: dict[str, tuple[str, ...] | None] = {"case": CASE_FIELDS, "customer": CUSTOMER_FIELDS, "tasks": None}
MAX_LENGTH = 2000  # characters; a condition is a line or two, not a program
_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_FUNCTIONS = frozenset(name for name in base_functions if name[0].isalpha()) | {"dyn"}
_COMMON = "size, contains, startsWith, endsWith, matches, int, string, double, bool, and the macros " \
    "all, exists, exists_one, map, filter"


class ConditionError(CaseStoreError):
    """A condition does not compile or names something it may not; fix the definition."""

    http_status = 422
    exit_code = 2


class ConditionFailed(CaseStoreError):
    """A condition could not be evaluated (a runtime error, or a result that is not a bool)."""

    http_status = 422
    exit_code = 2


@dataclass(frozen=True)
class Condition:
    """A compiled condition; evaluate it as often as needed (thread-safe)."""

    text: str
    tasks: frozenset[str]  # the task names it reads (``tasks.NAME``)
    _program: Any = field(repr=False, compare=False)

    def evaluate(self, context: Mapping[str, Mapping[str, object] | None]) -> bool:
        """The condition's value over ``case``, ``customer`` and ``tasks`` (see the module docstring).

        Values are str, int, bool or None.  Missing fields are null; a task it names that is not in
        ``context["tasks"]`` has not completed (null).
        """
        activation = {
            "case": _fill(context.get("case"), CASE_FIELDS),
            "customer": _fill(context.get("customer"), CUSTOMER_FIELDS),
            "tasks": _fill(context.get("tasks"), tuple(sorted(self.tasks))),
        }
        try:
            result = self._program.evaluate(celpy.json_to_cel(activation))
        except CELEvalError as exc:
            raise ConditionFailed(f"condition {self.text!r} failed: {_eval_reason(exc)}; "
                                  "fix the condition in the case-type definition") from None
        except Exception as exc:  # celpy's own failures (a bug or an unsupported construct) never leak
            raise ConditionFailed(f"condition {self.text!r} failed: {type(exc).__name__}: {str(exc)[:200]}; "
                                  "fix the condition in the case-type definition") from None
        if isinstance(result, CELEvalError):
            raise ConditionFailed(f"condition {self.text!r} failed: {_eval_reason(result)}; "
                                  "fix the condition in the case-type definition")
        if not isinstance(result, celtypes.BoolType):
            shown = "null" if result is None else f"a {type(result).__name__.removesuffix('Type').lower()}"
            raise ConditionFailed(f"condition {self.text!r} gave {shown}, not true or false; "
                                  "write a comparison, e.g. case.status == \"open\"")
        return bool(result)


def _fill(values: Mapping[str, object] | None, names: tuple[str, ...]) -> dict[str, object]:
    given = values or {}
    return {name: given.get(name) for name in names}


def _eval_reason(exc: CELEvalError) -> str:
    # celpy's CELEvalError args: (message, the Python exception class it stands for, its args)
    cause = exc.args[1] if len(exc.args) > 1 else None
    if cause in (TypeError, AttributeError):
        return "values of different types compared or combined (e.g. an int with a string, or a method on null)"
    return (str(exc.args[0]) if exc.args else type(exc).__name__)[:200]


_env_lock = threading.Lock()
_env: celpy.Environment | None = None


def _environment() -> celpy.Environment:
    global _env
    if _env is None:
        limit = sys.getrecursionlimit()
        _env = celpy.Environment()  # sets the recursion limit to 2500; never lower what the process had
        sys.setrecursionlimit(max(limit, sys.getrecursionlimit()))
    return _env


@lru_cache(maxsize=2048)
def compile_condition(text: str) -> Condition:
    """Parse and check a condition (cached by its text); ``ConditionError`` says what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ConditionError("the condition is empty: write a CEL expression, e.g. case.urgency > 50")
    if len(text) > MAX_LENGTH:
        raise ConditionError(f"the condition is {len(text)} characters long (at most {MAX_LENGTH}): simplify it")
    with _env_lock:  # celpy's parser is one shared lark instance
        env = _environment()
        try:
            ast = env.compile(text)
        except CELParseError as exc:
            raise ConditionError(f"CEL syntax error at column {exc.column or '?'} of {text!r}: use == to compare, "
                                 "&& / || / ! for and / or / not, and double-quoted strings") from None
        except (CELSyntaxError, RecursionError, lark.exceptions.LarkError) as exc:
            raise ConditionError(f"CEL cannot parse {text!r} ({type(exc).__name__}): simplify it") from None
        tasks: set[str] = set()
        _Checker(text, tasks).visit(ast, frozenset())
        try:
            program = env.program(ast)
        except (CELSyntaxError, CELUnsupportedError, CELEvalError) as exc:
            raise ConditionError(f"CEL cannot run {text!r}: {str(exc)[:200]}") from None
    return Condition(text=text, tasks=frozenset(tasks), _program=program)


def _token(node: object) -> str:
    return str(node) if isinstance(node, lark.Token) else ""


def _root_variable(member: lark.Tree) -> str | None:
    """``case`` for the tree of the bare identifier ``case`` (member -> primary -> ident)."""
    node: object = member
    for expected in ("member", "primary", "ident"):
        if not isinstance(node, lark.Tree) or node.data != expected or len(node.children) != 1:
            return None
        if expected == "ident":
            return _token(node.children[0])
        node = node.children[0]
    return None


def _string_literal(expr: object) -> str | None:
    """The value of an expression that is one string literal, else None."""
    node = expr
    while isinstance(node, lark.Tree) and len(node.children) == 1 and node.data != "literal":
        node = node.children[0]
    if isinstance(node, lark.Tree) and node.data == "literal":
        token = node.children[0]
        if isinstance(token, lark.Token) and token.type == "STRING_LIT":
            raw = str(token)
            if raw[:1] in "\"'" and raw[-1:] == raw[:1] and "\\" not in raw:
                return raw[1:-1]
    return None


def _args(exprlist: object) -> list[lark.Tree]:
    if isinstance(exprlist, lark.Tree) and exprlist.data == "exprlist":
        return [c for c in exprlist.children if isinstance(c, lark.Tree)]
    return []


class _Checker:
    """A pass over the parse tree: only the documented variables, fields and functions."""

    def __init__(self, text: str, tasks: set[str]) -> None:
        self.text = text
        self.tasks = tasks

    def fail(self, what: str) -> None:
        raise ConditionError(f"condition {self.text!r}: {what}")

    def field(self, variable: str, name: str) -> None:
        allowed = VARIABLES[variable]
        if allowed is None:
            self.tasks.add(name)
        elif name not in allowed:
            self.fail(f"{variable} has no field {name!r}; its fields: {', '.join(allowed)}")

    def visit(self, node: lark.Tree, bound: frozenset[str]) -> None:
        kind = node.data
        children = node.children
        for child in children:
            if isinstance(child, lark.Token) and child.type == "IDENT" and "__" in child:
                self.fail(f"names with __ are not allowed ({child!r}): a condition reads case, customer and tasks")
        if kind == "member_dot":
            member, name = children[0], _token(children[1])
            root = _root_variable(member) if isinstance(member, lark.Tree) else None
            if root in VARIABLES and root not in bound:
                self.field(root, name)
                return
            inner = _field_of_variable(member, bound)
            if inner is not None:
                self.fail(f"{inner} is a plain value (text, number, true/false or null): it has no field {name!r}")
        elif kind == "member_index":
            member, index = children
            root = _root_variable(member) if isinstance(member, lark.Tree) else None
            if root in VARIABLES and root not in bound:
                quoted = _string_literal(index)
                if quoted is None:
                    example = (VARIABLES[root] or ("assess",))[0]
                    self.fail(f"{root}[...] needs a quoted name, e.g. {root}[\"{example}\"]")
                else:
                    self.field(root, quoted)
                return
        elif kind == "member_dot_arg":
            member, method = children[0], _token(children[1])
            args = _args(children[2]) if len(children) > 2 else []
            if method in _MACROS:
                var = _root_variable(_unwrap_member(args[0])) if args else None
                if var is None or len(args) != 2:
                    self.fail(f".{method}() takes a variable name and an expression, e.g. .{method}(x, x > 0)")
                if var in VARIABLES:
                    self.fail(f"{var!r} cannot be a macro variable: it is one of the condition's variables")
                assert var is not None and isinstance(member, lark.Tree)
                self.visit(member, bound)
                self.visit(args[1], bound | {var})
                return
            if method not in _FUNCTIONS:
                self.fail(f"unknown function .{method}(): CEL has {_COMMON}")
        elif kind == "ident_arg":
            name = _token(children[0])
            args = _args(children[1]) if len(children) > 1 else []
            if name == "has":
                self.fail("has() is not needed: every field is always present, null when unknown "
                          "(write e.g. customer.email != null or tasks.assess != null)")
            if name not in _FUNCTIONS:
                self.fail(f"unknown function {name}(): CEL has {_COMMON}")
            for arg in args:
                self.visit(arg, bound)
            return
        elif kind == "ident":
            name = _token(children[0])
            if name in bound:
                return
            if name in VARIABLES:
                example = f"{name}.{(VARIABLES[name] or ('assess',))[0]}"
                self.fail(f"use a field of {name}, e.g. {example} ({name} alone, has() and 'in {name}' are not "
                          "allowed: every field is always present, null when unknown)")
            self.fail(f"unknown name {name!r}: a condition may use case.FIELD, customer.FIELD and tasks.TASK")
        elif kind in ("dot_ident", "dot_ident_arg", "member_object"):
            self.fail("message types and qualified names are not supported: use case, customer and tasks")
        for child in children:
            if isinstance(child, lark.Tree):
                self.visit(child, bound)


def _field_of_variable(member: object, bound: frozenset[str]) -> str | None:
    """``case.ref`` when ``member`` is the tree of ``case.ref`` (a field of a condition variable)."""
    if not (isinstance(member, lark.Tree) and member.data == "member" and len(member.children) == 1):
        return None
    dot = member.children[0]
    if not (isinstance(dot, lark.Tree) and dot.data == "member_dot"):
        return None
    root = _root_variable(dot.children[0]) if isinstance(dot.children[0], lark.Tree) else None
    if root in VARIABLES and root not in bound:
        return f"{root}.{_token(dot.children[1])}"
    return None


def _unwrap_member(expr: lark.Tree) -> lark.Tree:
    """The ``member`` node of an expression that is a single member (a macro's variable)."""
    node: lark.Tree = expr
    while node.data != "member" and len(node.children) == 1 and isinstance(node.children[0], lark.Tree):
        node = node.children[0]
    return node
