"""Engine and sessions: SQLite (WAL, FULL sync, foreign keys, BEGIN IMMEDIATE) or PostgreSQL.

Every service operation runs inside exactly one `write_session`; helpers never commit. What
must happen outside the database (keyring writes, the audit checkpoint, a counted TOTP failure)
is queued on the session with `after_commit` / `on_rollback` and runs once the outcome is known.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import NullPool
from sqlmodel import Session, create_engine

from govtui.errors import AfterCommitError, ConfigurationError

BUSY_TIMEOUT_MS = 15_000


def default_url() -> str:
    """The SQLite file in the user's data directory (XDG_DATA_HOME, else ~/.local/share)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return f"sqlite:///{Path(base) / 'govtui' / 'govtui.db'}"


def resolve_url(url: str | None) -> str:
    """The database URL to use: the argument, else GOVTUI_DB, else the default file."""
    return url or os.environ.get("GOVTUI_DB") or default_url()


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL, or None for other databases and in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database or "")


def session_url(session: Session) -> str:
    """The password-free URL of the database a session works on."""
    return session.get_bind().engine.url.render_as_string(hide_password=True)


def redacted(url: str) -> str:
    """The URL with any password hidden, safe for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def make_engine(url: str) -> Engine:
    """Create an engine with govtui's connection rules for the URL's backend."""
    try:
        parsed: URL = make_url(url)
    except ArgumentError as exc:
        raise ConfigurationError(f"not a database URL: {url!r}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _tracked(_sqlite_engine(parsed))
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return _tracked(create_engine(parsed, pool_pre_ping=True))
    raise ConfigurationError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")


# The DBAPI connections each engine has handed out and not taken back: what `interrupt`
# stops. Weak: an engine that is dropped takes its set with it.
_IN_USE: weakref.WeakKeyDictionary[Engine, set[Any]] = weakref.WeakKeyDictionary()
_IN_USE_LOCK = threading.Lock()


def _tracked(engine: Engine) -> Engine:
    in_use: set[Any] = set()
    _IN_USE[engine] = in_use

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        with _IN_USE_LOCK:
            in_use.add(dbapi_connection)

    @event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_connection: Any, _record: Any) -> None:
        with _IN_USE_LOCK:
            in_use.discard(dbapi_connection)

    return engine


def interrupt(engine: Engine) -> int:
    """Stop every statement running on the engine's connections now (the TUI quitting): each
    raises in its own thread and its transaction rolls back, so nothing is half-written. The
    engine stays usable. How many connections were asked."""
    with _IN_USE_LOCK:
        connections = list(_IN_USE.get(engine, ()))
    for connection in connections:
        halt = getattr(connection, "interrupt", None) or getattr(connection, "cancel", None)
        if halt is not None:
            with contextlib.suppress(Exception):  # closed meanwhile: nothing to stop
                halt()
    return len(connections)


def _sqlite_engine(url: URL) -> Engine:
    path = sqlite_path(url.render_as_string(hide_password=False))
    if path is not None:
        _create_private(path)
        _require_sqlite(path)
    read_only = path is not None and not _writable(path)
    timeout = BUSY_TIMEOUT_MS / 1000
    options: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": timeout}}
    if read_only and path is not None:
        # A read-only copy: open it read-only, so that listing and verifying need no write at
        # all. In a read-only folder SQLite cannot make the -shm file a WAL reader needs, so
        # the file is opened as immutable (nobody can change it there anyway).
        immutable = "&immutable=1" if not os.access(path.parent, os.W_OK | os.X_OK) else ""
        uri = f"file:{quote(str(path.absolute()))}?mode=ro{immutable}"
        options = {
            "creator": lambda: sqlite3.connect(
                uri, uri=True, check_same_thread=False, timeout=timeout
            )
        }
    # NullPool: a connection per session, so worker threads in the TUI never share one.
    engine = create_engine(url, poolclass=NullPool, **options)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own transaction handling would issue a deferred BEGIN; take it over so
        # writers can say BEGIN IMMEDIATE and never deadlock upgrading a read lock.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if read_only:
            cursor.execute("PRAGMA query_only=ON")
        else:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        readonly = connection.get_execution_options().get("govtui_readonly", False)
        if read_only and not readonly:
            raise ConfigurationError(
                f"the database {path} is read-only: it can be listed and verified, not changed"
            )
        connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


_SQLITE_HEADER = b"SQLite format 3\x00"


def _require_sqlite(path: Path) -> None:
    """Refuse, in one line, a --db naming another file, a folder or a FIFO (SQLite's own
    "file is not a database" would surface only at the first query, as a DatabaseError)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # NONBLOCK: a FIFO must not hang
    except OSError as exc:
        raise ConfigurationError(f"the database {path} cannot be read: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigurationError(f"{path} is not a SQLite database (not a regular file)")
        head = os.read(fd, len(_SQLITE_HEADER))
    except OSError as exc:
        raise ConfigurationError(f"the database {path} cannot be read: {exc.strerror}") from None
    finally:
        os.close(fd)
    if head and head != _SQLITE_HEADER:  # an empty file is a new database to SQLite
        raise ConfigurationError(f"{path} is not a SQLite database (--db names another file)")


def _writable(path: Path) -> bool:
    """Whether an existing database file can be opened for writing (a missing one is made)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)  # NONBLOCK: a FIFO in its place never hangs
    except FileNotFoundError:
        return True
    except OSError:
        return False  # EACCES, EROFS: a read-only copy
    os.close(fd)
    return True


def _create_private(path: Path) -> None:
    """Make a missing database file 0600 (its folder 0700) before SQLite opens it: SQLite
    would make it 0644 under the usual umask, and gives -wal and -shm the file's own mode."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return  # an existing database (or a link to one) keeps the mode its owner gave it
    except OSError as exc:
        raise ConfigurationError(f"cannot create the database {path}: {exc.strerror}") from None
    try:
        os.fchmod(fd, 0o600)  # the umask masks O_CREAT's mode; say it outright
    finally:
        os.close(fd)


_QUEUES = "govtui_effects"


@dataclass
class _Effects:
    """What a write_session runs once its transaction has ended, in the order queued."""

    after_commit: list[Callable[[], None]] = field(default_factory=list)
    on_rollback: list[Callable[[], None]] = field(default_factory=list)
    # Keys of the after-commit effects queued once per transaction (`after_commit_once`).
    once: set[str] = field(default_factory=set)


def _effects(session: Session) -> _Effects:
    effects = session.info.get(_QUEUES)
    if not isinstance(effects, _Effects):
        # Queued effects would silently never run on a session nobody commits through here.
        raise RuntimeError("after-commit effects need a session opened by db.write_session")
    return effects


def after_commit(session: Session, effect: Callable[[], None]) -> None:
    """Run `effect` right after the session's transaction commits; never if it rolls back."""
    _effects(session).after_commit.append(effect)


def after_commit_once(session: Session, key: str, effect: Callable[[], None]) -> bool:
    """Queue `effect` like `after_commit` unless an effect with `key` is queued already;
    True if it was queued now (the first call of the transaction, or after `keep_only`)."""
    effects = _effects(session)
    if key in effects.once:
        return False
    effects.once.add(key)
    effects.after_commit.append(effect)
    return True


def on_rollback(session: Session, effect: Callable[[], None]) -> None:
    """Run `effect` once the session's transaction has rolled back and released its
    connection (so the effect may open a write_session of its own); never after a commit."""
    _effects(session).on_rollback.append(effect)


def _run(effects: list[Callable[[], None]]) -> None:
    """Run every effect even if one fails (each is independent), then raise the first error."""
    first: BaseException | None = None
    for effect in effects:
        try:
            effect()
        except BaseException as exc:  # re-raised below, once the others have run
            first = first or exc
    if first is not None:
        raise first


_OPERATION = "govtui_operation"


def begin_operation(session: Session, holder_id: int) -> None:
    """Mark where an operation's own writes begin (a savepoint), after the caller has locked
    the row of `holder_id` (the acting operator): `keep_only` can then undo those writes and
    keep something else while that lock stays held."""
    session.info[_OPERATION] = (holder_id, session.begin_nested())


def operation_holder(session: Session) -> int | None:
    """The operator whose row was locked before the operation began, if one was."""
    marked = session.info.get(_OPERATION)
    return marked[0] if marked else None


def keep_only(session: Session, record: Callable[[Session], None]) -> None:
    """Undo the operation's writes and queued effects, write `record` instead and commit it
    at once, while the lock taken before `begin_operation` is still held (the savepoint keeps
    it, and on SQLite the writer lock too): nobody can act on the old state in between."""
    _holder, savepoint = session.info.pop(_OPERATION)
    effects = _effects(session)
    savepoint.rollback()
    effects.after_commit.clear()
    effects.on_rollback.clear()
    effects.once.clear()
    record(session)
    session.commit()
    queued, effects.after_commit = effects.after_commit, []
    _run(queued)


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """One write transaction: committed when the block ends, rolled back if it raises; the
    effects queued with `after_commit` or `on_rollback` run after the matching outcome."""
    effects = _Effects()
    with Session(engine, expire_on_commit=False, info={_QUEUES: effects}) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            session.close()  # releases the connection (SQLite: the writer lock) first
            _run(effects.on_rollback)
            raise
    try:
        _run(effects.after_commit)
    except Exception as exc:
        # The database change stands: say so, rather than let the effect's own error read
        # like a refusal that wrote nothing.
        raise AfterCommitError(f"the change was committed, but then {_one_line(exc)}") from exc


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:1].lower() + text[1:]


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A read-only session that takes no write lock (a deferred BEGIN on SQLite)."""
    # Closing (not rolling back) ends the transaction without expiring the loaded rows, so
    # callers may read them after the block.
    with Session(engine.execution_options(govtui_readonly=True), expire_on_commit=False) as session:
        yield session


def ident(row: Any) -> int:
    """The primary key of a flushed or loaded row (None only before the first flush)."""
    value = row.id
    if value is None:
        raise RuntimeError(f"{type(row).__name__} has no id yet: flush the session first")
    return int(value)
