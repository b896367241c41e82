"""The world of the signed-acts tests (act signatures, attack13, attack13b, evidence trust):
the small vendor with an evidence key and every operator key registered, and the test slapd
with its people and a directory target. Those modules import them (as `world`, `ldap`)."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from .conftest import FakeClock
from .directory_support import Directory, add_target
from .factories import World, small_vendor, with_evidence_key
from .memory_keyring import MemoryKeyring


@pytest.fixture(name="world")
def signed_world(engine: Engine, memory_keyring: MemoryKeyring, fake_clock: FakeClock) -> World:
    """The small vendor with an evidence key, every operator key registered."""
    return with_evidence_key(small_vendor(engine), lambda: fake_clock.advance(seconds=31))


@pytest.fixture(name="ldap")
def signed_ldap(world: World, directory: Directory) -> Directory:
    for uid in ("ada", "bo", "mallory"):
        directory.add_person(uid)
    add_target(world.engine, directory)
    return directory
