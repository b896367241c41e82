"""Secrets live in the OS keyring and nowhere else: not the database, logs or the screen.

A keyring backend that does not protect secrets (keyring's `fail` and `null` backends, any
plaintext file backend) is refused with a message that says how to get a real one.
"""

from __future__ import annotations

import hashlib
import secrets as random_source
import sys

import keyring
import keyring.core
import keyring.errors
from keyring.backend import KeyringBackend
from keyring.backends import SecretService, fail
from keyring.backends.chainer import ChainerBackend
from sqlmodel import Session

from govtui.errors import ConfigurationError
from govtui.models import DatabaseIdentity

SERVICE = "govtui"
_UNSAFE_MODULES = ("keyring.backends.fail", "keyring.backends.null", "keyrings.alt")


def _unsafe(backend: KeyringBackend) -> bool:
    kind = type(backend)
    if kind.__module__.startswith(_UNSAFE_MODULES) or "plaintext" in kind.__name__.lower():
        return True
    if isinstance(backend, ChainerBackend):
        # The chainer writes to the first of its backends that accepts: any unsafe one in the
        # chain could end up holding a secret.
        children = getattr(backend, "backends", None)
        return not children or any(_unsafe(child) for child in children)
    return False


def choose_backend() -> None:
    """Pick the keyring backend before anything uses one, without keyring's detection.

    The detection imports every backend to ask its priority, and on Linux the macOS one calls
    ctypes.util.find_library, which runs `gcc` and `ld` found on PATH: a program named `ld`
    early on PATH would run inside every govtui start. On Linux the backend is therefore the
    one the user named (PYTHON_KEYRING_BACKEND or keyringrc.cfg, each loading only that
    backend), else the Secret Service when one answers, else keyring's `fail` backend, which
    require_safe_backend refuses with how to get a real one. A backend set already
    (keyring.set_keyring: the tests, a program embedding govtui) is kept."""
    # keyring keeps its choice in a module global and has no public way to ask whether one
    # was made without making it (get_keyring runs the detection); keyring is pinned.
    if not sys.platform.startswith("linux") or keyring.core._keyring_backend is not None:
        return
    chosen: KeyringBackend
    try:
        chosen = keyring.core.load_env() or keyring.core.load_config() or _secret_service()
    except Exception:  # a backend named but not usable here: refused as "fail" when used
        chosen = fail.Keyring()  # type: ignore[no-untyped-call]
    keyring.set_keyring(chosen)


def _secret_service() -> KeyringBackend:
    try:
        SecretService.Keyring.priority  # noqa: B018 - raises when no Secret Service answers
    except RuntimeError:
        return fail.Keyring()  # type: ignore[no-untyped-call]
    return SecretService.Keyring()  # type: ignore[no-untyped-call]


def require_safe_backend() -> KeyringBackend:
    """The keyring backend in use, or a ConfigurationError if it would not protect secrets."""
    backend = keyring.get_keyring()
    if _unsafe(backend):
        kind = type(backend)
        raise ConfigurationError(
            f"the keyring backend {kind.__module__}.{kind.__name__} does not protect secrets; "
            "govtui keeps secrets only in a real OS keyring: start a Secret Service (e.g. "
            "gnome-keyring in your desktop session, or `dbus-run-session` with "
            "`gnome-keyring-daemon --unlock`), or set PYTHON_KEYRING_BACKEND to a real backend"
        )
    return backend


def database_id(session: Session) -> str:
    """The database's own random id (schema version 4): what its keyring entries are keyed by,
    so a moved, copied or differently spelt database still finds them."""
    row = session.get(DatabaseIdentity, 1)
    if row is None:
        raise ConfigurationError("the database has no id yet: run `govtui init`")
    return row.database_id


def entry_key(kind: str, name: str, database_id: str) -> str:
    """The keyring entry `kind:name@database_id` of one secret: two databases' secrets never
    collide, and the URL that names the database does not matter."""
    return f"{kind}:{name}@{database_id}"


def legacy_entry_key(kind: str, name: str, database_url: str) -> str:
    """The entry name before schema version 4, tagged by a hash of the URL string (only the
    keyring migration still reads it)."""
    tag = hashlib.sha256(database_url.encode()).hexdigest()[:12]
    return f"{kind}:{name}@{tag}"


def new_ref() -> str:
    """A fresh random name for a keyring entry (TOTP secrets: one per secret ever made)."""
    return random_source.token_hex(16)


def _call(action: str, func: object, *args: str) -> str | None:
    require_safe_backend()
    try:
        return func(*args)  # type: ignore[operator, no-any-return]
    except keyring.errors.KeyringError as exc:
        raise ConfigurationError(f"the OS keyring refused to {action}: {exc}") from None


def store(key: str, secret: str) -> None:
    """Keep a secret under `key` in the govtui service of the keyring."""
    _call("store a secret", keyring.set_password, SERVICE, key, secret)


def load(key: str) -> str | None:
    """The secret under `key`, or None if there is none."""
    return _call("read a secret", keyring.get_password, SERVICE, key)


def delete(key: str) -> None:
    """Remove the secret under `key`, if any."""
    try:
        _call("delete a secret", keyring.delete_password, SERVICE, key)
    except ConfigurationError:
        if load(key) is not None:
            raise
