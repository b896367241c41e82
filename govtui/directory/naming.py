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


# -- Active Directory ------------------------------------------------------------------------

# AD's limits on a group's names (MS-ADTS; Samba accepts a longer cn, Windows refuses it, so
# govtui checks before it writes anything).
AD_CN_MAX = 64
AD_SAM_MAX = 256
AD_SAM_FORBIDDEN = frozenset('"/\\[]:;|=,+*?<>')
# groupType values AD accepts (MS-ADTS 2.2.12): security or distribution, global, domain
# local or universal. The default is a global security group.
AD_GROUP_TYPES = {
    -2147483646: "global security",
    -2147483644: "domain local security",
    -2147483640: "universal security",
    2: "global distribution",
    4: "domain local distribution",
    8: "universal distribution",
}
AD_DEFAULT_GROUP_TYPE = -2147483646


def ad_user_filter(inner: str) -> str:
    """A filter for AD user accounts (people, not computers or groups) also matching `inner`,
    an already escaped filter."""
    return f"(&(objectCategory=person)(objectClass=user){inner})"


def user_filter(uids: list[str], attribute: str, flavour: str) -> str:
    """The filter that finds the accounts of these uids on a target of this flavour."""
    inner = uid_filter(uids, attribute)
    return ad_user_filter(inner) if flavour == "ad" else inner


def rdn_value(dn: str) -> str:
    """The (unescaped) value of a DN's first RDN: a group's cn."""
    return unescape_value(str(parse_dn(dn)[0][1]))


def unescape_value(value: str) -> str:
    """An RDN value as written in a DN (RFC 4514 escapes: `\\,` or `\\2C`), as the text it
    stands for; hex escapes are UTF-8 bytes."""
    out = bytearray()
    i = 0
    while i < len(value):
        char = value[i]
        if char == "\\" and i + 1 < len(value):
            pair = value[i + 1 : i + 3]
            if len(pair) == 2 and all(c in "0123456789abcdefABCDEF" for c in pair):
                out.append(int(pair, 16))
                i += 3
                continue
            out.extend(value[i + 1].encode())
            i += 2
            continue
        out.extend(char.encode())
        i += 1
    return out.decode("utf-8", errors="replace")


def ad_sam_name(
    sam_template: str | None,
    group_dn: str,
    *,
    client: str | None = None,
    project: str | None = None,
    scope: str | None = None,
    access: str | None = None,
) -> str:
    """The sAMAccountName of a group govtui creates on AD: the target's template filled in,
    or (no template) the group's cn."""
    if sam_template is None:
        return rdn_value(group_dn)
    return sam_template.format(client=client, project=project, scope=scope, access=access)


def check_ad_group_names(group_dn: str, sam: str) -> None:
    """An InputError saying which of AD's limits a group's names break (nothing is written
    before this passes)."""
    cn = rdn_value(group_dn)
    if len(cn) > AD_CN_MAX:
        raise InputError(
            f"AD group name too long: cn {cn!r} has {len(cn)} characters, AD allows {AD_CN_MAX}"
            " (shorten the names or the target's group template, or map the scope to a group)"
        )
    if not sam:
        raise InputError(f"AD group {group_dn}: the sAMAccountName is empty")
    if len(sam) > AD_SAM_MAX:
        raise InputError(
            f"AD group {group_dn}: sAMAccountName has {len(sam)} characters, AD allows {AD_SAM_MAX}"
        )
    bad = sorted(set(sam) & AD_SAM_FORBIDDEN)
    if bad:
        raise InputError(
            f"AD group {group_dn}: sAMAccountName {sam!r} contains {''.join(bad)!r}, which AD"
            " does not allow (none of \"/\\[]:;|=,+*?<>): set the target's sAMAccountName"
            " template or map the scope to a group"
        )
    if sam.endswith("."):
        raise InputError(f"AD group {group_dn}: sAMAccountName {sam!r} may not end with '.'")


def check_sam_template(sam_template: str) -> None:
    """An InputError unless the template names only {client}, {project}, {scope}, {access}."""
    try:
        sam_template.format(client="c", project="p", scope="s", access="read")
    except (KeyError, IndexError, ValueError) as exc:
        raise InputError(
            f"invalid sAMAccountName template {sam_template!r}: use {{client}}, {{project}},"
            f" {{scope}} and {{access}} ({exc})"
        ) from None


def domain_root(dn: str) -> str:
    """The DC=... suffix of a DN: the AD domain naming context it lives in."""
    return ",".join(f"{a}={v}" for a, v, _ in parse_dn(dn) if a.lower() == "dc")
