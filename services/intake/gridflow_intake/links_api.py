"""The signed action links an e-mail carries (gridflow_common.links), as people and their mail
scanners meet them.

- ``GET /api/v1/links/<token>`` shows, in Chinese, what the link would do (the case, its
  category, its masked description, the action as a button) and changes nothing: mail
  scanners and link previews follow every link in a message, and must not accept a case.
- ``POST /api/v1/links/<token>`` does it, once, as the link's unit: the same status report a
  unit's system would post (``handlers.report_status``, routing asked when intake's view lags),
  and the link's action spent in the same transaction (``intake_spent_links``). A refused
  action spends nothing.

Answers are a page (HTML) unless the caller asks for JSON (``Accept: application/json``):
404 for anything that is not a link Gridflow made (malformed, tampered, another secret's: the
same page, naming nothing), 410 for an expired one, 409 for one already used, for work the unit
no longer holds, or for an action the case cannot take now. No credential is asked (the token
is one); requests are limited per address as anonymous ones, and a bad token costs its address
twice, as a bad credential does. Every POST is audited, as ``link:<unit>`` once the token is
known good. Pages load nothing from anywhere (a strict Content-Security-Policy), and every text
on them is escaped: a description is whatever a resident typed.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from werkzeug.routing import BaseConverter
from werkzeug.wrappers import Request

from gridflow_common import links
from gridflow_common.domain import lifecycle
from gridflow_common.domain import vocabulary as v
from gridflow_common.logging import get_logger
from gridflow_common.runtime import ServiceRuntime, Work
from gridflow_intake import handlers as h
from gridflow_intake.access import Access, Caller
from gridflow_intake.models import cases, spent_links
from gridflow_intake.peers import Peers

if TYPE_CHECKING:
    from gridflow_intake.api import Answer, Call

log = get_logger(__name__)

# Matched whole. Anything else in the path (a NUL, 10 KB, another kind of token) is read as
# the empty token, which is no link: one answer for every shape of input.
TOKEN_RE = re.compile(
    re.escape(links.PREFIX) + r"[A-Za-z0-9_-]{16,1900}\.[A-Za-z0-9_-]{43}", re.ASCII
)
LINK_SECRET_EXTRA = "link_secret"
AUDIT_ACTION = "post_link"

_STYLE = (
    "body{font-family:sans-serif;max-width:40em;margin:2em auto;padding:0 1em;color:#222}"
    "dt{font-weight:bold;margin-top:.6em}dd{margin:0 0 0 1em;white-space:pre-wrap}"
    "button{font-size:1.2em;padding:.4em 1.6em;margin-top:1em}.note{color:#555}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode("utf-8")).digest()).decode("ascii")
# Nothing loads from anywhere: the one style block is allowed by its hash, the form posts only
# back here, and no other site may frame the page (a click on the button must be the reader's).
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    # The link is a credential: no cache keeps the page, no Referer carries it on.
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
HTML_TYPE = "text/html; charset=utf-8"


class LinkTokenConverter(BaseConverter):
    def to_python(self, value: str) -> str:
        return value if TOKEN_RE.fullmatch(value) else ""


def _answer(status: int, body: Any, content_type: str, headers: dict[str, str]) -> Answer:
    # api.py imports this module (IntakeApi inherits the endpoints below).
    from gridflow_intake.api import Answer

    return Answer(status, body, content_type=content_type, headers=headers)


def wants_json(request: Request) -> bool:
    return request.accept_mimetypes.best_match(["text/html", "application/json"]) == (
        "application/json"
    )


def _e(text: Any) -> str:
    return html.escape("" if text is None else str(text), quote=True)


def render_page(
    title: str,
    lines: Sequence[str],
    facts: Sequence[tuple[str, Any]] = (),
    button: str | None = None,
) -> bytes:
    """A page in Chinese: a title, a few lines, the case's facts, and a button that posts back
    to the page's own address (no ``action``: the token is never written into the page)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="zh-CN"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>{_e(title)} · 网格化管理平台</title>",
        f"<style>{_STYLE}</style></head><body><main>",
        f"<h1>{_e(title)}</h1>",
    ]
    parts += [f"<p>{_e(line)}</p>" for line in lines]
    if facts:
        parts.append("<dl>")
        parts += [f"<dt>{_e(name)}</dt><dd>{_e(value)}</dd>" for name, value in facts]
        parts.append("</dl>")
    if button:
        parts.append(f'<form method="post"><button type="submit">{_e(button)}</button></form>')
        parts.append(
            '<p class="note">点击后即以贵单位名义记录此操作，本链接随即失效；'
            "仅打开本页面不会执行任何操作。</p>"
        )
    parts.append("</main></body></html>")
    return "\n".join(parts).encode("utf-8")


class Refusal(Exception):
    """A link that cannot do what it says, with what to tell a person (Chinese) and a program
    (English, under ``errors.link`` as every refusal of the API is shaped)."""

    def __init__(self, status: int, title: str, text: str, english: str):
        super().__init__(english)
        self.status, self.title, self.text, self.english = status, title, text, english

    def answer(self, as_json: bool) -> Answer:
        if as_json:
            body = {"errors": {"link": [self.english]}, "message": self.text}
            return _answer(self.status, body, "application/json", dict(PAGE_HEADERS))
        page = render_page(self.title, [self.text])
        return _answer(self.status, page, HTML_TYPE, dict(PAGE_HEADERS))


NOT_A_LINK = Refusal(
    404,
    "链接无效",
    "此链接无效。请使用通知邮件中的原始链接，或联系区网格化指挥中心。",
    "no such link",
)


class LinkEndpoints:
    """The link endpoints of ``IntakeApi``."""

    runtime: ServiceRuntime
    access: Access
    peers: Peers

    # -- the token ---------------------------------------------------------------------------

    def _link_secret(self) -> links.LinkSecret:
        """One per process, like the rate limiter: read from the platform table once, on a
        connection of its own (never inside a unit of work that may roll back)."""
        secret = self.runtime.extras.get(LINK_SECRET_EXTRA)
        if secret is None:
            secret = links.LinkSecret(self.runtime.engine)
            self.runtime.extras[LINK_SECRET_EXTRA] = secret
        return secret

    def _claims(self, call: Call, token: str) -> links.LinkClaims:
        now = self.runtime.operational_now()
        try:
            return links.verify(token, self._link_secret(), now.timestamp())
        except links.LinkInvalid:
            # As a credential that is not good: guessing costs an address twice.
            self.access.limit_failed_credential(call.caller.address)
            raise NOT_A_LINK from None
        except links.LinkExpired as exc:
            expired = dt.datetime.fromtimestamp(exc.claims.expires, dt.timezone.utc)
            raise Refusal(
                410,
                "链接已过期",
                f"此链接已于 {self._local_text(expired)} 过期。案件 {exc.claims.case_id} "
                "请登录网格化管理平台办理，或联系区网格化指挥中心。",
                f"this link expired at {expired.isoformat()}",
            ) from None

    # -- the endpoints -----------------------------------------------------------------------

    def get_link(self, call: Call, token: str) -> Answer:
        as_json = wants_json(call.request)
        try:
            claims = self._claims(call, token)
            with self.runtime.work() as work:
                view = self._preview(work, claims)
        except Refusal as refusal:
            return refusal.answer(as_json)
        if as_json:
            return _answer(200, view, "application/json", dict(PAGE_HEADERS))
        verb = links.ACTION_NAMES[claims.action]
        page = render_page(
            f"{verb}案件",
            [f"以下案件已派给{view['unit_name']}。确认{verb}请点击下方按钮。"],
            [
                ("案件编号", view["case_id"]),
                ("案件类别", view["category_name"] or view["category"] or "未分类"),
                ("问题描述", view["description"]),
                ("当前状态", view["status_name"]),
                ("办理单位", view["unit_name"]),
                ("链接有效期至", view["expires_text"]),
            ],
            button=f"确认{verb}",
        )
        return _answer(200, page, HTML_TYPE, dict(PAGE_HEADERS))

    def post_link(self, call: Call, token: str) -> Answer:
        as_json = wants_json(call.request)
        actor = "anonymous"
        claims: links.LinkClaims | None = None
        try:
            claims = self._claims(call, token)
            actor = f"link:{claims.unit}"
            with self.runtime.work() as work:
                status, done = self._act(work, claims)
                self.access.store.record(
                    actor,
                    AUDIT_ACTION,
                    "ok",
                    target=claims.case_id,
                    address=call.caller.address,
                    detail=_audit_detail(claims, status),
                    conn=work.db,
                )
                call.audited = True
        except Refusal as refusal:
            self._audit_refusal(actor, call.caller, claims, refusal.status)
            return refusal.answer(as_json)
        if as_json:
            body = {**done, "unit": claims.unit}
            return _answer(status, body, "application/json", dict(PAGE_HEADERS))
        verb = links.ACTION_NAMES[claims.action]
        page = render_page(
            f"已{verb}",
            [f"案件 {claims.case_id} 已{verb}，记录为“{v.zh(claims.action)}”。谢谢！"],
            [("案件编号", claims.case_id), ("当前状态", v.zh(done["status"]))],
        )
        return _answer(200, page, HTML_TYPE, dict(PAGE_HEADERS))

    # -- what they do ----------------------------------------------------------------------------

    def _preview(self, work: Work, claims: links.LinkClaims) -> dict:
        """What the page shows; refusals as the POST would give them, nothing written."""
        case = _case_of(work, claims)
        _refuse_stale(claims, case)
        spent = _spent(work, claims)
        if spent is not None:
            raise self._used(claims, spent)
        view = h.case_view(work, claims.case_id)  # masked: no reporter's numbers or names
        j = work.jurisdiction(case.jurisdiction_version)
        category = j.category(view["category"]) if view["category"] else None
        unit = j.unit(claims.unit)
        expires = dt.datetime.fromtimestamp(claims.expires, dt.timezone.utc)
        return {
            "case_id": view["case_id"],
            "category": view["category"],
            "category_name": category.name_zh if category else None,
            "description": view["description"],
            "status": view["status"],
            "status_name": v.zh(view["status"]),
            "unit": claims.unit,
            "unit_name": unit.name if unit is not None else claims.unit,
            "action": claims.action,
            "action_name": links.ACTION_NAMES[claims.action],
            "expires_at": j.local(expires).isoformat(),
            "expires_text": f"{j.local(expires):%Y-%m-%d %H:%M}",
        }

    def _act(self, work: Work, claims: links.LinkClaims) -> tuple[int, dict]:
        case = _case_of(work, claims)
        _refuse_stale(claims, case)
        dialect = postgresql if work.db.dialect.name == "postgresql" else sqlite
        # Spent first: a second click waits here for the first one's transaction, then finds
        # the row. A refusal below rolls this back, so a refused link stays usable.
        inserted = work.db.execute(
            dialect.insert(spent_links).on_conflict_do_nothing(),
            dict(
                delivery_id=claims.delivery_id,
                action=claims.action,
                case_id=claims.case_id,
                unit=claims.unit,
                nonce=claims.nonce,
                spent_at=self.runtime.operational_now(),
            ),
        ).rowcount
        if not inserted:
            spent = _spent(work, claims)
            raise self._used(claims, spent)
        update = {"sender": claims.unit, "status": claims.action, "note": None, "category": None}
        try:
            return h.report_status(
                work, claims.case_id, update, holder_of=self.peers.current_assignment
            )
        except h.Rejected as exc:
            raise _refusal_of(work, claims, exc) from None

    def _used(self, claims: links.LinkClaims, spent: Any) -> Refusal:
        when = self._local_text(spent.spent_at) if spent is not None else ""
        return Refusal(
            409,
            "链接已使用",
            f"此链接已于 {when} 使用，案件 {claims.case_id} 已{links.ACTION_NAMES[claims.action]}，"
            "无需重复操作。",
            "this link was already used",
        )

    def _local_text(self, instant: dt.datetime) -> str:
        j = self.runtime.jurisdictions.active()[1]
        return f"{j.local(instant):%Y-%m-%d %H:%M}"

    def _audit_refusal(
        self, actor: str, caller: Caller, claims: links.LinkClaims | None, status: int
    ) -> None:
        try:
            self.access.store.record(
                actor,
                AUDIT_ACTION,
                "refused",
                target=claims.case_id if claims else None,
                address=caller.address,
                detail=_audit_detail(claims, status) if claims else {"status": status},
            )
        except Exception:
            log.exception("audit_write_failed", action=AUDIT_ACTION, actor=actor)


def _audit_detail(claims: links.LinkClaims, status: int) -> dict:
    # Never the token: what it was for, and which copy (the nonce) was used.
    return {
        "action": claims.action,
        "delivery_id": claims.delivery_id,
        "assignment_id": claims.assignment_id,
        "nonce": claims.nonce,
        "status": status,
    }


def _case_of(work: Work, claims: links.LinkClaims) -> Any:
    case = work.db.execute(
        sa.select(
            cases.c.status,
            cases.c.assignment_id,
            cases.c.assignment_seq,
            cases.c.jurisdiction_version,
        ).where(cases.c.case_id == claims.case_id)
    ).first()
    if case is None:
        # A reset emptied the register since the mail was sent: as for any link that is none.
        raise NOT_A_LINK
    return case


def _refuse_stale(claims: links.LinkClaims, case: Any) -> None:
    """A link is for one assignment of its case: once the case has moved on (withdrawn,
    escalated, sent back for rework), the work it was sent for is over, even if the case comes
    back to the same unit (that comes with a new message and new links)."""
    given = lifecycle.assignment_seq(claims.case_id, claims.assignment_id)
    current = lifecycle.assignment_seq(claims.case_id, case.assignment_id, case.assignment_seq)
    if given is not None and current is not None and given < current:
        raise Refusal(
            409,
            "案件已重新派遣",
            f"案件 {claims.case_id} 已重新派遣，此链接对应的任务已结束，无需再操作。",
            "the case was assigned again since this link was sent; this work is over",
        )


def _spent(work: Work, claims: links.LinkClaims) -> Any:
    return work.db.execute(
        sa.select(spent_links.c.spent_at).where(
            spent_links.c.delivery_id == claims.delivery_id,
            spent_links.c.action == claims.action,
        )
    ).first()


def _refusal_of(work: Work, claims: links.LinkClaims, exc: h.Rejected) -> Refusal:
    """The status report's refusal, told to a person. Who holds the case now is not told: the
    unit may no longer see it."""
    verb = links.ACTION_NAMES[claims.action]
    if exc.status == 404:
        return NOT_A_LINK
    if exc.status == 409 and "from" in exc.errors:
        return Refusal(
            409,
            "已不再承办",
            f"贵单位已不再承办案件 {claims.case_id}，无法{verb}。如有疑问请联系区网格化指挥中心。",
            f"{claims.unit!r} no longer holds this case",
        )
    if exc.status == 409:
        status = work.db.execute(
            sa.select(cases.c.status).where(cases.c.case_id == claims.case_id)
        ).scalar()
        return Refusal(
            409,
            f"无法{verb}",
            f"案件 {claims.case_id} 当前状态为“{v.zh(status)}”，无法{verb}。",
            "; ".join(m for ms in exc.errors.values() for m in ms),
        )
    if exc.status == 503:
        return Refusal(
            503,
            "暂时无法办理",
            "平台暂时无法确认案件的承办单位，未作任何更改。请稍后再点击一次。",
            "; ".join(m for ms in exc.errors.values() for m in ms),
        )
    return Refusal(
        exc.status,
        f"无法{verb}",
        f"案件 {claims.case_id} 无法{verb}，未作任何更改。",
        "; ".join(m for ms in exc.errors.values() for m in ms),
    )
