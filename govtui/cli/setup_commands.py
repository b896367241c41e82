"""`govtui init` and `govtui demo`."""

from __future__ import annotations

import argparse
import sys

from govtui import db, migrations
from govtui.cli import arguments
from govtui.cli.context import Context
from govtui.services import demo, keyring_migration


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
    p.set_defaults(handler=run_demo)


def run_init(ctx: Context, args: argparse.Namespace) -> int:
    applied = migrations.upgrade(ctx.engine)
    where = db.redacted(ctx.url)
    if applied:
        names = ", ".join(f"{m.version} ({m.description})" for m in applied)
        print(f"database {where}: applied migration {names}; schema at version {migrations.LATEST}")
    else:
        print(f"database {where}: schema already at version {migrations.LATEST}")
    # Keyring entries named the pre-version-4 way (by the URL) move to the database's id.
    moved = keyring_migration.migrate(ctx.engine, ctx.url)
    if moved.moved:
        print(f"moved {moved.moved} keyring entries to this database's id")
    for what in moved.missing:
        print(f"warning: no keyring entry for the {what} on this machine", file=sys.stderr)
    return 0


def run_demo(ctx: Context, args: argparse.Namespace) -> int:
    admin = ctx.workspace().act_system(demo.load, contractors=args.contractors)
    print(f"demo data loaded; act as the demo admin with --as {admin} or GOVTUI_OPERATOR={admin}")
    return 0
