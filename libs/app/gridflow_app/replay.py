"""`gridflow replay`: run scenario files against a running Gridflow on its simulated clock.

The contract lives in the scenarios' FORMAT.md. Each file is run on its own: reset, load the
jurisdiction, set the clock to `start`, then walk the steps in order. Every expectation (each field
of an `expect`, each `expect_status`) yields one PASS or FAIL line; a step the server refuses, a
scenario that cannot be run, or an unreachable server yields a FAIL line too, so that the final
`N passed, M failed` never reports success for something that did not happen.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import secrets
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TextIO

import httpx
import yaml

from gridflow_app.cli import default_url
from gridflow_app.folders import admin_token_path, jurisdiction_files, read_admin_token

DEFAULT_POLL_TIMEOUT = 15.0
POLL_INTERVAL = 0.15
# Long enough for a server busy catching up on a multi-day clock jump, short enough that a hung
# server does not hang the replay.
REQUEST_TIMEOUT = 30.0

# FORMAT.md / fixtures README: all local times are China Standard Time, which has no DST, so a
# fixed offset is exact and needs no tz database.
LOCAL_TZ = timezone(timedelta(hours=8))

ACTIONS = ("report", "update", "verify", "evaluate", "order", "expect")
# Keys of an `expect` that are not fields of the case view.
RELATION_FIELDS = ("same_case_as", "not_same_case_as")
# Fields compared as instants (any offset denotes the same instant), not as text.
INSTANT_FIELDS = ("due",)
# FORMAT.md, "Orders and requests": what the command center may order, and which of them need
# more than the case.
ORDER_KINDS = (
    "assign",
    "merge",
    "escalate",
    "hold",
    "release",
    "reject",
    "reopen",
    "supervise",
    "comment",
    "approve",
    "refuse",
)
ORDER_REQUIRES = {
    "assign": ("unit",),
    "merge": ("into",),
    "hold": ("reason",),
    "reject": ("reason",),
}

ORDER_FIELDS = ("case", "kind", "unit", "category", "into", "reason")
# The requests a holder sends as an update; an extension names the due instant it asks for.
EXTENSION_REQUESTED = "extension_requested"

_OFFSET_RE = re.compile(r"^\+(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")
_STATUS_CLASS_RE = re.compile(r"^([1-5])xx$")


class ScenarioError(Exception):
    """The file itself is wrong; running it against a server would prove nothing."""


class Unreachable(Exception):
    """No HTTP answer at all: every later call of the file would fail the same way."""


class StopFile(Exception):
    """A failure after which the rest of the file cannot meaningfully run (already reported)."""


# --------------------------------------------------------------------------------------------
# Time


def parse_offset(text: str) -> timedelta:
    """`+1d2h` -> 26 h. Units in the order d, h, m, each at most once."""
    m = _OFFSET_RE.match(text.strip())
    if not m or not any(m.groups()):
        raise ScenarioError(
            f"bad offset {text!r}: expected +Nd, +Nh, +Nm or a combination like +1d2h"
        )
    days, hours, minutes = (int(g) if g else 0 for g in m.groups())
    return timedelta(days=days, hours=hours, minutes=minutes)


def _aware(value: datetime, default_tz: timezone | Any) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=default_tz)


def parse_instant(value: Any, default_tz: Any = LOCAL_TZ) -> datetime:
    """An ISO 8601 instant as YAML gives it: a string when quoted, a datetime when not."""
    if isinstance(value, datetime):
        return _aware(value, default_tz)
    if isinstance(value, date):
        raise ScenarioError(f"{value.isoformat()} is a date; an instant needs a time of day")
    if isinstance(value, str):
        try:
            return _aware(datetime.fromisoformat(value.strip()), default_tz)
        except ValueError:
            pass
    raise ScenarioError(f"bad instant {value!r}: expected an ISO 8601 date and time")


def resolve_at(at: Any, start: datetime) -> datetime:
    """A step's `at`: an offset of wall-clock time from `start`, or an instant."""
    if isinstance(at, str) and at.strip().startswith("+"):
        # Aware arithmetic is wall-clock (absolute) time, which is what the format means by it.
        return start + parse_offset(at)
    return parse_instant(at, default_tz=start.tzinfo)


def _at_label(at: Any) -> str:
    return at.isoformat() if isinstance(at, (datetime, date)) else str(at)


# --------------------------------------------------------------------------------------------
# Scenario file


@dataclass
class Step:
    number: int
    at_label: str
    instant: datetime
    action: str
    body: dict[str, Any]
    alias: str | None = None
    expect_status: int | str | None = None


@dataclass
class Scenario:
    path: Path
    stem: str
    start: datetime
    jurisdiction: Path
    steps: list[Step] = field(default_factory=list)


def _check_expect_status(value: Any, where: str) -> int | str:
    if isinstance(value, bool):
        raise ScenarioError(f"{where}: expect_status must be an HTTP status or like '4xx'")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text.isdigit():
            return int(text)
        if _STATUS_CLASS_RE.match(text):
            return text
    raise ScenarioError(
        f"{where}: expect_status must be an HTTP status or like '4xx', got {value!r}"
    )


def load_scenario(path: Path) -> Scenario:
    """Parse and check the whole file first, so a typo in step 9 is found before the reset."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ScenarioError(f"not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise ScenarioError("a scenario is a YAML mapping with start, jurisdiction and steps")
    for key in ("start", "jurisdiction", "steps"):
        if key not in doc:
            raise ScenarioError(f"missing `{key}`")
    start = parse_instant(doc["start"])
    jurisdiction = (path.parent / str(doc["jurisdiction"])).resolve()
    raw_steps = doc["steps"]
    if not isinstance(raw_steps, list):
        raise ScenarioError("`steps` must be a list")

    scenario = Scenario(path=path, stem=path.stem, start=start, jurisdiction=jurisdiction)
    errors: list[str] = []
    previous = start
    for number, raw in enumerate(raw_steps, start=1):
        try:
            step = _load_step(number, raw, start)
        except ScenarioError as exc:
            errors.append(str(exc))
            continue
        # Only a reset may move the clock backwards, so a file whose steps go back in time
        # could never be replayed as written.
        if step.instant < previous:
            errors.append(
                f"step {number} ({step.at_label}): {step.instant.isoformat()} is before the "
                f"previous step's {previous.isoformat()}; the clock cannot go backwards"
            )
        previous = max(previous, step.instant)
        scenario.steps.append(step)
    if errors:
        raise ScenarioError("\n    ".join(errors))
    return scenario


def _load_step(number: int, raw: Any, start: datetime) -> Step:
    if not isinstance(raw, dict):
        raise ScenarioError(f"step {number}: a step is a mapping")
    at = raw.get("at")
    where = f"step {number} ({_at_label(at)})"
    if at is None:
        raise ScenarioError(f"step {number}: missing `at`")
    try:
        instant = resolve_at(at, start)
    except ScenarioError as exc:
        raise ScenarioError(f"{where}: {exc}") from None
    actions = [key for key in ACTIONS if key in raw]
    if len(actions) != 1:
        raise ScenarioError(f"{where}: needs exactly one of {', '.join(ACTIONS)}")
    action = actions[0]
    unknown = set(raw) - {"at", action} - ({"as", "expect_status"} if action == "report" else set())
    if unknown:
        raise ScenarioError(f"{where}: unknown keys {', '.join(sorted(map(str, unknown)))}")
    body = raw[action]
    if not isinstance(body, dict):
        raise ScenarioError(f"{where}: `{action}` must be a mapping")
    if action != "report" and not body.get("case"):
        raise ScenarioError(f"{where}: `{action}` needs `case`")
    if action == "order":
        _check_order(body, where)
    if action == "update" and body.get("status") == EXTENSION_REQUESTED:
        if "due" not in body:
            raise ScenarioError(f"{where}: an {EXTENSION_REQUESTED} update needs `due`")
        parse_instant(body["due"])
    expect_status = None
    if "expect_status" in raw:
        expect_status = _check_expect_status(raw["expect_status"], where)
    alias = raw.get("as")
    return Step(
        number=number,
        at_label=_at_label(at),
        instant=instant,
        action=action,
        body=body,
        alias=str(alias) if alias is not None else None,
        expect_status=expect_status,
    )


def _check_order(body: dict[str, Any], where: str) -> None:
    kind = body.get("kind")
    if kind not in ORDER_KINDS:
        raise ScenarioError(
            f"{where}: order `kind` must be one of {', '.join(ORDER_KINDS)}, got {show(kind)}"
        )
    unknown = set(body) - set(ORDER_FIELDS)
    if unknown:
        raise ScenarioError(f"{where}: unknown order keys {', '.join(sorted(map(str, unknown)))}")
    missing = [key for key in ORDER_REQUIRES.get(kind, ()) if not body.get(key)]
    if missing:
        raise ScenarioError(f"{where}: an order of kind {kind} needs {', '.join(missing)}")


# --------------------------------------------------------------------------------------------
# HTTP


@dataclass
class Answer:
    status: int
    body: Any  # parsed JSON when the server sent JSON, else the text

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def describe(self) -> str:
        text = self.body if isinstance(self.body, str) else _dump(self.body)
        text = text.strip()
        if len(text) > 500:
            text = text[:500] + "..."
        return f"HTTP {self.status}" + (f" {text}" if text else "")


def _json_default(value: Any) -> Any:
    # YAML turns unquoted dates and times into objects; the server wants the text the author wrote.
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=_json_default)


class Client:
    """One keep-alive connection for a whole replay: hundreds of polls do not each connect."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        # trust_env off: a proxy set for the outside world must not swallow a local Gridflow.
        self.http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=REQUEST_TIMEOUT, trust_env=False
        )
        # department or unit code -> (credential id, token), made on first use
        self.holder_tokens: dict[str, tuple[str, str]] = {}
        # The command center's user for this replay (username, bearer token), made on first use.
        self.command: tuple[str, str] | None = None

    def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> Answer:
        """One request, as the admin (the client's token) or, with ``token``, as someone else."""
        data = None
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if body is not None:
            data = _dump(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        try:
            response = self.http.request(method, path, content=data, headers=headers)
        except httpx.HTTPError as exc:
            raise Unreachable(f"cannot reach Gridflow at {self.base_url}: {exc}") from exc
        # An HTTP error status is still an answer: the caller decides what it means.
        return Answer(response.status_code, _parse_body(response.content))

    def holder_token(self, code: str) -> str | None:
        """A department's or unit's credential for this replay, made once per code through the
        admin API (it expires within a day and is revoked when the replay ends). None when it
        cannot be made: the update then goes as the admin and is refused, which shows."""
        if code not in self.holder_tokens:
            answer = self.call(
                "POST",
                "/api/v1/admin/keys",
                {"holder": code, "label": "gridflow replay", "expires_in_days": 1},
            )
            if answer.status != 201 or not isinstance(answer.body, dict):
                return None
            self.holder_tokens[code] = (answer.body["key"]["credential_id"], answer.body["token"])
        return self.holder_tokens[code][1]

    def command_token(self) -> str | None:
        """A command-center user's bearer token for this replay: the user is made through the
        admin API with a random password, signs in, and makes itself a one-day token; the user
        is disabled when the replay ends. None when any step is refused: the order then goes
        as the admin, which Gridflow takes too, so the refusal shows in the log only."""
        if self.command is None:
            username = f"replay-command-{secrets.token_hex(4)}"
            password = secrets.token_urlsafe(24)
            made = self.call(
                "POST",
                "/api/v1/admin/users",
                {
                    "username": username,
                    "role": "command_center",
                    "display_name": "指挥中心（场景回放）",
                    "password": password,
                },
            )
            if made.status != 201:
                return None
            # A client of its own, without the admin's token: the sign-in's cookie is its only
            # credential, and it is gone with the client.
            try:
                with httpx.Client(
                    base_url=self.base_url, timeout=REQUEST_TIMEOUT, trust_env=False
                ) as plain:
                    signed_in = plain.post(
                        "/api/v1/session", json={"username": username, "password": password}
                    )
                    if not signed_in.is_success:
                        return None
                    made_token = plain.post(
                        "/api/v1/me/tokens",
                        json={"label": "gridflow replay", "expires_in_days": 1},
                        headers={"X-CSRF-Token": signed_in.json().get("csrf_token", "")},
                    )
            except httpx.HTTPError as exc:
                raise Unreachable(f"cannot reach Gridflow at {self.base_url}: {exc}") from exc
            if made_token.status_code != 201:
                return None
            self.command = (username, made_token.json()["token"])
        return self.command[1]

    def close(self) -> None:
        for credential_id, _ in self.holder_tokens.values():
            try:
                self.call("DELETE", f"/api/v1/admin/keys/{credential_id}")
            except Unreachable:
                break
        if self.command is not None:
            with contextlib.suppress(Unreachable):
                self.call("POST", f"/api/v1/admin/users/{self.command[0]}/disable", {})
        self.http.close()


def _parse_body(raw: bytes) -> Any:
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text) if text.strip() else None
    except ValueError:
        return text


def _case_path(case_id: str) -> str:
    return "/api/v1/cases/" + urllib.parse.quote(str(case_id), safe="")


# --------------------------------------------------------------------------------------------
# Comparison and display


def show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return "[" + ", ".join(show(v) for v in items) + "]"
    if isinstance(value, dict):
        return _dump(value)
    return str(value)


_ABSENT = object()


def _as_set(value: Any) -> frozenset[str] | None:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset([value])
    if isinstance(value, (list, tuple, set)):
        return frozenset(str(v) for v in value)
    return None


def _same_instant(expected: Any, actual: Any) -> bool:
    if expected is None or actual is None:
        return expected is None and actual is None
    try:
        return parse_instant(expected) == parse_instant(actual)
    except ScenarioError:
        return False


def field_holds(name: str, expected: Any, actual: Any) -> bool:
    if actual is _ABSENT:
        return False
    if name in INSTANT_FIELDS:
        # The server shows an instant in the city's zone, the file may write it in any.
        return _same_instant(expected, actual)
    if name == "assisting":
        exp, act = _as_set(expected), _as_set(actual)
        return exp is not None and exp == act
    if isinstance(expected, bool) or isinstance(actual, bool):
        # Python's True == 1 would otherwise let a count pass for a flag.
        return type(expected) is type(actual) and expected == actual
    if expected == actual:
        return True
    # YAML reads an unquoted code such as 330302 as a number while the server sends text.
    if isinstance(expected, (int, float)) and isinstance(actual, str):
        return str(expected) == actual
    return False


def _show_actual(name: str, actual: Any) -> str:
    if actual is _ABSENT:
        return "(no such field in the case view)"
    if name == "assisting" and isinstance(actual, list):
        return show(frozenset(str(v) for v in actual))
    return show(actual)


def _show_expected(name: str, expected: Any) -> str:
    if isinstance(expected, (datetime, date)):
        return expected.isoformat()
    if name == "assisting":
        as_set = _as_set(expected)
        if as_set is not None:
            return show(as_set)
    return show(expected)


# --------------------------------------------------------------------------------------------
# Running


class FileRun:
    def __init__(self, scenario: Scenario, client: Client, out: TextIO, poll_timeout: float):
        self.scenario = scenario
        self.client = client
        self.out = out
        self.poll_timeout = poll_timeout
        self.cases: dict[str, str] = {}
        self.now = scenario.start
        self.passed = 0
        self.failed = 0

    # Output -----------------------------------------------------------------------------------

    def _emit(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def _prefix(self, step: Step) -> str:
        return f"{self.scenario.stem} step {step.number} ({step.at_label})"

    def pass_(self, step: Step, name: str, value: str) -> None:
        self.passed += 1
        self._emit(f"PASS {self._prefix(step)}: {name} = {value}")

    def fail(self, step: Step, name: str, expected: str, got: str) -> None:
        self.failed += 1
        self._emit(f"FAIL {self._prefix(step)}: {name} expected {expected}, got {got}")

    def fail_step(self, step: Step, message: str) -> None:
        self.failed += 1
        self._emit(f"FAIL {self._prefix(step)}: {message}")

    def fail_setup(self, message: str, details: list[str] | None = None) -> None:
        self.failed += 1
        self._emit(f"FAIL {self.scenario.stem} setup: {message}")
        for detail in details or []:
            self._emit(f"    {detail}")

    # Setup ------------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self.setup()
            for step in self.scenario.steps:
                self.run_step(step)
        except Unreachable as exc:
            self.failed += 1
            self._emit(f"FAIL {self.scenario.stem}: {exc}; the rest of this file was not run")
        except StopFile:
            pass

    def setup(self) -> None:
        start = self.scenario.start.isoformat()
        answer = self.client.call("POST", "/api/v1/admin/reset", {"now": start})
        if answer.status == 409:
            self.fail_setup(
                "reset refused (HTTP 409): this Gridflow runs on the real clock; replay needs one "
                "started with GRIDFLOW_CLOCK=simulated",
                [answer.describe()],
            )
            raise StopFile
        if answer.status in (401, 403):
            self.fail_setup(
                f"reset refused ({answer.describe()}): replay signs in with the admin token "
                f"in {admin_token_path()} (written by `make run`, or `gridflow admin-token` on "
                "a real deployment) or GRIDFLOW_ADMIN_TOKEN; neither holds a token this "
                "Gridflow takes"
            )
            raise StopFile
        if not answer.ok:
            self.fail_setup(f"reset failed: {answer.describe()}")
            raise StopFile

        files = self._jurisdiction_files()
        answer = self.client.call("PUT", "/api/v1/admin/jurisdiction", {"files": files})
        if not answer.ok:
            errors = answer.body.get("errors") if isinstance(answer.body, dict) else None
            if isinstance(errors, list):
                details = [show(e) for e in errors]
            elif isinstance(errors, dict):
                details = [f"{k}: {show(v)}" for k, v in errors.items()]
            else:
                details = [answer.describe()]
            self.fail_setup(
                f"jurisdiction {self.scenario.jurisdiction} rejected (HTTP {answer.status})",
                details,
            )
            raise StopFile

        # Redundant after the reset's `now`, but the contract names this move and it guarantees
        # the first step starts from `start` whatever the jurisdiction load did.
        self._put_clock(self.scenario.start, where=None)

    def _jurisdiction_files(self) -> dict[str, str]:
        folder = self.scenario.jurisdiction
        if not folder.is_dir():
            self.fail_setup(f"jurisdiction folder {folder} does not exist")
            raise StopFile
        files = jurisdiction_files(folder)
        if not files:
            self.fail_setup(f"jurisdiction folder {folder} holds no .csv files")
            raise StopFile
        return files

    def _put_clock(self, instant: datetime, where: Step | None) -> None:
        answer = self.client.call("PUT", "/api/v1/admin/clock", {"now": instant.isoformat()})
        if not answer.ok:
            message = f"setting the clock to {instant.isoformat()} failed: {answer.describe()}"
            # Every later expectation would be judged at the wrong time, so stop here.
            if where is None:
                self.fail_setup(message)
            else:
                self.fail_step(where, message + "; the rest of this file was not run")
            raise StopFile
        self.now = instant

    # Steps ------------------------------------------------------------------------------------

    def run_step(self, step: Step) -> None:
        if step.instant != self.now:
            if step.instant < self.now:  # load_scenario rules this out; kept as a guard
                self.fail_step(
                    step, "the clock cannot go backwards; the rest of this file was not run"
                )
                raise StopFile
            self._put_clock(step.instant, where=step)
        getattr(self, "do_" + step.action)(step)

    def _case_id(self, step: Step, name: Any) -> str | None:
        case_id = self.cases.get(str(name))
        if case_id is None:
            self.fail_step(
                step,
                f"case {show(name)} is not a known case name "
                f"(no earlier accepted report took `as: {show(name)}`)",
            )
        return case_id

    def do_report(self, step: Step) -> None:
        answer = self.client.call("POST", "/api/v1/reports", step.body)
        expected = step.expect_status
        if expected is not None:
            if isinstance(expected, int):
                holds = answer.status == expected
            else:
                low = int(expected[0]) * 100
                holds = low <= answer.status < low + 100
            if holds:
                self.pass_(step, "expect_status", str(answer.status))
            else:
                self.fail(step, "expect_status", show(expected), answer.describe())
        elif not answer.ok:
            self.fail_step(step, f"report rejected: {answer.describe()}")

        if not answer.ok or step.alias is None:
            return
        case_id = answer.body.get("case_id") if isinstance(answer.body, dict) else None
        if case_id is None:
            self.fail_step(step, f"the answer to the report names no case_id: {answer.describe()}")
            return
        self.cases[step.alias] = str(case_id)

    def _post_to_case(self, step: Step, suffix: str, token: str | None = None) -> None:
        body = dict(step.body)
        case_id = self._case_id(step, body.pop("case"))
        if case_id is None:
            return
        answer = self.client.call("POST", _case_path(case_id) + suffix, body, token=token)
        if not answer.ok:
            self.fail_step(step, f"{step.action} refused: {answer.describe()}")

    def do_update(self, step: Step) -> None:
        # A holder's update comes from the holder's own credential, as a department system's
        # would: Gridflow checks `from` against it and takes nobody's word for it.
        sender = step.body.get("from")
        token = self.client.holder_token(str(sender)) if sender is not None else None
        self._post_to_case(step, "/updates", token)

    def do_verify(self, step: Step) -> None:
        self._post_to_case(step, "/verification")

    def do_evaluate(self, step: Step) -> None:
        self._post_to_case(step, "/evaluation")

    def do_order(self, step: Step) -> None:
        # The command center's orders on a case ({kind, unit?, category?, reason?}), given with
        # a command-center user's credential, as the command center's clerks would.
        if "into" in step.body:
            # A merge names the other case by its scenario name.
            into = self._case_id(step, step.body["into"])
            if into is None:
                return
            step = Step(**{**step.__dict__, "body": {**step.body, "into": into}})
        self._post_to_case(step, "/orders", self.client.command_token())

    def do_expect(self, step: Step) -> None:
        body = dict(step.body)
        name = body.pop("case")
        case_id = self._case_id(step, name)
        if case_id is None:
            return
        view_fields = {k: v for k, v in body.items() if k not in RELATION_FIELDS}

        view: Any = None
        answer: Answer | None = None
        if view_fields:
            view, answer = self._poll(case_id, view_fields)

        for key, expected in body.items():
            if key in RELATION_FIELDS:
                self._check_relation(step, name, case_id, key, expected)
            elif view is None:
                got = answer.describe() if answer else "no answer"
                self.fail(step, key, _show_expected(key, expected), f"no case view ({got})")
            else:
                actual = view.get(key, _ABSENT)
                if field_holds(key, expected, actual):
                    self.pass_(step, key, _show_expected(key, expected))
                else:
                    self.fail(step, key, _show_expected(key, expected), _show_actual(key, actual))

    def _poll(self, case_id: str, wanted: dict[str, Any]) -> tuple[dict | None, Answer]:
        """Asynchronous work (dispatch, escalation) may land after the clock move returned."""
        deadline = time.monotonic() + self.poll_timeout
        view: dict | None = None
        while True:
            answer = self.client.call("GET", _case_path(case_id))
            if answer.ok and isinstance(answer.body, dict):
                view = answer.body
                if all(field_holds(k, v, view.get(k, _ABSENT)) for k, v in wanted.items()):
                    return view, answer
                if any(k not in view for k in wanted):
                    # A field this server's case view does not have will not appear by waiting.
                    return view, answer
            if time.monotonic() >= deadline:
                return view, answer
            time.sleep(POLL_INTERVAL)  # bounded by the expectation's timeout

    def _check_relation(self, step: Step, name: Any, case_id: str, key: str, other: Any) -> None:
        other_id = self.cases.get(str(other))
        if other_id is None:
            self.fail(step, key, show(other), "no case known by that name")
            return
        same = other_id == case_id
        if same == (key == "same_case_as"):
            self.pass_(step, key, show(other))
        else:
            self.fail(
                step,
                key,
                show(other),
                f"{show(name)} is case {case_id} and {show(other)} is case {other_id}",
            )


def run_files(
    paths: list[str | Path],
    base_url: str,
    out: TextIO | None = None,
    poll_timeout: float = DEFAULT_POLL_TIMEOUT,
) -> tuple[int, int]:
    """Run each file in turn, print its PASS/FAIL lines, return (passed, failed) over all files.

    The `N passed, M failed` summary is left to the caller (main prints it).
    """
    # Resolved at call time so that a redirected sys.stdout (tests, embedding) is honoured.
    out = out if out is not None else sys.stdout
    client = Client(base_url, read_admin_token())
    passed = failed = 0
    try:
        for raw_path in paths:
            path = Path(raw_path)
            try:
                scenario = load_scenario(path)
            except ScenarioError as exc:
                print(f"FAIL {path.stem}: scenario not run:\n    {exc}", file=out, flush=True)
                failed += 1
                continue
            run = FileRun(scenario, client, out, poll_timeout)
            run.run()
            passed += run.passed
            failed += run.failed
    finally:
        client.close()
    return passed, failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="gridflow replay",
        description="Run scenario files against a Gridflow on the simulated clock.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE.yaml")
    parser.add_argument(
        "--url",
        default=None,
        help="base URL of Gridflow's HTTP API "
        "(default: $GRIDFLOW_URL, else http://127.0.0.1:$GRIDFLOW_PORT, port 8000 when unset)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_POLL_TIMEOUT,
        help="seconds of real time to wait for an expectation to hold (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    url = args.url or default_url()
    passed, failed = run_files(args.files, url, sys.stdout, poll_timeout=args.timeout)
    print(f"{passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
