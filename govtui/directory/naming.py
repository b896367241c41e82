"""Names in the directory: every value that goes into a DN or a filter is escaped here, so a
name like `x,ou=admins` or `*)(uid=*` can never reach another entry."""

from __future__ import annotations

from ldap3.core.exceptions import LDAPInvalidDnError
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn, parse_dn

from govtui.errors import InputError

PLACEHOLDER_RDN = "cn=govtui-empty-group-placeholder"


def checked_dn(value: str, what: str) -> str:
    """A syntactically valid DN, or an InputError naming the field."""
    try:
        if not value or not parse_dn(value):
            raise LDAPInvalidDnError(value)
    except LDAPInvalidDnError:
        raise InputError(f"invalid {what} {value!r}: not a distinguished name") from None
    return value


def group_dn(
    template: str, groups_base: str, *, client: str, project: str, scope: str, access: str
) -> str:
    """The group of one (scope, access level): the template's RDN value escaped, under the base.

    The template is like `cn={client}-{project}-{scope}-{access}`: the attribute before '=' is
    fixed by the administrator; everything substituted is data and is escaped."""
    attribute, _, value_template = template.partition("=")
    value = value_template.format(client=client, project=project, scope=scope, access=access)
    return f"{attribute}={escape_rdn(value)},{groups_base}"


def placeholder_dn(groups_base: str) -> str:
    """The member every govtui-created OpenLDAP group keeps, because groupOfNames refuses to
    lose its last member. It names no entry, so it grants nothing to anyone."""
    return f"{PLACEHOLDER_RDN},{groups_base}"


def uid_filter(uids: list[str], attribute: str = "uid") -> str:
    """A filter matching entries with any of the uids, each escaped."""
    parts = "".join(f"({attribute}={escape_filter_chars(uid)})" for uid in uids)
    return parts if len(uids) == 1 else f"(|{parts})"
