"""Residents' personal data (个人信息): who may see a reporter's name and phone number, and the
masked form everyone else sees.

A report's reporter is kept whole in intake's own table and shown whole only to those who need
it to act (the command center; the holding department when the city's data says so, see
``may_see_reporter``). Everything that leaves intake (events, department messages, the case view
for everyone else) carries the masked form, and so does every log line (``mask_personal_numbers``
is what the log processors apply).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gridflow_common.domain.jurisdiction import Jurisdiction

# --------------------------------------------------------------------------- numbers in free text

# Resident ID numbers (17 digits + a check digit or X): the region (6) and the last 4 stay.
_ID_NUMBER = re.compile(r"(?<!\d)(\d{6})\d{8}(\d{3}[\dXx])(?!\d)")
# Mainland mobile numbers (11 digits from 1[3-9]), also as the report schema accepts them: with a
# +86 / 0086 prefix, and groups split by spaces or hyphens ("139 0000 0001", "139-0000-0001").
_MOBILE_IN_TEXT = re.compile(r"(?<!\d)((?:\+?86|0086)?[ -]?1[3-9]\d)[ -]?\d{4}[ -]?(\d{4})(?!\d)")


def mask_personal_numbers(text: str) -> str:
    """``text`` with every mobile and resident ID number masked in place; other digit runs
    (dates, case ids, grid codes, service numbers such as 12345) are left as they are. ID
    numbers first: one holds an 11-digit run that would otherwise be read as a phone."""
    text = _ID_NUMBER.sub(r"\1********\2", text)
    return _MOBILE_IN_TEXT.sub(r"\1****\2", text)


def mask_free_text(text: str, names: Iterable[str | None] = ()) -> str:
    """Free text a person typed (a description, a note) as those who may not see reporters see
    it: personal numbers masked, and each of ``names`` (the case's reporters, which the one who
    masks knows) masked where it appears, as ``mask_name`` masks it. A name of one character is
    left alone in the text: replacing every occurrence of a common character would garble it
    and hide nobody."""
    for name in sorted(
        {n.strip() for n in names if isinstance(n, str) and len(n.strip()) > 1},
        key=len,
        reverse=True,
    ):
        text = text.replace(name, mask_name(name))
    return mask_personal_numbers(text)


# --------------------------------------------------------------------------- a reporter's fields


def mask_name(name: str) -> str:
    """庄思思 -> 庄**: the first character (the surname, for a Chinese name) and two stars,
    whatever the length, since the length of a name narrows who it is among a community's
    residents. A one-character name is all stars; an empty name stays empty. Control characters
    (NUL among them) and surrounding spaces are not characters of a name and are dropped first,
    so a name cannot hide behind them and then be shown whole."""
    cleaned = "".join(ch for ch in name if ch.isprintable()).strip()
    if not cleaned:
        return ""
    if len(cleaned) == 1:
        return "*"
    return cleaned[0] + "**"


def mask_phone(phone: str) -> str:
    """13866000001 -> 138****0001. Only the digits are read (spaces, hyphens, brackets and
    anything else are dropped, full-width digits read as digits) and never more than the first
    3 and the last 4 are shown: a mainland number loses its +86 / 0086 first, so those 7 are of
    the number itself. Shorter numbers show less: 8 to 10 digits (a landline, say) only the last
    4, fewer than 8 nothing at all, since 4 of 7 digits would all but give the number away."""
    stripped = phone.strip()
    digits = "".join(str(int(ch)) for ch in stripped if ch.isdecimal())
    if not digits:
        return ""
    national = _mainland_mobile(digits)
    sign = "+" if national is None and stripped.startswith("+") else ""
    digits = national or digits
    if len(digits) >= 11:
        return f"{sign}{digits[:3]}{'*' * (len(digits) - 7)}{digits[-4:]}"
    if len(digits) >= 8:
        return f"{sign}{'*' * (len(digits) - 4)}{digits[-4:]}"
    return sign + "*" * len(digits)


def mask_email(address: str) -> str:
    """zhang.san@example.org -> z***@example.org: the first character of the mailbox and the
    whole domain (which says the organisation, not the person); a mailbox of one character is
    all stars. Control characters and surrounding spaces are dropped first, as for a name."""
    cleaned = "".join(ch for ch in address if ch.isprintable()).strip()
    mailbox, at, domain = cleaned.rpartition("@")
    if not at:
        return "***" if cleaned else ""
    shown = mailbox[0] if len(mailbox) > 1 else ""
    return f"{shown}***@{domain}"


def mask_contact(address: str) -> str:
    """A person's contact as anyone sees it who is not that person: an e-mail address masked
    as ``mask_email`` masks it, anything else read as a phone number (``mask_phone``)."""
    return mask_email(address) if "@" in address else mask_phone(address)


def _mainland_mobile(digits: str) -> str | None:
    """The 11-digit mobile number in ``digits`` written with the country code (86 or 0086)."""
    for code in ("0086", "86"):
        if len(digits) == len(code) + 11 and digits.startswith(code) and digits[len(code)] == "1":
            return digits[len(code) :]
    return None


def mask_opaque(value: str) -> str:
    """A contact that is neither a name, a phone nor an e-mail address (a WeChat openid, say):
    its first character and three stars, nothing at all when it is that short; whatever it
    is, it says who someone is, and nobody but the holder of the whole needs any of it."""
    cleaned = "".join(ch for ch in value if ch.isprintable()).strip()
    if not cleaned:
        return ""
    return (cleaned[0] if len(cleaned) > 4 else "") + "***"


# How each field of a reporter is masked; a field not named here is masked by mask_opaque:
# every contact field, including ones added after this was written (email and wechat_openid
# from the WeChat and Open311 channels), leaves intake masked unless the caller may see it.
CONTACT_MASKS: dict[str, Any] = {
    "name": mask_name,
    "phone": mask_phone,
    "email": mask_email,
}
# The fields every masked reporter carries (null when the report gave none): the contract's.
_ALWAYS = ("name", "phone")


def mask_field(field: str, value: Any) -> str | None:
    """One contact field masked as its kind is masked (``CONTACT_MASKS``, else opaque)."""
    return _masked(value, CONTACT_MASKS.get(field, mask_opaque))


def mask_reporter(reporter: dict | None) -> dict | None:
    """A reporter as anyone but those who may see it see it: ``name`` and ``phone`` always
    (each masked or null), and every other field it has masked too (``mask_field``), so a
    channel that adds a contact field to reporters is covered without a change here."""
    if reporter is None:
        return None
    masked: dict[str, str | None] = {key: None for key in _ALWAYS}
    for key, value in reporter.items():
        if value is not None or key in _ALWAYS:
            masked[str(key)] = mask_field(str(key), value)
    return masked


def _masked(value: Any, mask: Any) -> str | None:
    if value is None:
        return None
    return mask(value if isinstance(value, str) else str(value)) or None


# The shapes the masks produce (an empty result travels as null).
_MASKED_NAME = re.compile(r"\*|.\*\*", re.DOTALL)
_MASKED_PHONE = re.compile(r"\+?(?:[0-9]{3}\*+[0-9]{4}|\*+[0-9]{4}|\*+)")
_MASKED_EMAIL = re.compile(r"[^@\s]?\*\*\*(?:@[^\s]*)?")
_MASKED_OPAQUE = re.compile(r".?\*\*\*", re.DOTALL)
_MASKED_SHAPES = {"name": _MASKED_NAME, "phone": _MASKED_PHONE, "email": _MASKED_EMAIL}


def unmasked_reporter_fields(reporter: dict) -> list[str]:
    """The fields of ``reporter`` that are not in a masked shape: what a contract refuses to
    carry between services. Every field is looked at, not only the ones known today."""
    problems = []
    for key, value in reporter.items():
        if value is None:
            continue
        shape = _MASKED_SHAPES.get(str(key), _MASKED_OPAQUE)
        if not (isinstance(value, str) and shape.fullmatch(value)):
            problems.append(str(key))
    return problems


# A contact field written out as a dict or JSON is (a SQL statement's parameters in an error, a
# repr): 'name': '庄思思' or "phone": "138...". Log lines mask the value.
_CONTACT_IN_TEXT = re.compile(
    r"""(?P<key>(?<!\w)["']?(?P<field>name|phone|email|wechat_openid|openid)["']?\s*[:=]\s*)"""
    r"""(?P<quote>["'])(?P<value>[^"'\\]{1,200})(?P=quote)"""
)


def mask_contact_fields_in_text(text: str) -> str:
    """``text`` with the value of every contact field written in it as a dict or JSON masked:
    what a log line does with a reporter it did not mean to carry."""

    def masked(m: re.Match[str]) -> str:
        value = mask_field(m.group("field"), m.group("value")) or ""
        return f"{m.group('key')}{m.group('quote')}{value}{m.group('quote')}"

    return _CONTACT_IN_TEXT.sub(masked, text)


# --------------------------------------------------------------------------- who sees it whole

ROLE_ADMIN = "admin"
ROLE_COMMAND_CENTER = "command_center"
ROLE_DEPARTMENT = "department"
# The roles that see every reporter whole: the command center answers residents and orders the
# departments; the administrator runs the system (and reads the database anyway).
_ROLES_SEEING_REPORTERS = (ROLE_ADMIN, ROLE_COMMAND_CENTER)


def may_see_reporter(
    role: str,
    holder_department: str | None,
    caller_department: str | None,
    j: Jurisdiction,
) -> bool:
    """Whether a caller sees a case's reporters whole: the command center and the administrator
    always; a department only for a case its own department holds, and only when the city's
    ``departments.csv`` says that department may (``sees_reporter``: a utility calling the
    resident back to arrange a visit, say). Everyone else (leaders, streets, communities, grid
    workers, other departments) sees them masked."""
    if role in _ROLES_SEEING_REPORTERS:
        return True
    if role != ROLE_DEPARTMENT or caller_department is None:
        return False
    if caller_department != holder_department:
        return False
    department = j.department(caller_department)
    return department is not None and department.sees_reporter
