"""The HTML of a web form and of its answers (no template engine: every value is escaped here)."""

from __future__ import annotations

from html import escape

from connectors.settings import FormDefinition, FormField

_STYLE = """body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#222}
label{display:block;margin-top:1rem;font-weight:600}input,select,textarea{width:100%;padding:.4rem;font:inherit}
input[type=checkbox]{width:auto}.err{color:#b00020;font-weight:400}.hp{position:absolute;left:-10000px;top:auto}
button{margin-top:1.5rem;padding:.6rem 1.4rem;font:inherit}.errors{border:1px solid #b00020;padding:.5rem 1rem}"""


def _page(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_STYLE}</style></head>'
            f"<body>{body}</body></html>")


def _input(f: FormField, value: str) -> str:
    name, req = escape(f.name), " required" if f.required else ""
    if f.type == "textarea":
        return (f'<textarea id="{name}" name="{name}" rows="6" maxlength="{f.max_length}"{req}>'
                f"{escape(value)}</textarea>")
    if f.type == "select":
        opts = "".join(f'<option value="{escape(o)}"{" selected" if o == value else ""}>{escape(o)}</option>'
                       for o in f.options)
        return f'<select id="{name}" name="{name}"{req}><option value=""></option>{opts}</select>'
    if f.type == "file":
        return f'<input id="{name}" name="{name}" type="file"{req}>'
    if f.type == "checkbox":
        checked = " checked" if value else ""
        return f'<input id="{name}" name="{name}" type="checkbox" value="yes"{checked}{req}>'
    return (f'<input id="{name}" name="{name}" type="{f.type}" value="{escape(value)}" '
            f'maxlength="{f.max_length}"{req}>')


def render_form(form: FormDefinition, *, token: str, honeypot: str, values: dict[str, str] | None = None,
                errors: dict[str, str] | None = None, notice: str = "") -> str:
    values, errors = values or {}, errors or {}
    rows = []
    for f in form.fields:
        err = f' <span class="err">{escape(errors[f.name])}</span>' if f.name in errors else ""
        star = " *" if f.required else ""
        rows.append(f'<label for="{escape(f.name)}">{escape(f.label or f.name)}{star}{err}</label>'
                    f"{_input(f, values.get(f.name, ''))}")
    summary = ""
    if errors or notice:
        items = "".join(f"<li>{escape(e)}</li>" for e in ([notice] if notice else []) + list(errors.values()))
        summary = f'<div class="errors" role="alert"><ul>{items}</ul></div>'
    body = (f"<h1>{escape(form.title)}</h1><p>{escape(form.description)}</p>{summary}"
            f'<form method="post" action="/forms/{escape(form.id)}" enctype="multipart/form-data" id="casework-form">'
            f'<input type="hidden" name="_csrf" value="{escape(token)}">'
            f'<div class="hp" aria-hidden="true"><label for="{escape(honeypot)}">Leave this empty</label>'
            f'<input id="{escape(honeypot)}" name="{escape(honeypot)}" type="text" tabindex="-1" autocomplete="off">'
            f"</div>{''.join(rows)}"
            f'<button type="submit">{escape(form.submit_label)}</button></form>')
    return _page(form.title, body)


def render_thanks(form: FormDefinition, reference: str) -> str:
    return _page(form.title, f"<h1>{escape(form.title)}</h1><p id=\"thanks\">{escape(form.thanks)}</p>"
                             f'<p>Your reference: <strong id="reference">{escape(reference)}</strong></p>')


def render_message(title: str, message: str) -> str:
    return _page(title, f"<h1>{escape(title)}</h1><p>{escape(message)}</p>")
