"""The boundary of the rule language (``domain.rules``): a ``rules.yaml`` text read with
PyYAML's composer, which keeps each node's start mark, into line-numbered ``Node`` trees.

Only the composer runs: no YAML tag builds a Python object, and anchors/aliases are refused (a
rule is written out, not pointed at), so a hostile file cannot expand itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml

from gridflow_common.domain.rules import (
    EMPTY,
    RULES_FILE,
    Node,
    RuleProblem,
    RuleSet,
    build_rule_set,
)

_SCALARS: dict[str, Callable[[str], Any]] = {
    "tag:yaml.org,2002:int": int,
    "tag:yaml.org,2002:null": lambda _: None,
    "tag:yaml.org,2002:bool": lambda text: text.lower() in ("true", "yes", "on", "y"),
}
MAX_DEPTH = 8


class _Refused(Exception):
    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line


def _node(n: Any, depth: int = 0) -> Node:
    line = n.start_mark.line + 1
    if depth > MAX_DEPTH:
        raise _Refused(line, f"nested more than {MAX_DEPTH} levels deep")
    if isinstance(n, yaml.ScalarNode):
        convert = _SCALARS.get(n.tag) if not n.style else None
        try:
            value = convert(n.value) if convert else n.value
        except ValueError:
            value = n.value  # 0x/0o/sexagesimal forms PyYAML calls int: kept as written
        return Node(line, value, n.value)
    if isinstance(n, yaml.SequenceNode):
        return Node(line, [_node(item, depth + 1) for item in n.value])
    if isinstance(n, yaml.MappingNode):
        pairs: dict[str, tuple[int, Node]] = {}
        for key, value in n.value:
            if not isinstance(key, yaml.ScalarNode):
                raise _Refused(key.start_mark.line + 1, "a key must be a plain word")
            if key.value in pairs:
                raise _Refused(
                    key.start_mark.line + 1,
                    f"key '{key.value}' is given twice (first on line {pairs[key.value][0]})",
                )
            pairs[key.value] = (key.start_mark.line + 1, _node(value, depth + 1))
        return Node(line, pairs)
    raise _Refused(line, "unexpected YAML node")


def compose(text: str) -> tuple[Node | None, list[RuleProblem]]:
    """The file's tree, or the one problem that stops reading it (with its line)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        return None, [RuleProblem(line, f"not valid YAML: {exc.problem or exc}")]
    except yaml.YAMLError as exc:
        return None, [RuleProblem(0, f"not valid YAML: {exc}")]
    except RecursionError:
        return None, [RuleProblem(0, f"nested more than {MAX_DEPTH} levels deep")]
    if root is None:
        return None, []
    if _has_alias(root):
        return None, [
            RuleProblem(
                root.start_mark.line + 1,
                "anchors and aliases (&, *) are not allowed: write each rule out",
            )
        ]
    try:
        return _node(root), []
    except _Refused as exc:
        return None, [RuleProblem(exc.line, str(exc))]


def _has_alias(root: Any) -> bool:
    # The composer resolves an alias to the same node object: a node met twice is one.
    seen: set[int] = set()
    stack = [root]
    while stack:
        n = stack.pop()
        if id(n) in seen:
            return True
        seen.add(id(n))
        if isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)
        elif isinstance(n, yaml.MappingNode):
            for key, value in n.value:
                stack.extend((key, value))
    return False


def parse_rules(text: str, j: Any) -> tuple[RuleSet, list[RuleProblem]]:
    """Read and check a rules file against jurisdiction ``j``: its rule set, and every problem
    (the rule set is usable only when there are none)."""
    root, problems = compose(text)
    if problems:
        return EMPTY, problems
    return build_rule_set(root, j)


__all__ = ["RULES_FILE", "compose", "parse_rules"]
