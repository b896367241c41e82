"""Connecting to a directory safely: TLS certificates validated, timeouts set, and every
ldap3 operation raising on failure instead of quietly returning False."""

from __future__ import annotations

import contextlib
import ssl
from dataclasses import dataclass
from urllib.parse import urlparse

import ldap3
from ldap3.core.exceptions import LDAPException

from govtui.errors import ConfigurationError, GovtuiError

CONNECT_TIMEOUT = 5
RECEIVE_TIMEOUT = 15


class DirectoryError(GovtuiError):
    """The directory could not be reached or refused an operation."""


@dataclass(frozen=True)
class Endpoint:
    """Where and how to bind: everything but the password, which lives in the keyring."""

    url: str
    bind_dn: str
    starttls: bool = False
    ca_file: str | None = None
    tls_name: str | None = None  # the name the certificate must carry, if not the URL's host


def _server(endpoint: Endpoint) -> ldap3.Server:
    parsed = urlparse(endpoint.url)
    if parsed.scheme not in ("ldap", "ldaps") or not parsed.hostname:
        raise ConfigurationError(f"not a directory URL: {endpoint.url!r} (use ldap:// or ldaps://)")
    secure = parsed.scheme == "ldaps" or endpoint.starttls
    tls = None
    if secure:
        # Certificates are always checked: against the given CA file, else the system's CAs.
        tls = ldap3.Tls(
            validate=ssl.CERT_REQUIRED,
            version=ssl.PROTOCOL_TLS_CLIENT,
            ca_certs_file=endpoint.ca_file,
            valid_names=[endpoint.tls_name] if endpoint.tls_name else None,
        )
    return ldap3.Server(
        parsed.hostname,
        port=parsed.port,
        use_ssl=parsed.scheme == "ldaps",
        tls=tls,
        connect_timeout=CONNECT_TIMEOUT,
        get_info=ldap3.NONE,
    )


def connect(endpoint: Endpoint, password: str) -> ldap3.Connection:
    """An open, bound connection; DirectoryError names the step that failed."""
    server = _server(endpoint)
    connection = ldap3.Connection(
        server,
        user=endpoint.bind_dn,
        password=password,
        raise_exceptions=True,
        receive_timeout=RECEIVE_TIMEOUT,
        auto_bind=ldap3.AUTO_BIND_NONE,
        read_only=False,
    )
    step = "connect"
    try:
        connection.open()
        if endpoint.starttls:
            step = "StartTLS"
            connection.start_tls()
        step = "bind"
        connection.bind()
    except LDAPException as exc:
        # A failed TLS handshake leaves the socket closed: unbinding it raises too, and must
        # not hide the step that failed.
        with contextlib.suppress(LDAPException):
            connection.unbind()
        raise DirectoryError(f"{endpoint.url}: {step} failed: {_reason(exc)}") from None
    return connection


def _reason(exc: LDAPException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:300]
