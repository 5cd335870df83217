"""Who may do what: roles, the principals a request can be made by, and every access decision.

Framework-free: the HTTP layer finds out *who* is calling (a user's session or bearer token, a
channel's key, a department's or unit's credential, a reporter's progress token) and asks this
module *whether* that caller may read a case, speak for a unit, verify, report on a channel or
administer. Every door asks here, so one rule change reaches every door.

Roles (a user has one, scoped as the city's data says):

- ``admin`` (no scope): everything, and every administration call.
- ``command_center`` (none, or a district): every case (of its district); reports on any channel
  (the hotline's operators), verifies, records evaluations (回访), gives orders.
- ``leader`` (a unit): the cases of its unit's department (every case, for a command-center
  leader); comments.
- ``department`` (a department or one of its units): the cases its department (or unit) holds,
  leads or assists; status updates for them.
- ``street`` (a street area): the cases in its street; updates for the street's own offices.
- ``community`` (a community area): the cases in its community; updates for the community
  office; verification.
- ``grid_worker`` (a grid area): the cases in its grid; reports through the grid app;
  verification.

Credentials that are not people: a *channel key* lets a channel client (the hotline system, the
grid app, a WeChat gateway, an Open311 client) report on its channel and nothing else; a *holder
credential* is a department's or unit's system: it speaks for that department (and all its units)
or that one unit, reads the cases it holds, leads or assists, and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from gridflow_common.domain import vocabulary as v
from gridflow_common.domain.jurisdiction import Jurisdiction
from gridflow_common.domain.privacy import may_see_reporter

ADMIN = "admin"
COMMAND_CENTER = "command_center"
LEADER = "leader"
DEPARTMENT = "department"
STREET = "street"
COMMUNITY = "community"
GRID_WORKER = "grid_worker"
ROLES = (ADMIN, COMMAND_CENTER, LEADER, DEPARTMENT, STREET, COMMUNITY, GRID_WORKER)

# Kinds of principal.
USER = "user"
CHANNEL_KEY = "channel_key"
HOLDER_KEY = "holder_key"

# The area level each area-scoped role is scoped to (areas.csv levels).
AREA_SCOPES = {STREET: "street", COMMUNITY: "community", GRID_WORKER: "grid"}
# Roles that see every case (of their scope, when they have one).
OVERSEERS = (ADMIN, COMMAND_CENTER)
# Channels a report may come through with no credential at all (the public web form), under the
# per-address limit for anonymous reports.
PUBLIC_CHANNELS = ("web",)
# A grid worker reports through the grid app as themself, without the app's channel key.
GRID_APP = "grid_app"


class ScopeError(ValueError):
    """A role's scope that does not fit the role or the jurisdiction."""


@dataclass(frozen=True)
class Principal:
    """Whoever a request is made by. ``credential_id`` is the public id of the credential used
    (never the secret), for the audit log and for revoking it."""

    kind: str
    id: str
    name: str
    credential_id: str
    role: str | None = None
    scope: str | None = None
    channel: str | None = None

    @property
    def is_user(self) -> bool:
        return self.kind == USER

    def has_role(self, *roles: str) -> bool:
        return self.kind == USER and self.role in roles

    @property
    def label(self) -> str:
        """Who, for the audit log and the timeline: ``user:alice``, ``key:k-3f2a (hotline)``."""
        if self.kind == USER:
            return f"user:{self.name}"
        return f"key:{self.credential_id} ({self.name})"


@dataclass(frozen=True)
class CaseFacts:
    """What an access decision needs to know of a case."""

    area_code: str
    holder: str | None
    lead: str | None
    assisting: tuple[str, ...] = ()


# -- scopes ---------------------------------------------------------------------------------------


def check_scope(role: str, scope: str | None, j: Jurisdiction) -> str | None:
    """The scope a user of ``role`` may have in ``j``, or ScopeError saying what is wrong."""
    if role not in ROLES:
        raise ScopeError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    scope = (scope or "").strip() or None
    if role == ADMIN:
        if scope:
            raise ScopeError("an admin has no scope")
        return None
    if role == COMMAND_CENTER:
        district = j.area(scope) if scope else None
        if scope and (district is None or district.level != "district"):
            raise ScopeError(f"a command center's scope is a district; {scope!r} is not one")
        return scope
    if scope is None:
        raise ScopeError(f"a {role} user needs a scope")
    if role == LEADER:
        if j.unit(scope) is None:
            raise ScopeError(f"a leader's scope is a unit; no unit {scope!r}")
        return scope
    if role == DEPARTMENT:
        unit = j.unit(scope)
        if j.department(scope) is None and (unit is None or unit.department_code is None):
            raise ScopeError(
                f"a department user's scope is a department or one of its units; {scope!r} is "
                "neither"
            )
        return scope
    level = AREA_SCOPES[role]
    area = j.area(scope)
    if area is None or area.level != level:
        raise ScopeError(f"a {role} user's scope is a {level} area; {scope!r} is not one")
    return scope


def _within(j: Jurisdiction, area_code: str, scope: str) -> bool:
    """Is ``area_code`` the area ``scope`` or inside it?"""
    code: str | None = area_code
    seen = 0
    while code is not None and seen < 16:
        if code == scope:
            return True
        area = j.area(code)
        code = area.parent_code if area else None
        seen += 1
    return False


def _department_of(j: Jurisdiction, code: str | None) -> str | None:
    """The department a unit belongs to, or the code itself when it names a department."""
    if code is None:
        return None
    if j.department(code) is not None:
        return code
    unit = j.unit(code)
    return unit.department_code if unit else None


# -- speaking for a unit --------------------------------------------------------------------------


def speaks_for(principal: Principal, code: str, j: Jurisdiction) -> bool:
    """May ``principal`` send a holder's status update as ``code`` (a department or unit code)?"""
    if principal.kind == HOLDER_KEY or principal.has_role(DEPARTMENT):
        own = principal.scope
        if own is None:
            return False
        if code == own:
            return True
        # A department's credential answers for every one of its stations and its bureau.
        unit = j.unit(code)
        return j.department(own) is not None and unit is not None and unit.department_code == own
    unit = j.unit(code)
    if unit is None or principal.scope is None and not principal.has_role(COMMAND_CENTER):
        return False
    if principal.has_role(COMMUNITY):
        return unit.kind == v.COMMUNITY_OFFICE and unit.area_code == principal.scope
    if principal.has_role(STREET):
        return unit.kind in (v.STREET_CENTER, v.COMMUNITY_OFFICE) and _within(
            j, unit.area_code, principal.scope or ""
        )
    if principal.has_role(COMMAND_CENTER):
        return unit.kind == v.COMMAND_CENTER and (
            principal.scope is None or unit.area_code == principal.scope
        )
    return False


def default_sender(principal: Principal, j: Jurisdiction) -> str | None:
    """The code an update is sent as when its body names none: a credential or user that speaks
    for exactly one department or unit."""
    if principal.kind == HOLDER_KEY or principal.has_role(DEPARTMENT):
        return principal.scope
    if principal.has_role(COMMUNITY) and principal.scope:
        office = j.community_office(principal.scope)
        return office.code if office else None
    return None


# -- reading a case -------------------------------------------------------------------------------


def _involved(case: CaseFacts, j: Jurisdiction) -> set[str]:
    """Every department and unit code the case is held by, led by or assisted by."""
    codes = {c for c in (case.holder, case.lead, *case.assisting) if c}
    department = _department_of(j, case.holder)
    if department:
        codes.add(department)
    return codes


def may_read_case(principal: Principal, case: CaseFacts, j: Jurisdiction) -> bool:
    if principal.kind == CHANNEL_KEY:
        return False
    if principal.kind == HOLDER_KEY or principal.has_role(DEPARTMENT):
        # A department-wide credential sees every case its department holds, leads or
        # assists; a unit's sees the cases that unit holds.
        return principal.scope in _involved(case, j)
    if principal.has_role(ADMIN):
        return True
    if principal.has_role(COMMAND_CENTER):
        return principal.scope is None or _within(j, case.area_code, principal.scope)
    if principal.has_role(LEADER):
        unit = j.unit(principal.scope or "")
        if unit is None:
            return False
        if unit.kind == v.COMMAND_CENTER:
            return _within(j, case.area_code, unit.area_code)
        if unit.department_code:
            return unit.department_code in _involved(case, j)
        return _within(j, case.area_code, unit.area_code)
    if principal.role in AREA_SCOPES and principal.scope:
        return _within(j, case.area_code, principal.scope)
    return False


# -- the cases a principal may read, as sets (for lists: gridflow_intake.scope) -------------------


@dataclass(frozen=True)
class ReadScope:
    """The cases a principal may read, said as sets a query can test, so a list selects exactly
    what ``may_read_case`` allows one case at a time:

    - ``everything``: every case;
    - ``areas``: the cases whose area is one of these (a scope and every area within it);
    - ``party``: the cases held, led or assisted by this department or unit code, and
      ``holders``: the cases held by one of these (the party's own units, for a department).

    Neither ``everything`` nor ``areas`` nor ``party``: no case at all."""

    everything: bool = False
    areas: frozenset[str] | None = None
    party: str | None = None
    holders: frozenset[str] = frozenset()

    def admits(self, case: CaseFacts) -> bool:
        if self.everything:
            return True
        if self.areas is not None:
            return case.area_code in self.areas
        if self.party is None:
            return False
        return (
            case.holder in self.holders
            or self.party in (case.holder, case.lead)
            or self.party in case.assisting
        )


NOTHING = ReadScope()


def areas_within(j: Jurisdiction, scope: str) -> frozenset[str]:
    """``scope`` and the codes of every area of ``j`` inside it (as ``_within`` judges)."""
    return frozenset({scope, *(a.code for a in j.areas if _within(j, a.code, scope))})


def holders_counting_for(j: Jurisdiction, code: str) -> frozenset[str]:
    """The holders whose case counts as ``code``'s: ``code`` itself and, for a department, each
    of its units (``_department_of`` is ``code``)."""
    return frozenset({code, *(u.code for u in j.units if _department_of(j, u.code) == code)})


def _party(code: str, j: Jurisdiction) -> ReadScope:
    return ReadScope(party=code, holders=holders_counting_for(j, code))


def read_scope(principal: Principal, j: Jurisdiction) -> ReadScope:
    """What ``may_read_case`` allows ``principal``, as a ``ReadScope`` (the same decisions in
    the same order)."""
    if principal.kind == CHANNEL_KEY:
        return NOTHING
    if principal.kind == HOLDER_KEY or principal.has_role(DEPARTMENT):
        return _party(principal.scope, j) if principal.scope else NOTHING
    if principal.has_role(ADMIN):
        return ReadScope(everything=True)
    if principal.has_role(COMMAND_CENTER):
        if principal.scope is None:
            return ReadScope(everything=True)
        return ReadScope(areas=areas_within(j, principal.scope))
    if principal.has_role(LEADER):
        unit = j.unit(principal.scope or "")
        if unit is None:
            return NOTHING
        if unit.kind == v.COMMAND_CENTER:
            return ReadScope(areas=areas_within(j, unit.area_code))
        if unit.department_code:
            return _party(unit.department_code, j)
        return ReadScope(areas=areas_within(j, unit.area_code))
    if principal.role in AREA_SCOPES and principal.scope:
        return ReadScope(areas=areas_within(j, principal.scope))
    return NOTHING


def may_read_inbox(principal: Principal, code: str, j: Jurisdiction) -> bool:
    """A unit's inbox (or a department's: all of its units'): whoever speaks for it (its own
    credential, its department's, a department, street or community user of it), the command
    center (of the unit's district, when scoped to one; a whole department's only unscoped) and
    an admin."""
    if principal.kind == CHANNEL_KEY:
        return False
    if principal.has_role(ADMIN):
        return True
    if principal.has_role(COMMAND_CENTER):
        if principal.scope is None:
            return True
        unit = j.unit(code)
        return unit is not None and _within(j, unit.area_code, principal.scope)
    return speaks_for(principal, code, j)


def may_verify(principal: Principal, case: CaseFacts, j: Jurisdiction) -> bool:
    """核查: the command center, or the community or grid worker where the case is."""
    if principal.has_role(ADMIN, COMMAND_CENTER):
        return may_read_case(principal, case, j)
    if principal.has_role(COMMUNITY, GRID_WORKER):
        return may_read_case(principal, case, j)
    return False


# What a leader who is not the command center may order: a comment (点评).
LEADER_ORDERS = (v.ORDER_COMMENT,)


def may_give_order(principal: Principal, kind: str) -> bool:
    """Orders (指令) are the command center's and an admin's; a leader comments (点评). Which
    cases: those the caller may read (``may_read_case``), asked apart."""
    if principal.has_role(ADMIN, COMMAND_CENTER):
        return True
    return principal.has_role(LEADER) and kind in LEADER_ORDERS


def may_evaluate(principal: Principal) -> bool:
    """Recording a resident's evaluation for them (回访) is the command center's; the resident
    evaluates through their own progress link."""
    return principal.has_role(ADMIN, COMMAND_CENTER)


def sees_reporter(principal: Principal, case: CaseFacts, j: Jurisdiction) -> bool:
    """A reporter's name and phone: for the command center always; for the holder's department
    only where the city's data (departments.csv ``sees_reporter``) says it may have them
    (``privacy.may_see_reporter``). A department's system counts as its department."""
    if principal.kind == HOLDER_KEY:
        role = DEPARTMENT
    elif principal.kind == USER and principal.role:
        role = principal.role
    else:
        return False
    caller_department = _department_of(j, principal.scope) if role == DEPARTMENT else None
    holder_department = _department_of(j, case.holder) or case.lead
    return may_see_reporter(role, holder_department, caller_department, j)


# -- reporting ------------------------------------------------------------------------------------


def may_report(principal: Principal | None, channel: str) -> tuple[bool, int, str]:
    """(allowed, status if not, why). No credential: only the public channels (401 otherwise);
    a channel key: its own channel only (403 for another); staff: the command center on any
    channel (the hotline's operators), a grid worker through the grid app."""
    if principal is None:
        if channel in PUBLIC_CHANNELS:
            return True, 0, ""
        return False, 401, f"reports through {channel!r} need that channel's key"
    if principal.kind == CHANNEL_KEY:
        if principal.channel == channel:
            return True, 0, ""
        return False, 403, f"this key is for another channel, not {channel!r}"
    if principal.has_role(ADMIN, COMMAND_CENTER):
        return True, 0, ""
    if principal.has_role(GRID_WORKER) and channel in (GRID_APP, *PUBLIC_CHANNELS):
        return True, 0, ""
    if channel in PUBLIC_CHANNELS:
        return True, 0, ""
    return False, 403, f"your credential may not report through {channel!r}"
