"""``gridflow amqp-users sync``: one RabbitMQ user per department and per unit that the active
jurisdiction serves through the AMQP adapter, each allowed exactly what its system needs.

A department system proves who it is on the broker by connecting as its own user
(``contracts.amqp_user(code)``, ``gridflow-<code>``) and stamping ``user_id`` on what it
publishes, which RabbitMQ checks against the connection. So the users' permissions are the
access rules (in the vhost Gridflow uses):

- configure: nothing (``^$``): a department declares no exchange or queue; Gridflow declares
  them (the departments service the case queues, intake the status exchange and the reply
  queues; a sync declares the status exchange and the reply queues too, and the case queues
  with ``--declare-queues``);
- write: the status exchange only (``contracts.STATUS_EXCHANGE``);
- read: its own queues only: a unit its ``unit_queue``; a department its ``department_queue``
  and its units' unit queues; each its ``reply_queue``.

Users get no tags (an ``impersonator`` tag would let a user stamp another's ``user_id``), and
a sync resets any tags someone gave them. Passwords: ``--password-ref`` names where each is
kept (``env:GRIDFLOW_AMQP_{CODE}`` or ``file:/run/secrets/amqp-{code}``: ``{code}`` is the code,
``{CODE}`` the code upper-cased with ``-`` as ``_``); without it a new user gets a generated
password, shown once (or written to ``--passwords-file``, mode 0600), and an existing user keeps
the one it has (``--new-passwords`` generates new ones).

Through the RabbitMQ management HTTP API (``RABBITMQ_MANAGEMENT_URL``, default
http://guest:guest@127.0.0.1:15672; the plugin: ``rabbitmq-plugins enable rabbitmq_management``),
or ``rabbitmqctl`` when the API cannot be reached.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from gridflow_common import contracts as c
from gridflow_common.adapters.registry import DEFAULT_ADAPTER
from gridflow_common.domain import status_words

MANAGEMENT_URL_ENV = "RABBITMQ_MANAGEMENT_URL"
DEFAULT_MANAGEMENT_URL = "http://127.0.0.1:15672"
NOTHING = "^$"


@dataclass(frozen=True)
class AmqpAccount:
    """What one department's or unit's RabbitMQ user may do."""

    code: str
    queues: tuple[str, ...]  # the queues it reads, its reply queue last

    @property
    def user(self) -> str:
        return c.amqp_user(self.code)

    @property
    def configure(self) -> str:
        return NOTHING

    @property
    def write(self) -> str:
        return f"^{re.escape(c.STATUS_EXCHANGE)}$"

    @property
    def read(self) -> str:
        return "^(" + "|".join(re.escape(q) for q in self.queues) + ")$"


def _adapter(j: Any, code: str) -> str:
    config = status_words.adapter_config(j, code)
    return config.adapter if config is not None else DEFAULT_ADAPTER


def accounts(j: Any, only: Iterable[str] = ()) -> list[AmqpAccount]:
    """Every department and unit of ``j`` served through the AMQP adapter (``only``: these
    codes alone)."""
    wanted = set(only)
    out: list[AmqpAccount] = []
    for department in j.departments:
        code = department.code
        if (wanted and code not in wanted) or _adapter(j, code) != DEFAULT_ADAPTER:
            continue
        units = [c.unit_queue(u.code) for u in j.units if u.department_code == code]
        out.append(AmqpAccount(code, (c.department_queue(code), *units, c.reply_queue(code))))
    for unit in j.units:
        code = unit.code
        if (wanted and code not in wanted) or _adapter(j, code) != DEFAULT_ADAPTER:
            continue
        out.append(AmqpAccount(code, (c.unit_queue(code), c.reply_queue(code))))
    unknown = wanted - {a.code for a in out}
    if unknown:
        raise ValueError("no department or unit served through amqp: " + ", ".join(sorted(unknown)))
    return out


def password_from(pattern: str, code: str) -> str:
    """The password ``--password-ref`` names for ``code``."""
    from gridflow_common.secrets import resolve

    upper = re.sub(r"[^A-Za-z0-9]", "_", code).upper()
    return resolve(pattern.replace("{code}", code).replace("{CODE}", upper))


class Broker(Protocol):
    def user_exists(self, user: str) -> bool: ...
    def put_user(self, user: str, password: str | None) -> None: ...
    def set_permissions(
        self, vhost: str, user: str, configure: str, write: str, read: str
    ) -> None: ...


class ManagementApi:
    """The RabbitMQ management HTTP API."""

    def __init__(self, url: str):
        import httpx

        parts = urlsplit(url)
        auth = (unquote(parts.username or "guest"), unquote(parts.password or "guest"))
        netloc = parts.hostname or "127.0.0.1"
        if parts.port:
            netloc += f":{parts.port}"
        base = urlunsplit((parts.scheme or "http", netloc, parts.path.rstrip("/"), "", ""))
        self.client = httpx.Client(base_url=base, auth=auth, timeout=10)

    def reachable(self) -> bool:
        import httpx

        try:
            return self.client.get("/api/whoami").status_code == 200
        except httpx.HTTPError:
            return False

    def _ok(self, response: Any) -> Any:
        if response.status_code >= 400:
            raise RuntimeError(
                f"RabbitMQ management API: {response.request.method} {response.request.url.path} "
                f"answered {response.status_code} {response.text[:200]}"
            )
        return response

    def user_exists(self, user: str) -> bool:
        response = self.client.get(f"/api/users/{quote(user, safe='')}")
        return response.status_code == 200

    def put_user(self, user: str, password: str | None) -> None:
        path = f"/api/users/{quote(user, safe='')}"
        if password is not None:
            body: dict[str, Any] = {"password": password, "tags": ""}
        else:
            # Keep the password (its hash, as the API gives it), drop any tags.
            current = self._ok(self.client.get(path)).json()
            body = {
                "password_hash": current["password_hash"],
                "hashing_algorithm": current.get("hashing_algorithm"),
                "tags": "",
            }
        self._ok(self.client.put(path, json=body))

    def set_permissions(self, vhost: str, user: str, configure: str, write: str, read: str) -> None:
        path = f"/api/permissions/{quote(vhost, safe='')}/{quote(user, safe='')}"
        self._ok(self.client.put(path, json={"configure": configure, "write": write, "read": read}))


class Rabbitmqctl:
    """``rabbitmqctl`` on this machine, when the management API is not enabled."""

    def _run(self, *args: str) -> str:
        done = subprocess.run(
            ["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60
        )
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {args[0]}: {done.stderr.strip()[:300]}")
        return done.stdout

    def user_exists(self, user: str) -> bool:
        listed = self._run("list_users", "--no-table-headers")
        return any(line.split("\t")[0].strip() == user for line in listed.splitlines())

    def put_user(self, user: str, password: str | None) -> None:
        if not self.user_exists(user):
            assert password is not None
            self._run("add_user", user, password)
        elif password is not None:
            self._run("change_password", user, password)
        self._run("set_user_tags", user)

    def set_permissions(self, vhost: str, user: str, configure: str, write: str, read: str) -> None:
        self._run("set_permissions", "-p", vhost, user, configure, write, read)


def broker_for(management_url: str | None) -> Broker:
    api = ManagementApi(
        management_url or os.environ.get(MANAGEMENT_URL_ENV) or DEFAULT_MANAGEMENT_URL
    )
    if api.reachable():
        return api
    if shutil.which("rabbitmqctl"):
        return Rabbitmqctl()
    raise RuntimeError(
        "neither the RabbitMQ management API nor rabbitmqctl is available "
        "(rabbitmq-plugins enable rabbitmq_management)"
    )


@dataclass(frozen=True)
class Synced:
    account: AmqpAccount
    created: bool
    password: str | None  # a generated password, shown once


def sync(
    broker: Broker,
    vhost: str,
    wanted: list[AmqpAccount],
    *,
    password_ref: str | None = None,
    new_passwords: bool = False,
) -> list[Synced]:
    done = []
    for account in wanted:
        exists = broker.user_exists(account.user)
        generated = None
        if password_ref:
            password: str | None = password_from(password_ref, account.code)
        elif not exists or new_passwords:
            password = generated = secrets.token_urlsafe(24)
        else:
            password = None
        broker.put_user(account.user, password)
        broker.set_permissions(vhost, account.user, account.configure, account.write, account.read)
        done.append(Synced(account, not exists, generated))
    return done


def bindings(j: Any, wanted: list[AmqpAccount]) -> dict[str, tuple[str, str]]:
    """queue -> (exchange, routing key) for every queue the accounts read."""
    out: dict[str, tuple[str, str]] = {}
    for unit in j.units:
        out[c.unit_queue(unit.code)] = (
            c.CASE_EXCHANGE,
            c.unit_routing_key(unit.department_code, unit.code),
        )
    for department in j.departments:
        out[c.department_queue(department.code)] = (c.CASE_EXCHANGE, f"{department.code}.*")
    for account in wanted:
        out[c.reply_queue(account.code)] = (c.REPLY_EXCHANGE, account.code)
    read = {q for account in wanted for q in account.queues}
    return {q: b for q, b in out.items() if q in read}


def declare_queues(amqp_uri: str, j: Any, wanted: list[AmqpAccount], *, cases: bool) -> int:
    """The exchanges, the status queue and the accounts' reply queues, and (``cases``) the
    case queues they read, as Gridflow declares them (intake and the departments service do the
    same when they start or first publish): durable, bound to their exchange. A department user
    may declare nothing, so its queues must exist before its system reads them. A queue that
    exists already is left as it is (passive check first), so the arguments the departments
    service gives its queues are never contradicted here. Returns how many were declared."""
    import kombu

    exchanges = {
        c.CASE_EXCHANGE: kombu.Exchange(c.CASE_EXCHANGE, type="topic", durable=True),
        c.STATUS_EXCHANGE: kombu.Exchange(c.STATUS_EXCHANGE, type="topic", durable=True),
        c.REPLY_EXCHANGE: kombu.Exchange(c.REPLY_EXCHANGE, type="direct", durable=True),
    }
    queues = [(c.STATUS_QUEUE, (c.STATUS_EXCHANGE, "#")), *bindings(j, wanted).items()]
    if not cases:
        queues = [q for q in queues if q[1][0] != c.CASE_EXCHANGE]
    declared = 0
    with kombu.Connection(amqp_uri, connect_timeout=10) as conn:
        for declared_exchange in exchanges.values():
            declared_exchange(conn.default_channel).declare()
        for name, (exchange_name, key) in queues:
            if _exists(conn, name):
                continue
            queue = kombu.Queue(
                name,
                exchange=exchanges[exchange_name],
                routing_key=key,
                durable=True,
                queue_arguments=(
                    dict(c.STATUS_QUEUE_ARGUMENTS) if name == c.STATUS_QUEUE else None
                ),
            )
            queue(conn.default_channel).declare()
            declared += 1
    return declared


def _exists(conn: Any, queue: str) -> bool:
    """Whether ``queue`` exists, asked on a channel of its own (a refused passive declare
    closes the channel it was asked on)."""
    from amqp.exceptions import NotFound

    channel = conn.channel()
    try:
        channel.queue_declare(queue, passive=True)
        return True
    except NotFound:
        return False
    finally:
        with contextlib.suppress(Exception):
            channel.close()


def write_passwords(path: Path, synced: list[Synced]) -> None:
    """Generated passwords, ``user<TAB>password`` a line, readable by its owner alone."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        for item in synced:
            if item.password:
                out.write(f"{item.account.user}\t{item.password}\n")


def vhost_of(amqp_uri: str) -> str:
    path = urlsplit(amqp_uri).path
    return unquote(path[1:]) if len(path) > 1 else "/"
