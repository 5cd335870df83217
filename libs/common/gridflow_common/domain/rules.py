"""A city's routing rules (路由规则): what the CSV taxonomy cannot say, as data.

``categories.csv`` gives each category one lead department, one starting tier and one time
limit. A city's optional ``rules.yaml`` says the rest (docs/rules.md): one street's markets go
to a named unit; reports at night go to the police; a category is major, and starts a tier
higher, when its text says so; a category's time limit differs in one area.

Each rule has a stable ``id``, optional ``priority`` (a whole number, default 0), conditions
(``when``: category, area at any level with its descendants, channel, local time window,
text contains any of some words; every condition given must hold) and actions (``then``).
Actions are of two kinds, judged separately:

- routing: ``route_to_unit``, or ``route_to_department`` (optionally with ``start_tier`` or
  ``up_one_tier``), or ``start_tier`` / ``up_one_tier`` alone;
- the time limit: ``time_limit``.

For each kind, of the rules whose conditions all hold, the one with the highest priority wins,
and of equal priorities the one written first. A rule with actions of both kinds competes in
both. No rule of a kind: the taxonomy decides (rule id ``taxonomy``).

Standard library only. The YAML file is read at the boundary (``gridflow_common.rules_file``)
into ``Node`` trees that keep each value's line, so every problem names its line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import time
from typing import Any

from gridflow_common.domain.calendar import TimeLimit, TimeUnit, parse_time_unit
from gridflow_common.domain.vocabulary import CHANNELS, COMMUNITY, DISTRICT, STREET, TIERS

TAXONOMY = "taxonomy"  # the rule id of a decision no rule made: categories.csv decided
RULES_FILE = "rules.yaml"
CONDITION_KEYS = ("category", "area", "channel", "time", "text_any")
ACTION_KEYS = ("route_to_unit", "route_to_department", "start_tier", "up_one_tier", "time_limit")
RULE_KEYS = ("id", "name", "priority", "when", "then")
ROUTING_ACTIONS = ("route_to_unit", "route_to_department", "start_tier", "up_one_tier")
_RULE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,39}$")
_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*[-–~～]\s*(\d{1,2}):(\d{2})\s*$")
_LIMIT_TEXT = re.compile(r"^\s*(\d{1,5})\s+([a-z_]+)\s*$")
MAX_PRIORITY = 1_000_000


# --------------------------------------------------------------------------- the parsed file


@dataclass(frozen=True)
class Node:
    """One value of the rules file with the line it starts on (1-based). ``value`` is a str,
    int, bool or None for a scalar, a list of Nodes, or a dict of key -> (key's line, Node).
    ``raw`` is a scalar's text as written (codes are read from it: ``330302001`` stays text)."""

    line: int
    value: Any
    raw: str | None = None


@dataclass(frozen=True)
class RuleProblem:
    line: int
    message: str
    rule_id: str | None = None

    def __str__(self) -> str:
        who = f"rule {self.rule_id}: " if self.rule_id else ""
        return f"{RULES_FILE} line {self.line}: {who}{self.message}"


# --------------------------------------------------------------------------- the rules


@dataclass(frozen=True)
class TimeWindow:
    """Local clock time from ``start`` (included) to ``end`` (excluded); crosses midnight when
    ``end`` is earlier than ``start`` (22:00-06:00)."""

    start: time
    end: time

    def contains(self, moment: time) -> bool:
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True)
class Conditions:
    categories: frozenset[str] = frozenset()
    areas: frozenset[str] = frozenset()
    channels: frozenset[str] = frozenset()
    window: TimeWindow | None = None
    words: tuple[str, ...] = ()

    def key(self) -> tuple:
        """What makes two rules' conditions the same (order of listed values aside)."""
        return (self.categories, self.areas, self.channels, self.window, frozenset(self.words))


@dataclass(frozen=True)
class Rule:
    id: str
    line: int
    order: int
    priority: int
    name: str
    when: Conditions
    unit: str | None = None
    department: str | None = None
    start_tier: str | None = None
    up_one_tier: bool = False
    time_limit: TimeLimit | None = None

    @property
    def routes(self) -> bool:
        return bool(self.unit or self.department or self.start_tier or self.up_one_tier)

    def routing_action(self) -> tuple:
        return (self.unit, self.department, self.start_tier, self.up_one_tier)


@dataclass(frozen=True)
class Facts:
    """What rules look at in a case. ``local_time`` is the clock time of the report in the
    city's zone (None: a rule with a time window does not match)."""

    category: str | None
    area_code: str
    channel: str | None = None
    local_time: time | None = None
    text: str = ""


@dataclass(frozen=True)
class Fired:
    """The rules that decided a case: ``route`` (None: the taxonomy routed it) and ``limit``
    (None: the category's own time limit)."""

    route: Rule | None = None
    limit: Rule | None = None

    @property
    def rule_id(self) -> str:
        return self.route.id if self.route else TAXONOMY


def _sort_key(rule: Rule) -> tuple[int, int]:
    return (-rule.priority, rule.order)


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...] = ()
    # area code -> parent code, to match an area condition against a case's place's ancestors.
    parents: Mapping[str, str | None] = field(default_factory=dict, compare=False, repr=False)
    _by_category: dict[str | None, tuple[Rule, ...]] = field(init=False, repr=False, compare=False)
    _ancestors: dict[str, frozenset[str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Rules that name categories are looked at only for those; the rest for every case.
        ordered = sorted(self.rules, key=_sort_key)
        anywhere = tuple(r for r in ordered if not r.when.categories)
        codes = {code for r in ordered for code in r.when.categories}
        index: dict[str | None, tuple[Rule, ...]] = {None: anywhere}
        for code in codes:
            index[code] = tuple(
                r for r in ordered if not r.when.categories or code in r.when.categories
            )
        object.__setattr__(self, "_by_category", index)
        object.__setattr__(self, "_ancestors", {})

    def __bool__(self) -> bool:
        return bool(self.rules)

    def rule(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    def _places(self, area_code: str) -> frozenset[str]:
        # An area and its ancestors, kept per area: bounded by the jurisdiction's areas.
        known = self._ancestors.get(area_code)
        if known is not None:
            return known
        places: set[str] = set()
        code: str | None = area_code
        while code is not None and code not in places:
            places.add(code)
            code = self.parents.get(code)
        found = frozenset(places)
        if area_code in self.parents:
            self._ancestors[area_code] = found
        return found

    def decide(self, facts: Facts) -> Fired:
        candidates = self._by_category.get(facts.category) or self._by_category[None]
        if not candidates:
            return Fired()
        places: frozenset[str] | None = None
        route: Rule | None = None
        limit: Rule | None = None
        for rule in candidates:
            wants_route = route is None and rule.routes
            wants_limit = limit is None and rule.time_limit is not None
            if not (wants_route or wants_limit):
                continue
            when = rule.when
            if when.channels and facts.channel not in when.channels:
                continue
            if when.window is not None and (
                facts.local_time is None or not when.window.contains(facts.local_time)
            ):
                continue
            if when.words and not any(word in facts.text for word in when.words):
                continue
            if when.areas:
                if places is None:
                    places = self._places(facts.area_code)
                if when.areas.isdisjoint(places):
                    continue
            if wants_route:
                route = rule
            if wants_limit:
                limit = rule
            if route is not None and limit is not None:
                break
        return Fired(route, limit)


EMPTY = RuleSet()


# --------------------------------------------------------------------------- building


def build_rule_set(root: Node | None, j: Any) -> tuple[RuleSet, list[RuleProblem]]:
    """Check a parsed rules file against jurisdiction ``j`` and build its rule set. Every
    problem is collected; the rule set is usable only when there are none."""
    builder = _Builder(j)
    rules = builder.file(root)
    builder.check_pairs(rules)
    parents = {a.code: a.parent_code for a in j.areas}
    return RuleSet(tuple(rules), parents), builder.problems


class _Builder:
    def __init__(self, j: Any) -> None:
        self.j = j
        self.problems: list[RuleProblem] = []
        self.rule_id: str | None = None

    def add(self, line: int, message: str) -> None:
        self.problems.append(RuleProblem(line, message, self.rule_id))

    def file(self, root: Node | None) -> list[Rule]:
        if root is None or root.value is None:
            return []  # an empty file: no rules
        if not isinstance(root.value, dict):
            self.add(root.line, "the file must be a mapping with a 'rules:' list")
            return []
        for key, (line, _) in root.value.items():
            if key != "rules":
                self.add(line, f"unknown key '{key}'; the file has one key, 'rules'")
        if "rules" not in root.value:
            self.add(root.line, "'rules:' is missing")
            return []
        listed = root.value["rules"][1]
        if listed.value is None:
            return []
        if not isinstance(listed.value, list):
            self.add(listed.line, "'rules' must be a list of rules (each item starts with '- ')")
            return []
        rules: list[Rule] = []
        seen: dict[str, int] = {}
        for order, item in enumerate(listed.value):
            self.rule_id = None
            rule = self.rule(item, order)
            if rule is None:
                continue
            if rule.id in seen:
                self.add(rule.line, f"duplicate id '{rule.id}' (first on line {seen[rule.id]})")
                continue
            seen[rule.id] = rule.line
            rules.append(rule)
        self.rule_id = None
        return rules

    def rule(self, item: Node, order: int) -> Rule | None:
        if not isinstance(item.value, dict):
            self.add(item.line, "a rule must be a mapping with id, when and then")
            return None
        keys = item.value
        rule_id = self.text(keys.get("id"), item.line, "id")
        if rule_id is not None and not _RULE_ID.match(rule_id):
            self.add(
                keys["id"][1].line,
                f"id '{rule_id}' must be letters, digits, '_', '.' or '-' (at most 40), e.g. R3",
            )
            rule_id = None
        self.rule_id = rule_id
        before = len(self.problems)
        for key, (line, _) in keys.items():
            if key not in RULE_KEYS:
                self.add(line, f"unknown key '{key}'; a rule has {', '.join(RULE_KEYS)}")
        name = ""
        if "name" in keys:
            name = self.text(keys["name"], item.line, "name") or ""
        priority = 0
        if "priority" in keys:
            node = keys["priority"][1]
            if (
                isinstance(node.value, bool)
                or not isinstance(node.value, int)
                or not (-MAX_PRIORITY <= node.value <= MAX_PRIORITY)
            ):
                self.add(
                    node.line,
                    f"priority '{node.raw}' must be a whole number from "
                    f"{-MAX_PRIORITY} to {MAX_PRIORITY}",
                )
            else:
                priority = node.value
        when = self.conditions(keys.get("when"), item.line)
        actions = self.actions(keys.get("then"), item.line, when)
        if len(self.problems) > before or rule_id is None or when is None or actions is None:
            return None
        return Rule(rule_id, item.line, order, priority, name, when, **actions)

    # ---- scalars

    def text(self, entry: tuple[int, Node] | None, line: int, key: str) -> str | None:
        if entry is None:
            self.add(line, f"'{key}' is missing")
            return None
        node = entry[1]
        if isinstance(node.value, (dict, list)) or node.raw is None or not node.raw.strip():
            self.add(node.line, f"'{key}' must be a single value")
            return None
        return node.raw.strip()

    def texts(self, node: Node, key: str) -> list[tuple[int, str]] | None:
        """One value or a list of them, each with its line."""
        items = node.value if isinstance(node.value, list) else [node]
        found: list[tuple[int, str]] = []
        for it in items:
            if isinstance(it.value, (dict, list)) or it.raw is None or not it.raw.strip():
                self.add(it.line, f"'{key}' must be a value or a list of values, not empty")
                return None
            found.append((it.line, it.raw.strip()))
        if not found:
            self.add(node.line, f"'{key}' is an empty list: the rule could never match")
            return None
        return found

    # ---- conditions

    def conditions(self, entry: tuple[int, Node] | None, line: int) -> Conditions | None:
        if entry is None:
            self.add(line, "'when' is missing (write 'when: {}' for a rule that applies always)")
            return None
        node = entry[1]
        if node.value is None:
            return Conditions()
        if not isinstance(node.value, dict):
            self.add(node.line, "'when' must be a mapping of conditions")
            return None
        keys = node.value
        ok = True
        for key, (key_line, _) in keys.items():
            if key not in CONDITION_KEYS:
                self.add(
                    key_line,
                    f"unknown condition '{key}'; expected one of {', '.join(CONDITION_KEYS)}",
                )
                ok = False
        categories = self.codes(
            keys, "category", lambda c: self.j.category(c) is not None, "unknown category '{}'"
        )
        areas = self.codes(
            keys,
            "area",
            lambda c: self.j.area(c) is not None,
            "unknown area '{}': not in this jurisdiction, the rule could never match",
        )
        channels = self.codes(
            keys,
            "channel",
            lambda c: c in CHANNELS,
            "unknown channel '{}'; expected one of " + ", ".join(CHANNELS),
        )
        window = None
        if "time" in keys:
            window = self.window(keys["time"][1])
            ok = ok and window is not None
        words: tuple[str, ...] = ()
        if "text_any" in keys:
            found = self.texts(keys["text_any"][1], "text_any")
            ok = ok and found is not None
            words = tuple(dict.fromkeys(w for _, w in found or ()))
        if not ok or None in (categories, areas, channels):
            return None
        assert categories is not None and areas is not None and channels is not None
        self.nested_areas(keys, areas)
        return Conditions(categories, areas, channels, window, words)

    def codes(
        self, keys: dict, key: str, known: Callable[[str], bool], unknown: str
    ) -> frozenset[str] | None:
        if key not in keys:
            return frozenset()
        found = self.texts(keys[key][1], key)
        if found is None:
            return None
        ok = True
        for line, code in found:
            if not known(code):
                self.add(line, unknown.format(code))
                ok = False
        return frozenset(c for _, c in found) if ok else None

    def nested_areas(self, keys: dict, areas: frozenset[str]) -> None:
        # An area listed beside one of its ancestors adds nothing: likely a slip of the pen.
        for code in areas:
            parent = self.j.area(code).parent_code
            while parent is not None:
                if parent in areas:
                    self.add(
                        keys["area"][1].line,
                        f"area '{code}' is inside '{parent}', also listed: list one of them",
                    )
                    break
                area = self.j.area(parent)
                parent = area.parent_code if area else None

    def window(self, node: Node) -> TimeWindow | None:
        text = node.raw or ""
        match = _WINDOW.match(text)
        if match is None:
            self.add(
                node.line,
                f"time '{text}' must be HH:MM-HH:MM in the city's local time "
                '(quote it: "22:00-06:00")',
            )
            return None
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
            self.add(node.line, f"time '{text}' is not a clock time")
            return None
        start, end = time(h1, m1), time(0, 0) if h2 == 24 else time(h2, m2)
        if start == end:
            self.add(
                node.line,
                f"time window '{text}' is empty (starts where it ends): the rule could never match",
            )
            return None
        return TimeWindow(start, end)

    # ---- actions

    def actions(
        self, entry: tuple[int, Node] | None, line: int, when: Conditions | None
    ) -> dict[str, Any] | None:
        if entry is None:
            self.add(line, "'then' is missing")
            return None
        node = entry[1]
        if not isinstance(node.value, dict) or not node.value:
            self.add(
                node.line,
                "'then' must be a mapping with at least one action: " + ", ".join(ACTION_KEYS),
            )
            return None
        keys = node.value
        before = len(self.problems)
        for key, (key_line, _) in keys.items():
            if key not in ACTION_KEYS:
                self.add(
                    key_line, f"unknown action '{key}'; expected one of {', '.join(ACTION_KEYS)}"
                )
        out: dict[str, Any] = {}
        if "route_to_unit" in keys:
            unit = self.text(keys["route_to_unit"], node.line, "route_to_unit")
            if unit is not None and self.j.unit(unit) is None:
                self.add(keys["route_to_unit"][1].line, f"unknown unit '{unit}'")
            out["unit"] = unit
            for other in ("route_to_department", "start_tier", "up_one_tier"):
                if other in keys:
                    self.add(
                        keys[other][0],
                        f"'{other}' cannot go with route_to_unit: the unit "
                        "decides department and tier",
                    )
        if "route_to_department" in keys:
            code = self.text(keys["route_to_department"], node.line, "route_to_department")
            if code is not None and self.j.department(code) is None:
                self.add(keys["route_to_department"][1].line, f"unknown department '{code}'")
            out["department"] = code
        if "start_tier" in keys:
            tier = self.text(keys["start_tier"], node.line, "start_tier")
            if tier is not None and tier not in TIERS:
                self.add(
                    keys["start_tier"][1].line,
                    f"unknown tier '{tier}'; expected one of {', '.join(TIERS)}",
                )
            out["start_tier"] = tier
            if "up_one_tier" in keys:
                self.add(keys["up_one_tier"][0], "'up_one_tier' cannot go with start_tier")
        if "up_one_tier" in keys:
            flag = keys["up_one_tier"][1]
            if flag.value is not True:
                self.add(flag.line, "'up_one_tier' can only be true (leave it out otherwise)")
            out["up_one_tier"] = True
        if "time_limit" in keys:
            out["time_limit"] = self.limit(keys["time_limit"][1])
        if len(self.problems) > before:
            return None
        if when is not None:
            self.reachable(keys, node.line, when, out)
        return out if len(self.problems) == before else None

    def limit(self, node: Node) -> TimeLimit | None:
        units = ", ".join(u.value for u in TimeUnit)
        amount: Any = None
        unit: Any = None
        if isinstance(node.value, dict):
            extra = [k for k in node.value if k not in ("amount", "unit")]
            if extra:
                self.add(node.line, f"time_limit has amount and unit, not '{extra[0]}'")
                return None
            amount = node.value.get("amount", (0, Node(node.line, None)))[1].value
            unit = node.value.get("unit", (0, Node(node.line, None)))[1].raw
        elif node.raw is not None:
            match = _LIMIT_TEXT.match(node.raw)
            if match:
                amount, unit = int(match.group(1)), match.group(2)
        if isinstance(amount, bool) or not isinstance(amount, int) or not 1 <= amount <= 10_000:
            self.add(
                node.line,
                "time_limit must be an amount from 1 to 10000 and a unit "
                f"({units}): '2 working_days' or {{amount: 2, unit: working_days}}",
            )
            return None
        try:
            return TimeLimit(amount, parse_time_unit(unit or ""))
        except ValueError:
            self.add(node.line, f"time_limit unit '{unit}' is not one of {units}")
            return None

    def reachable(self, keys: dict, line: int, when: Conditions, out: dict[str, Any]) -> None:
        """A department route that no unit could carry out in the rule's own area (a category
        and area combination with no such place) is refused now, not at the first case."""
        department = out.get("department")
        if department is None or self.j.department(department) is None:
            return
        tier = out.get("start_tier")
        where = keys["route_to_department"][1].line
        if tier == COMMUNITY:
            self.add(
                where,
                "route_to_department cannot start at the community tier: a "
                "community office holds a case for no department",
            )
            return
        places = sorted(when.areas) or [a.code for a in self.j.areas_at(DISTRICT)]
        for code in places:
            district = self.j.ancestor(code, DISTRICT)
            if district is not None and self.j.bureau(department, district.code) is not None:
                continue
            if tier == DISTRICT:
                missing = [self.j.area(code)]
            else:
                missing = [
                    s for s in self._streets(code) if self.j.station(department, s.code) is None
                ]
            if missing:
                self.add(
                    where,
                    f"department '{department}' has no unit in {missing[0].name} "
                    f"({missing[0].code}): no station in the street and no bureau in the "
                    "district, so the rule could never be carried out there",
                )
                return

    def _streets(self, code: str) -> list[Any]:
        own = self.j.ancestor(code, STREET)
        if own is not None:
            return [own]
        return [a for a in self.j.children(code) if a.level == STREET]

    # ---- pairs of rules

    def check_pairs(self, rules: list[Rule]) -> None:
        first: dict[tuple, Rule] = {}
        for rule in rules:
            self.rule_id = rule.id
            key = (rule.when.key(), rule.priority)
            other = first.get(key)
            if other is None:
                first[key] = rule
                continue
            if rule.routes and other.routes:
                self.pair(rule, other, rule.routing_action() != other.routing_action(), "routing")
            if rule.time_limit is not None and other.time_limit is not None:
                self.pair(rule, other, rule.time_limit != other.time_limit, "time limit")
        self.rule_id = None

    def pair(self, rule: Rule, other: Rule, differ: bool, what: str) -> None:
        if differ:
            self.add(
                rule.line,
                f"contradicts rule {other.id} (line {other.line}): same "
                f"conditions and priority, different {what}; give one a higher priority "
                "or different conditions",
            )
        else:
            self.add(
                rule.line,
                f"repeats rule {other.id} (line {other.line}): same conditions, "
                f"priority and {what}, so it could never fire",
            )
