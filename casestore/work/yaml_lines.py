"""YAML with line numbers: the data of a document and the line of every key and list item.

``yaml.compose`` (safe loader) gives the node tree with marks; this turns it into plain data
while recording ``path -> line`` (1-based) for every mapping key and sequence item.  Mapping
keys are taken as written (``on:`` stays the string "on", not YAML 1.1's ``True``); scalar
values get the safe loader's types.  Duplicate keys, merge keys (``<<``), non-scalar keys and
oversized documents are reported instead of silently resolved.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from casestore.work.problems import Path_, dotted

MAX_NODES = 100_000  # a definition is a few hundred nodes; aliases must not blow it up
MAX_DEPTH = 40  # a definition nests about 8 deep; a recursive alias would nest for ever


@dataclass
class YamlDocument:
    data: object
    lines: dict[Path_, int] = field(default_factory=dict)
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line, message)

    def line(self, path: Path_) -> int:
        """The line of ``path``, or of its nearest parent that has one (1 for the document)."""
        for end in range(len(path), 0, -1):
            found = self.lines.get(tuple(path[:end]))
            if found:
                return found
        return 1


class _Builder:
    def __init__(self, doc: YamlDocument) -> None:
        self.doc = doc
        self.constructor = SafeConstructor()
        self.count = 0

    def build(self, node: Node, path: Path_) -> object:
        self.count += 1
        if self.count > MAX_NODES or len(path) > MAX_DEPTH:
            raise _TooBig
        if isinstance(node, MappingNode):
            result: dict[str, object] = {}
            for key_node, value_node in node.value:
                line = key_node.start_mark.line + 1
                if not isinstance(key_node, ScalarNode):
                    self.doc.errors.append((line, f"{dotted(path)}: a key must be a plain name"))
                    continue
                if key_node.tag == "tag:yaml.org,2002:merge":
                    self.doc.errors.append((line, f"{dotted(path)}: merge keys (<<) are not supported: write "
                                                  "the fields out"))
                    continue
                key = str(key_node.value)
                if key in result:
                    first = self.doc.lines.get((*path, key), line)
                    self.doc.errors.append((line, f"{dotted((*path, key))} is given twice (first on line "
                                                  f"{first}): keep one"))
                    continue
                self.doc.lines[(*path, key)] = line
                result[key] = self.build(value_node, (*path, key))
            return result
        if isinstance(node, SequenceNode):
            items: list[object] = []
            for i, item in enumerate(node.value):
                self.doc.lines[(*path, i)] = item.start_mark.line + 1
                items.append(self.build(item, (*path, i)))
            return items
        return self.constructor.construct_object(node, deep=True)


class _TooBig(Exception):
    pass


def parse_yaml(text: str) -> YamlDocument:
    """Parse one YAML document; syntax problems and the like are in ``errors`` (data is then None)."""
    doc = YamlDocument(data=None)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        doc.errors.append((line, f"YAML syntax: {exc.problem or exc.context or 'cannot parse'} "
                                 "(check indentation, colons and quotes)"))
        return doc
    except yaml.YAMLError as exc:  # more than one document, a bad character
        doc.errors.append((1, f"YAML: {str(exc).splitlines()[0]} (one document per file)"))
        return doc
    if root is None:
        doc.errors.append((1, "the file is empty: write the case type's fields"))
        return doc
    try:
        doc.data = _Builder(doc).build(root, ())
    except _TooBig:
        doc.errors.append((1, f"more than {MAX_NODES} YAML nodes or {MAX_DEPTH} levels (aliases expanding, or an "
                              "alias inside itself?): write it out plainly"))
        doc.data = None
    except yaml.YAMLError as exc:  # a scalar the safe constructor refuses (e.g. a bad timestamp or tag)
        mark = getattr(exc, "problem_mark", None)
        doc.errors.append(((mark.line + 1) if mark is not None else 1, f"YAML: {exc}"))
        doc.data = None
    return doc
