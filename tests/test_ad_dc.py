"""The test Active Directory DC behaves the way govtui's AD support relies on (issue 10, item
1): binds over LDAPS and StartTLS with the certificate validated, refuses what AD refuses, and
keeps users, global security groups and their members the way a Windows DC does. These tests
use ldap3 directly; the govtui-level AD tests build on the same `ad` fixture."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import ldap3
import pytest
from ldap3.core.exceptions import (
    LDAPBindError,
    LDAPException,
    LDAPInvalidCredentialsResult,
    LDAPStrongerAuthRequiredResult,
)

from .ad_support import (
    GLOBAL_SECURITY_GROUP,
    UAC_ACCOUNTDISABLE,
    UAC_NORMAL_ACCOUNT,
    AdDirectory,
    norm,
    private_ou,
    single,
)
from .throwaway_ca import make_ca

PASSWORD = "Throw-away-1-user"  # a user of a DC nobody outside the test's namespace reaches


@pytest.fixture
def ad() -> Iterator[AdDirectory]:
    yield from private_ou()


@pytest.mark.parametrize("starttls", [False, True], ids=["ldaps", "starttls"])
def test_administrator_binds_with_the_certificate_validated(
    ad: AdDirectory, starttls: bool
) -> None:
    conn = ad.server.connect(starttls=starttls)
    try:
        assert conn.bound
        assert conn.server.ssl is not starttls and conn.tls_started is starttls
        conn.search(ad.root, "(objectClass=domain)", ldap3.BASE, attributes=["objectSid"])
        assert norm(conn.response[0]["dn"]) == norm(ad.root)
    finally:
        conn.unbind()


@pytest.mark.parametrize("starttls", [False, True], ids=["ldaps", "starttls"])
def test_the_certificate_is_checked_by_name_and_by_ca(
    ad: AdDirectory, starttls: bool, tmp_path: Path
) -> None:
    """Proof that the fixture validates: the URL's address alone does not match the
    certificate (its CN is DC1.<realm>, no subjectAltName), and another CA is refused."""
    with pytest.raises(LDAPException, match="doesn't match any name"):
        ad.server.connect(starttls=starttls, tls=ad.server.tls(names=[]))
    other = make_ca(tmp_path / "other", name="not the DC's CA")
    with pytest.raises(LDAPException, match="CERTIFICATE_VERIFY_FAILED"):
        ad.server.connect(starttls=starttls, tls=ad.server.tls(ca_file=str(other.cert)))


def test_a_simple_bind_without_tls_is_refused(ad: AdDirectory) -> None:
    """Samba's default (ldap server require strong auth = yes): no clear-text password."""
    plain = ad.server.server(starttls=True)
    server = ldap3.Server(plain.host, port=plain.port, get_info=ldap3.NONE)
    conn = ldap3.Connection(
        server, ad.server.admin_dn, ad.server.admin_password, raise_exceptions=True
    )
    with pytest.raises(LDAPStrongerAuthRequiredResult):
        conn.bind()
    conn.unbind()


def test_user_and_global_group_with_a_member_added_and_removed(ad: AdDirectory) -> None:
    tag = secrets.token_hex(3)
    user = ad.add_user("Smith, John", f"jsmith{tag}", password=PASSWORD)
    assert user == f"CN=Smith\\, John,{ad.people}"
    group = ad.add_group(f"govtui-{tag}-readers", f"govtui-{tag}-readers")

    assert int(single(ad.attribute(group, "groupType"))) == GLOBAL_SECURITY_GROUP
    assert single(ad.attribute(group, "sAMAccountName")) == f"govtui-{tag}-readers"
    assert single(ad.attribute(user, "sAMAccountName")) == f"jsmith{tag}"
    assert ad.members(group) == set()

    ad.add_member(group, user)
    assert ad.members(group) == {norm(user)}
    # AD keeps the back-link itself.
    assert {norm(g) for g in ad.attribute(user, "memberOf") or []} == {norm(group)}
    # Found the way govtui looks users up on AD.
    ad.conn.search(
        ad.people,
        f"(&(objectCategory=person)(objectClass=user)(sAMAccountName=jsmith{tag}))",
        attributes=["cn"],
    )
    assert [norm(e["dn"]) for e in ad.conn.response if e["type"] == "searchResEntry"] == [
        norm(user)
    ]

    ad.remove_member(group, user)
    assert ad.members(group) == set()
    assert ad.attribute(user, "memberOf") == []


def test_a_disabled_account_cannot_bind_and_ad_says_data_533(ad: AdDirectory) -> None:
    user = ad.add_user("O'Brien+Jr", password=PASSWORD)
    assert ad.uac(user) == UAC_NORMAL_ACCOUNT
    ad.server.connect(user, PASSWORD).unbind()  # enabled: binds

    uac = ad.uac(user)
    ad.conn.modify(
        user, {"userAccountControl": [(ldap3.MODIFY_REPLACE, [uac | UAC_ACCOUNTDISABLE])]}
    )
    assert ad.uac(user) == UAC_NORMAL_ACCOUNT | UAC_ACCOUNTDISABLE  # other flags kept

    with pytest.raises((LDAPInvalidCredentialsResult, LDAPBindError)) as refused:
        ad.server.connect(user, PASSWORD)
    assert "data 533" in str(refused.value)
    with pytest.raises((LDAPInvalidCredentialsResult, LDAPBindError)) as wrong:
        ad.server.connect(user, "not-the-password")
    assert "data 533" not in str(wrong.value)  # 52e (bad password) is another answer


def test_each_test_gets_an_ou_of_its_own_and_it_is_deleted_afterwards(ad: AdDirectory) -> None:
    other = private_ou()
    second = next(other)
    try:
        assert second.base != ad.base
        user = second.add_user("ünïcödé Jörg")
        group = second.add_group("nested", members=[user])
        ad.add_group("outer", members=[group])
    finally:
        other.close()  # runs private_ou's cleanup: the tree delete
    assert second.attribute(second.base, "ou") is None
    assert second.attribute(user, "cn") is None
    # The other test's group lost its member with the deleted group, as on Windows.
    assert ad.members(f"CN=outer,{ad.groups}") == set()
    second.close()


def test_the_dc_can_be_stopped_and_started_by_a_test(ad: AdDirectory) -> None:
    ad.add_user("before restart")
    ad.stop_server()
    assert not ad.server.server_up()
    ad.start_server()
    assert ad.attribute(f"CN=before restart,{ad.people}", "cn") == ["before restart"]
