"""Argument parsing and the one place where errors become messages and exit codes."""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from sqlalchemy.exc import ArgumentError, DatabaseError, IntegrityError

from govtui import db
from govtui.cli.arguments import Parser
from govtui.cli.context import Context, acting_name
from govtui.errors import GovtuiError
from govtui.security import secrets
from govtui.text import cut_quoted, hostile_char, one_line, quoted

MAX_ERROR = 1000  # a message of govtui's own may be long (a hint, a step to take); not more
MAX_DETAIL = 200  # what Python or a driver says about an error: enough to see what it was
MAX_WORD = 4096  # one value on the command line (PATH_MAX); a megabyte is a mistake or worse
# OSErrors that say the path given is wrong (bad input, exit 2); any other (a full disk, an
# I/O error, too many open files) is the environment failing (exit 1).
PATH_ERRORS = frozenset(
    {
        errno.ENOENT,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.EEXIST,
        errno.ENAMETOOLONG,
        errno.ELOOP,
        errno.EACCES,
        errno.EPERM,
        errno.EINVAL,
        errno.ENXIO,
    }
)

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
    "govtui.cli.review_commands": ("review",),
    "govtui.cli.directory_commands": ("directory", "sync", "reconcile"),
    "govtui.cli.audit_commands": ("audit",),
    "govtui.cli.evidence_commands": ("evidence",),
    "govtui.cli.doctor_commands": ("doctor",),
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
    parser = Parser(
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
    """Run one command (or the TUI) and return the exit code.

    Exit codes: 0 done; 2 refused, nothing written (a GovtuiError, bad input, a value Python
    or the database cannot take, a path that is wrong); 1 the environment failed (an OSError
    other than a wrong path) or a step after the commit failed (AfterCommitError)."""
    words = sys.argv[1:] if argv is None else list(argv)
    refusal = _refused_word(words)
    if refusal is not None:
        print(f"govtui: error: {refusal}", file=sys.stderr)
        return 2
    args = build_parser(words).parse_args(words)
    secrets.choose_backend()
    url = "(not resolved)"
    try:
        url = db.resolve_url(args.db)
        ctx = Context(url=url, actor_name=acting_name(args.actor))
        if getattr(args, "handler", None) is None:
            return _run_tui(ctx)
        code: int = args.handler(ctx, args)
        return code
    except GovtuiError as exc:
        # Every message goes out escaped and on one line: parts of many come from outside
        # (a directory server's diagnostic, a file being imported, a value typed).
        return _fail(one_line(cut_quoted(str(exc)), MAX_ERROR), exc.exit_code)
    except IntegrityError as exc:
        # A concurrent change slipped past the service's checks; nothing was written.
        why = one_line(exc.orig, MAX_DETAIL)
        return _fail(f"conflicting change, nothing written ({why})", 2)
    except DatabaseError as exc:
        # OperationalError (locked, unreachable) and the rest: a file that is not a database,
        # a statement it refused. The transaction was rolled back.
        where = one_line(f"database {db.redacted(url)}: {exc.orig}", MAX_ERROR)
        return _fail(where, 2)
    except ArgumentError as exc:
        return _fail(f"database URL {quoted(db.redacted(url))}: {one_line(exc, MAX_DETAIL)}", 2)
    except BrokenPipeError:
        # The reader (`| head`) went away: not an error of ours, and nothing to say.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("govtui: interrupted, nothing more written", file=sys.stderr)
        return 130
    except RecursionError:
        return _fail("the input is nested too deeply to read; nothing written", 2)
    except OSError as exc:
        what = exc.strerror or type(exc).__name__
        path = f": {quoted(exc.filename)}" if exc.filename is not None else ""
        code = 2 if exc.errno in PATH_ERRORS else 1
        return _fail(f"{one_line(what, MAX_DETAIL)}{path}", code)
    except (ValueError, OverflowError) as exc:
        # A value past what Python, a driver or a library takes (a date out of range, a
        # number too large): the transaction it happened in was rolled back.
        return _fail(f"value out of range: {one_line(exc, MAX_DETAIL)}; nothing written", 2)


def _fail(message: str, code: int) -> int:
    print(f"govtui: error: {message}", file=sys.stderr)
    return code


def _refused_word(words: Sequence[str]) -> str | None:
    """Why the command line is refused before it is parsed, or None: a word holding a
    control or bidi character (ESC[1A, U+202E) is never a name, a reason or a path a person
    means, and a word of a megabyte is not one either."""
    for number, word in enumerate(words, start=1):
        bad = hostile_char(word)
        if bad is not None:
            return (
                f"argument {number} ({quoted(word, 40)}) contains the control character "
                f"U+{ord(bad):04X}; use printable text"
            )
        if len(word) > MAX_WORD:
            return f"argument {number} is {len(word)} characters long: at most {MAX_WORD}"
        if word.startswith("--") and word.endswith("=--"):
            # argparse drops a value of `--` and hands the command an empty list instead.
            return f"argument {number} ({quoted(word, 40)}) has `--` as its value; give a real one"
    return None


def _run_tui(ctx: Context) -> int:
    from govtui.services import demo
    from govtui.tui.app import GovtuiApp  # Textual loads only when the TUI is wanted

    workspace = ctx.workspace()
    GovtuiApp(workspace, demo=workspace.read(demo.is_demo), doctor=True).run()
    return 0
