"""Pointing govtui at the real Samba AD DC (issue 10, item 5): LDAPS and StartTLS via 127.0.0.1
with --tls-name pass `directory add` and `directory test` (Samba answers no WhoAmI: that is
fine); without --tls-name the one-line mismatch names the DC's certificate name; plain ldap://
is refused unless --insecure-plaintext, which is then stored, listed, audited, and the DC's own
refusal of a clear-text bind is one line naming the bind step."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest
from sqlmodel import select

from govtui import db
from govtui.cli import main
from govtui.models import AuditEvent
from govtui.services import convergence, directory_targets

from .ad_support import AdDirectory, private_ou
from .conftest import snapshot
from .factories import World
from .memory_keyring import MemoryKeyring


@pytest.fixture
def ad() -> Iterator[AdDirectory]:
    yield from private_ou()


def _cli(world: World, *args: str) -> int:
    url = world.engine.url.render_as_string(hide_password=False)
    return main(["--db", url, "--as", "root", *args])


def _add(
    world: World, ad: AdDirectory, monkeypatch: pytest.MonkeyPatch, url: str, *extra: str
) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(ad.server.admin_password + "\n"))
    return _cli(
        world,
        "directory",
        "add",
        "ad",
        "--flavour",
        "ad",
        "--url",
        url,
        "--bind-dn",
        ad.server.admin_dn,
        "--users-base",
        ad.people,
        "--groups-base",
        ad.groups,
        "--password-stdin",
        *extra,
    )


def _address(url: str) -> str:
    parsed = urlparse(url)
    return f"{parsed.hostname}:{parsed.port}"


@pytest.mark.parametrize("starttls", [False, True], ids=["ldaps", "starttls"])
def test_add_and_test_pass_with_the_tls_name_and_need_no_whoami(
    world: World,
    memory_keyring: MemoryKeyring,
    ad: AdDirectory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    starttls: bool,
) -> None:
    url = ad.server.starttls_url if starttls else ad.server.url
    tls = ("--starttls",) if starttls else ()
    trust = ("--ca-file", ad.server.ca_file)
    before = snapshot(world.engine)

    # Without --tls-name: the certificate is for DC1.<realm>, the URL names 127.0.0.1.
    assert _add(world, ad, monkeypatch, url, *tls, *trust) == 2
    err = capsys.readouterr().err
    assert err == (
        "govtui: error: directory target ad not added: TLS failed: the certificate of "
        f"{_address(url)} is for DC1.ad.govtui.test, not 127.0.0.1 (use --tls-name if the URL "
        "names an address)\n"
    )
    assert snapshot(world.engine) == before

    assert _add(world, ad, monkeypatch, url, *tls, *trust, "--tls-name", ad.server.tls_name) == 0
    assert "directory target ad added, checked" in capsys.readouterr().out
    with db.read_session(world.engine) as session:
        target = directory_targets.find(session, "ad")
        assert (target.tls_name, target.starttls, target.flavour) == (
            ad.server.tls_name,
            starttls,
            "ad",
        )
        assert not target.insecure_plaintext

    assert _cli(world, "directory", "test", "ad") == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert [line.split()[1] for line in lines[1:4]] == ["ok", "ok", "ok"]
    assert ("StartTLS, " if starttls else "LDAPS, ") in lines[2]
    assert "certificate for DC1.ad.govtui.test verified against" in lines[2]
    # Samba has no WhoAmI: the bind DN stands for the identity, and nothing crashes.
    assert lines[3].endswith(f"as {ad.server.admin_dn}")
    assert lines[-1] == "directory ad: every check passed" and captured.err == ""
    assert convergence.check_targets(world.engine) == {"ad": None}


def test_plain_ldap_is_refused_unless_accepted_and_then_stored_listed_and_audited(
    world: World,
    memory_keyring: MemoryKeyring,
    ad: AdDirectory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = ad.server.starttls_url  # ldap://127.0.0.1:PORT
    before = snapshot(world.engine)
    assert _add(world, ad, monkeypatch, url) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "would send the bind password in clear text" in err
    assert snapshot(world.engine) == before

    # Accepted, checked: the DC itself refuses a clear-text simple bind, said in one line.
    assert _add(world, ad, monkeypatch, url, "--insecure-plaintext") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "not added: bind failed: the server wants TLS for a simple bind" in err
    assert snapshot(world.engine) == before

    assert _add(world, ad, monkeypatch, url, "--insecure-plaintext", "--no-check") == 0
    assert "INSECURE: plaintext bind" in capsys.readouterr().out
    with db.read_session(world.engine) as session:
        assert directory_targets.find(session, "ad").insecure_plaintext
        (event,) = session.exec(
            select(AuditEvent).where(AuditEvent.action == "directory.add")
        ).all()
        details = json.loads(event.details)
        assert details["insecure_plaintext"] is True and details["checked"] is False
    assert _cli(world, "directory", "list") == 0
    (row,) = capsys.readouterr().out.splitlines()[1:]
    assert row.split()[:3] == ["ad", url, "ad"] and row.endswith("INSECURE: plaintext bind")
    assert _cli(world, "directory", "test", "ad") == 2
    captured = capsys.readouterr()
    assert captured.out.splitlines()[2].split()[:2] == ["TLS", "INSECURE"]
    assert captured.err.count("\n") == 1
    assert "directory ad: bind failed: the server wants TLS" in captured.err
