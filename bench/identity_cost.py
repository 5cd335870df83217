"""``make bench-identity``: what asking who is calling costs per request (issue 6, "Measured").

The same request, ``GET /api/v1/cases/{id}`` on the same case, with the identity check and
without it, in the same run, interleaved call by call so that drift (another process, a cache
warming) falls on both alike:

- *checked*: the product's ``IntakeApi`` as it answers every request: the credential read from
  the request and resolved in intake's database, the route's policy, the audit row a key's use
  writes;
- *unchecked*: ``UncheckedApi`` below: the product's ``IntakeApi`` whose ``_caller`` hands
  ``_dispatch`` a Caller made beforehand (resolved once, on the credential's first request) and
  writes no audit row. The endpoint, its own decision on the case (``may_read_case``), the URL
  map, the rate limit (a Redis round trip in the real topology: not the identity check, and
  paid by both; the limits are set far above what this sends, so none refuses), error mapping
  and metrics run as in the product. Nothing in the product is weakened: the subclass lives
  here.

Two credentials: a command-center user's bearer token and a department's credential (a holder
key; every use of a key is audited, so its checked figure includes an audit row).

Where: (a) in process on the embedded default (SQLite); (b) in process on PostgreSQL, the real
topology's own database; (c) over HTTP to the real topology (deploy/topology.sh on a vhost,
database and ports of this benchmark's own): the product's intake on its own port, and beside it
its unchecked twin (bench/identity_unchecked.py: the same nameko service with ``UncheckedApi``)
as a second intake replica on another port, called alternately so that both see the same load;
the checked request through nginx, the public door, is timed in the same rounds.

Also the raw costs: ``IdentityStore.resolve`` alone, and argon2id's verify (a sign-in's cost).
Figures are printed, never asserted. Options (environment): BENCH_IDENTITY_N (2000 calls per
variant in process), BENCH_IDENTITY_HTTP_N (1000 per variant and phase over HTTP; 0 skips the
real topology), BENCH_IDENTITY_ARGON2_N (20).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import httpx
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from bench import infra
from gridflow_app.embedded import EmbeddedGridflow, EmbeddedPeers
from gridflow_common import contracts as c
from gridflow_common.domain import access as a
from gridflow_intake import identity
from gridflow_intake.access import Access, Caller
from gridflow_intake.api import IntakeApi, Route
from gridflow_intake.identity import BEARER, IdentityStore

CASE_PATH = "/api/v1/cases/{}"
# A streetlight out in Tengqiao: held by the urban-management station there, led by its bureau,
# so the bureau's credential may read it as well as the command center.
REPORT = {
    "channel": "web",
    "description": "藤桥戍浦社区门口的路灯不亮",
    "category": "component.streetlight",
    "location": {"lat": 28.05, "lon": 120.64},
}
HOLDER = "urban_management"
PASSWORD = "bench-identity-password"
VHOST = "gridflow_bench_identity"
DB_NAME = "gridflow_bench_identity"
VAR_DIR = infra.VAR_DIR.parent / "bench-identity"
SERVICES = ("intake", "routing", "departments", "sla", "notify")
UNCHECKED_SERVICE = "bench.identity_unchecked:UncheckedIntakeService"
# Far above what the benchmark sends: every request is still counted, none refused.
NO_LIMIT = "1000000/s"


# -- the request without the check ----------------------------------------------------------------


class _Unaudited(Access):
    def audit(self, *args: Any, **kwargs: Any) -> None:
        return None


def _unaudited(access: Access) -> Access:
    """The same store, limiter, limits and proxies as ``access``, writing no audit row."""
    return _Unaudited(
        **{f.name: getattr(access, f.name) for f in dataclasses.fields(access) if f.init}
    )


class UncheckedApi(IntakeApi):
    """IntakeApi with the identity check taken out (see the module's docstring)."""

    # One per credential, kept across requests (nameko makes an IntakeApi per request).
    _callers: ClassVar[dict[str, Caller]] = {}

    def __init__(self, runtime: Any, peers: Any, *more: Any):
        super().__init__(runtime, peers, *more)
        self.access = _unaudited(self.access)

    def _caller(self, route: Route, request: Request) -> Caller:
        key = request.headers.get("Authorization", "")
        caller = self._callers.get(key)
        if caller is None:
            caller = self._callers[key] = super()._caller(route, request)
        return caller


class UnauditedApi(IntakeApi):
    """The product's check without its audit row: what of the check's cost is the audit's."""

    def __init__(self, runtime: Any, peers: Any, *more: Any):
        super().__init__(runtime, peers, *more)
        self.access = _unaudited(self.access)


# -- timing ---------------------------------------------------------------------------------------


def interleaved(calls: Mapping[str, Callable[[], None]], n: int) -> dict[str, list[float]]:
    """``n`` timed calls of each, round robin with a rotating start."""
    names = list(calls)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i in range(n):
        k = i % len(names)
        for name in names[k:] + names[:k]:
            call = calls[name]
            started = time.perf_counter()
            call()
            samples[name].append(time.perf_counter() - started)
    return samples


def summary(seconds: list[float]) -> dict:
    out = infra.latency_summary(seconds)
    out["mean_ms"] = round(1000 * sum(seconds) / len(seconds), 3) if seconds else None
    return out


def _answered(answer: Any) -> None:
    if answer.status != 200:
        raise RuntimeError(f"the benchmark's request was answered {answer.status}: {answer.body}")


def in_process(g: EmbeddedGridflow, case_id: str, tokens: dict[str, str], n: int) -> dict:
    """Checked and unchecked answers of one case's GET, in process, for each credential."""
    checked = g.api()
    unchecked = UncheckedApi(g.runtimes[c.INTAKE], EmbeddedPeers(g))
    unaudited = UnauditedApi(g.runtimes[c.INTAKE], EmbeddedPeers(g))
    environs = {
        who: EnvironBuilder(
            path=CASE_PATH.format(case_id),
            method="GET",
            headers=[("Authorization", f"Bearer {token}")],
        ).get_environ()
        for who, token in tokens.items()
    }

    def call(api: IntakeApi, environ: dict) -> Callable[[], None]:
        def one() -> None:
            answer = api.answer(Request(dict(environ)))
            answer.encoded()
            _answered(answer)

        return one

    calls = {}
    for who, environ in environs.items():
        calls[f"{who}/checked"] = call(checked, environ)
        calls[f"{who}/unchecked"] = call(unchecked, environ)
        calls[f"{who}/checked, no audit row"] = call(unaudited, environ)
    interleaved(calls, min(n, 100))  # warm-up: caches, the prepared callers
    samples = interleaved(calls, n)
    return {name: summary(values) for name, values in samples.items()}


def resolve_cost(store: IdentityStore, tokens: dict[str, str], n: int) -> dict:
    calls = {who: (lambda t=token: _resolved(store, t)) for who, token in tokens.items()}
    interleaved(calls, min(n, 100))
    return {who: summary(values) for who, values in interleaved(calls, n).items()}


def _resolved(store: IdentityStore, token: str) -> None:
    # The database's cost, not the process's two-second memory of a good token.
    store.forget()
    if store.resolve(token) is None:
        raise RuntimeError("the benchmark's token does not resolve")


def argon2_cost(store: IdentityStore, username: str, n: int) -> dict:
    """argon2id verify with the product's parameters, and the sign-in's whole password check
    (user lookup and verify; an unknown user costs the same, by design)."""
    hashed = identity._hasher.hash(PASSWORD)
    params = identity._hasher

    def verify() -> None:
        params.verify(hashed, PASSWORD)

    calls = {
        "argon2 verify": verify,
        "check_password, right": lambda: _checked(store, username, PASSWORD, True),
        "check_password, wrong": lambda: _checked(store, username, "not-the-password", False),
        "check_password, unknown user": lambda: _checked(store, "nobody-here", PASSWORD, False),
    }
    out: dict[str, Any] = {name: summary(v) for name, v in interleaved(calls, n).items()}
    out["parameters"] = (
        f"argon2id t={params.time_cost} m={params.memory_cost} KiB p={params.parallelism}"
    )
    return out


def _checked(store: IdentityStore, username: str, password: str, good: bool) -> None:
    if (store.check_password(username, password) is not None) != good:
        raise RuntimeError("check_password did not answer as expected")


# -- (a) the embedded default ----------------------------------------------------------------------


def _credentials(store: IdentityStore, user_id: str) -> dict[str, str]:
    _, bearer = store.issue(BEARER, label="bench identity", user_id=user_id)
    _, holder = store.issue(
        a.HOLDER_KEY, label="bench identity", holder=HOLDER, rate_limit=NO_LIMIT
    )
    return {"command-center bearer token": bearer, "department credential": holder}


def embedded(n: int, argon2_n: int) -> dict:
    g = EmbeddedGridflow(clock_mode="simulated")
    try:
        g.load_jurisdiction()
        api = g.api()
        answer = api.handle("POST", "/api/v1/reports", json.dumps(REPORT).encode())
        case_id = answer.body["case_id"]
        g.drain(10_000)
        store = g.identities()
        user = store.create_user(
            g.store.get(g.store.active_version()), "bench-cc", a.COMMAND_CENTER, password=PASSWORD
        )
        tokens = _credentials(store, user["user_id"])
        return {
            "requests": in_process(g, case_id, tokens, n),
            "resolve": resolve_cost(store, tokens, n),
            "signin": argon2_cost(store, "bench-cc", argon2_n),
        }
    finally:
        g.close()


# -- (b), (c) the real topology ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Topology:
    """deploy/topology.sh on this benchmark's own vhost, database, ports and var folder (so it
    disturbs no other run on the machine), and intake's unchecked twin beside it."""

    def __init__(self) -> None:
        self.ports = {svc: _free_port() for svc in ("proxy", "twin", *SERVICES)}
        self.database_url = f"{infra.PG_SERVER}/{DB_NAME}"
        self.base_url = f"http://127.0.0.1:{self.ports['proxy']}"
        self.twin: subprocess.Popen | None = None

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k != "GRIDFLOW_ADMIN_TOKEN" and not k.endswith("_WORKERS")
        }
        env.update(
            {
                "AMQP_URI": f"amqp://guest:guest@127.0.0.1:5672/{VHOST}",
                "DATABASE_URL": self.database_url,
                "GRIDFLOW_CLOCK": "real",
                "GRIDFLOW_ADMIN_TOKEN_FILE": str(VAR_DIR / "admin-token"),
                "VAR_DIR": str(VAR_DIR),
                "GRIDFLOW_PORT": str(self.ports["proxy"]),
                "BIN": str(infra.ROOT / ".venv" / "bin"),
                **{f"{svc.upper()}_HTTP": f"127.0.0.1:{self.ports[svc]}" for svc in SERVICES},
            }
        )
        return env

    def script(self, action: str) -> str:
        return infra.topology_script(action, self.env())

    def admin_token(self) -> str:
        return (VAR_DIR / "admin-token").read_text().strip()

    def start_twin(self) -> None:
        """Intake's unchecked twin as a second intake replica, on a port of its own, beside the
        product's intake (replicas share the database and the queues)."""
        env = {**self.env(), "INTAKE_HTTP": f"127.0.0.1:{self.ports['twin']}"}
        log = open(VAR_DIR / "intake-unchecked.log", "ab")  # noqa: SIM115 (the child's output)
        self.twin = subprocess.Popen(
            [
                str(infra.ROOT / ".venv" / "bin" / "nameko"),
                "run",
                "--config",
                "services/intake/config.yaml",
                UNCHECKED_SERVICE,
            ],
            cwd=infra.ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        _wait_ready(f"http://127.0.0.1:{self.ports['twin']}/healthz", self.twin)

    def down(self) -> None:
        if self.twin is not None:
            self.twin.terminate()
            try:
                self.twin.wait(30)
            except subprocess.TimeoutExpired:
                self.twin.kill()
                self.twin.wait(10)
        self.script("down")


def _wait_ready(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the process for {url} exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2, trust_env=False).status_code == 200:
                return
        time.sleep(0.2)  # bounded poll until the service answers
    raise RuntimeError(f"nothing ready at {url} within {timeout:.0f} s")


def _fresh_vhost() -> None:
    listed = infra._rabbitmqctl("list_vhosts", "name").stdout.split()
    if VHOST in listed:
        infra._rabbitmqctl("delete_vhost", VHOST)
    infra._rabbitmqctl("add_vhost", VHOST)
    infra._rabbitmqctl("set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*")


def _database(create: bool) -> None:
    import sqlalchemy as sa

    admin = sa.create_engine(f"{infra.PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
            if create:
                conn.execute(sa.text(f'CREATE DATABASE "{DB_NAME}"'))
    finally:
        admin.dispose()


def over_http(
    clients: dict[str, httpx.Client], case_id: str, tokens: dict[str, str], n: int
) -> dict:
    """Each credential's GET through each client (mode -> client), interleaved call by call."""
    path = CASE_PATH.format(case_id)

    def call(client: httpx.Client, token: str) -> Callable[[], None]:
        headers = {"Authorization": f"Bearer {token}"}

        def one() -> None:
            response = client.get(path, headers=headers)
            if response.status_code != 200:
                raise RuntimeError(f"answered {response.status_code}: {response.text}")

        return one

    calls = {
        f"{who}/{mode}": call(client, token)
        for who, token in tokens.items()
        for mode, client in clients.items()
    }
    interleaved(calls, min(n, 100))
    return {name: summary(values) for name, values in interleaved(calls, n).items()}


def real_topology(n_process: int, n_http: int) -> dict:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    for svc in SERVICES:
        (VAR_DIR / f"{svc}.log").unlink(missing_ok=True)
    _fresh_vhost()
    _database(create=True)
    topology = Topology()
    infra.log(f"identity: deploy/topology.sh up on {DB_NAME}, proxy {topology.base_url}")
    g: EmbeddedGridflow | None = None
    try:
        topology.script("up")
        client = httpx.Client(base_url=topology.base_url, timeout=30, trust_env=False)
        with client:
            admin = {"Authorization": f"Bearer {topology.admin_token()}"}
            created = client.post("/api/v1/reports", json=REPORT)
            if created.status_code != 201:
                raise RuntimeError(f"the report was answered {created.status_code}")
            case_id = created.json()["case_id"]
            _wait_dispatched(client, case_id, admin)
            user = client.post(
                "/api/v1/admin/users",
                json={"username": "bench-cc", "role": a.COMMAND_CENTER},
                headers=admin,
            )
            if user.status_code != 201:
                raise RuntimeError(f"the user was answered {user.status_code}: {user.text}")
            # The real topology's intake, in this process, on its own database: (b).
            g = EmbeddedGridflow(database_url=topology.database_url, clock_mode="real")
            store = g.identities()
            tokens = _credentials(store, user.json()["user"]["user_id"])
            infra.log(f"identity: (b) in process on PostgreSQL, {n_process} calls per variant")
            result: dict[str, Any] = {
                "requests_in_process": in_process(g, case_id, tokens, n_process),
                "resolve": resolve_cost(store, tokens, n_process),
            }
            if n_http:
                infra.log(f"identity: (c) over HTTP, {n_http} calls per variant")
                topology.start_twin()
                ports = topology.ports
                clients = {
                    "checked": _client(f"http://127.0.0.1:{ports['intake']}"),
                    "unchecked": _client(f"http://127.0.0.1:{ports['twin']}"),
                    "checked, through nginx": _client(topology.base_url),
                }
                try:
                    result["http"] = over_http(clients, case_id, tokens, n_http)
                finally:
                    for one in clients.values():
                        one.close()
        return result
    finally:
        if g is not None:
            g.close()
        infra.log("identity: stopping the topology")
        topology.down()
        _database(create=False)
        infra._rabbitmqctl("delete_vhost", VHOST, check=False)


def _client(base_url: str) -> httpx.Client:
    # One keep-alive connection, as a department system holds one.
    return httpx.Client(
        base_url=base_url, timeout=30, trust_env=False, limits=httpx.Limits(max_connections=1)
    )


def _wait_dispatched(client: httpx.Client, case_id: str, admin: dict, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = client.get(CASE_PATH.format(case_id), headers=admin)
        if view.status_code == 200 and view.json().get("handler"):
            return
        time.sleep(0.2)  # bounded poll until the case has its holder
    raise RuntimeError(f"case {case_id} was not dispatched within {timeout:.0f} s")


# -- the report -----------------------------------------------------------------------------------


def _cell(s: dict | None) -> str:
    if not s:
        return "n/a"
    return f"{s['p50_ms']:8.3f} {s['p99_ms']:8.3f} {s['mean_ms']:8.3f}"


def _pair(lines: list[str], figures: dict, checked: str, unchecked: str) -> None:
    for who in ("command-center bearer token", "department credential"):
        on, off = figures.get(f"{who}/{checked}"), figures.get(f"{who}/{unchecked}")
        lines.append(f"    {who:30} checked   {_cell(on)}")
        lines.append(f"    {'':30} unchecked {_cell(off)}")
        unaudited = figures.get(f"{who}/checked, no audit row")
        if unaudited:
            lines.append(f"    {'':30} no audit  {_cell(unaudited)}")
        if on and off:
            lines.append(
                f"    {'':30} the check {on['p50_ms'] - off['p50_ms']:8.3f} "
                f"{on['p99_ms'] - off['p99_ms']:8.3f} {on['mean_ms'] - off['mean_ms']:8.3f}"
            )


def table(results: dict) -> str:
    head = f"{'':44} {'p50':>8} {'p99':>8} {'mean':>8}  (ms)"
    a_ = results["embedded"]
    lines = [
        "",
        f"Identity check per request: GET /api/v1/cases/{{id}}, one case, calls interleaved "
        f"({results['cores']} cores, load average {results['load_average_start']})",
        "",
        head,
        f"(a) in process, embedded default (SQLite), {results['n']} calls each",
    ]
    _pair(lines, a_["requests"], "checked", "unchecked")
    b = results.get("topology") or {}
    if "error" in b:
        lines += ["", f"(b), (c) the real topology did not run: {b['error']}"]
    elif b:
        lines.append(
            f"(b) in process, PostgreSQL (the real topology's database), {results['n']} each"
        )
        _pair(lines, b["requests_in_process"], "checked", "unchecked")
        http = b.get("http")
        if http:
            lines.append(
                f"(c) over HTTP to the real topology, {results['n_http']} each: intake's own "
                "port (the product) and its unchecked twin's (a second intake replica)"
            )
            _pair(lines, http, "checked", "unchecked")
            for who in ("command-center bearer token", "department credential"):
                proxied = http.get(f"{who}/checked, through nginx")
                lines.append(f"    {who:30} via nginx {_cell(proxied)}")
    lines += ["", "Raw costs", "  IdentityStore.resolve alone, from the database (not remembered)"]
    for where, figures in (("SQLite", a_["resolve"]), ("PostgreSQL", b.get("resolve"))):
        for who, s in (figures or {}).items():
            lines.append(f"    {where:10} {who:30} {_cell(s)}")
    signin = a_["signin"]
    lines.append(f"  sign-in ({signin['parameters']}), SQLite")
    for name in (
        "argon2 verify",
        "check_password, right",
        "check_password, wrong",
        "check_password, unknown user",
    ):
        lines.append(f"    {name:41} {_cell(signin[name])}")
    lines += [
        "",
        "checked: the product; unchecked: the same endpoint handed a Caller made beforehand, "
        "no audit row; no audit: the product's check without its audit row (a department "
        "credential's checked call writes one: every use of a key is audited). 'the check' is "
        "checked minus unchecked, per column (a p99 difference of two noisy tails is rough).",
        f"load average at end {results['load_average_end']} (other work on this machine "
        "skews every figure)",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    n = int(os.environ.get("BENCH_IDENTITY_N", 2000))
    n_http = int(os.environ.get("BENCH_IDENTITY_HTTP_N", 1000))
    argon2_n = int(os.environ.get("BENCH_IDENTITY_ARGON2_N", 20))
    # Read by every Access made from here on, here and in the topology's processes.
    os.environ["GRIDFLOW_RATE_USER"] = NO_LIMIT
    os.environ["GRIDFLOW_RATE_KEY"] = NO_LIMIT
    results: dict[str, Any] = {
        "cores": os.cpu_count(),
        "n": n,
        "n_http": n_http,
        "load_average_start": infra.load_average(),
    }
    infra.log(f"identity: (a) in process on the embedded default, {n} calls per variant")
    results["embedded"] = embedded(n, argon2_n)
    try:
        results["topology"] = real_topology(n, n_http)
    except Exception as exc:  # the figures of (a) are still worth printing
        infra.log(f"identity: the real topology failed: {exc!r}; logs in {VAR_DIR}")
        results["topology"] = {"error": repr(exc)[:300]}
    results["load_average_end"] = infra.load_average()
    print(table(results))
    print("BENCH_JSON " + json.dumps(results, ensure_ascii=False, separators=(",", ":")))
    return 0 if "error" not in results["topology"] else 1


if __name__ == "__main__":
    sys.exit(main())
