"""``gridflow``: the command-line tool (run, replay, import, migrate, dead letters)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8000"


def _url(args) -> str:
    return (args.url or os.environ.get("GRIDFLOW_URL") or DEFAULT_URL).rstrip("/")


def cmd_run(args) -> int:
    from gridflow_common.embedded import serve
    from gridflow_common.logging import configure

    configure()
    serve(args.host, args.port, clock_mode=args.clock, database_url=args.database_url)
    return 0


def cmd_replay(rest: list[str]) -> int:
    from gridflow_common import replay

    return replay.main(rest)


def cmd_import(args) -> int:
    """Validate a jurisdiction folder and install it through the admin API."""
    from gridflow_common.domain.jurisdiction_files import JurisdictionError, load_folder

    folder = Path(args.folder)
    try:
        load_folder(folder)  # refuse locally first: the same checks the server makes
    except JurisdictionError as exc:
        print(f"refused: {folder}\n{exc}", file=sys.stderr)
        return 2
    files = {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.csv"))}
    body = json.dumps({"files": files}, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(f"{_url(args)}/api/v1/admin/jurisdiction", data=body,
                                     method="PUT", headers={"Content-Type": "application/json"})
    token = os.environ.get("GRIDFLOW_ADMIN_TOKEN")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            print(f"installed {folder} as version {json.load(response)['version']}")
            return 0
    except urllib.error.HTTPError as exc:
        print(f"refused ({exc.code}): {exc.read().decode('utf-8', 'replace')}", file=sys.stderr)
    except urllib.error.URLError as exc:
        print(f"cannot reach Gridflow at {_url(args)}: {exc.reason}", file=sys.stderr)
    return 2


def cmd_migrate(args) -> int:
    from gridflow_common import migrate
    from gridflow_common.db import make_engine

    migrate.upgrade_all(make_engine(args.database_url))
    print("migrated:", ", ".join(migrate.PACKAGES))
    return 0


def _runtimes(database_url: str | None):
    from gridflow_common.clock import make_clock
    from gridflow_common.db import make_engine
    from gridflow_common.embedded import load_definitions
    from gridflow_common.jurisdictions import JurisdictionStore
    from gridflow_common.runtime import ServiceRuntime

    engine = make_engine(database_url)
    clock = make_clock(engine)
    store = JurisdictionStore(engine)
    defs = load_definitions()
    return {name: (ServiceRuntime(name, engine, clock, store, d.tables()), d)
            for name, d in defs.items()}


def cmd_dead_letters(args) -> int:
    runtimes = _runtimes(args.database_url)
    if args.action == "list":
        for name, (runtime, _) in runtimes.items():
            if args.service and name != args.service:
                continue
            for letter in runtime.dead_letters():
                print(json.dumps({k: (v.isoformat() if hasattr(v, "isoformat") else v)
                                  for k, v in letter.items() if k != "message"},
                                 ensure_ascii=False))
        return 0
    runtime, _ = runtimes[args.service]
    if runtime.replay_dead_letter(args.id):
        print(f"{args.service} dead letter {args.id} is due for another try")
        return 0
    print(f"{args.service} has no dead letter {args.id}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["replay"]:
        return cmd_replay(argv[1:])
    parser = argparse.ArgumentParser(prog="gridflow")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="all five services in one process (the embedded default)")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument("--clock", choices=("real", "simulated"), default=None,
                     help="default: GRIDFLOW_CLOCK, else real")
    run.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    sub.add_parser("replay", help="replay scenario files (see scenarios/FORMAT.md)")
    imp = sub.add_parser("import", help="install a jurisdiction folder (CSV) through the API")
    imp.add_argument("folder")
    imp.add_argument("--url", default=None)
    mig = sub.add_parser("migrate", help="upgrade every service's tables")
    mig.add_argument("--database-url", default=None)
    dl = sub.add_parser("dead-letters", help="list or replay messages given up on")
    dl.add_argument("action", choices=("list", "replay"))
    dl.add_argument("--service", default=None)
    dl.add_argument("--id", type=int, default=None)
    dl.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)
    if args.command == "dead-letters" and args.action == "replay" and (
            not args.service or args.id is None):
        parser.error("dead-letters replay needs --service and --id")
    return {"run": cmd_run, "import": cmd_import, "migrate": cmd_migrate,
            "dead-letters": cmd_dead_letters}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
