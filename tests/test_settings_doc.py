"""docs/settings.md is the one table of every setting (issue 13): made from the settings models,
so it must be what they render now, and every setting must say what it does."""

from __future__ import annotations

from api.settings_doc import DOC, render, rows


def test_every_setting_says_what_it_does() -> None:
    undocumented = [env for env, _default, text in rows() if not text]
    assert undocumented == [], f"give these settings a description: {undocumented}"


def test_the_settings_reference_is_up_to_date() -> None:
    assert DOC.read_text() == render(), "docs/settings.md is stale: run `python -m api.settings_doc`"
