# shellcheck shell=bash
# start_slapd: a private OpenLDAP (Debian's slapd) on a loopback port, with its own config and
# data in a temporary directory, the memberof and ppolicy overlays and a base tree. Exports
# GOVTUI_TEST_LDAP_URL, GOVTUI_TEST_LDAP_BASE, GOVTUI_TEST_LDAP_ADMIN_DN,
# GOVTUI_TEST_LDAP_ADMIN_PASSWORD (and GOVTUI_TEST_LDAP_ADMIN_PASSWORD_FILE, which holds it)
# and GOVTUI_TEST_SLAPD_CONF (so tests can stop and restart it), and registers a cleanup that
# stops it and removes the directory.
# Needs scripts/lib/common.sh sourced first.

start_slapd() {
    step "private OpenLDAP"
    local dir port password base
    dir=$(mktemp -d -t govtui-slapd.XXXXXX)
    add_cleanup rm -rf "$dir"
    port=$(free_port)
    # A throw-away password for a throw-away directory on loopback.
    password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
    base="dc=govtui,dc=test"
    mkdir -p "$dir/data"
    # The tools read it from a file in the private (0700) directory, never from their command
    # line, which any login on the machine reads in ps (printf is a shell builtin).
    (umask 077 && printf '%s' "$password" >"$dir/admin.pw")
    cat >"$dir/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
moduleload ppolicy
pidfile $dir/slapd.pid
argsfile $dir/slapd.args
database mdb
maxsize 268435456
suffix "$base"
rootdn "cn=admin,$base"
rootpw $(slappasswd -T "$dir/admin.pw")
directory $dir/data
index objectClass eq
index uid eq
index member eq
overlay memberof
memberof-refint TRUE
overlay ppolicy
CONF
    slapd -f "$dir/slapd.conf" -h "ldap://127.0.0.1:$port/" -s 0 \
        || die "slapd did not start (config $dir/slapd.conf)"
    add_cleanup stop_slapd "$dir"
    local tries=0
    until ldapsearch -x -H "ldap://127.0.0.1:$port" -b "" -s base >/dev/null 2>&1; do
        ((tries++ < 50)) || die "slapd on port $port does not answer"
        sleep 0.1
    done
    ldapadd -x -H "ldap://127.0.0.1:$port" -D "cn=admin,$base" -y "$dir/admin.pw" >/dev/null <<LDIF
dn: $base
objectClass: dcObject
objectClass: organization
o: govtui test
dc: govtui

dn: ou=people,$base
objectClass: organizationalUnit
ou: people

dn: ou=groups,$base
objectClass: organizationalUnit
ou: groups
LDIF
    export GOVTUI_TEST_LDAP_URL="ldap://127.0.0.1:$port"
    export GOVTUI_TEST_LDAP_BASE="$base"
    export GOVTUI_TEST_LDAP_ADMIN_DN="cn=admin,$base"
    export GOVTUI_TEST_LDAP_ADMIN_PASSWORD="$password"
    export GOVTUI_TEST_LDAP_ADMIN_PASSWORD_FILE="$dir/admin.pw"
    export GOVTUI_TEST_SLAPD_CONF="$dir/slapd.conf"
    echo "ok: $GOVTUI_TEST_LDAP_URL ($base)"
}

stop_slapd() {
    local dir=$1 pid
    [[ -f $dir/slapd.pid ]] || return 0
    pid=$(<"$dir/slapd.pid")
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
}
