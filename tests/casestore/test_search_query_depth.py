"""The query parser never fails and never builds a tree deeper than the adapters can walk."""

from __future__ import annotations

from casestore.search.querytext import MAX_NESTING, And, Not, Or, Word, parse


def depth(node: object) -> int:
    if isinstance(node, Not):
        return 1 + depth(node.node)
    if isinstance(node, And | Or):
        return 1 + max(depth(n) for n in node.nodes)
    return 1


def test_a_thousand_parentheses_parse_to_the_words_inside() -> None:
    assert parse("(" * 1000 + "boiler" + ")" * 1000) == Word("boiler")
    assert parse("(" * 1000) is None
    assert parse(")" * 1000 + "leak") == Word("leak")


def test_nesting_deeper_than_the_limit_is_flattened_not_refused() -> None:
    text = "".join(f"(w{n} OR " for n in range(200)) + "last" + ")" * 200
    tree = parse(text)
    assert tree is not None and depth(tree) <= 2 * MAX_NESTING + 2
    assert depth(parse("(a OR (b OR (c OR d)))")) == 4, "ordinary grouping is kept"


def test_not_not_cancels_out_however_many() -> None:
    assert parse("NOT NOT gas") == Word("gas")
    assert parse("NOT " * 333 + "gas") == Not(Word("gas"))
    assert parse("boiler " + "NOT " * 300 + "(gas)") == And((Word("boiler"), Word("gas")))
