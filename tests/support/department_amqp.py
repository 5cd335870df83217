"""A department's system as an integrator would write it: a plain kombu program (no nameko),
connecting to RabbitMQ as its own user (made by ``gridflow amqp-users sync``), reading its unit's
queue, publishing status messages to the status exchange with its ``user_id``, and reading the
answers on its reply queue.

As a library (the integration tests) it is ``DepartmentSystem``. As a program (the e2e test)::

    python -m tests.support.department_amqp --amqp-uri URI --unit CODE --password-env VAR \\
        --log FILE [--resolve-after SECONDS] [--resolve-when FILE]

it consumes ``gridflow.unit.<CODE>``, answers ``accepted`` the instant a case arrives and
``resolved`` ``--resolve-after`` seconds later (and not before ``--resolve-when`` exists, when
given: the test says when the work is done), and writes one JSON line per thing that happened
(``received``, ``sent``, ``reply``) to ``--log``, flushed at once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import kombu
from amqp.exceptions import NotFound

from gridflow_common import contracts as c


def user_uri(amqp_uri: str, user: str, password: str) -> str:
    """``amqp_uri`` (its host and vhost) with another user."""
    parts = urlsplit(amqp_uri)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}:{parts.port or 5672}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class DepartmentSystem:
    """One unit's or department's system on the broker, as its own RabbitMQ user."""

    def __init__(self, amqp_uri: str, code: str, password: str):
        self.code = code
        self.user = c.amqp_user(code)
        # Publisher confirms: a publish the broker refuses (a forged user_id) fails here.
        self.connection = kombu.Connection(
            user_uri(amqp_uri, self.user, password),
            connect_timeout=10,
            transport_options={"confirm_publish": True},
        )
        self.connection.ensure_connection(max_retries=3)
        self.status = kombu.Exchange(c.STATUS_EXCHANGE, type="topic", durable=True)
        # Replies read while looking for another's.
        self.kept: list[dict] = []

    def close(self) -> None:
        self.connection.release()

    def send(
        self,
        message: Mapping[str, Any] | bytes,
        *,
        user_id: str | None | bool = True,
        headers: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> str:
        """Publish a status message; its correlation id. ``user_id`` True: its own user;
        None/False: no ``user_id``; a string: that (the broker refuses any but its own)."""
        correlation_id = uuid.uuid4().hex
        body = message if isinstance(message, bytes) else json.dumps(message).encode("utf-8")
        properties: dict[str, Any] = {"correlation_id": correlation_id}
        if user_id is True:
            properties["user_id"] = self.user
        elif user_id:
            properties["user_id"] = user_id
        # A fresh channel for each publish: a refused one (forged user_id) closes its channel.
        channel = self.connection.channel()
        try:
            producer = kombu.Producer(channel)
            producer.publish(
                body,
                exchange=self.status,
                routing_key=self.code,
                content_type=content_type,
                content_encoding="utf-8",
                delivery_mode=2,
                headers=dict(headers or {}),
                retry=False,
                # Department users may declare nothing: the exchange is Gridflow's.
                declare=[],
                **properties,
            )
        finally:
            # Already closed, when the broker refused the publish.
            with contextlib.suppress(Exception):
                channel.close()
        return correlation_id

    def replies(self, want: int = 1, timeout: float = 15.0) -> list[dict]:
        """Up to ``want`` answers from its reply queue, polling at most ``timeout`` seconds."""
        return self.take(c.reply_queue(self.code), want, timeout)

    def reply_to(self, correlation_id: str, timeout: float = 15.0) -> dict:
        """The answer to one message (answers to others read meanwhile are kept)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for reply in self.kept:
                if reply.get("correlation_id") == correlation_id:
                    return reply
            self.kept.extend(self.replies(want=1, timeout=max(0.1, deadline - time.monotonic())))
        raise AssertionError(f"no reply to {correlation_id} within {timeout} s")

    def take(self, queue_name: str, want: int = 1, timeout: float = 15.0) -> list[dict]:
        """Up to ``want`` messages from one of its queues (``basic.get``, no declare)."""
        got: list[dict] = []
        channel = self.connection.channel()
        try:
            bound = kombu.Queue(queue_name, no_declare=True)(channel)
            deadline = time.monotonic() + timeout
            while len(got) < want and time.monotonic() < deadline:
                try:
                    message = bound.get(no_ack=True, accept=["json"])
                except NotFound:
                    # Not declared yet (Gridflow declares it): nothing to read so far. The
                    # refusal closed the channel; read on a new one.
                    channel = self.connection.channel()
                    bound = kombu.Queue(queue_name, no_declare=True)(channel)
                    message = None
                if message is None:
                    time.sleep(0.05)  # bounded by the deadline above
                    continue
                got.append(json.loads(message.body))
        finally:
            with contextlib.suppress(Exception):
                channel.close()
        return got


# -- the program the e2e test runs --------------------------------------------------------------


def _log(out, kind: str, **fields: Any) -> None:
    out.write(json.dumps({"kind": kind, "at": time.time(), **fields}, ensure_ascii=False) + "\n")
    out.flush()


# Gridflow (the departments service) declares the unit's queue; a system started before it
# waits this long for it. A department user may not declare it itself.
QUEUE_WAIT_SECONDS = 60.0


def _wait_for_queue(system: DepartmentSystem, name: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        channel = system.connection.channel()
        try:
            channel.queue_declare(name, passive=True)
            return True
        except NotFound:
            time.sleep(0.5)  # bounded by the deadline above
        finally:
            with contextlib.suppress(Exception):
                channel.close()
    return False


def run(
    amqp_uri: str,
    unit: str,
    password: str,
    log_path: str,
    resolve_after: float,
    resolve_when: str | None = None,
) -> None:
    system = DepartmentSystem(amqp_uri, unit, password)
    due: list[tuple[float, str]] = []  # (when, case id) to report resolved
    with open(log_path, "a", encoding="utf-8") as out:
        if not _wait_for_queue(system, c.unit_queue(unit), QUEUE_WAIT_SECONDS):
            _log(out, "no_queue", queue=c.unit_queue(unit), waited=QUEUE_WAIT_SECONDS)
            raise SystemExit(f"{c.unit_queue(unit)} was not declared by Gridflow")
        _log(out, "consuming", queue=c.unit_queue(unit))
        channel = system.connection.channel()
        queue = kombu.Queue(c.unit_queue(unit), no_declare=True)(channel)

        def on_case(body: Any, message: Any) -> None:
            case = json.loads(message.body) if isinstance(body, (bytes, str)) else body
            _log(
                out,
                "received",
                case_id=case.get("case_id"),
                kind_of=case.get("kind"),
                role=case.get("role"),
                due_at=case.get("due_at"),
                location=case.get("location"),
            )
            if case.get("kind", "case") == "case" and case.get("role", "lead") == "lead":
                # The instant it arrives: accepted.
                sent = system.send(
                    {
                        "case_id": case["case_id"],
                        "status": "accepted",
                        "unit": unit,
                        "message_id": f"{case['case_id']}-accepted",
                    }
                )
                _log(out, "sent", case_id=case["case_id"], status="accepted", correlation_id=sent)
                due.append((time.monotonic() + resolve_after, case["case_id"]))
            message.ack()

        consumer = kombu.Consumer(
            channel, queues=[queue], callbacks=[on_case], no_ack=False, accept=["json"]
        )
        consumer.qos(prefetch_count=10)
        consumer.consume()
        while True:
            with contextlib.suppress(TimeoutError):
                system.connection.drain_events(timeout=0.2)
            now = time.monotonic()
            held = resolve_when is not None and not os.path.exists(resolve_when)
            for when, case_id in [d for d in due if d[0] <= now and not held]:
                due.remove((when, case_id))
                sent = system.send(
                    {
                        "case_id": case_id,
                        "status": "resolved",
                        "unit": unit,
                        "note": "已处置",
                        "message_id": f"{case_id}-resolved",
                    }
                )
                _log(out, "sent", case_id=case_id, status="resolved", correlation_id=sent)
            for reply in system.replies(want=10, timeout=0.05):
                _log(out, "reply", **reply)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--amqp-uri", required=True)
    parser.add_argument("--unit", required=True)
    parser.add_argument("--password-env", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--resolve-after", type=float, default=1.0)
    parser.add_argument("--resolve-when", default=None, help="resolve only once this file exists")
    args = parser.parse_args(argv)
    run(
        args.amqp_uri,
        args.unit,
        os.environ[args.password_env],
        args.log,
        args.resolve_after,
        args.resolve_when,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
