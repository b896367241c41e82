"""`govtui init` and `govtui demo`."""

from __future__ import annotations

import argparse
import sys

from govtui import db, migrations
from govtui.cli import arguments
from govtui.cli.context import Context
from govtui.errors import InputError
from govtui.services import demo, identity, keyring_migration, privilege


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("init", help="create or upgrade the database schema (idempotent)")
    p.set_defaults(handler=run_init)
    p = sub.add_parser("demo", help="fill an empty database with demo data")
    p.add_argument(
        "--contractors",
        type=arguments.bounded_int(0, 100_000),
        default=400,
        help="how many (default 400)",
    )
    # A directory to register before any grant (scripts/run --demo starts a private slapd),
    # so that every demo change queues its directory operations.
    p.add_argument("--directory-url", metavar="URL", help="register this directory target")
    p.add_argument("--bind-dn", metavar="DN", help="with --directory-url: its bind DN")
    p.add_argument("--users-base", metavar="DN", help="with --directory-url: where users are")
    p.add_argument("--groups-base", metavar="DN", help="with --directory-url: where groups go")
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="with --directory-url: read its bind password from stdin",
    )
    p.add_argument(
        "--ca-file",
        metavar="PATH",
        help="with an ldaps:// --directory-url: the CA certificate(s) that signed its certificate",
    )
    p.set_defaults(handler=run_demo)


def run_init(ctx: Context, args: argparse.Namespace) -> int:
    applied = migrations.upgrade(ctx.engine)
    where = db.redacted(ctx.url)
    if applied:
        names = ", ".join(f"{m.version} ({m.description})" for m in applied)
        print(f"database {where}: applied migration {names}; schema at version {migrations.LATEST}")
        if any(m.version == 4 for m in applied):
            # Bindings are new: operators were bound to their own names, which may be no one's
            # login; the first admin is bound to whoever upgrades (they hold the database).
            bound = ctx.workspace().act_system(
                privilege.bind_first_admin, by=f"system (init by {identity.os_login()})"
            )
            if bound is not None:
                print(f"operator {bound} (the first admin) is bound to login {identity.os_login()}")
    else:
        print(f"database {where}: schema already at version {migrations.LATEST}")
    # Keyring entries named the pre-version-4 way (by the URL) move to the database's id.
    moved = keyring_migration.migrate(ctx.engine, ctx.url)
    if moved.moved:
        print(f"moved {moved.moved} keyring entries to this database's id")
    for what in moved.missing:
        print(f"warning: no keyring entry for the {what} on this machine", file=sys.stderr)
    return 0


def _demo_directory(args: argparse.Namespace) -> demo.DemoDirectory | None:
    given = {
        "--bind-dn": args.bind_dn,
        "--users-base": args.users_base,
        "--groups-base": args.groups_base,
    }
    if args.directory_url is None:
        alone = {**given, "--ca-file": args.ca_file}
        extra = [flag for flag, value in alone.items() if value is not None]
        if extra or args.password_stdin:
            raise InputError(f"{(extra or ['--password-stdin'])[0]} needs --directory-url")
        return None
    missing = [flag for flag, value in given.items() if value is None]
    if missing or not args.password_stdin:
        raise InputError(f"--directory-url needs {(missing or ['--password-stdin'])[0]}")
    password = sys.stdin.readline().rstrip("\n")
    if not password:
        raise InputError("--password-stdin read an empty bind password")
    return demo.DemoDirectory(
        url=args.directory_url,
        bind_dn=args.bind_dn,
        users_base=args.users_base,
        groups_base=args.groups_base,
        password=password,
        ca_file=args.ca_file,
    )


def run_demo(ctx: Context, args: argparse.Namespace) -> int:
    directory = _demo_directory(args)
    admin = ctx.workspace().act_system(demo.load, contractors=args.contractors, directory=directory)
    print(f"demo data loaded; act as the demo admin with --as {admin} or GOVTUI_OPERATOR={admin}")
    return 0
