"""``gridflow``: the command-line tool (run, replay, import, migrate, dead letters)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

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
    print(f"refused ({response.status_code}): {response.text}", file=sys.stderr)
    return 2


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
    imp = sub.add_parser("import", help="install a jurisdiction folder (CSV) through the API")
    imp.add_argument("folder")
    imp.add_argument(
        "--url", default=None, help="default: GRIDFLOW_URL, else http://127.0.0.1:GRIDFLOW_PORT"
    )
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
        "import": cmd_import,
        "migrate": cmd_migrate,
        "ensure-jurisdiction": cmd_ensure_jurisdiction,
        "dead-letters": cmd_dead_letters,
        "admin-token": cmd_admin_token,
    }[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
