"""``gridflow``: the command-line tool (run, replay, import, migrate, dead letters, users, keys,
amqp-users)."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path
from urllib.parse import quote

DEFAULT_PORT = 8000
# A dead letter's states (the `state` column of each service's failed-messages table).
LETTER_STATES = ("retrying", "dead")


def default_port() -> int:
    """GRIDFLOW_PORT, the one name for Gridflow's port in both modes (`make run`, `make up`)."""
    return int(os.environ.get("GRIDFLOW_PORT") or DEFAULT_PORT)


def default_url() -> str:
    """GRIDFLOW_URL, else the local Gridflow on GRIDFLOW_PORT."""
    return (os.environ.get("GRIDFLOW_URL") or f"http://127.0.0.1:{default_port()}").rstrip("/")


def admin_headers() -> dict[str, str]:
    """The admin's credential: GRIDFLOW_ADMIN_TOKEN, else the token file `make run` (or
    `gridflow admin-token`) wrote."""
    from gridflow_app.folders import read_admin_token

    token = read_admin_token()
    return {"Authorization": f"Bearer {token}"} if token else {}


def cmd_run(args) -> int:
    from gridflow_app.embedded import serve
    from gridflow_common.logging import configure

    configure()
    serve(args.host, args.port, clock_mode=args.clock, database_url=args.database_url)
    return 0


def cmd_asyncapi(args) -> int:
    from gridflow_app import asyncapi

    return asyncapi.main(check=args.check, output=args.output)


def cmd_replay(rest: list[str]) -> int:
    from gridflow_app import replay

    return replay.main(rest)


def cmd_import(args) -> int:
    """Validate a jurisdiction folder and install it through the admin API."""
    import httpx

    from gridflow_common.domain.jurisdiction_files import JurisdictionError, load_folder

    folder = Path(args.folder)
    try:
        load_folder(folder)  # refuse locally first: the same checks the server makes
    except JurisdictionError as exc:
        print(f"refused: {folder}\n{exc}", file=sys.stderr)
        return 2
    from gridflow_app.folders import jurisdiction_files

    files = jurisdiction_files(folder)
    url = (args.url or default_url()).rstrip("/")
    try:
        response = httpx.put(
            f"{url}/api/v1/admin/jurisdiction",
            json={"files": files},
            headers=admin_headers(),
            timeout=30,
        )
    except httpx.HTTPError as exc:
        print(f"cannot reach Gridflow at {url}: {exc}", file=sys.stderr)
        return 2
    if response.is_success:
        print(f"installed {folder} as version {response.json()['version']}")
        return 0
    # The server checks what this machine cannot (adapters.csv: is each adapter installed
    # there?): its problems are shown like the local ones, one a line with file, line, column.
    problems = _jurisdiction_problems(response)
    if problems:
        print(f"refused: {folder}\n{JurisdictionError(problems)}", file=sys.stderr)
        return 2
    print(f"refused ({response.status_code}): {response.text}", file=sys.stderr)
    return 2


def _jurisdiction_problems(response) -> list:
    from gridflow_common.domain.jurisdiction_files import Problem

    try:
        errors = response.json().get("errors")
        return [Problem(e["file"], e["line"], e["column"], e["message"]) for e in errors]
    except (ValueError, AttributeError, KeyError, TypeError):
        return []


# -- users and keys, through the admin API ---------------------------------------------------------


class Refused(Exception):
    """A command that cannot be done: the message says why (printed, exit 2). ``status`` is the
    API's answer, None when there was none (no token, no server)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class AdminApi:
    """The admin HTTP API as the CLI uses it: the admin's token, one keep-alive connection, and
    every refusal turned into a ``Refused`` naming the API's field errors."""

    def __init__(self, url: str | None):
        import httpx

        from gridflow_app.folders import ADMIN_TOKEN_ENV, admin_token_path

        self.url = (url or default_url()).rstrip("/")
        headers = admin_headers()
        if not headers:
            raise Refused(
                f"no admin token: {ADMIN_TOKEN_ENV} is not set and {admin_token_path()} does "
                "not exist (`gridflow run` writes it when it starts; `gridflow admin-token` on a "
                "deployment)"
            )
        self.client = httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def __enter__(self) -> AdminApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        import httpx

        try:
            response = self.client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise Refused(f"cannot reach Gridflow at {self.url}: {exc}") from None
        if response.is_success:
            return response.json()
        raise Refused(refusal(response.status_code, response.text), response.status_code)


def refusal(status: int, text: str) -> str:
    """An API refusal as a person reads it: the status and each field's errors, one a line."""
    try:
        errors = json.loads(text)["errors"]
        lines = [
            f"  {name}: {message}"
            for name, messages in errors.items()
            for message in (messages if isinstance(messages, list) else [messages])
        ]
    except (ValueError, KeyError, TypeError, AttributeError):
        lines = [f"  {text[:500]}"]
    what = {401: "the admin token was not taken", 403: "the admin token may not do this"}
    return "\n".join(
        [f"refused ({status}{': ' + what[status] if status in what else ''}):", *lines]
    )


def _printable_user(user: dict) -> str:
    scope = f", scope {user['scope']}" if user["scope"] else ""
    return (
        f"user {user['username']} ({user['display_name']}): role {user['role']}{scope}, "
        f"id {user['user_id']}"
    )


def _create_user(api: AdminApi, row: dict) -> dict:
    body = {
        "username": row["username"],
        "role": row["role"],
        "scope": row.get("scope") or None,
        "display_name": row.get("display_name") or None,
    }
    return api.call("POST", "/api/v1/admin/users", body)


USER_COLUMNS = ("username", "role", "scope", "display_name")


def _import_users(api: AdminApi, path: Path) -> int:
    """Each row of a users CSV through the API: a refused row is reported with its line number
    and the others are still created; exit 2 when any row was refused."""
    try:
        # utf-8-sig: a spreadsheet's CSV export often starts with a byte-order mark.
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise Refused(f"cannot read {path}: {exc}") from None
    reader = csv.DictReader(text.splitlines())
    header = reader.fieldnames or []
    unknown = [c for c in header if c not in USER_COLUMNS]
    missing = [c for c in ("username", "role") if c not in header]
    if unknown or missing:
        raise Refused(
            f"{path}:1: the header must name the columns {', '.join(USER_COLUMNS)} "
            f"(username and role required)"
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
            + (f"; missing: {', '.join(missing)}" if missing else "")
        )
    created = refused = 0
    for row in reader:
        line = reader.line_num
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue
        if None in row:  # more cells than the header has columns
            print(f"{path}:{line}: refused: more cells than columns", file=sys.stderr)
            refused += 1
            continue
        cells = {k: (v or "").strip() for k, v in row.items()}
        try:
            answer = _create_user(api, cells)
        except Refused as exc:
            if exc.status in (None, 401, 403):
                # No later row can do better: stop, saying how far the import got.
                raise Refused(f"{exc}\n{path}:{line}: stopped; {created} users created") from None
            print(f"{path}:{line}: {exc}", file=sys.stderr)
            refused += 1
            continue
        created += 1
        print(f"{path}:{line}: created {_printable_user(answer['user'])}")
        if answer.get("signin_link"):
            print(f"    sign-in link (works once, within 24 hours): {answer['signin_link']}")
    print(f"{created} users created, {refused} rows refused ({path})")
    return 2 if refused else 0


def cmd_users(args) -> int:
    try:
        with AdminApi(args.url) as api:
            if args.action == "create":
                answer = _create_user(
                    api,
                    {
                        "username": args.username,
                        "role": args.role,
                        "scope": args.scope,
                        "display_name": args.name,
                    },
                )
                print(f"created {_printable_user(answer['user'])}")
                print(f"sign-in link for {args.username} (works once, within 24 hours):")
                # Alone on the last line, so a script takes it with `tail -n 1`.
                print(answer["signin_link"])
            elif args.action == "list":
                for user in api.call("GET", "/api/v1/admin/users")["users"]:
                    print(json.dumps(user, ensure_ascii=False))
            elif args.action == "disable":
                api.call("POST", f"/api/v1/admin/users/{quote(args.username, safe='')}/disable")
                print(f"disabled {args.username}; every credential of theirs is revoked")
            else:
                return _import_users(api, Path(args.file))
    except Refused as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


def cmd_keys(args) -> int:
    try:
        with AdminApi(args.url) as api:
            if args.action == "create":
                body = {
                    "channel": args.channel,
                    "holder": args.holder,
                    "label": args.label,
                    "expires_in_days": args.expires_in_days,
                    "rate_limit": args.rate_limit,
                    # A sensor's key: its device and the device's place (docs/channels.md).
                    "device": args.device,
                    "device_place": args.device_place,
                }
                answer = api.call(
                    "POST", "/api/v1/admin/keys", {k: v for k, v in body.items() if v is not None}
                )
                key = answer["key"]
                subject = f"channel {key['channel']}" if key["channel"] else key["holder"]
                print(
                    f"created key {key['credential_id']} for {subject} (label {key['label']!r}, "
                    f"expires {key['expires_at'] or 'never'}, "
                    f"rate limit {key['rate_limit'] or 'default'})"
                )
                print("the key is shown this once; give it to its client now:")
                # Alone on the last line (the issue asks it), so a script takes it with tail -n 1.
                print(answer["token"])
            elif args.action == "list":
                for key in api.call("GET", "/api/v1/admin/keys")["keys"]:
                    print(json.dumps(key, ensure_ascii=False))
            elif args.action == "rotate":
                answer = api.call(
                    "POST",
                    f"/api/v1/admin/keys/{quote(args.credential_id, safe='')}/rotate",
                    {"grace_hours": args.grace_hours},
                )
                print(
                    f"new key {answer['key']['credential_id']} replaces {args.credential_id}, "
                    f"which keeps working for {args.grace_hours} h; the new key, shown this once:"
                )
                print(answer["token"])
            else:
                api.call("DELETE", f"/api/v1/admin/keys/{quote(args.credential_id, safe='')}")
                print(f"revoked {args.credential_id}")
    except Refused as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


def _access_parsers(sub) -> None:
    def action(actions, name: str, help: str) -> argparse.ArgumentParser:
        leaf = actions.add_parser(name, help=help)
        leaf.add_argument(
            "--url", default=None, help="default: GRIDFLOW_URL, else http://127.0.0.1:GRIDFLOW_PORT"
        )
        return leaf

    users = sub.add_parser("users", help="create, list, disable or import users (admin API)")
    user_actions = users.add_subparsers(dest="action", required=True)
    create = action(user_actions, "create", "a user; prints their one-time sign-in link last")
    create.add_argument("username")
    create.add_argument("--role", required=True)
    create.add_argument("--scope", default=None, help="a unit, department or area code")
    create.add_argument("--name", default=None, help="the display name")
    action(user_actions, "list", "every user, one JSON object a line")
    disable = action(user_actions, "disable", "a user, revoking every credential of theirs")
    disable.add_argument("username")
    imp = action(
        user_actions, "import", f"users from a CSV file with the columns {','.join(USER_COLUMNS)}"
    )
    imp.add_argument("file")

    keys = sub.add_parser("keys", help="create, list or revoke channel and holder keys (admin API)")
    key_actions = keys.add_subparsers(dest="action", required=True)
    kc = action(key_actions, "create", "a key; prints the key alone on the last line")
    subject = kc.add_mutually_exclusive_group(required=True)
    subject.add_argument("--channel", help="a channel client's key (hotline, wechat, ...)")
    subject.add_argument("--holder", help="a department's or unit's credential (its code)")
    kc.add_argument("--label", default=None)
    kc.add_argument("--expires-in-days", type=int, default=None)
    kc.add_argument("--rate-limit", default=None, help="e.g. 600/min")
    kc.add_argument("--device", default=None, help="a sensor key's device id (--channel sensor)")
    kc.add_argument(
        "--device-place",
        default=None,
        type=json.loads,
        help='the device\'s place, e.g. \'{"lat": 28.0, "lon": 120.6}\'',
    )
    action(key_actions, "list", "every key, one JSON object a line")
    revoke = action(key_actions, "revoke", "a key, by its credential id")
    revoke.add_argument("credential_id")
    rotate = action(
        key_actions, "rotate", "a new key for the same client; prints it alone on the last line"
    )
    rotate.add_argument("credential_id")
    rotate.add_argument(
        "--grace-hours", type=int, default=24, help="how long the old key keeps working (24)"
    )


def cmd_migrate(args) -> int:
    from gridflow_app import bootstrap
    from gridflow_common.db import make_engine

    bootstrap.upgrade_all(make_engine(args.database_url))
    print("migrated:", ", ".join(bootstrap.HISTORIES))
    return 0


def cmd_ensure_jurisdiction(args) -> int:
    """`make up` on an empty database: install the shipped default jurisdiction, and say so."""
    from gridflow_app import bootstrap
    from gridflow_common.db import make_engine
    from gridflow_common.jurisdictions import JurisdictionStore, NoJurisdiction

    engine = make_engine(args.database_url)
    store = JurisdictionStore(engine)
    try:
        version = store.active_version()
        print(f"jurisdiction version {version} is in force; left as it is")
    except NoJurisdiction:
        version = store.install(bootstrap.jurisdiction_files(bootstrap.LUCHENG))
        print(
            f"no jurisdiction was installed: loaded the default one, Lucheng "
            f"({bootstrap.LUCHENG}), as version {version}; `gridflow import FOLDER` replaces it"
        )
    finally:
        engine.dispose()
    return 0


def cmd_admin_token(args) -> int:
    """A deployment's first administrator and a long-lived admin token, written where replay
    and the other commands find it. Works on the database directly: it is how the first admin
    of a real deployment comes to be. Idempotent: a token in the file that is still good is
    kept."""
    from gridflow_app.folders import read_admin_token, write_admin_token
    from gridflow_common import contracts as c
    from gridflow_common.db import make_engine
    from gridflow_intake.identity import ADMIN_TOKEN_TTL, BEARER, IdentityStore

    engine = make_engine(args.database_url)
    try:
        store = IdentityStore(engine)
        admin = store.ensure_admin()
        token = read_admin_token()
        resolved = store.resolve(token) if token else None
        if resolved is None or resolved[0].id != admin["user_id"]:
            _, token = store.issue(
                BEARER, label="admin token", user_id=admin["user_id"], ttl=ADMIN_TOKEN_TTL
            )
        assert token is not None
        path = write_admin_token(token)
    finally:
        engine.dispose()
    print(f"admin {admin['username']}: token in {path} ({c.INTAKE} database)")
    return 0


def _runtimes(database_url: str | None):
    from gridflow_app import bootstrap
    from gridflow_common.clock import make_clock
    from gridflow_common.db import make_engine
    from gridflow_common.jurisdictions import JurisdictionStore
    from gridflow_common.runtime import ServiceRuntime

    engine = make_engine(database_url)
    clock = make_clock(engine)
    store = JurisdictionStore(engine)
    return {
        name: ServiceRuntime(name, engine, clock, store, d.tables())
        for name, d in bootstrap.definitions().items()
    }


def _printable(letter: dict) -> str:
    return json.dumps(
        {
            k: (v.isoformat() if hasattr(v, "isoformat") else v)
            for k, v in letter.items()
            if k != "message"
        },
        ensure_ascii=False,
    )


def cmd_dead_letters(args) -> int:
    runtimes = _runtimes(args.database_url)
    if args.action == "list":
        for name, runtime in runtimes.items():
            if args.service and name != args.service:
                continue
            for letter in runtime.dead_letters():
                if args.state is None or letter["state"] == args.state:
                    print(_printable(letter))
        return 0
    if runtimes[args.service].replay_dead_letter(args.id):
        print(f"{args.service} dead letter {args.id} is due for another try")
        return 0
    print(f"{args.service} has no dead letter {args.id}", file=sys.stderr)
    return 2


def cmd_amqp_users(args) -> int:
    """One RabbitMQ user per department and unit served through AMQP (gridflow_app/amqp_users)."""
    from gridflow_app import amqp_users as au
    from gridflow_common.db import make_engine
    from gridflow_common.jurisdictions import JurisdictionStore, NoJurisdiction
    from gridflow_common.nameko_support import AMQP_URI, DEFAULT_AMQP_URI

    amqp_uri = args.amqp_uri or os.environ.get(AMQP_URI) or DEFAULT_AMQP_URI
    vhost = args.vhost or au.vhost_of(amqp_uri)
    engine = make_engine(args.database_url)
    try:
        j = JurisdictionStore(engine).active()[1]
    except NoJurisdiction as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    try:
        wanted = au.accounts(j, args.code or ())
    except ValueError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    declared = au.declare_queues(amqp_uri, j, wanted, cases=args.declare_queues)
    print(f"declared {declared} queue(s) that did not exist yet")
    try:
        broker = au.broker_for(args.management_url)
        synced = au.sync(
            broker,
            vhost,
            wanted,
            password_ref=args.password_ref,
            new_passwords=args.new_passwords,
        )
    except Exception as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return 2
    for item in synced:
        what = "created" if item.created else "updated"
        print(f"{what} {item.account.user} (vhost {vhost}): reads {', '.join(item.account.queues)}")
    generated = [item for item in synced if item.password]
    if generated and args.passwords_file:
        au.write_passwords(Path(args.passwords_file), generated)
        print(f"{len(generated)} new password(s) in {args.passwords_file} (mode 0600)")
    elif generated:
        print("new passwords, shown this once (user, password):")
        for item in generated:
            print(f"{item.account.user}\t{item.password}")
    return 0


def cmd_rules(args) -> int:
    from gridflow_app import rules_try

    return rules_try.cmd_rules_try(args)


def parser() -> argparse.ArgumentParser:
    from gridflow_common import contracts as c

    top = argparse.ArgumentParser(prog="gridflow")
    sub = top.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="all five services in one process (the embedded default)")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument(
        "--port", type=int, default=None, help=f"default: GRIDFLOW_PORT, else {DEFAULT_PORT}"
    )
    run.add_argument(
        "--clock",
        choices=("real", "simulated"),
        default=None,
        help="default: GRIDFLOW_CLOCK, else real",
    )
    run.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    sub.add_parser("replay", help="replay scenario files (see scenarios/FORMAT.md)")
    aa = sub.add_parser("asyncapi", help="write docs/asyncapi.yaml from the contracts")
    aa.add_argument(
        "--check",
        action="store_true",
        help="only say (exit 1) when the file is not what the code says",
    )
    aa.add_argument("--output", type=Path, default=None, help="default: docs/asyncapi.yaml")
    imp = sub.add_parser("import", help="install a jurisdiction folder (CSV) through the API")
    imp.add_argument("folder")
    imp.add_argument(
        "--url", default=None, help="default: GRIDFLOW_URL, else http://127.0.0.1:GRIDFLOW_PORT"
    )
    # `gridflow rules try`: rehearse a rules file on past cases (rules_try.py).
    from gridflow_app import rules_try

    rules_try.add_parser(sub)
    mig = sub.add_parser("migrate", help="upgrade every service's tables")
    mig.add_argument("--database-url", default=None)
    ens = sub.add_parser(
        "ensure-jurisdiction",
        help="install the shipped default jurisdiction when none is installed",
    )
    ens.add_argument("--database-url", default=None)
    tok = sub.add_parser(
        "admin-token",
        help="make the first admin (when there is none) and write an admin token to "
        ".gridflow/admin-token (or GRIDFLOW_ADMIN_TOKEN_FILE)",
    )
    tok.add_argument("--database-url", default=None)
    dl = sub.add_parser("dead-letters", help="list or replay messages given up on")
    dl.add_argument("action", choices=("list", "replay"))
    # choices: a misspelt service is a usage error naming the valid ones, not a traceback.
    dl.add_argument("--service", default=None, choices=c.SERVICES)
    dl.add_argument(
        "--state",
        default=None,
        choices=LETTER_STATES,
        help="list only the letters in this state (default: both)",
    )
    dl.add_argument("--id", type=int, default=None)
    dl.add_argument("--database-url", default=None)
    _access_parsers(sub)
    amqp = sub.add_parser(
        "amqp-users", help="RabbitMQ users for the departments and units served through AMQP"
    )
    amqp_actions = amqp.add_subparsers(dest="action", required=True)
    amqp_sync = amqp_actions.add_parser(
        "sync", help="create or update them, with permissions on their own queues only"
    )
    amqp_sync.add_argument("--database-url", default=None)
    amqp_sync.add_argument("--amqp-uri", default=None, help="default: AMQP_URI (its vhost)")
    amqp_sync.add_argument("--vhost", default=None, help="default: the AMQP URI's")
    amqp_sync.add_argument(
        "--management-url",
        default=None,
        help="default: RABBITMQ_MANAGEMENT_URL, else http://127.0.0.1:15672 (guest)",
    )
    amqp_sync.add_argument(
        "--code", action="append", default=None, help="only this department or unit (repeatable)"
    )
    amqp_sync.add_argument(
        "--password-ref",
        default=None,
        help="where each password is kept: env:NAME_{CODE} or file:/path/{code}",
    )
    amqp_sync.add_argument(
        "--passwords-file", default=None, help="write generated passwords here (mode 0600)"
    )
    amqp_sync.add_argument(
        "--new-passwords", action="store_true", help="generate new passwords for existing users"
    )
    amqp_sync.add_argument(
        "--declare-queues",
        action="store_true",
        help="also declare the case queues they read (those that do not exist yet; the "
        "departments service declares them when it starts)",
    )
    return top


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["replay"]:
        return cmd_replay(argv[1:])
    top = parser()
    args = top.parse_args(argv)
    if args.command == "run" and args.port is None:
        args.port = default_port()
    if (
        args.command == "dead-letters"
        and args.action == "replay"
        and (not args.service or args.id is None)
    ):
        top.error("dead-letters replay needs --service and --id")
    return {
        "run": cmd_run,
        "asyncapi": cmd_asyncapi,
        "import": cmd_import,
        "migrate": cmd_migrate,
        "ensure-jurisdiction": cmd_ensure_jurisdiction,
        "dead-letters": cmd_dead_letters,
        "admin-token": cmd_admin_token,
        "users": cmd_users,
        "keys": cmd_keys,
        "amqp-users": cmd_amqp_users,
        "rules": cmd_rules,
    }[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
