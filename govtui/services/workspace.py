"""The one entry point that opens a transaction for an operation, used by the CLI and the TUI.

A front end holds a `Workspace` (the database and who acts) and hands it service functions:
`act` runs one in a write transaction as the acting operator, looked up inside that
transaction so a lock-out or an enrolment is always current; `read` runs one in a read-only
session that never takes the write lock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy.engine import Engine
from sqlmodel import Session

from govtui import db
from govtui.models import Operator
from govtui.services import identity, operators, second_factor

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Workspace:
    """One database and the name of the operator acting on it."""

    engine: Engine
    actor_name: str

    def act(
        self,
        fn: Callable[Concatenate[Session, Operator, P], R],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R:
        """Run `fn(session, actor, ...)` in one write transaction, committed when it returns.

        The actor's row is locked first, so a TOTP code the operation rejects is counted
        (second_factor) before anyone else can try a code as them. Only the principal the
        operator is bound to may act as them (identity.require_bound)."""
        with db.write_session(self.engine) as session:
            actor = operators.find(session, self.actor_name)
            identity.require_bound(session, actor)
            db.begin_operation(session, second_factor.hold(session, actor))
            return fn(session, actor, *args, **kwargs)

    def act_system(
        self, fn: Callable[Concatenate[Session, P], R], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Run `fn(session, ...)` in one write transaction that needs no operator's authority
        (expiry, demo data, the first operator); `fn` names the actor for the audit itself."""
        with db.write_session(self.engine) as session:
            return fn(session, *args, **kwargs)

    def interrupt(self) -> None:
        """Stop the statements running for this workspace's database now (quitting): each
        fails in its worker and rolls back."""
        db.interrupt(self.engine)

    def read(
        self, fn: Callable[Concatenate[Session, P], R], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Run `fn(session, ...)` in a read-only session (no write lock)."""
        with db.read_session(self.engine) as session:
            return fn(session, *args, **kwargs)

    def read_as(
        self,
        fn: Callable[Concatenate[Session, Operator, P], R],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R:
        """Run `fn(session, actor, ...)` in a read-only session, for views of the acting
        operator (their approval queue, their enrolment)."""
        with db.read_session(self.engine) as session:
            actor = operators.find(session, self.actor_name)
            identity.require_bound(session, actor)
            return fn(session, actor, *args, **kwargs)
