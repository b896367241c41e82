"""Argument parsing and the one place where errors become messages and exit codes."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from sqlalchemy.exc import IntegrityError, OperationalError

from govtui import db
from govtui.cli.context import Context, acting_name
from govtui.errors import GovtuiError
from govtui.text import one_line

MAX_ERROR = 1000  # a message of govtui's own may be long (a hint, a step to take); not more

# The modules that register the commands (each has `register(sub)`), in --help order, and the
# top-level commands each one registers. A command imports only its own module and what that
# needs: `govtui sync` run from cron or a pause spends most of a small run starting up, and
# loading every service (grants, pauses, the demo, QR codes) for it is waste. A test checks
# this table against what the modules register.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "govtui.cli.setup_commands": ("init", "demo"),
    "govtui.cli.catalog_commands": ("client", "project", "scope"),
    "govtui.cli.people_commands": ("contractor", "operator"),
    "govtui.cli.grant_commands": ("grant", "expire"),
    "govtui.cli.directory_commands": ("directory", "sync", "reconcile"),
    "govtui.cli.audit_commands": ("audit",),
}
_GLOBAL_OPTIONS_WITH_VALUE = ("--db", "--as")


def command_groups(argv: Sequence[str] | None = None) -> list[ModuleType]:
    """The command modules the command line needs: the one owning its command, or all of them
    (no command, an unknown one, or --help before it: argparse then lists every command)."""
    names = list(COMMAND_MODULES)
    word = None if argv is None else _command_word(argv)
    owner = [name for name, commands in COMMAND_MODULES.items() if word in commands]
    return [importlib.import_module(name) for name in (owner or names)]


def _command_word(argv: Sequence[str]) -> str | None:
    """The first word that is not a global option or its value."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _GLOBAL_OPTIONS_WITH_VALUE:
            skip = True
        elif arg.startswith("-"):
            if not arg.startswith(tuple(f"{o}=" for o in _GLOBAL_OPTIONS_WITH_VALUE)):
                return None  # --help, or a mistake argparse should report with every command
        else:
            return arg
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The command line: every command, or (given the arguments) the module of the one they
    name; with no command, govtui opens the TUI."""
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
    for group in command_groups(argv):
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command (or the TUI) and return the exit code."""
    words = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(words).parse_args(words)
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
