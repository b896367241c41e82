"""A throw-away certificate authority for TLS tests, made with the openssl command line: a CA
and server certificates it signs, valid for one day, in a directory the test owns."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, text=True)


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path


def make_ca(directory: Path, name: str = "govtui test CA") -> Certificate:
    """A self-signed CA certificate and its key (EC P-256: fast to make)."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = name.replace(" ", "-")
    cert, key = directory / f"{stem}.pem", directory / f"{stem}.key"
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(cert),
        "-days",
        "1",
        "-subj",
        f"/CN={name}",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )
    return Certificate(cert, key)


def make_server_cert(
    ca: Certificate, directory: Path, *, ip: str, dns: tuple[str, ...] = (), days: int = 1
) -> Certificate:
    """A server certificate for `ip` (and the DNS names), signed by `ca`, valid for `days`
    (0: it expires the second it is made)."""
    cert, key, csr = directory / "server.pem", directory / "server.key", directory / "server.csr"
    _openssl(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        "-subj",
        f"/CN={ip}",
        cwd=directory,
    )
    names = ",".join([f"IP:{ip}", *(f"DNS:{d}" for d in dns)])
    extensions = directory / "server.ext"
    extensions.write_text(
        f"subjectAltName={names}\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca.cert),
        "-CAkey",
        str(ca.key),
        "-CAcreateserial",
        "-out",
        str(cert),
        "-days",
        str(days),
        "-extfile",
        str(extensions),
        cwd=directory,
    )
    return Certificate(cert, key)
