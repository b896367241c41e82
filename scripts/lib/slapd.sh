# shellcheck shell=bash
# start_slapd [--tls]: a private OpenLDAP (Debian's slapd) on a loopback port, with its own
# config and data in a temporary directory, the memberof and ppolicy overlays and a base tree.
# Exports GOVTUI_TEST_LDAP_URL, GOVTUI_TEST_LDAP_BASE, GOVTUI_TEST_LDAP_ADMIN_DN,
# GOVTUI_TEST_LDAP_ADMIN_PASSWORD (and GOVTUI_TEST_LDAP_ADMIN_PASSWORD_FILE, which holds it)
# and GOVTUI_TEST_SLAPD_CONF (so tests can stop and restart it), and registers a cleanup that
# stops it and removes the directory.
# Plain by default (ldap://, what the test suite syncs against). With --tls (scripts/run
# --demo) it listens on ldaps:// only, with a server certificate for 127.0.0.1 from a
# throw-away CA made in the same private directory, and also exports
# GOVTUI_TEST_LDAP_CA_FILE (the CA's certificate, to trust it); its own ldapsearch and ldapadd
# go over ldaps:// trusting that CA alone.
# Needs scripts/lib/common.sh sourced first.

# _slapd_tls_files DIR: a CA (DIR/tls/ca.pem, its key) and a server certificate it signs for
# IP 127.0.0.1 (DIR/tls/server.pem, server.key), EC P-256, valid for two days (a demo left
# open over a night still works). umask 077: every key is 0600 in a 0700 directory; the CA's
# key is deleted once it has signed, so nothing can sign another certificate this CA vouches
# for.
_slapd_tls_files() {
    local tls=$1/tls
    (
        umask 077
        mkdir "$tls"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout "$tls/ca.key" -out "$tls/ca.pem" -days 2 -subj "/CN=govtui demo CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" &&
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
                -keyout "$tls/server.key" -out "$tls/server.csr" -subj "/CN=127.0.0.1" &&
            printf '%s\n' "subjectAltName=IP:127.0.0.1" "basicConstraints=critical,CA:FALSE" \
                "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" \
                >"$tls/server.ext" &&
            openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
                -CAcreateserial -days 2 -extfile "$tls/server.ext" -out "$tls/server.pem" &&
            rm -f "$tls/ca.key" "$tls/server.csr" "$tls/ca.srl"
    ) >"$1/openssl.log" 2>&1 || {
        cat "$1/openssl.log" >&2
        die "openssl could not make the directory's throw-away CA and certificate"
    }
    rm -f "$1/openssl.log"
}

start_slapd() {
    local tls=
    case ${1-} in
        --tls) tls=1 ;;
        "") ;;
        *) die "start_slapd: unknown option $1" ;;
    esac
    step "private OpenLDAP${tls:+ over TLS}"
    local dir port password base scheme=ldap
    dir=$(mktemp -d -t govtui-slapd.XXXXXX)
    add_cleanup rm -rf "$dir"
    port=$(free_port)
    # A throw-away password for a throw-away directory on loopback.
    password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
    base="dc=govtui,dc=test"
    mkdir -p "$dir/data"
    # With --tls: the server's certificate (global settings, before the database section), and
    # the OpenLDAP tools below trust this CA alone (not /etc/ldap/ldap.conf's) and check the
    # server's name (demand: their default, said here so no ldaprc weakens it).
    local tls_conf="" tools=()
    if [[ -n $tls ]]; then
        _slapd_tls_files "$dir"
        scheme=ldaps
        tls_conf="TLSCertificateFile $dir/tls/server.pem
TLSCertificateKeyFile $dir/tls/server.key
TLSProtocolMin 3.3"
        tools=(env "LDAPTLS_CACERT=$dir/tls/ca.pem" LDAPTLS_REQCERT=demand)
    fi
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
$tls_conf
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
    local url="$scheme://127.0.0.1:$port"
    slapd -f "$dir/slapd.conf" -h "$url/" -s 0 \
        || die "slapd did not start (config $dir/slapd.conf)"
    add_cleanup stop_slapd "$dir"
    local tries=0
    until "${tools[@]}" ldapsearch -x -H "$url" -b "" -s base >/dev/null 2>&1; do
        ((tries++ < 50)) || die "slapd on port $port does not answer"
        sleep 0.1
    done
    "${tools[@]}" ldapadd -x -H "$url" -D "cn=admin,$base" -y "$dir/admin.pw" >/dev/null <<LDIF
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
    export GOVTUI_TEST_LDAP_URL="$url"
    export GOVTUI_TEST_LDAP_BASE="$base"
    export GOVTUI_TEST_LDAP_ADMIN_DN="cn=admin,$base"
    export GOVTUI_TEST_LDAP_ADMIN_PASSWORD="$password"
    export GOVTUI_TEST_LDAP_ADMIN_PASSWORD_FILE="$dir/admin.pw"
    export GOVTUI_TEST_SLAPD_CONF="$dir/slapd.conf"
    if [[ -n $tls ]]; then
        export GOVTUI_TEST_LDAP_CA_FILE="$dir/tls/ca.pem"
    else
        unset GOVTUI_TEST_LDAP_CA_FILE
    fi
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
