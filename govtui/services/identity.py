"""Who is at the keyboard: the principal an operator must be to act as them.

The OS login comes from the effective uid (never $USER, $LOGNAME or getpass.getuser(), which
read environment variables anyone can set); on PostgreSQL the database role that
authenticated the connection (`session_user`, which SET ROLE does not change)."""

from __future__ import annotations

import os
import pwd

import sqlalchemy as sa
from sqlmodel import Session, col, select

from govtui.errors import ConfigurationError, PolicyError
from govtui.models import Operator


def os_login() -> str:
    """The login name of the effective uid running this process."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError as exc:
        raise ConfigurationError(
            f"uid {os.geteuid()} has no login name: govtui cannot tell who you are"
        ) from exc


def is_postgres(session: Session) -> bool:
    """Whether the session talks to PostgreSQL (which authenticates its roles)."""
    return session.get_bind().dialect.name == "postgresql"


def session_user(session: Session) -> str | None:
    """PostgreSQL's `session_user` (the authenticated role), or None on SQLite."""
    if not is_postgres(session):
        return None
    return str(session.execute(sa.text("SELECT session_user")).scalar_one())


def login_of(operator: Operator) -> str:
    """The login an operator is bound to (rows made before binding existed: their name)."""
    return operator.login or operator.name


def require_bound(session: Session, operator: Operator) -> None:
    """Refuse unless the person running govtui may act as `operator`: not removed, their OS
    login, and (when the operator has a database role) PostgreSQL's session_user."""
    if operator.disabled_at is not None:
        raise PolicyError(f"operator {operator.name!r} was removed and can no longer act")
    login, me = login_of(operator), os_login()
    if login != me:
        raise PolicyError(
            f"operator {operator.name!r} is bound to login {login!r}; you are logged in as {me!r}"
        )
    if operator.db_role is not None:
        user = session_user(session)
        if user != operator.db_role:
            raise PolicyError(
                f"operator {operator.name!r} is bound to database role {operator.db_role!r}; "
                f"this connection is {user or 'not PostgreSQL'!r}"
            )
    if not operator.shared_login:
        # A row changed behind govtui's back (or a binding made before the rule) must not
        # let a second operator on the same login act without --shared-login.
        others = sharers(session, login, but=operator.id)
        if others:
            raise PolicyError(
                f"login {login!r} is shared with {', '.join(others)} but operator "
                f"{operator.name!r} is not marked --shared-login"
            )


def sharers(session: Session, login: str, *, but: int | None = None) -> list[str]:
    """The enabled operators bound to `login`, except the one with id `but`, by name."""
    rows = session.exec(
        select(Operator).where(col(Operator.disabled_at).is_(None)).order_by(Operator.name)
    ).all()
    return [op.name for op in rows if login_of(op) == login and op.id != but]


def check_binding(
    session: Session,
    *,
    name: str,
    login: str,
    db_role: str | None,
    shared_login: bool,
    operator_id: int | None = None,
) -> None:
    """Refuse a binding that would let one principal act as two operators unmarked, or a
    database role where the database cannot authenticate one."""
    if db_role is not None and not is_postgres(session):
        raise PolicyError("--db-role needs PostgreSQL: SQLite has no roles to check")
    others = sharers(session, login, but=operator_id)
    if not others:
        return
    if not shared_login:
        raise PolicyError(
            f"login {login!r} is bound to {', '.join(others)} already: binding {name!r} to it "
            "too needs --shared-login (it defeats separation of duties)"
        )
    unmarked = [
        op.name
        for op in session.exec(select(Operator).where(col(Operator.name).in_(others))).all()
        if not op.shared_login
    ]
    if unmarked:
        raise PolicyError(
            f"login {login!r} is bound to {', '.join(unmarked)} without --shared-login: "
            f"mark them shared first (`govtui operator bind NAME --shared-login`)"
        )
