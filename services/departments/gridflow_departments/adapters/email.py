"""The e-mail adapter: for a unit with no system of its own (a small station, a community
office), a readable Chinese message over SMTP, with signed links to do the work once.

The city's data names it ``email``; ``endpoint`` is who reads the mail, ``mailto:a@x.cn,b@x.cn``;
``credential_ref``, when the SMTP server wants a login, is where its password is kept. Options:
``smtp_url`` (``smtp://host:port`` or ``smtps://host:port``; default ``GRIDFLOW_SMTP_URL``, else
``smtp://127.0.0.1:25``), ``starttls``, ``username``, ``from_address`` (default
``GRIDFLOW_MAIL_FROM``), ``link_ttl_hours`` (72) and ``timeout`` (seconds for the whole
conversation, 10).

A case for the lead unit (主办) carries three links: 签收 (accepted), 开始处置 (in_progress) and
办结 (resolved), each doing its action once, as that unit, until it expires (gridflow_common.links,
intake's ``/api/v1/links/<token>``). An assisting unit (协办) cannot report the case's status,
and its notes need words a link cannot carry: its message says what it assists with and where
to add notes, and has no links. Returning a case or asking for more time needs a reason too:
the message says where to do that.

Every message is multipart/alternative (plain text and HTML, UTF-8). Its Message-ID is made
from the delivery id, so a delivery pushed twice (a retry after a lost answer) is the same
message to every mail system that drops duplicates, and ``X-Gridflow-Delivery`` names it for
filters and scripts. SMTP answers map to the contract: no connection, a timeout or a 4xx is
``PushFailed`` (retried); a 5xx to the sender, the recipients or the message is
``PushRefused`` (no retry helps: 550 no such mailbox).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import os
import re
import smtplib
import ssl
import time
from collections.abc import Mapping, Sequence
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from marshmallow import Schema, ValidationError, fields, validate

from gridflow_common import contracts as c
from gridflow_common import links
from gridflow_common.adapters import (
    ASSISTING,
    CHANGE_CLOSED,
    CHANGE_COLOUR,
    CHANGE_REWORK,
    CHANGE_WITHDRAWN,
    KIND_CASE,
    LEAD,
    AdapterConfig,
    AdapterContext,
    Delivery,
    DepartmentAdapter,
    Health,
    OpenDelivery,
    PushFailed,
    PushRefused,
    PushResult,
    SecretUnavailable,
    StatusReport,
)
from gridflow_common.domain import vocabulary as v

SMTP_URL_ENV = "GRIDFLOW_SMTP_URL"
MAIL_FROM_ENV = "GRIDFLOW_MAIL_FROM"
DEFAULT_SMTP_URL = "smtp://127.0.0.1:25"
DEFAULT_FROM = "gridflow@localhost"
DEFAULT_LINK_TTL_HOURS = 72.0
DEFAULT_TIMEOUT = 10.0
MAX_RECIPIENTS = 20
SUBJECT_TAG = "【网格化案件】"
SENDER_NAME = "网格化管理平台"
# The actions a lead unit's message links to, in the order the work goes.
LEAD_ACTIONS = (v.ACCEPTED, v.IN_PROGRESS, v.RESOLVED)
ROLE_NAMES = {LEAD: "主办", ASSISTING: "协办"}
COLOUR_MEANINGS = {
    v.GREEN: "正常",
    v.YELLOW: "临近处置时限",
    v.ORANGE: "已超过处置时限",
    v.RED: "严重超期，已督办",
}
# ASCII only: an address that needs SMTPUTF8 is refused at import, not at 3 a.m.
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_ID_SAFE = re.compile(r"[A-Za-z0-9._-]{1,100}")


# -- the city's data ---------------------------------------------------------------------------


def recipients_of(endpoint: str | None) -> list[str]:
    """The addresses of ``mailto:a@x.cn,b@x.cn``; ``ValueError`` saying what is wrong."""
    if not endpoint or not endpoint.startswith("mailto:"):
        raise ValueError("the endpoint of an e-mail unit is mailto:address[,address...]")
    body = endpoint[len("mailto:") :]
    if "?" in body:
        raise ValueError("mailto: takes addresses only here, no ?subject= or other fields")
    addresses = [unquote(part).strip() for part in body.split(",")]
    if not addresses or any(not a for a in addresses):
        raise ValueError("mailto: needs at least one address, and no empty one between commas")
    for address in addresses:
        if not _ADDRESS.fullmatch(address):
            raise ValueError(f"{address!r} is not an e-mail address (ASCII, name@domain)")
    if len(addresses) > MAX_RECIPIENTS:
        raise ValueError(f"at most {MAX_RECIPIENTS} addresses")
    return addresses


def smtp_server_of(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of ``smtp://host:port`` or ``smtps://host:port``."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not an SMTP URL: {exc}") from None
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError("an SMTP URL starts with smtp:// or smtps://")
    if not parts.hostname:
        raise ValueError("an SMTP URL names a host: smtp://mail.example.cn:25")
    if parts.username or parts.password:
        # A password in the city's data would be a secret in plain sight.
        raise ValueError(
            "no user or password in the SMTP URL: give username in the options and the "
            "password's reference as credential_ref"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("an SMTP URL is smtp://host:port, nothing after it")
    return parts.scheme, parts.hostname, port or (465 if parts.scheme == "smtps" else 25)


def _check_smtp_url(url: str) -> None:
    try:
        smtp_server_of(url)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def _check_address(address: str) -> None:
    if not _ADDRESS.fullmatch(address):
        raise ValidationError(f"{address!r} is not an e-mail address (ASCII, name@domain)")


class EmailOptions(Schema):
    smtp_url = fields.String(load_default=None, validate=_check_smtp_url)
    starttls = fields.Boolean(load_default=False)
    username = fields.String(load_default=None, validate=validate.Length(1, 200))
    from_address = fields.String(load_default=None, validate=_check_address)
    link_ttl_hours = fields.Float(
        load_default=DEFAULT_LINK_TTL_HOURS,
        validate=validate.Range(min=0.1, max=links.MAX_LIFETIME_SECONDS / 3600),
    )
    timeout = fields.Float(load_default=DEFAULT_TIMEOUT, validate=validate.Range(min=0.1, max=120))


# -- the message ---------------------------------------------------------------------------------


def _line(text: Any) -> str:
    """One line of text for a header or a label: control characters (a CR/LF would start a
    header of its own) become spaces."""
    return _CONTROL.sub(" ", "" if text is None else str(text)).strip()


def _instant(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        instant = dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return instant if instant.tzinfo else None


def _when(text: str | None) -> str:
    instant = _instant(text)
    if instant is None:
        return _line(text) or "未设定"
    return f"{instant:%Y年%m月%d日 %H:%M}"


def _id_part(text: str) -> str:
    """``text`` as the left part of a Message-ID: as it is when it is safe there, else its
    digest (the same text, the same id)."""
    if _ID_SAFE.fullmatch(text):
        return text
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]


def _domain(address: str) -> str:
    return address.rpartition("@")[2] or "gridflow.invalid"


def message_id(delivery_id: str, from_address: str) -> str:
    return f"<gridflow.{_id_part(delivery_id)}@{_domain(from_address)}>"


def thread_id(case_id: str, unit: str, from_address: str) -> str:
    """An id every message about one case to one unit refers to, so a mail client shows them
    as one conversation."""
    return f"<gridflow.case.{_id_part(case_id)}.{_id_part(unit)}@{_domain(from_address)}>"


def _place(location: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    location = location or {}
    areas = [location.get(k) for k in ("street", "community", "grid")]
    lines = []
    named = " / ".join(_line(a) for a in areas if a)
    if named:
        lines.append(("所在区域", named))
    if location.get("address"):
        lines.append(("地址", _line(location["address"])))
    point = location.get("point")
    if isinstance(point, Mapping) and point.get("lat") is not None:
        lines.append(("坐标", f"纬度 {point['lat']}，经度 {point.get('lon')}"))
    return lines


def _reporter(reporter: Any) -> str | None:
    if not isinstance(reporter, Mapping):
        return None
    shown = [_line(reporter.get(k)) for k in ("name", "phone") if reporter.get(k)]
    return "，".join(shown) or None


def _colour(colour: str | None) -> str:
    if not colour:
        return "未开始计时"
    return f"{v.zh(colour)}（{COLOUR_MEANINGS.get(colour, '')}）"


def case_facts(m: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The facts of a case message, label and value, in reading order."""
    role = m.get("role")
    category = m.get("category_name") or m.get("category") or "未分类"
    facts = [
        ("案件编号", _line(m.get("case_id"))),
        ("案件类别", _line(category)),
        ("问题描述", str(m.get("description") or "")),
        *_place(m.get("location")),
        ("处置时限", f"{_when(m.get('due_at'))}前" if m.get("due_at") else "未设定"),
        ("预警状态", _colour(m.get("colour"))),
        ("贵单位角色", ROLE_NAMES.get(str(role), _line(role))),
        ("主办单位", _line(m.get("handler"))),
        ("牵头部门", _line(m.get("lead")) or "无"),
        ("协办部门", "、".join(_line(a) for a in m.get("assisting") or []) or "无"),
        ("办理层级", v.zh(m.get("tier"))),
        ("派遣原因", v.zh(m.get("reason"))),
        ("派遣时间", _when(m.get("dispatched_at"))),
    ]
    reporter = _reporter(m.get("reporter"))
    if reporter:
        facts.append(("反映人", reporter))
    return facts


class Rendered:
    """A message's subject, plain text and HTML."""

    def __init__(self, subject: str, text: str, html_body: str):
        self.subject, self.text, self.html = subject, text, html_body


def _html_page(title: str, paragraphs: Sequence[str], facts: Sequence[tuple[str, str]]) -> str:
    e = html.escape
    rows = "".join(
        f'<tr><th style="text-align:left;padding:4px 12px 4px 0;vertical-align:top;'
        f'white-space:nowrap">{e(k)}</th><td style="padding:4px 0;white-space:pre-wrap">'
        f"{e(val)}</td></tr>"
        for k, val in facts
    )
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        '<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>{e(title)}</title></head>"
        '<body style="font-family:sans-serif;color:#222">'
        f"<h2>{e(title)}</h2><table>{rows}</table>{body}"
        '<p style="color:#777">—— 网格化管理平台（自动发送，请勿直接回复）</p></body></html>'
    )


def render_case(
    m: Mapping[str, Any],
    action_links: Sequence[tuple[str, str]],
    expires_text: str | None,
    public_url: str = "",
) -> Rendered:
    """The message giving a case to a unit; ``action_links`` (action, URL) for a lead;
    ``public_url`` where an assisting unit adds its notes."""
    e = html.escape
    role = m.get("role")
    category = _line(m.get("category_name") or m.get("category") or "未分类")
    case_id = _line(m.get("case_id"))
    unit = _line(m.get("unit"))
    rework = "·返工" if m.get("reason") == v.REASON_REWORK else ""
    if role == LEAD:
        subject = f"{SUBJECT_TAG}请签收：{category} {case_id}（主办{rework}）"
        opening = "区网格化信息指挥中心将以下案件派给贵单位主办，请及时签收并处置。"
    else:
        subject = f"{SUBJECT_TAG}请协办：{category} {case_id}（协办）"
        opening = (
            f"以下案件由 {_line(m.get('handler'))} 主办，贵单位为协办单位，请配合主办单位处置。"
        )
    facts = case_facts(m)
    text = [f"{unit}：", "", opening, ""]
    text += [f"{label}：{value}" for label, value in facts]
    paragraphs = [e(opening)]
    if action_links:
        valid = f"至 {expires_text}" if expires_text else ""
        head = f"请点击以下链接办理（每个链接只能使用一次，有效期{valid}）："
        text += ["", head]
        text += [f"{links.ACTION_NAMES[a]}：{url}" for a, url in action_links]
        note = (
            "打开链接后会先显示案件和确认按钮，点击按钮才会执行。"
            "需要退回、说明超出权限或申请延期时，请登录网格化管理平台办理，或联系区网格化指挥中心。"
        )
        text += ["", note]
        buttons = " ".join(
            f'<a href="{e(url, quote=True)}" style="display:inline-block;padding:8px 18px;'
            f"margin:4px 8px 4px 0;background:#1a5fb4;color:#fff;text-decoration:none;"
            f'border-radius:4px">{e(links.ACTION_NAMES[a])}</a>'
            for a, url in action_links
        )
        paragraphs += [e(head), buttons, e(note)]
    elif role == ASSISTING:
        where = f"（{_line(public_url)}）" if public_url else ""
        note = (
            f"协办单位不能通过邮件更改案件状态。协办意见请登录网格化管理平台{where}，"
            "在本单位收件箱中补充，主办单位和案件流转记录都会显示；也可直接联系主办单位。"
        )
        text += ["", note]
        paragraphs.append(e(note))
    text += ["", "—— 网格化管理平台（自动发送，请勿直接回复）"]
    title = f"{category} {case_id}（{ROLE_NAMES.get(str(role), '')}）"
    return Rendered(_line(subject), "\n".join(text) + "\n", _html_page(title, paragraphs, facts))


def render_change(m: Mapping[str, Any]) -> Rendered:
    """A short message telling a unit of a later change of a case it was given."""
    change = m.get("change")
    case_id = _line(m.get("case_id"))
    category = _line(m.get("category_name") or m.get("category") or "")
    named = f"{category} {case_id}".strip()
    if change == CHANGE_WITHDRAWN:
        subject = f"{SUBJECT_TAG}已撤回：{named}"
        line = "此案件已改由其他单位办理，贵单位无需继续处置；此前邮件中的操作链接已失效。"
    elif change == CHANGE_COLOUR:
        colour = m.get("colour")
        subject = f"{SUBJECT_TAG}预警{v.zh(colour)}：{named}"
        due = f"处置时限：{_when(m.get('due_at'))}。" if m.get("due_at") else ""
        line = f"此案件的预警状态变为 {_colour(colour)}。{due}请抓紧办理。"
    elif change == CHANGE_CLOSED:
        subject = f"{SUBJECT_TAG}已结案：{named}"
        line = "此案件已核查结案，感谢贵单位的处置。"
    elif change == CHANGE_REWORK:
        subject = f"{SUBJECT_TAG}核查未通过：{named}"
        line = "此案件核查未通过，需要重新处置，请按要求返工。"
    else:
        subject = f"{SUBJECT_TAG}案件变更：{named}"
        line = f"此案件有变更（{_line(change)}）。"
    facts = [("案件编号", case_id), ("案件类别", category or "未分类")]
    text = f"{_line(m.get('unit'))}：\n\n{line}\n\n案件编号：{case_id}\n"
    text += "\n—— 网格化管理平台（自动发送，请勿直接回复）\n"
    return Rendered(_line(subject), text, _html_page(named, [html.escape(line)], facts))


# -- the adapter ---------------------------------------------------------------------------------


class EmailAdapter(DepartmentAdapter):
    name = "email"
    config_schema = EmailOptions
    needs_endpoint = True
    polls = False

    def __init__(self, config: AdapterConfig, context: AdapterContext):
        super().__init__(config, context)
        self.options = EmailOptions().load(dict(config.options))
        # A bad endpoint or server is told at every push (PushRefused: the command center
        # sees it at once) and by health, rather than stopping the whole service at start.
        self.problem: str | None = None
        self.recipients: list[str] = []
        try:
            self.recipients = recipients_of(config.endpoint)
            self.scheme, self.host, self.port = smtp_server_of(
                self.options["smtp_url"] or os.environ.get(SMTP_URL_ENV) or DEFAULT_SMTP_URL
            )
        except ValueError as exc:
            self.problem = str(exc)
            self.scheme, self.host, self.port = "smtp", "", 0
        self.from_address = (
            self.options["from_address"] or os.environ.get(MAIL_FROM_ENV) or DEFAULT_FROM
        )
        self.timeout: float = self.options["timeout"]

    @classmethod
    def endpoint_problem(cls, endpoint: str | None) -> str | None:
        """What is wrong with an endpoint for this adapter (None when it is good): for the
        import of the city's data."""
        try:
            recipients_of(endpoint)
        except ValueError as exc:
            return str(exc)
        return None

    # -- pushing -----------------------------------------------------------------------------

    def push(self, delivery: Delivery) -> PushResult:
        m = delivery.message
        action_links: list[tuple[str, str]] = []
        expires_text = None
        if delivery.kind == KIND_CASE and delivery.role == LEAD:
            ttl = self.options["link_ttl_hours"] * 3600
            action_links = [
                (action, self.context.sign_link(delivery, action, ttl)) for action in LEAD_ACTIONS
            ]
            expires_text = self._expiry_text(m, ttl)
        rendered = render_case(m, action_links, expires_text, self.context.public_url)
        return self._send(delivery, rendered)

    def push_change(self, delivery: Delivery) -> PushResult:
        return self._send(delivery, render_change(delivery.message))

    def _expiry_text(self, m: Mapping[str, Any], ttl: float) -> str:
        """When the links expire, in the city's zone (the offset the message's instants carry)."""
        expires = self.context.now() + dt.timedelta(seconds=ttl)
        zone = next(
            (i.tzinfo for i in map(_instant, (m.get("dispatched_at"), m.get("due_at"))) if i),
            dt.timezone.utc,
        )
        return f"{expires.astimezone(zone):%Y年%m月%d日 %H:%M}"

    def compose(self, delivery: Delivery, rendered: Rendered) -> EmailMessage:
        message = EmailMessage(policy=SMTP_POLICY)
        message["Subject"] = rendered.subject
        message["From"] = Address(display_name=SENDER_NAME, addr_spec=self.from_address)
        message["To"] = ", ".join(self.recipients)
        message["Date"] = format_datetime(self.context.now())
        message["Message-ID"] = message_id(delivery.delivery_id, self.from_address)
        thread = thread_id(delivery.case_id, delivery.unit, self.from_address)
        if delivery.kind != KIND_CASE:
            message["In-Reply-To"] = thread
        message["References"] = thread
        # RFC 3834: no vacation notice or auto-reply back to a machine.
        message["Auto-Submitted"] = "auto-generated"
        message["X-Gridflow-Delivery"] = _line(delivery.delivery_id)
        message["X-Gridflow-Case"] = _line(delivery.case_id)
        message["X-Gridflow-Kind"] = _line(delivery.kind)
        message["X-Gridflow-Role"] = _line(delivery.role)
        message.set_content(rendered.text, charset="utf-8")
        message.add_alternative(rendered.html, subtype="html", charset="utf-8")
        return message

    def _send(self, delivery: Delivery, rendered: Rendered) -> PushResult:
        if self.problem:
            raise PushRefused(f"e-mail unit {self.config.code}: {self.problem}")
        message = self.compose(delivery, rendered)
        refused = self._conversation(lambda client, step: self._deliver(client, step, message))
        detail = f"sent to {len(self.recipients) - len(refused)} of {len(self.recipients)}"
        if refused:
            detail += "; refused: " + ", ".join(f"{a} ({r})" for a, r in refused.items())
        return PushResult(external_ref=None, detail=detail)

    def _deliver(self, client: smtplib.SMTP, step: Any, message: EmailMessage) -> dict[str, str]:
        step("MAIL FROM", client.mail(self.from_address))
        refused: dict[str, str] = {}
        answers = []
        for address in self.recipients:
            code, text = client.rcpt(address)
            if code in (250, 251):
                continue
            answers.append((code, text))
            refused[address] = f"{code} {_reply(text)}"
        if len(refused) == len(self.recipients):
            # Nobody takes it: retried when any refusal was for now (4xx), else never will be.
            code, text = min(answers, key=lambda a: a[0] // 100 != 4)
            step(f"RCPT TO ({', '.join(refused)})", (code, text))
        step("DATA", client.data(message.as_bytes()))
        return refused

    # -- the SMTP conversation -----------------------------------------------------------------

    def _conversation(self, body: Any) -> Any:
        """Connect, greet, secure and log in, run ``body(client, step)``, quit; every SMTP or
        network failure mapped to PushFailed or PushRefused. The whole conversation is held to
        ``timeout``: each socket operation gets what is left of it."""
        deadline = time.monotonic() + self.timeout
        where = f"SMTP server {self.host}:{self.port}"

        def left() -> float:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PushFailed(f"{where} did not finish within {self.timeout:g} s")
            return remaining

        def step(what: str, answer: tuple[int, bytes]) -> None:
            code, text = answer
            if client is not None and client.sock is not None:
                client.sock.settimeout(left())
            if 200 <= code < 400:
                return
            reason = f"{where} answered {code} {_reply(text)} to {what}"
            if 500 <= code < 600:
                raise PushRefused(reason)
            raise PushFailed(reason)

        client: smtplib.SMTP | None = None
        try:
            password = self._password()
            if self.scheme == "smtps":
                client = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=left(), context=ssl.create_default_context()
                )
            else:
                client = smtplib.SMTP(self.host, self.port, timeout=left())
            step("EHLO", client.ehlo())
            if self.options["starttls"]:
                if not client.has_extn("starttls"):
                    raise PushFailed(f"{where} does not offer STARTTLS (option starttls)")
                step("STARTTLS", client.starttls(context=ssl.create_default_context()))
                step("EHLO", client.ehlo())
            if self.options["username"]:
                self._login(client, where, password)
            return body(client, step)
        except (PushFailed, PushRefused):
            raise
        except smtplib.SMTPServerDisconnected as exc:
            # smtplib reports a read that timed out as a disconnection ("... timed out").
            if "timed out" in str(exc) or time.monotonic() >= deadline:
                raise PushFailed(f"{where} did not answer within {self.timeout:g} s") from None
            raise PushFailed(f"{where} closed the connection") from None
        except smtplib.SMTPResponseException as exc:
            reason = f"{where} answered {exc.smtp_code} {_reply(exc.smtp_error)}"
            if 500 <= exc.smtp_code < 600:
                raise PushRefused(reason) from None
            raise PushFailed(reason) from None
        except smtplib.SMTPException as exc:
            raise PushFailed(f"{where}: {type(exc).__name__}: {exc}") from None
        except TimeoutError:
            raise PushFailed(f"{where} did not answer within {self.timeout:g} s") from None
        except OSError as exc:
            raise PushFailed(f"cannot reach the {where}: {exc.strerror or exc}") from None
        finally:
            if client is not None:
                _close(client)

    def _password(self) -> str | None:
        if not self.options["username"]:
            return None
        if not self.config.credential_ref:
            raise PushFailed(
                f"e-mail unit {self.config.code}: option username needs credential_ref "
                "(where the SMTP password is kept)"
            )
        try:
            return self.context.secret(self.config.credential_ref)
        except SecretUnavailable as exc:
            # The reference, never a value: an operator can fix it, and the retry then works.
            raise PushFailed(f"the SMTP password is not available: {exc}") from None

    def _login(self, client: smtplib.SMTP, where: str, password: str | None) -> None:
        try:
            client.login(self.options["username"], password or "")
        except smtplib.SMTPAuthenticationError as exc:
            # The login, not the message, is refused: retried, so that once an operator fixes
            # the password the backlog goes out.
            raise PushFailed(
                f"{where} refused the login of {self.options['username']!r} "
                f"({exc.smtp_code} {_reply(exc.smtp_error)})"
            ) from None
        except smtplib.SMTPNotSupportedError:
            raise PushFailed(f"{where} offers no AUTH (option username)") from None

    # -- the rest of the contract ----------------------------------------------------------

    def take_status(self, body: Mapping[str, Any]) -> StatusReport:
        """A StatusMessageV1-shaped body (what a small office's script may post)."""
        if not isinstance(body, Mapping):
            raise ValueError("body: a status message is a JSON object")
        try:
            data = c.StatusMessageV1().load(dict(body))
        except ValidationError as exc:
            problems = "; ".join(
                f"{name}: {' '.join(map(str, msgs)) if isinstance(msgs, list) else msgs}"
                for name, msgs in sorted(exc.messages.items())  # type: ignore[union-attr]
            )
            raise ValueError(problems) from None
        return StatusReport(
            case_id=data["case_id"],
            unit=data["unit"] or self.config.code,
            word=data["status"],
            note=data["note"],
        )

    def poll_status(self, open_deliveries: Sequence[OpenDelivery]) -> list[StatusReport]:
        return []

    def health(self) -> Health:
        if self.problem:
            return Health(False, self.problem)
        try:
            self._conversation(lambda client, step: step("NOOP", client.noop()))
        except (PushFailed, PushRefused) as exc:
            return Health(False, str(exc))
        return Health(True, f"SMTP server {self.host}:{self.port} answers")


def _reply(text: Any) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return _line(text)[:200]


def _close(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except Exception:  # a dead server cannot say goodbye; the socket is closed either way
        client.close()
