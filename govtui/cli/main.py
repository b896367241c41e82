"""Argument parsing and the one place where errors become messages and exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError, OperationalError

from govtui import db
from govtui.cli import (
    audit_commands,
    catalog_commands,
    directory_commands,
    grant_commands,
    people_commands,
    setup_commands,
)
from govtui.cli.context import Context, acting_name
from govtui.errors import GovtuiError
from govtui.text import one_line

MAX_ERROR = 1000  # a message of govtui's own may be long (a hint, a step to take); not more

COMMAND_GROUPS = (
    setup_commands,
    catalog_commands,
    people_commands,
    grant_commands,
    directory_commands,
    audit_commands,
)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; with no command, govtui opens the TUI."""
    parser = argparse.ArgumentParser(
        prog="govtui",
        description="Govern contractor access to client datasets. With no command, opens the TUI.",
    )
    parser.add_argument(
        "--db",
        metavar="URL",
        help="database URL (default: $GOVTUI_DB, else a SQLite file in your data directory)",
    )
    parser.add_argument(
        "--as",
        dest="actor",
        metavar="NAME",
        help="act as this operator (default: $GOVTUI_OPERATOR, else your login name)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command (or the TUI) and return the exit code."""
    args = build_parser().parse_args(argv)
    ctx = Context(url=db.resolve_url(args.db), actor_name=acting_name(args.actor))
    try:
        if getattr(args, "handler", None) is None:
            return _run_tui(ctx)
        code: int = args.handler(ctx, args)
        return code
    except GovtuiError as exc:
        # Every message goes out escaped and on one line: parts of many come from outside
        # (a directory server's diagnostic, a file being imported, a value typed).
        print(f"govtui: error: {one_line(exc, MAX_ERROR)}", file=sys.stderr)
        return exc.exit_code
    except IntegrityError as exc:
        # A concurrent change slipped past the service's checks; nothing was written.
        why = one_line(exc.orig)
        print(f"govtui: error: conflicting change, nothing written ({why})", file=sys.stderr)
        return 2
    except OperationalError as exc:
        where = one_line(f"database {db.redacted(ctx.url)}: {exc.orig}", MAX_ERROR)
        print(f"govtui: error: {where}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader (`| head`) went away: not an error of ours, and nothing to say.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("govtui: interrupted, nothing more written", file=sys.stderr)
        return 130


def _run_tui(ctx: Context) -> int:
    from govtui.tui.app import GovtuiApp  # Textual loads only when the TUI is wanted

    GovtuiApp(ctx.workspace()).run()
    return 0
