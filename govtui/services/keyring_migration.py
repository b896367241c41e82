"""Keyring entries made before schema version 4 (named by a hash of the URL string) moved to
the names version 4 uses: TOTP secrets under a random per-secret reference stored on the
operator's row, bind passwords under the database's own id, with the bind settings' digest.

Run by `govtui init` after the schema upgrade. Each entry is copied first, the row pointed at
the copy in a transaction of its own, and the old entry deleted only after that commit; so an
interruption anywhere leaves a working state, and running it again finishes the job."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from govtui import db
from govtui.models import Operator
from govtui.security import secrets
from govtui.services import directory_targets, second_factor
from govtui.services.workspace import Workspace


@dataclass(frozen=True)
class Moved:
    """What one run moved, and the entries it could not find under any old name."""

    moved: int
    missing: tuple[str, ...]


def legacy_urls(database_url: str) -> list[str]:
    """The URL spellings an entry of this database may have been tagged with: the one given
    and, for a SQLite file, its absolute path and its path relative to the current folder."""
    urls = [db.redacted(database_url)]
    path = db.sqlite_path(database_url)
    if path is not None:
        absolute = path.resolve()
        urls.append(f"sqlite:///{absolute}")
        with contextlib.suppress(ValueError):  # another drive (Windows): no relative spelling
            urls.append(f"sqlite:///{os.path.relpath(absolute)}")
        urls.append(f"sqlite:///{Path(path)}")
    return list(dict.fromkeys(urls))


def _legacy(kind: str, name: str, urls: list[str]) -> tuple[str, str] | None:
    """The first old entry found for (kind, name): its key and its secret."""
    for url in urls:
        key = secrets.legacy_entry_key(kind, name, url)
        value = secrets.load(key)
        if value is not None:
            return key, value
    return None


def migrate(engine: Engine, database_url: str) -> Moved:
    """Move every pre-version-4 keyring entry of this database; safe to run again."""
    workspace = Workspace(engine, "")
    with db.read_session(engine) as session:
        ops = session.exec(
            select(Operator).where(
                col(Operator.totp_enrolled_at).is_not(None)
                | col(Operator.totp_pending_at).is_not(None)
            )
        ).all()
        targets = directory_targets.all_targets(session)
    if not ops and not targets:
        return Moved(0, ())  # nothing could be in the keyring: do not insist on one
    secrets.require_safe_backend()
    urls = legacy_urls(database_url)
    moved = 0
    missing: list[str] = []
    for op in ops:
        for pending, kind in ((False, "totp"), (True, "totp-pending")):
            if (op.totp_pending_at if pending else op.totp_enrolled_at) is None:
                continue
            found = _legacy(kind, op.name, urls)
            if found is None:
                if (op.totp_pending_ref if pending else op.totp_secret_ref) is None:
                    missing.append(f"{kind} of operator {op.name}")
                continue
            if workspace.act_system(_point_at_copy, op.name, found, pending=pending):
                moved += 1
    for target in targets:
        found = _legacy("directory", target.name, urls)
        if found is None:
            continue
        if workspace.read(_has_new_password, target.name) is None:
            workspace.read(directory_targets.store_password, target.name, found[1])
            moved += 1
        secrets.delete(found[0])  # the copy is in place (this run's or an earlier one's)
    return Moved(moved, tuple(missing))


def _point_at_copy(session: Session, name: str, found: tuple[str, str], *, pending: bool) -> bool:
    """Copy an old TOTP entry to a fresh reference and point the row at it (unless an earlier
    run did); the old entry goes after the commit. Whether a copy was made."""
    old_key, secret = found
    op = session.exec(select(Operator).where(Operator.name == name)).one()
    column = "totp_pending_ref" if pending else "totp_secret_ref"
    current: str | None = getattr(op, column)
    if current is None:
        ref = secrets.new_ref()
        key = second_factor.totp_entry(session, ref)
        secrets.store(key, secret)
        db.on_rollback(session, lambda: secrets.delete(key))
        session.execute(
            update(Operator)
            .where(col(Operator.id) == op.id, getattr(Operator, column).is_(None))
            .values({column: ref})
        )
        copied = True
    else:
        # An earlier run pointed the row at its copy: delete the old entry only if the copy
        # is really there (else put it back there first).
        key = second_factor.totp_entry(session, current)
        copied = secrets.load(key) is None
        if copied:
            secrets.store(key, secret)
    db.after_commit(session, lambda: secrets.delete(old_key))
    return copied


def _has_new_password(session: Session, name: str) -> str | None:
    key = directory_targets.password_key(session, name)
    return secrets.load(key)
