"""A tiny hostile LDAP server for the tests of what govtui prints: hand-rolled BER, records
what it receives (from the security review of issue 10)."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from dataclasses import dataclass, field


def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _len(len(content)) + content


def integer(n: int, tag: int = 0x02) -> bytes:
    length = max(1, (n.bit_length() + 8) // 8)
    return tlv(tag, n.to_bytes(length, "big", signed=True))


def octets(b: bytes | str, tag: int = 0x04) -> bytes:
    return tlv(tag, b.encode() if isinstance(b, str) else b)


def result(code: int, diag: bytes | str = b"", matched: str = "") -> bytes:
    return integer(code, 0x0A) + octets(matched) + octets(diag)


def message(mid: int, op_tag: int, body: bytes) -> bytes:
    return tlv(0x30, integer(mid) + tlv(op_tag, body))


def entry(dn: str, attrs: dict[str, list[bytes | str]]) -> bytes:
    parts = b"".join(
        tlv(0x30, octets(k) + tlv(0x31, b"".join(octets(v) for v in vs))) for k, vs in attrs.items()
    )
    return octets(dn) + tlv(0x30, parts)


def _read_tlv(sock: socket.socket) -> tuple[int, bytes] | None:
    def recv(n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    try:
        tag = recv(1)[0]
        first = recv(1)[0]
        n = int.from_bytes(recv(first & 0x7F), "big") if first & 0x80 else first
        return tag, recv(n)
    except (EOFError, OSError):
        return None


def _split(content: bytes) -> list[tuple[int, bytes]]:
    out = []
    i = 0
    while i < len(content):
        tag = content[i]
        first = content[i + 1]
        i += 2
        if first & 0x80:
            k = first & 0x7F
            n = int.from_bytes(content[i : i + k], "big")
            i += k
        else:
            n = first
        out.append((tag, content[i : i + n]))
        i += n
    return out


@dataclass
class Fake:
    """Behaviour: bind_result (code, diag); search_result (code, diag) or entries; whoami."""

    bind_result: tuple[int, bytes] = (0, b"")
    search_result: tuple[int, bytes] = (0, b"")
    search_entries: list[bytes] = field(default_factory=list)
    whoami: bytes | None = None
    tls_context: ssl.SSLContext | None = None  # ldaps
    starttls_context: ssl.SSLContext | None = None
    binds: list[tuple[str, bytes, bool]] = field(default_factory=list)  # dn, password, tls?
    port: int = 0

    def start(self) -> Fake:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self._sock.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        tls = False
        try:
            if self.tls_context is not None:
                conn = self.tls_context.wrap_socket(conn, server_side=True)
                tls = True
            while True:
                got = _read_tlv(conn)
                if got is None:
                    return
                parts = _split(got[1])
                mid = int.from_bytes(parts[0][1], "big")
                op_tag, body = parts[1]
                if op_tag == 0x60:  # bind
                    fields = _split(body)
                    self.binds.append((fields[1][1].decode(), fields[2][1], tls))
                    conn.sendall(message(mid, 0x61, result(*self.bind_result)))
                elif op_tag == 0x77:  # extended
                    oid = _split(body)[0][1].decode()
                    if oid == "1.3.6.1.4.1.1466.20037" and self.starttls_context is not None:
                        conn.sendall(message(mid, 0x78, result(0)))
                        conn = self.starttls_context.wrap_socket(conn, server_side=True)
                        tls = True
                    elif oid == "1.3.6.1.4.1.4203.1.11.3" and self.whoami is not None:
                        conn.sendall(message(mid, 0x78, result(0) + octets(self.whoami, 0x8B)))
                    else:
                        conn.sendall(message(mid, 0x78, result(2, b"unsupported")))
                elif op_tag == 0x63:  # search
                    for e in self.search_entries:
                        conn.sendall(message(mid, 0x64, e))
                    conn.sendall(message(mid, 0x65, result(*self.search_result)))
                elif op_tag == 0x42:  # unbind
                    return
                else:
                    conn.sendall(message(mid, op_tag + 1, result(53, b"no")))
        except (OSError, ssl.SSLError, IndexError):
            return
        finally:
            with contextlib.suppress(OSError):
                conn.close()
