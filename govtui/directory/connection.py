"""Connecting to a directory safely: TLS certificates validated, timeouts set, and every
ldap3 operation raising on failure instead of quietly returning False.

A connection goes through steps (connect, TLS, bind); a failure names its step and says in one
line what went wrong, never a certificate dump or a traceback. A plain ldap:// bind without
StartTLS sends the password in clear text: it is refused here, at connect time, unless the
target carries the flag `directory add --insecure-plaintext` stored (a row edited by SQL into a
plain URL is refused all the same)."""

from __future__ import annotations

import ast
import contextlib
import ipaddress
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import ldap3
from ldap3.core.exceptions import (
    LDAPException,
    LDAPInvalidCredentialsResult,
    LDAPStartTLSError,
    LDAPStrongerAuthRequiredResult,
)

from govtui.errors import GovtuiError, InputError
from govtui.text import one_line

CONNECT_TIMEOUT = 5
RECEIVE_TIMEOUT = 15
DEFAULT_PORTS = {"ldap": 389, "ldaps": 636}
MAX_REASON = 300
MAX_MESSAGE = 600  # the URL (the operator's) and the step around a reason

# The steps of a connection, in order; `directory test` adds the two base checks after them.
CONNECT, TLS, BIND = "connect", "TLS", "bind"

OnStep = Callable[[str, str], None]  # (step, what was found) after each step that succeeded


class DirectoryError(GovtuiError):
    """The directory could not be reached or refused an operation; `step` names where."""

    def __init__(self, url: str, step: str, reason: str) -> None:
        # The reason often carries the server's own words (a bind diagnostic, a certificate's
        # names): escaped and cut here, so no caller prints a hostile server's escape codes.
        reason = one_line(reason, MAX_REASON)
        super().__init__(one_line(f"{url}: {step} failed: {reason}", MAX_MESSAGE))
        self.url, self.step, self.reason = url, step, reason


@dataclass(frozen=True)
class Endpoint:
    """Where and how to bind: everything but the password, which lives in the keyring."""

    url: str
    bind_dn: str
    starttls: bool = False
    ca_file: str | None = None
    tls_name: str | None = None  # the certificate's name when the URL names an address
    insecure_plaintext: bool = False  # a clear-text bind, accepted by `--insecure-plaintext`


@dataclass(frozen=True)
class Address:
    """A directory URL taken apart: always a scheme, a host and a port in range."""

    scheme: str
    host: str
    port: int

    @property
    def tls(self) -> bool:
        return self.scheme == "ldaps"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_url(url: str) -> Address:
    """The URL's scheme, host and port, or an InputError saying in one line what is wrong
    (urllib raises ValueError for a bad port or a broken IPv6 address, at different times)."""
    hint = "use ldaps://host[:port], or ldap://host[:port] with StartTLS"
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:  # a broken IPv6 address: "ldap://[::1"
        raise InputError(f"invalid directory URL {url!r}: {exc} ({hint})") from None
    try:
        port = parts.port
    except ValueError:
        given = parts.netloc.rpartition(":")[2]
        what = f"port {given} is not 1-65535" if given.isdigit() else f"port {given!r} is no number"
        raise InputError(f"invalid directory URL {url!r}: {what}") from None
    if parts.scheme not in DEFAULT_PORTS:
        raise InputError(f"invalid directory URL {url!r}: not ldap:// or ldaps:// ({hint})")
    if not host:
        raise InputError(f"invalid directory URL {url!r}: no host ({hint})")
    if port is not None and not 1 <= port <= 65535:
        raise InputError(f"invalid directory URL {url!r}: port {port} is not 1-65535")
    if parts.username is not None or parts.password is not None:
        # A password in the URL would be stored in the database in clear text.
        raise InputError(f"invalid directory URL {url!r}: no user or password in the URL")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InputError(f"invalid directory URL {url!r}: only scheme, host and port ({hint})")
    return Address(parts.scheme, host, port or DEFAULT_PORTS[parts.scheme])


def is_address(host: str) -> bool:
    """Whether `host` is an IP address rather than a name."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class _RecordingTls(ldap3.Tls):  # type: ignore[misc]  # ldap3 has no type hints
    """ldap3's Tls, keeping the original exception of a failed handshake or name check:
    ldap3 re-raises it as a new exception of the same type built from its text, losing what
    says why (an SSLCertVerificationError's verify_code)."""

    failure: BaseException | None = None

    def wrap_socket(self, connection: Any, do_handshake: bool = False) -> None:
        try:
            super().wrap_socket(connection, do_handshake)
        except BaseException as exc:
            self.failure = exc
            raise


def _tls(endpoint: Endpoint) -> _RecordingTls:
    # Certificates are always checked: against the given CA file, else the system's CAs;
    # the host name against the URL's host and the target's tls_name (ldap3 tries both).
    return _RecordingTls(
        validate=ssl.CERT_REQUIRED,
        version=ssl.PROTOCOL_TLS_CLIENT,
        ca_certs_file=endpoint.ca_file,
        valid_names=[endpoint.tls_name] if endpoint.tls_name else None,
    )


def _server(endpoint: Endpoint, address: Address) -> tuple[ldap3.Server, _RecordingTls | None]:
    if not (address.tls or endpoint.starttls or endpoint.insecure_plaintext):
        # Defence against a row changed behind govtui's back: only `directory add
        # --insecure-plaintext` may make govtui send a password in clear text.
        raise DirectoryError(
            endpoint.url,
            TLS,
            "plain ldap:// without StartTLS would send the bind password in clear text, "
            "and this target was not added with --insecure-plaintext: refused",
        )
    if endpoint.tls_name and "*" in endpoint.tls_name:
        # ldap3 takes a valid name "*" as "any certificate name": never let that through.
        raise DirectoryError(endpoint.url, TLS, f"invalid TLS name {endpoint.tls_name!r}")
    tls = _tls(endpoint) if address.tls or endpoint.starttls else None
    server = ldap3.Server(
        address.host,
        port=address.port,
        use_ssl=address.tls,
        tls=tls,
        connect_timeout=CONNECT_TIMEOUT,
        get_info=ldap3.NONE,
    )
    return server, tls


def connect(
    endpoint: Endpoint, password: str, *, on_step: OnStep | None = None
) -> ldap3.Connection:
    """An open, bound connection; a DirectoryError names the step that failed. `on_step` hears
    of each step that succeeded, with what it found (for `directory test`)."""
    try:
        address = parse_url(endpoint.url)
    except InputError as exc:
        raise DirectoryError(endpoint.url, CONNECT, str(exc)) from None
    server, tls = _server(endpoint, address)
    connection = ldap3.Connection(
        server,
        user=endpoint.bind_dn,
        password=password,
        raise_exceptions=True,
        receive_timeout=RECEIVE_TIMEOUT,
        auto_bind=ldap3.AUTO_BIND_NONE,
        read_only=False,
    )
    step = CONNECT
    try:
        connection.open()
        _told(on_step, CONNECT, str(address))
        if address.tls:
            _told(on_step, TLS, "LDAPS, " + _verified(connection, endpoint))
        elif endpoint.starttls:
            step = TLS
            connection.start_tls()
            _told(on_step, TLS, "StartTLS, " + _verified(connection, endpoint))
        else:
            _told(on_step, TLS, "none: INSECURE plaintext bind (--insecure-plaintext)")
        step = BIND
        connection.bind()
        _told(on_step, BIND, f"as {endpoint.bind_dn}")
    except LDAPException as exc:
        # A failed TLS handshake leaves the socket closed: unbinding it raises too, and must
        # not hide the step that failed.
        with contextlib.suppress(LDAPException, OSError):
            connection.unbind()
        if tls is not None and tls.failure is not None:
            if address.tls:
                _told(on_step, CONNECT, str(address))  # the socket opened; its TLS failed
            raise DirectoryError(
                endpoint.url, TLS, tls_reason(tls.failure, address, endpoint)
            ) from None
        if step == TLS:
            raise DirectoryError(endpoint.url, TLS, _starttls_reason(exc)) from None
        if step == BIND:
            raise DirectoryError(endpoint.url, BIND, _bind_reason(exc, endpoint)) from None
        raise DirectoryError(endpoint.url, CONNECT, _connect_reason(exc, address)) from None
    return connection


def _told(on_step: OnStep | None, step: str, found: str) -> None:
    if on_step is not None:
        on_step(step, found)


def _verified(connection: ldap3.Connection, endpoint: Endpoint) -> str:
    names = certificate_names(connection.socket.getpeercert() or {})
    against = endpoint.ca_file or "the system's CAs"
    # The names are the server's (its certificate's): escaped like any text it sends.
    return one_line(f"certificate for {', '.join(names) or '?'} verified against {against}")


def certificate_names(certificate: dict[str, Any]) -> list[str]:
    """The names a certificate (as ssl's getpeercert() gives it) carries: its subject's
    common names, then its subjectAltName entries, each once."""
    names: list[str] = []
    for rdn in certificate.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                names.append(str(value))
    for _kind, value in certificate.get("subjectAltName", ()):
        names.append(str(value))
    return list(dict.fromkeys(names))


# OpenSSL's verify codes (X509_V_ERR_*) that a person can act on, in plain words.
_VERIFY_REASONS = {
    9: "is not valid yet",
    10: "has expired",
    18: "is self-signed and not in {trust}",
    19: "was not issued by a CA in {trust}",
    20: "was not issued by a CA in {trust}",
    21: "was not issued by a CA in {trust}",
    23: "has been revoked",
}


def tls_reason(failure: BaseException, address: Address, endpoint: Endpoint) -> str:
    """One line on why TLS with `address` failed."""
    trust = endpoint.ca_file or "the system's CAs"
    tls_name = endpoint.tls_name
    if isinstance(failure, ssl.SSLCertVerificationError):
        known = _VERIFY_REASONS.get(failure.verify_code)
        message = failure.verify_message or failure.reason or "verification failed"
        if known is not None:
            return f"the certificate of {address} {known.format(trust=trust)} ({message})"
        return f"the certificate of {address} was refused ({message})"
    text = str(failure)
    if "doesn't match any name" in text:
        expected = " or ".join(dict.fromkeys([address.host, *([tls_name] if tls_name else [])]))
        names = _names_in_ldap3_message(text)
        carried = ", ".join(names) if names else "other names"
        hint = (
            f" (the target's --tls-name is {tls_name})"
            if tls_name
            else " (use --tls-name if the URL names an address)"
        )
        return f"the certificate of {address} is for {carried}, not {expected}{hint}"
    if isinstance(failure, ssl.SSLError):
        detail = failure.reason or _first_line(text)
        if "WRONG_VERSION_NUMBER" in str(detail) or "wrong version number" in text:
            return f"{address} does not speak TLS here (is it a plain ldap:// port?)"
        return f"TLS handshake with {address} failed ({detail})"
    if isinstance(failure, (ConnectionError, TimeoutError, OSError)):
        cause = _first_line(text) or type(failure).__name__
        return f"the TLS handshake with {address} broke off ({cause})"
    return f"TLS with {address} failed ({_first_line(text) or type(failure).__name__})"


def _names_in_ldap3_message(text: str) -> list[str]:
    """The certificate's names from ldap3's mismatch message, which carries the certificate
    as the repr of getpeercert()'s dict: `certificate {...} doesn't match any name in [...]`."""
    start, end = text.find("{"), text.rfind("} doesn't match any name")
    if start < 0 or end < start:
        return []
    try:
        certificate = ast.literal_eval(text[start : end + 1])
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return []
    return certificate_names(certificate) if isinstance(certificate, dict) else []


def _starttls_reason(exc: LDAPException) -> str:
    if isinstance(exc, LDAPStartTLSError) and "startTLS failed" in str(exc):
        return f"the server refused StartTLS ({_first_line(str(exc))})"
    return _first_line(str(exc)) or type(exc).__name__


def _bind_reason(exc: LDAPException, endpoint: Endpoint) -> str:
    text = _first_line(str(exc)) or type(exc).__name__
    if isinstance(exc, LDAPInvalidCredentialsResult):
        return f"the server refused {endpoint.bind_dn} with this password ({text})"
    if isinstance(exc, LDAPStrongerAuthRequiredResult):
        return f"the server wants TLS for a simple bind: use ldaps:// or --starttls ({text})"
    return text


def _connect_reason(exc: LDAPException, address: Address) -> str:
    text = _first_line(str(exc)) or type(exc).__name__
    if "refused" in text.lower():
        return f"nothing answers on {address} (connection refused)"
    if "timed out" in text.lower():
        return f"no answer from {address} within {CONNECT_TIMEOUT} s"
    return f"cannot reach {address} ({text})"


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0][:MAX_REASON] if lines else ""
