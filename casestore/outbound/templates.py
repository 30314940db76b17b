"""Named message templates per case type and channel, rendered in Jinja2's sandbox.

A template is a file ``<case_type>/<name>.<channel>.j2`` or, for every case type,
``default/<name>.<channel>.j2``, looked up first in the configured folder
(``CASEWORK_OUTBOUND__TEMPLATES_DIR``) and then in the templates shipped with casework, so a
configured file overrides a shipped one of the same name.  Channels are ``email``, ``sms`` and
``letter``.  An email template starts with a ``Subject: ...`` line and a blank line; the rest is
the body.  Templates are plain text (no HTML, no escaping).

The sandbox (``SandboxedEnvironment``) refuses attribute tricks (``__class__`` and the like) and
bounds ``range``; undefined names are errors (``StrictUndefined``), so a template with a typo is
refused at preview instead of sending an empty greeting.  The context holds plain values only:
``case``, ``customer`` (None for a person not yet known), ``agent``, ``team``, ``today`` and
``fields`` (free values the caller passes, e.g. ``fields.decision``; use ``fields.get('x', '')``
for optional ones).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from casestore.outbound.errors import TemplateProblem
from casestore.outbound.models import CHANNELS

if TYPE_CHECKING:
    from jinja2.sandbox import SandboxedEnvironment

SHIPPED_TEMPLATES = Path(__file__).resolve().parent / "shipped" / "templates"
DEFAULT_FOLDER = "default"
MAX_RENDERED_CHARS = 100_000
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_SUBJECT = re.compile(r"\ASubject:[ \t]*(?P<subject>[^\r\n]*)\r?\n(?:[ \t]*\r?\n)?", re.IGNORECASE)


@dataclass(frozen=True)
class Rendered:
    subject: str  # email only; '' for SMS and letters
    body: str


@dataclass(frozen=True)
class TemplateInfo:
    name: str
    channel: str
    case_type: str  # the folder it comes from: a case type, or 'default'


def check_name(kind: str, value: str) -> str:
    cleaned = (value or "").strip()
    if not _NAME.fullmatch(cleaned):
        raise TemplateProblem(f"{kind} {value!r} is not a template name: lower-case letters, digits, '_' or '-'")
    return cleaned


def check_channel(channel: str) -> str:
    if channel not in CHANNELS:
        raise TemplateProblem(f"channel {channel!r} is not one of {', '.join(CHANNELS)}")
    return channel


def split_subject(text: str) -> Rendered:
    """An email's text as written in a template or an edit: ``Subject: ...``, a blank line, the body."""
    m = _SUBJECT.match(text)
    if m is None:
        raise TemplateProblem("an email starts with a 'Subject: ...' line, then a blank line, then the body")
    return Rendered(subject=m.group("subject").strip(), body=text[m.end():].strip("\n") + "\n")


class Templates:
    """The template folders, searched in order (the configured one first, the shipped one last)."""

    def __init__(self, folders: Sequence[Path] = ()) -> None:
        self.folders = [Path(f) for f in folders if str(f)] + [SHIPPED_TEMPLATES]
        self._env: SandboxedEnvironment | None = None

    @property
    def env(self) -> SandboxedEnvironment:
        if self._env is None:  # Jinja2 is imported when a template is first rendered, not by every command
            from jinja2 import FileSystemLoader, StrictUndefined
            from jinja2.sandbox import SandboxedEnvironment

            self._env = SandboxedEnvironment(
                loader=FileSystemLoader([str(f) for f in self.folders]), undefined=StrictUndefined,
                autoescape=False, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
            )
        return self._env

    def available(self, *, case_type: str, channel: str | None = None) -> list[TemplateInfo]:
        """The templates an agent may choose for a case of ``case_type`` (its own, then the defaults)."""
        found: dict[tuple[str, str], TemplateInfo] = {}
        for folder_name in (case_type, DEFAULT_FOLDER):
            for root in self.folders:
                folder = root / folder_name
                if not folder_name or not folder.is_dir():
                    continue
                for path in sorted(folder.glob("*.j2")):
                    parts = path.name[:-3].rsplit(".", 1)
                    if len(parts) != 2 or parts[1] not in CHANNELS or (channel and parts[1] != channel):
                        continue
                    found.setdefault((parts[0], parts[1]), TemplateInfo(parts[0], parts[1], folder_name))
        return sorted(found.values(), key=lambda t: (t.name, t.channel))

    def template_names(self, *, case_type: str, channel: str) -> set[str]:
        """The names ``available`` for ``case_type`` on ``channel`` (``casestore.work.outbox_port.KnownTemplates``)."""
        return {t.name for t in self.available(case_type=case_type, channel=channel)}

    def render(self, name: str, *, case_type: str, channel: str, context: Mapping[str, Any]) -> Rendered:
        """The template ``name`` for ``channel`` and the case type, rendered; TemplateProblem if it is
        missing, does not parse, or uses something the context does not have."""
        from jinja2 import TemplateNotFound, TemplateSyntaxError, UndefinedError
        from jinja2.sandbox import SecurityError

        name = check_name("template", name)
        channel = check_channel(channel)
        candidates = [f"{DEFAULT_FOLDER}/{name}.{channel}.j2"]
        if _NAME.fullmatch(case_type or ""):
            candidates.insert(0, f"{case_type}/{name}.{channel}.j2")
        try:
            template = self.env.select_template(candidates)
            text = template.render(**context)
        except TemplateNotFound:
            offered = ", ".join(sorted({t.name for t in self.available(case_type=case_type, channel=channel)}))
            raise TemplateProblem(f"no {channel} template {name!r} for case type {case_type!r}; "
                                  f"choose one of: {offered or 'none'}") from None
        except TemplateSyntaxError as exc:
            raise TemplateProblem(f"template {name!r} ({channel}) does not parse at line {exc.lineno}: "
                                  f"{exc.message}; fix the template file") from None
        except UndefinedError as exc:
            raise TemplateProblem(f"template {name!r} ({channel}) uses something this case does not have "
                                  f"({exc.message}); pass it in fields or fix the template") from None
        except SecurityError as exc:
            raise TemplateProblem(f"template {name!r} ({channel}) tried something the sandbox refuses: {exc}") from None
        if len(text) > MAX_RENDERED_CHARS:
            raise TemplateProblem(f"template {name!r} rendered {len(text)} characters; the limit is "
                                  f"{MAX_RENDERED_CHARS}")
        if channel == "email":
            return split_subject(text)
        return Rendered(subject="", body=text.strip("\n") + "\n")
