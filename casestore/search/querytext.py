"""The free-text query language, parsed once into a small tree every adapter translates.

    boiler leak                 both words (AND is the default)
    boiler OR heater            either word
    boiler AND NOT gas          NOT or a leading minus excludes: boiler -gas
    "water damage"              a phrase, matched on the exact (unstemmed) words
    (boiler OR heater) leak     parentheses group

Operators are the upper-case words AND, OR, NOT; precedence NOT > AND > OR.  The parser never
fails on user input: a missing closing quote or parenthesis closes at the end, a stray one is
ignored, an operator with nothing to apply to is dropped, parentheses nested deeper than
``MAX_NESTING`` are ignored (the words inside still count) and NOT NOT cancels out, so the tree
is never deeper than the adapters (which recurse over it) can take.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_NESTING = 16
_SEARCHABLE = re.compile(r"[^\W_]")
_TOKEN = re.compile(r'"(?P<phrase>[^"]*)(?:"|$)|(?P<open>\()|(?P<close>\))|(?P<word>[^\s()"]+)')


@dataclass(frozen=True, slots=True)
class Word:
    text: str


@dataclass(frozen=True, slots=True)
class Phrase:
    text: str


@dataclass(frozen=True, slots=True)
class Not:
    node: Node


@dataclass(frozen=True, slots=True)
class And:
    nodes: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    nodes: tuple[Node, ...]


Node = Word | Phrase | Not | And | Or


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for m in _TOKEN.finditer(text):
        if m.group("phrase") is not None:
            if m.group("phrase").strip():
                out.append(("phrase", m.group("phrase").strip()))
        elif m.group("open"):
            out.append(("open", "("))
        elif m.group("close"):
            out.append(("close", ")"))
        else:
            word = m.group("word")
            if word in ("AND", "OR", "NOT", "&&", "||"):
                out.append(({"&&": "AND", "||": "OR"}.get(word, word), word))
            elif word.startswith("-") and len(word) > 1:
                out.extend([("NOT", "-"), ("word", word[1:])])
            elif word.startswith("+") and len(word) > 1:
                out.append(("word", word[1:]))
            else:
                out.append(("word", word))
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def parse(self) -> Node | None:
        nodes: list[Node] = []
        while self.peek() is not None:
            node = self.or_expr()
            if node is not None:
                nodes.append(node)
            if self.peek() == "close":  # a stray closing parenthesis
                self.take()
        return _and(nodes)

    def or_expr(self) -> Node | None:
        branches: list[Node] = []
        node = self.and_expr()
        if node is not None:
            branches.append(node)
        while self.peek() == "OR":
            self.take()
            node = self.and_expr()
            if node is not None:
                branches.append(node)
        if not branches:
            return None
        return branches[0] if len(branches) == 1 else Or(tuple(branches))

    def and_expr(self) -> Node | None:
        nodes: list[Node] = []
        while self.peek() not in (None, "OR", "close"):
            if self.peek() == "AND":
                self.take()
                continue
            node = self.unary()
            if node is not None:
                nodes.append(node)
        return _and(nodes)

    def unary(self) -> Node | None:
        kind, value = self.take()
        if kind == "NOT":
            negate = True
            while self.peek() == "NOT":  # NOT NOT x is x; a loop, not a recursion
                self.take()
                negate = not negate
            if self.peek() in (None, "OR", "close", "AND"):
                return None
            inner = self.unary()
            if inner is None or not negate:
                return inner
            return inner.node if isinstance(inner, Not) else Not(inner)
        if kind == "open":
            if self.depth >= MAX_NESTING:
                return None  # too deep: this parenthesis is ignored, what it holds is read at this level
            self.depth += 1
            inner = self.or_expr()
            self.depth -= 1
            if self.peek() == "close":
                self.take()
            return inner
        if kind == "phrase":
            return Phrase(value)
        return Word(value)


def _and(nodes: list[Node]) -> Node | None:
    if not nodes:
        return None
    return nodes[0] if len(nodes) == 1 else And(tuple(nodes))


def parse(text: str) -> Node | None:
    """The query tree of ``text``; None for a query with nothing to search for (match all).

    Words and phrases without a letter or digit (``-``, ``!!!``) are dropped first, so every
    adapter sees the same tree whatever its analyser makes of punctuation.
    """
    tokens = [(kind, value) for kind, value in _tokens(text or "")
              if kind not in ("word", "phrase") or _SEARCHABLE.search(value)]
    return _Parser(tokens).parse()


def positive_words(node: Node | None) -> list[str]:
    """Every word and phrase word not under a NOT: what snippets highlight."""
    if node is None or isinstance(node, Not):
        return []
    if isinstance(node, Word | Phrase):
        return node.text.split()
    return [w for child in node.nodes for w in positive_words(child)]
