"""netns_forward.py NETNS PORTFILE REMOTE_PORT...: forwards loopback ports of the current
network namespace to loopback ports inside the network namespace NETNS (/run/netns/NETNS).

It listens on 127.0.0.1 on one free port per REMOTE_PORT (chosen by the kernel, so no race with
other processes), writes "REMOTE_PORT LOCAL_PORT" lines to PORTFILE (atomically, once all
listen), then enters NETNS and serves: each accepted connection is joined to a new connection
to 127.0.0.1:REMOTE_PORT inside NETNS. Sockets keep the namespace they were created in, so the
listeners stay in the caller's namespace while every outgoing connection is made inside NETNS.

One process, no fork per connection, nothing but the standard library; needs CAP_SYS_ADMIN
(root) for setns(2). Used by scripts/lib/samba_ad.sh; stopped with SIGTERM.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import selectors
import signal
import socket
import sys
import threading

CLONE_NEWNET = 0x40000000


def enter_netns(name: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({name}): {os.strerror(err)}")
    finally:
        os.close(fd)


def pump(client: socket.socket, remote_port: int) -> None:
    """Copy bytes both ways between client and a new connection to remote_port in NETNS."""
    try:
        upstream = socket.create_connection(("127.0.0.1", remote_port), timeout=10)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    sel = selectors.DefaultSelector()
    peers = {client: upstream, upstream: client}
    for sock in peers:
        sel.register(sock, selectors.EVENT_READ)
    open_ends = 2
    try:
        while open_ends:
            for key, _ in sel.select():
                src: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    data = src.recv(65536)
                except OSError:
                    data = b""
                if data:
                    peers[src].sendall(data)
                    continue
                # EOF from src: pass the half-close on, stop reading src.
                sel.unregister(src)
                open_ends -= 1
                with contextlib.suppress(OSError):
                    peers[src].shutdown(socket.SHUT_WR)
    except OSError:
        pass
    finally:
        sel.close()
        client.close()
        upstream.close()


def main() -> None:
    name, portfile, *remote = sys.argv[1:]
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    listeners: dict[socket.socket, int] = {}
    for port in remote:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        listeners[sock] = int(port)
    # Before any thread exists: setns changes the calling thread only, new threads inherit it.
    enter_netns(name)
    with open(portfile + ".tmp", "w") as out:
        for sock, port in listeners.items():
            out.write(f"{port} {sock.getsockname()[1]}\n")
    os.replace(portfile + ".tmp", portfile)
    sel = selectors.DefaultSelector()
    for sock in listeners:
        sel.register(sock, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            lsock: socket.socket = key.fileobj  # type: ignore[assignment]
            client, _addr = lsock.accept()
            threading.Thread(target=pump, args=(client, listeners[lsock]), daemon=True).start()


if __name__ == "__main__":
    main()
