"""What every command needs: the database, who is acting, and how to print."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.engine import Engine

from govtui import db, migrations
from govtui.services import identity
from govtui.services.workspace import Workspace
from govtui.text import escaped

Handler = Callable[["Context", argparse.Namespace], int]


def acting_name(explicit: str | None) -> str:
    """Who is acting: --as, else GOVTUI_OPERATOR, else the OS login. Naming an operator is
    not proof of being them: Workspace checks the operator is bound to this principal."""
    return explicit or os.environ.get("GOVTUI_OPERATOR") or identity.os_login()


@dataclass
class Context:
    url: str
    actor_name: str
    _engine: Engine | None = field(default=None, repr=False)

    @property
    def engine(self) -> Engine:
        """The engine, created on first use so `--help` never touches a database."""
        if self._engine is None:
            self._engine = db.make_engine(self.url)
        return self._engine

    def ready_engine(self) -> Engine:
        """The engine of a database whose schema is current (else a clear error)."""
        migrations.require_current(self.engine)
        return self.engine

    def workspace(self) -> Workspace:
        """The current database's workspace, acting as the resolved operator."""
        return Workspace(self.ready_engine(), self.actor_name)


def to_jsonable(value: Any) -> Any:
    """Dataclasses, dates and tuples as plain JSON values."""
    if value is None or isinstance(value, str | int | float):  # the most values: first
        return value
    if is_dataclass(value) and not isinstance(value, type):
        # Field by field, not asdict(): that deep-copies every value first (9/10 of the time
        # of a streamed `grant list --jsonl`).
        return {f.name: to_jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return value


class Styled(str):
    """A table cell govtui styled itself (a red INSECURE): printed as it is, not escaped."""


# What json.dumps leaves raw with ensure_ascii=False yet a terminal obeys or reorders: DEL,
# C1 (0x9b is CSI), bidi controls, line separators. It escapes C0 itself. These characters can
# only occur inside JSON strings, where \uXXXX is the same value.
_JSON_HOSTILE = re.compile(r"[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def json_text(value: Any, indent: int | None = 2) -> str:
    """A value as JSON text in which nothing acts on a terminal (for streamed rows too)."""
    text = json.dumps(to_jsonable(value), indent=indent, ensure_ascii=False)
    return _JSON_HOSTILE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def print_json(value: Any) -> None:
    """Write a value as indented JSON on stdout (nothing in it acts on a terminal)."""
    sys.stdout.write(json_text(value) + "\n")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Styled):
        return value
    # Old rows may hold what input now refuses (ESC[1A, U+202E): shown whole, escaped.
    return escaped(value)


# Columns are padded to their widest cell up to this: a longer cell is shown whole but pads
# nothing (one 100,000-character name planted by SQL made every line of a list 100 KB long).
PAD_LIMIT = 120


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Write rows as aligned columns, or a line saying there are none; control and bidi
    characters in the data are shown as visible escapes."""
    if not rows:
        print("(none)")
        return
    cells = [[str(h) for h in headers]] + [[_cell(c) for c in row] for row in rows]
    widths = [min(max(len(row[i]) for row in cells), PAD_LIMIT) for i in range(len(headers))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def print_progress(handled: int, total: int) -> None:
    """A one-line progress bar on stderr, redrawn in place, ended when complete."""
    width = 30
    filled = width * handled // max(total, 1)
    bar = "#" * filled + "-" * (width - filled)
    end = "" if handled < total else "\n"
    print(f"\r  directory [{bar}] {handled}/{total}", end=end, file=sys.stderr, flush=True)
