"""An in-memory keyring backend for unit tests. The real Secret Service is exercised by
tests/test_secrets.py inside scripts/test; this one only speeds up everything else."""

from __future__ import annotations

from keyring.backend import KeyringBackend
from keyring.compat import properties


class MemoryKeyring(KeyringBackend):
    @properties.classproperty
    def priority(cls) -> float:
        # Not viable for keyring's automatic choice: tests install it explicitly, so merely
        # importing it never changes which backend the real Secret Service tests get.
        raise RuntimeError("the in-memory keyring is only for tests that ask for it")

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.entries.pop((service, username), None)
