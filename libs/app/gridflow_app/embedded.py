"""The embedded default: all five services in one process, on an in-memory transport and SQLite.

It runs the very same service layer, outbox, idempotent consumer and failure policy as the real
topology; only the transport (an in-process queue instead of RabbitMQ) and the database (SQLite
in memory instead of PostgreSQL) differ. Made for a laptop with nothing but Python, demos and
scenario rehearsals; not for production.
"""

from __future__ import annotations

import functools
import json
import os
import queue
import signal
import tempfile
import threading
from collections import defaultdict, deque
from collections.abc import Callable
from pathlib import Path

from gridflow_app import bootstrap
from gridflow_app.folders import read_admin_token, write_admin_token
from gridflow_common import contracts as c
from gridflow_common import figures, reset
from gridflow_common.case_queues import owner_of
from gridflow_common.clock import make_clock
from gridflow_common.db import make_engine
from gridflow_common.jurisdictions import JurisdictionStore
from gridflow_common.logging import get_logger
from gridflow_common.runtime import RelayLoop, ServiceRuntime
from gridflow_common.service import ServiceDefinition
from gridflow_notify import delivery as notify_delivery
from gridflow_notify import handlers as notify_handlers
from gridflow_routing import handlers as routing_handlers

log = get_logger(__name__)

LUCHENG = bootstrap.LUCHENG
DEPARTMENT_QUEUE_LIMIT = 10_000


def load_definitions() -> dict[str, ServiceDefinition]:
    return bootstrap.definitions()


class InMemoryBus:
    """Routes published messages to the subscribed handlers, like the broker's bindings. What
    departments publish for units is kept per unit (``unit_queues``, as ``gridflow.unit.<unit>``
    is bound) and per department (``department_queues``, as ``gridflow.department.<owner>``
    binds ``<owner>.*``), for tests and tools to read."""

    def __init__(self) -> None:
        self.deliveries: queue.Queue = queue.Queue()
        self.unit_queues: dict[str, deque] = defaultdict(
            lambda: deque(maxlen=DEPARTMENT_QUEUE_LIMIT)
        )
        self.department_queues: dict[str, deque] = defaultdict(
            lambda: deque(maxlen=DEPARTMENT_QUEUE_LIMIT)
        )
        self._routes: dict[tuple[str, str], list[c.Subscription]] = defaultdict(list)
        for sub in c.SUBSCRIPTIONS:
            self._routes[(c.event_exchange(sub.source), sub.event_type)].append(sub)

    def publisher(self) -> InMemoryBus:
        return self

    def publish(self, exchange: str, routing_key: str, body: str) -> None:
        if exchange == c.CASE_EXCHANGE:
            owner, unit = owner_of(routing_key)
            message = json.loads(body)
            self.unit_queues[unit].append(message)
            self.department_queues[owner].append(message)
            return
        subs = self._routes.get((exchange, routing_key))
        if not subs:
            raise LookupError(f"no consumer bound for {exchange}/{routing_key}")
        message = json.loads(body)
        for sub in subs:
            self.deliveries.put((sub.consumer, sub.method, message))

    def clear(self) -> None:
        while True:
            try:
                self.deliveries.get_nowait()
            except queue.Empty:
                break
        self.unit_queues.clear()
        self.department_queues.clear()


class EmbeddedGridflow:
    def __init__(self, database_url: str | None = None, clock_mode: str | None = None):
        self._tmp: tempfile.TemporaryDirectory | None = None
        if database_url is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="gridflow-")
            database_url = f"sqlite:///{self._tmp.name}/gridflow.sqlite"
        self.engine = make_engine(database_url)
        self.lock = threading.RLock()
        bootstrap.upgrade_all(self.engine)
        self.clock = make_clock(self.engine, clock_mode)
        self.store = JurisdictionStore(self.engine, self.lock)
        self.bus = InMemoryBus()
        self.definitions = load_definitions()
        self.runtimes: dict[str, ServiceRuntime] = {}
        for name, definition in self.definitions.items():
            runtime = ServiceRuntime(
                name, self.engine, self.clock, self.store, definition.tables(), lock=self.lock
            )
            runtime.on_commit(self._publish_after_commit(runtime))
            self.runtimes[name] = runtime
        # Notify asks intake for a resident's contacts when it sends (intake's RPC
        # reporter_contacts under nameko): here a call into intake's runtime.
        self.runtimes[c.NOTIFY].extras[notify_delivery.CONTACTS_KEY] = self.reporter_contacts
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._access()
        self._figure_sources = self._add_figures()

    def reporter_contacts(
        self, case_id: str, report_id: int | None = None, links: bool = True
    ) -> list[dict]:
        from gridflow_intake.contacts import reporter_contacts

        with self.runtimes[c.INTAKE].work() as work:
            return reporter_contacts(work, case_id, report_id, links)

    def _add_figures(self) -> list:
        """The global figures of /metrics, read from this process's database and bus (one
        process: it is every service's designated exporter). A later instance in the same
        process (tests) takes the names over."""
        sources = []
        for name, runtime in self.runtimes.items():
            queues = None
            if name == c.DEPARTMENTS:
                queues = functools.partial(
                    figures.bus_queue_samples,
                    runtime,
                    self.bus.unit_queues,
                    self.bus.department_queues,
                )
            sources += figures.add_sources(
                runtime, lambda: True, self.definitions[name].figures, queues
            )
        return sources

    def _access(self) -> None:
        """Intake's access machinery with its rate limits in memory: one process, no Redis."""
        from gridflow_intake.access import TRUSTED_PROXIES_ENV, Access, Limits, parse_proxies
        from gridflow_intake.identity import IdentityStore
        from gridflow_intake.ratelimit import MemoryRateLimiter

        intake = self.runtimes[c.INTAKE]
        intake.extras["access"] = Access(
            IdentityStore(self.engine, self.lock),
            limiter=MemoryRateLimiter(),
            limits=Limits.from_environment(),
            trusted_proxies=parse_proxies(os.environ.get(TRUSTED_PROXIES_ENV, "")),
        )

    def _publish_after_commit(self, runtime: ServiceRuntime) -> Callable[[list], None]:
        def publish(rows: list) -> None:
            runtime.publish_rows(rows, self.bus)

        return publish

    def start(self) -> None:
        for target, name in ((self._deliver, "deliver"), (self._tick, "tick")):
            thread = threading.Thread(target=target, name=f"embedded-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self.bus.deliveries.put(None)
        for thread in self._threads:
            thread.join(timeout=5)
        # Pushes in flight end with the process; their leases run out and they are pushed
        # again by the next start (same delivery_id).
        for runtime in self.runtimes.values():
            for key in ("delivery_worker", notify_delivery.WORKER_KEY):
                worker = runtime.extras.pop(key, None)
                if worker is not None:
                    worker.close()

    def close(self) -> None:
        """Stop, let go of the database and remove the temporary folder it was made in."""
        self.stop()
        figures.remove_sources(self._figure_sources)
        self.engine.dispose()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    @property
    def data_folder(self) -> str | None:
        return self._tmp.name if self._tmp is not None else None

    def _deliver(self) -> None:
        while not self._stop.is_set():
            item = self.bus.deliveries.get()
            if item is None:
                continue
            consumer, method, message = item
            handler = self.definitions[consumer].handlers[method]
            try:
                self.runtimes[consumer].consume(method, message, handler)
            except Exception:
                log.exception("delivery_failed", consumer=consumer, method=method)
                self._stop.wait(0.5)
                self.bus.deliveries.put(item)

    def drain(self, limit: int = 200) -> int:
        """Deliver what is on the in-memory bus, and what that causes, here and now, in this
        thread (tests and benchmarks that drive a Gridflow not started); how many deliveries.
        More than ``limit`` is an error: something keeps publishing."""
        for done in range(limit + 1):
            try:
                consumer, method, message = self.bus.deliveries.get_nowait()
            except queue.Empty:
                return done
            if done == limit:
                break
            handler = self.definitions[consumer].handlers[method]
            outcome = self.runtimes[consumer].consume(method, message, handler)
            if outcome != "done":
                raise RuntimeError(f"{consumer}.{method} did not take a delivery: {outcome}")
        raise RuntimeError(f"the bus did not drain within {limit} deliveries")

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            for name, runtime in self.runtimes.items():
                definition = self.definitions[name]
                try:
                    runtime.relay(self.bus, older_than=RelayLoop.SWEEP_GRACE_SECONDS)
                except Exception:
                    log.exception("relay_failed", service=name)
                # Retries, periodic work and pruning, failures logged once per interval.
                runtime.tick(definition.handlers, definition.periodic)

    def load_jurisdiction(self, folder: Path = LUCHENG) -> int:
        files = {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.csv"))}
        return self.store.install(files)

    def api(self):
        from gridflow_intake.api import IntakeApi

        return IntakeApi(self.runtimes[c.INTAKE], EmbeddedPeers(self))

    def identities(self):
        """Intake's identity store (users, credentials, the audit log)."""
        from gridflow_intake.access import Access

        return Access.for_runtime(self.runtimes[c.INTAKE]).store

    def provision_admin(self, reuse: str | None = None) -> tuple[dict, str]:
        """The administrator (made when there is none) and a long-lived admin token: ``reuse``
        when that token is still good here, else a new one (a year)."""
        from gridflow_intake.identity import ADMIN_TOKEN_TTL, BEARER

        store = self.identities()
        admin = store.ensure_admin()
        if reuse:
            resolved = store.resolve(reuse)
            if resolved and resolved[0].id == admin["user_id"]:
                return admin, reuse
        _, token = store.issue(
            BEARER, label="admin token", user_id=admin["user_id"], ttl=ADMIN_TOKEN_TTL
        )
        return admin, token

    @functools.cached_property
    def admin_token(self) -> str:
        """An admin token for tools and tests in this process (not written anywhere)."""
        return self.provision_admin()[1]

    def signin_link(self, base_url: str, user_id: str) -> str:
        """A one-time sign-in link for ``user_id``, as the embedded default prints at start."""
        from gridflow_intake.access import signin_url
        from gridflow_intake.identity import SIGNIN, SIGNIN_TTL

        _, token = self.identities().issue(
            SIGNIN, label="sign-in link at start", user_id=user_id, ttl=SIGNIN_TTL
        )
        return signin_url(base_url, token)

    def wsgi_app(self):
        from werkzeug.wrappers import Request

        api = self.api()
        return Request.application(api.respond)


class EmbeddedPeers:
    """Intake's ``peers`` (gridflow_intake.peers.Peers) in one process: the other services'
    runtimes are called directly, so every one of them always answers."""

    def __init__(self, gridflow: EmbeddedGridflow):
        self.gridflow = gridflow

    def _others(self) -> dict[str, ServiceRuntime]:
        return {n: rt for n, rt in self.gridflow.runtimes.items() if n != c.INTAKE}

    def current_assignment(self, case_id: str) -> dict | None:
        with self.gridflow.runtimes[c.ROUTING].work() as work:
            return routing_handlers.current_assignment(work, case_id)

    def case_notifications(self, case_id: str) -> dict:
        with self.gridflow.runtimes[c.NOTIFY].work() as work:
            return notify_handlers.case_notices(work, case_id)

    def prepare_reset(self, order: reset.ResetOrder) -> dict[str, str]:
        answers = {n: reset.why_not_ready(rt, order) for n, rt in self._others().items()}
        return {n: why for n, why in answers.items() if why}

    def execute_reset(self, order: reset.ResetOrder) -> dict[str, str]:
        # Messages in flight would rebuild what the reset empties.
        self.gridflow.bus.clear()
        answers = {n: reset.execute(rt, order) for n, rt in self._others().items()}
        return {n: why for n, why in answers.items() if why}


class Stopped(Exception):
    """SIGTERM asks the server to stop, as Ctrl-C does."""


def _stop_on_sigterm(signum, frame) -> None:
    raise Stopped


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    clock_mode: str | None = None,
    database_url: str | None = None,
) -> None:
    from werkzeug.serving import make_server

    # Before anything is made: a SIGTERM at any later point still removes the temporary folder.
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    gridflow = server = None
    try:
        gridflow = EmbeddedGridflow(database_url, clock_mode)
        version = gridflow.load_jurisdiction()
        gridflow.start()
        server = make_server(host, port, gridflow.wsgi_app(), threaded=True)
        base_url = f"http://{host}:{server.server_port}"
        admin, token = gridflow.provision_admin(reuse=read_admin_token())
        token_file = write_admin_token(token)
        log.info(
            "embedded_gridflow_listening",
            url=f"http://{host}:{port}",
            clock="simulated" if gridflow.clock.simulated else "real",
            jurisdiction_version=version,
            data=gridflow.data_folder,
        )
        print(
            f"Gridflow (embedded) on {base_url}  clock="
            f"{'simulated' if gridflow.clock.simulated else 'real'}  jurisdiction: Lucheng\n"
            f"Sign in as {admin['username']} (this link works once, for 24 hours):\n"
            f"    {gridflow.signin_link(base_url, admin['user_id'])}\n"
            f"Admin token for scripts (gridflow replay, keys, users): {token_file}",
            flush=True,
        )
        server.serve_forever()
    except (KeyboardInterrupt, Stopped):
        pass
    finally:
        # serve_forever has returned (or never ran), so closing the socket cannot deadlock.
        if server is not None:
            server.server_close()
        if gridflow is not None:
            gridflow.close()
        signal.signal(signal.SIGTERM, previous)
