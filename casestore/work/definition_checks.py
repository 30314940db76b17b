"""Checks that need a whole case type (the Pydantic model checks each field alone).

Each check reports the line of the offending key.  The rules:

- names: the file is ``<name>.yaml``; queue, stage, clock and completion-code names are unique
  in the type, task names are unique across all stages, checklist items and codes within a task;
- references: a task's ``queue``, ``after`` (tasks of the *same* stage), escalation ``clock`` and
  ``move_to_queue``, ``on_customer_reply.review_task``, clock events (``case_started``,
  ``case_closed``, ``customer_replied``, ``task:<name>``, ``stage:<name>``), statuses (a work
  status other than ``closed``), roles (agent, supervisor, admin), calendars (when known), and
  the tasks a condition reads (``tasks.NAME``) must all exist;
- ``after`` has no cycle (the cycle is reported);
- reachability: a task is *guaranteed* when it is ``required: true`` without ``when``.  A
  ``required: true`` task must not have ``when`` (if it never holds the stage never completes:
  use ``required_if`` for "required when"), and a task that is or may be required (``required``
  or ``required_if``) may only wait (``after``) for guaranteed tasks: an optional or conditional
  task may never complete, and the stage would wait for ever.  By induction every required task
  can then be enabled once its stage is active;
- ``required_if`` only on ``required: false`` tasks; ``status_on_complete``, ``repeat_on`` and
  ``on_complete`` name codes the task allows (``on_complete`` each code once); ``repeat_on``
  needs ``max_repeats`` of at least 2;
- ``on_complete.send.template`` names a template that exists for the type on that channel (its
  own folder or ``default``; see ``casestore.outbound.templates``), when the caller passes the
  known templates (``KnownTemplates``, the ``casestore.work.outbox_port`` port);
- the review task (``on_customer_reply.review_task``) is enabled by the engine on each customer
  reply, in whatever stage the case is, not when its own stage starts; replies may never come,
  so it is ``required: false``, repeatable (``max_repeats`` >= 2), and has no ``after`` or
  ``when`` (they would never be consulted);
- durations parse (``casestore.work.calendar.parse_duration``) and are longer than zero:
  ``duration`` and ``reopen_window`` as working time on the type's calendar (units w, d, h, m),
  a queue's ``lease`` as wall time (h, m);
- every condition compiles (``casestore.work.expressions``);
- an escalation action does something, and a clock has one escalation per event (warn, breach);
- ``close_when_done`` closes with completion codes of the type, its conditions compile and read
  tasks that exist, and only its last rule may go without ``when``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import suppress
from datetime import timedelta
from functools import lru_cache

from casestore.work.calendar import BusinessCalendar, CalendarError, parse_duration
from casestore.work.calendar_config import SHIPPED_CALENDARS, load_calendar_file
from casestore.work.definitions import CaseType, Task
from casestore.work.expressions import ConditionError, compile_condition
from casestore.work.models import WORK_STATUSES
from casestore.work.outbox_port import KnownTemplates
from casestore.work.problems import Path_, Problem
from casestore.work.yaml_lines import YamlDocument

ROLES: tuple[str, ...] = ("agent", "supervisor", "admin")
STATUSES: tuple[str, ...] = tuple(s for s in WORK_STATUSES if s != "closed")
EVENTS: tuple[str, ...] = ("case_started", "case_closed", "customer_replied")


@lru_cache(maxsize=1)
def _syntax_calendar() -> BusinessCalendar:
    """The shipped default calendar: checks a duration's syntax when the real calendars are not given."""
    return load_calendar_file(SHIPPED_CALENDARS / "default.yaml")


def duration_problem(text: str, calendar: BusinessCalendar | None) -> str | None:
    """Why ``text`` is not a usable duration (working time on ``calendar``; wall time if None), or None."""
    try:
        value = parse_duration(text, calendar)
    except CalendarError as exc:
        return str(exc) + ("" if calendar is not None else " (this is wall time: d and w are not allowed)")
    if value <= timedelta(0):
        return f"duration {text!r} is zero: give a duration longer than zero"
    return None


class _Checker:
    def __init__(self, ct: CaseType, doc: YamlDocument, file: str,
                 calendars: Mapping[str, BusinessCalendar] | None, templates: KnownTemplates | None = None) -> None:
        self.ct = ct
        self.templates = templates
        self.calendars = calendars
        self.calendar = (calendars or {}).get(ct.calendar) or _syntax_calendar()
        self.doc = doc
        self.file = file
        self.problems: list[Problem] = []
        self.tasks: dict[str, tuple[int, int, Task]] = {}  # name -> (stage index, task index, task)
        for si, stage in enumerate(ct.stages):
            for ti, task in enumerate(stage.tasks):
                self.tasks.setdefault(task.name, (si, ti, task))
        self.queues = dict.fromkeys(q.name for q in ct.queues)  # ordered, for messages
        self.stages = dict.fromkeys(s.name for s in ct.stages)

    def add(self, path: Path_, message: str) -> None:
        self.problems.append(Problem(self.file, self.doc.line(path), message))

    def unique(self, names: Iterable[str], path: Path_, what: str, key: str | None = "name") -> None:
        seen: set[str] = set()
        for i, name in enumerate(names):
            if name in seen:
                where = (*path, i, key) if key else (*path, i)
                self.add(where, f"{what} {name!r} is defined twice: give each a different name")
            seen.add(name)

    def duration(self, path: Path_, text: str, *, wall_time: bool = False) -> None:
        problem = duration_problem(text, None if wall_time else self.calendar)
        if problem:
            self.add(path, problem)

    def condition(self, path: Path_, text: str | None) -> None:
        if text is None:
            return
        try:
            cond = compile_condition(text)
        except ConditionError as exc:
            self.add(path, f"{exc} (see the condition language in casestore/work/expressions.py)")
            return
        for name in sorted(cond.tasks - self.tasks.keys()):
            self.add(path, f"condition {text!r} reads tasks.{name}, but there is no task {name!r}: "
                           f"use one of {', '.join(self.tasks)}")

    def event(self, path: Path_, event: str) -> None:
        kind, _, name = event.partition(":")
        if event in EVENTS:
            return
        if kind == "task" and name:
            if name not in self.tasks:
                self.add(path, f"event {event!r} names no task of this type: use one of {', '.join(self.tasks)}")
            return
        if kind == "stage" and name:
            if name not in self.stages:
                self.add(path, f"event {event!r} names no stage of this type: use one of {', '.join(self.stages)}")
            return
        self.add(path, f"unknown event {event!r}: use case_started, case_closed, customer_replied, "
                       "task:<task name> or stage:<stage name>")

    def template(self, path: Path_, name: str, channel: str) -> None:
        if self.templates is None:
            return
        known = self.templates.template_names(case_type=self.ct.name, channel=channel)
        if name not in known:
            where: Path_ = (*path, "send", "template")
            self.add(where if where in self.doc.lines else path,
                     f"on_complete sends template {name!r} on {channel}, but there is no {channel} template "
                     f"{name!r} for case type {self.ct.name!r}: use one of {', '.join(sorted(known)) or '(none)'} "
                     f"or add {self.ct.name}/{name}.{channel}.j2 to the templates folder "
                     "(CASEWORK_OUTBOUND__TEMPLATES_DIR)")

    def status(self, path: Path_, status: str) -> None:
        if status not in STATUSES:
            self.add(path, f"unknown status {status!r}: use one of {', '.join(STATUSES)} "
                           "(a case is closed with a completion code, not a status)")

    def run(self, stem: str) -> list[Problem]:
        ct, calendars = self.ct, self.calendars
        if ct.name != stem:
            self.add(("name",), f"name {ct.name!r} differs from the file name {stem!r}: rename the file to "
                                f"{ct.name}.yaml or set name: {stem}")
        if calendars is not None and ct.calendar not in calendars:
            self.add(("calendar",), f"unknown calendar {ct.calendar!r}: use one of "
                                    f"{', '.join(sorted(calendars)) or '(none defined)'} or define it")
        for role in ct.roles:
            if role not in ROLES:
                self.add(("roles", role), f"unknown role {role!r}: roles are {', '.join(ROLES)}")
        self.unique((q.name for q in ct.queues), ("queues",), "queue")
        for i, queue in enumerate(ct.queues):
            self.duration(("queues", i, "lease"), queue.lease, wall_time=True)
        self.unique((s.name for s in ct.stages), ("stages",), "stage")
        self.unique(ct.completion_codes, ("completion_codes",), "completion code", key=None)
        self.duration(("reopen_window",), ct.reopen_window)
        seen_tasks: set[str] = set()
        for si, stage in enumerate(ct.stages):
            for ti, task in enumerate(stage.tasks):
                path: Path_ = ("stages", si, "tasks", ti)
                if task.name in seen_tasks:
                    self.add((*path, "name"), f"task {task.name!r} is defined twice (task names are unique "
                                              "across all stages): give each a different name")
                seen_tasks.add(task.name)
                self.task(path, si, task)
            self.cycles(si)
        self.clocks()
        self.customer_reply()
        self.close_rules()
        return self.problems

    def task(self, path: Path_, si: int, task: Task) -> None:
        if task.queue not in self.queues:
            self.add((*path, "queue"), f"unknown queue {task.queue!r}: use one of {', '.join(self.queues)} "
                                       "or add it under queues")
        self.unique((c.name for c in task.checklist), (*path, "checklist"), "checklist item")
        self.unique(task.codes, (*path, "codes"), "completion code", key=None)
        for code, status in task.status_on_complete.items():
            if code not in task.codes:
                self.add((*path, "status_on_complete", code), f"status_on_complete names code {code!r}, which "
                         f"task {task.name!r} does not allow: use one of {', '.join(task.codes)}")
            self.status((*path, "status_on_complete", code), status)
        for i, code in enumerate(task.repeat_on):
            if code not in task.codes:
                self.add((*path, "repeat_on", i), f"repeat_on names code {code!r}, which task {task.name!r} "
                         f"does not allow: use one of {', '.join(task.codes)}")
        seen_codes: set[str] = set()
        for i, then in enumerate(task.on_complete):
            listed: Path_ = (*path, "on_complete", i, "code")  # a list, or one mapping (no index)
            where_: Path_ = listed if listed in self.doc.lines else (*path, "on_complete", "code")
            if then.code not in task.codes:
                self.add(where_, f"on_complete names code {then.code!r}, which task {task.name!r} does not allow: "
                                 f"use one of {', '.join(task.codes)}")
            if then.code in seen_codes:
                self.add(where_, f"on_complete names code {then.code!r} twice: one message per code (send "
                                 "more by hand from the case)")
            seen_codes.add(then.code)
            self.template(listed[:-1] if listed in self.doc.lines else (*path, "on_complete"), then.send.template,
                          then.send.channel)
        if task.repeat_on and task.max_repeats < 2:
            self.add((*path, "repeat_on"), f"task {task.name!r} repeats on {', '.join(task.repeat_on)} but "
                     f"max_repeats is {task.max_repeats}: set max_repeats to 2 or more (or drop repeat_on)")
        if task.required_if is not None and task.required:
            self.add((*path, "required_if"), f"task {task.name!r} has required_if and required: true: set "
                     "required: false (required_if makes it required when the condition holds)")
        if task.required and task.when is not None:
            self.add((*path, "when"), f"required task {task.name!r} has a when condition: if it never holds the "
                     "task is never enabled and the stage never completes (use required: false with "
                     "required_if and when, or drop when)")
        if task.required_if is not None and task.when is not None and task.when != task.required_if:
            self.add((*path, "when"), f"task {task.name!r} has a when that differs from its required_if: while "
                     "required_if holds and when does not, it is required but never enabled; give both the same "
                     "condition (or drop when)")
        self.condition((*path, "when"), task.when)
        self.condition((*path, "required_if"), task.required_if)
        stage_tasks = {t.name for t in self.ct.stages[si].tasks}
        may_be_required = task.required or task.required_if is not None
        for i, name in enumerate(task.after):
            where: Path_ = (*path, "after", i)
            if name not in self.tasks:
                self.add(where, f"after names unknown task {name!r}: use a task of stage "
                                f"{self.ct.stages[si].name!r} ({', '.join(sorted(stage_tasks))})")
                continue
            if name not in stage_tasks:
                other = self.ct.stages[self.tasks[name][0]].name
                self.add(where, f"after names task {name!r} of stage {other!r}: after may only name tasks of "
                                f"the same stage ({self.ct.stages[si].name!r}); stages already run in order")
                continue
            before = self.tasks[name][2]
            if may_be_required and name != task.name and not _may_wait_for(task, before):
                why = "has a when condition" if before.when is not None else "is not required"
                fix = (f"make {name!r} required without when, or take it out of after" if task.required else
                       f"make {name!r} required without when, give both the same required_if, or make the "
                       f"required_if read tasks.{name}")
                self.add(where, f"task {task.name!r} may be required but waits for {name!r}, which {why} and "
                                f"may never complete, so the stage could never complete: {fix}")

    def cycles(self, si: int) -> None:
        stage = self.ct.stages[si]
        graph = {t.name: [a for a in t.after if a in {x.name for x in stage.tasks}] for t in stage.tasks}
        state: dict[str, int] = {}  # 1: on the current path, 2: done
        reported: set[frozenset[str]] = set()

        def visit(name: str, trail: list[str]) -> None:
            state[name] = 1
            trail.append(name)
            for nxt in graph.get(name, []):
                if state.get(nxt) == 1:
                    cycle = trail[trail.index(nxt):]
                    if frozenset(cycle) not in reported:
                        reported.add(frozenset(cycle))
                        ti = next(i for i, t in enumerate(stage.tasks) if t.name == name)
                        where: Path_ = ("stages", si, "tasks", ti, "after", stage.tasks[ti].after.index(nxt))
                        if len(cycle) == 1:
                            self.add(where, f"task {nxt!r} waits for itself (after: [{nxt}]), so it can never be "
                                            "enabled: take it out of its own after")
                        else:
                            shown = " -> ".join([*cycle, nxt])
                            self.add(where, f"tasks wait for each other in a cycle ({shown}: each waits for the "
                                            "next), so none of them can ever be enabled: remove one of these "
                                            "after entries")
                elif state.get(nxt) is None:
                    visit(nxt, trail)
            trail.pop()
            state[name] = 2

        for task in stage.tasks:
            if task.name not in state:
                visit(task.name, [])

    def clocks(self) -> None:
        ct = self.ct
        self.unique((c.name for c in ct.clocks), ("clocks",), "clock")
        for i, clock in enumerate(ct.clocks):
            self.duration(("clocks", i, "duration"), clock.duration)
            self.event(("clocks", i, "start_on"), clock.start_on)
            if clock.start_on == "case_closed":
                self.add(("clocks", i, "start_on"), f"clock {clock.name!r} starts when the case closes: start it "
                                                    "on case_started, customer_replied, task:X or stage:X")
            for j, event in enumerate(clock.stop_on):
                self.event(("clocks", i, "stop_on", j), event)
            for j, status in enumerate(clock.pause_in):
                self.status(("clocks", i, "pause_in", j), status)
        clock_names = {c.name for c in ct.clocks}
        seen: dict[tuple[str, str], int] = {}
        for i, esc in enumerate(ct.escalations):
            if esc.clock not in clock_names:
                self.add(("escalations", i, "clock"), f"unknown clock {esc.clock!r}: use one of "
                         f"{', '.join(sorted(clock_names)) or '(no clocks defined)'}")
            if (esc.clock, esc.on) in seen:
                self.add(("escalations", i, "on"), f"a second escalation for clock {esc.clock!r} on {esc.on} "
                         f"(the first is escalations[{seen[(esc.clock, esc.on)]}]): put all its actions in one")
            seen.setdefault((esc.clock, esc.on), i)
            for j, action in enumerate(esc.actions):
                path: Path_ = ("escalations", i, "actions", j)
                if action.move_to_queue is not None and action.move_to_queue not in self.queues:
                    self.add((*path, "move_to_queue"), f"unknown queue {action.move_to_queue!r}: use one of "
                             f"{', '.join(self.queues)}")
                if action.notify_role is not None and action.notify_role not in ROLES:
                    self.add((*path, "notify_role"), f"unknown role {action.notify_role!r}: roles are "
                             f"{', '.join(ROLES)}")
                if not (action.raise_urgency or action.move_to_queue or action.unassign or action.notify_role):
                    self.add(path, "this escalation action does nothing: set raise_urgency, move_to_queue, "
                                   "unassign or notify_role")

    def customer_reply(self) -> None:
        reply = self.ct.on_customer_reply
        if reply.status is not None:
            self.status(("on_customer_reply", "status"), reply.status)
        name = reply.review_task
        if name is None:
            return
        path: Path_ = ("on_customer_reply", "review_task")
        if name not in self.tasks:
            self.add(path, f"review_task names unknown task {name!r}: use one of {', '.join(self.tasks)}")
            return
        task = self.tasks[name][2]
        if task.required:
            self.add(path, f"review task {name!r} is required, but replies may never come: set required: false")
        if task.after or task.when is not None:
            self.add(path, f"review task {name!r} has after or when, but it is enabled by each reply, not by "
                           "its stage: drop them")
        if task.max_repeats < 2:
            self.add(path, f"review task {name!r} has max_repeats {task.max_repeats}: a second reply could not "
                           "enable it again; set max_repeats (e.g. 20)")

    def close_rules(self) -> None:
        rules = self.ct.close_when_done
        for i, rule in enumerate(rules):
            path: Path_ = ("close_when_done", i, "code")
            where = path if path in self.doc.lines else ("close_when_done",)
            if rule.code not in self.ct.completion_codes:
                self.add(where, f"close_when_done closes with code {rule.code!r}, which is not a completion code "
                                f"of this type: use one of {', '.join(self.ct.completion_codes)}")
            cond_path: Path_ = ("close_when_done", i, "when")
            self.condition(cond_path if cond_path in self.doc.lines else where, rule.when)
            if rule.when is None and i < len(rules) - 1:
                self.add(where, f"close_when_done rule {i + 1} has no when, so the rules after it are never "
                                "consulted: put it last or give it a condition")


def _may_wait_for(task: Task, before: Task) -> bool:
    """Whether a task that is (or may be) required can safely wait for ``before`` (see the module doc)."""
    if before.required and before.when is None:
        return True  # guaranteed
    if task.required_if is not None and before.required_if == task.required_if:
        return True  # required together (and enabled together: when is absent or the same condition)
    reads: set[str] = set()
    for text in (task.required_if, task.when):
        if text is not None:
            with suppress(ConditionError):  # reported on its own
                reads |= compile_condition(text).tasks
    return not task.required and before.name in reads


def check_case_type(ct: CaseType, doc: YamlDocument, *, file: str, stem: str,
                    calendars: Mapping[str, BusinessCalendar] | None = None,
                    templates: KnownTemplates | None = None) -> list[Problem]:
    """Every cross-reference problem of one case type, each with the line it is on.

    ``calendars``: the calendars that exist (the type's ``calendar`` must be one; its durations are
    parsed on it).  None skips the name check and parses durations on the shipped default calendar.
    ``templates``: the message templates that exist (each ``on_complete`` must send one of them);
    None skips that check.
    """
    return _Checker(ct, doc, file, calendars, templates).run(stem)
