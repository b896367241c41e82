# shellcheck shell=bash
# start_samba_ad: a throw-away Active Directory domain controller (Debian's Samba AD DC) for the
# AD tests, provisioned into a temporary directory (or copied there from a saved template, see
# "State") and run inside a network namespace of its own, reachable from the tests on two loopback ports. Needs scripts/lib/common.sh sourced
# first, and root (or sudo) for the namespace.
#
# Isolation:
# - Config: provisioned with an empty `-s` smb.conf, so /etc/samba/smb.conf is never read; the
#   generated smb.conf has every directory samba writes to (private, state, cache, lock, pid,
#   ncalrpc, winbindd and ntp_signd sockets, log) under the temporary directory, so nothing
#   reaches /run, /var/lib or /var/log.
# - Network: samba runs in the namespace govtui-ad-<pid> where only loopback is up, so its ports
#   (389, 636, ...) cannot collide with anything on the machine, and nothing outside can reach
#   it. The tests run in the machine's namespace (they also need the private PostgreSQL and
#   slapd on its loopback), so scripts/lib/netns_forward.py listens on two free loopback ports
#   here and joins each connection to 127.0.0.1:636 / :389 inside the namespace. This was
#   chosen over a veth pair because it adds no addresses or routes to the machine's network
#   (a veth subnet could shadow a real one), and over socat because socat 1.7 (Debian 12)
#   cannot enter a namespace without an `ip netns exec` fork per connection.
# - Only the LDAP server runs (`server services = ldap`): no SMB, NetBIOS, RPC, KDC, DNS,
#   replication or winbind. Simple binds over LDAPS and StartTLS are all govtui uses.
#
# TLS naming: samba's self-signed certificate is for DC1.<realm> (CN only, no subjectAltName),
# and the tests connect to 127.0.0.1:<port>. ldap3 checks the names in Tls(valid_names=[...])
# in addition to the host, so a validating client uses
#   Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=$GOVTUI_TEST_AD_CA,
#       valid_names=[$GOVTUI_TEST_AD_TLS_NAME])
# (govtui's --tls-name, issue 10, will map to exactly that). Tools run inside the namespace
# (`ip netns exec $GOVTUI_TEST_AD_NETNS ...`, e.g. ldapmodify for a benchmark) resolve
# dc1.<realm> to the DC through /etc/netns/<namespace>/hosts and validate the usual way with
# $GOVTUI_TEST_AD_NETNS_URL and LDAPTLS_CACERT=$GOVTUI_TEST_AD_CA.
#
# State: tests reset by deleting the subtree they made (one OU per test, deleted with the
# tree-delete control; see tests/ad_support.py), which costs milliseconds where restarting from
# a copied template would cost seconds per test. Provisioning takes 10-20 s, so the freshly
# provisioned DC (copied before its first start, plus the certificate samba makes then) is
# kept as a template in ${XDG_CACHE_HOME:-~/.cache}/govtui/samba-ad-<key>, and later runs copy
# it (< 1 s) instead. The key hashes samba's Debian version and this file, so an upgrade or
# a change here provisions afresh; a template whose certificate expires within a week is not
# used. Delete that directory to force a new provisioning; a fresh machine (CI) just
# provisions. The template holds the DC's Administrator password: a throw-away one, valid
# only on a DC that exists inside a test run's private namespace.
#
# Exports GOVTUI_TEST_AD_URL (ldaps://127.0.0.1:PORT), GOVTUI_TEST_AD_STARTTLS_URL
# (ldap://127.0.0.1:PORT, StartTLS required), GOVTUI_TEST_AD_BASE, GOVTUI_TEST_AD_REALM,
# GOVTUI_TEST_AD_DOMAIN (NetBIOS), GOVTUI_TEST_AD_ADMIN_DN, GOVTUI_TEST_AD_ADMIN_PASSWORD,
# GOVTUI_TEST_AD_CA, GOVTUI_TEST_AD_TLS_NAME, GOVTUI_TEST_AD_NETNS, GOVTUI_TEST_AD_NETNS_URL,
# GOVTUI_TEST_AD_SMB_CONF (so tests can stop and restart samba); or, where this machine
# cannot create a network namespace, only GOVTUI_TEST_AD_SKIP with the reason (the AD tests
# then skip, printing it). Everything is torn down at exit, also on failure.

# Not GOVTUI_*: scripts/test unsets every such variable after sourcing this.
_SAMBA_AD_REALM=AD.GOVTUI.TEST
_SAMBA_AD_DOMAIN=GOVTUIAD

start_samba_ad() {
    step "private Samba AD DC"
    local ns="govtui-ad-$$" err dir conf password base tls_name ports tries started
    started=$SECONDS

    # Namespaces first: a machine that cannot make one skips the AD tests, and needs no samba.
    ensure_debs iproute2
    if ((EUID != 0)) && ! sudo -n true 2>/dev/null; then
        _samba_ad_skip "creating a network namespace needs root, and sudo -n does not work"
        return 0
    fi
    err=$(_ad_root ip netns add "$ns" 2>&1) || {
        _samba_ad_skip "cannot create a network namespace (ip netns add: ${err:-failed})"
        return 0
    }
    add_cleanup _samba_ad_remove_netns "$ns"
    err=$(_ad_root ip -n "$ns" link set lo up 2>&1) || {
        _samba_ad_skip "cannot bring up loopback in a network namespace: $err"
        return 0
    }

    # samba: the AD DC binary; samba-dsdb-modules: the directory database; samba-vfs-modules:
    # acl_xattr, which provisioning needs for sysvol; samba-ad-provision: schema and setup
    # files; openssl: checks a saved DC's certificate. (samba-ad-dc would add winbind, which
    # this DC does not run.)
    ensure_debs samba samba-dsdb-modules samba-vfs-modules samba-ad-provision openssl

    dir=$(mktemp -d -t govtui-samba-ad.XXXXXX)
    add_cleanup _ad_root rm -rf "$dir"
    chmod 755 "$dir"
    # The server's processes are stopped before the directory goes (cleanups run in reverse).
    add_cleanup _samba_ad_stop "$ns" "$dir"
    conf="$dir/dc/etc/smb.conf"
    base="DC=${_SAMBA_AD_REALM,,}"
    base=${base//./,DC=}
    tls_name="dc1.${_SAMBA_AD_REALM,,}"
    # The provisioned DC is kept between runs (see "State" above): copying it takes a fraction
    # of a second, provisioning 10-20 s. Keyed by samba's version and this file, so a change
    # of either provisions afresh.
    local cache key template provisioned=0 from=provisioned setup
    cache="${XDG_CACHE_HOME:-$HOME/.cache}/govtui"
    key=$({ dpkg-query -W -f='${Version}' samba; sha256sum <"${BASH_SOURCE[0]}"; } |
        sha256sum | cut -c1-16)
    template="$cache/samba-ad-$key"
    # (A template another run is replacing at this moment fails the copy: then provision.)
    if _samba_ad_template_ok "$template" &&
        password=$(_ad_root cat "$template/password") &&
        _ad_root cp -a "$template/dc" "$dir/dc" &&
        _ad_root sed -i "s|$(_ad_root cat "$template/prefix")|$dir/dc|g" "$conf"; then
        from="copied from $template"
    else
        _ad_root rm -rf "$dir/dc"
        # A throw-away password for a DC nobody outside this namespace can reach; AD's
        # complexity rule wants upper and lower case, a digit and a symbol.
        password="Aa1-$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
        _samba_ad_provision "$ns" "$dir" "$password"
        provisioned=1
        # Copied before samba first runs (a copy of a live database could be torn); its
        # certificate is added once samba has made it.
        _ad_root mkdir -p "$cache"
        _ad_root rm -rf "$template.tmp.$$"
        add_cleanup _ad_root rm -rf "$template.tmp.$$"
        _ad_root mkdir -m 700 "$template.tmp.$$"
        _ad_root cp -a "$dir/dc" "$template.tmp.$$/dc"
    fi
    setup=$((SECONDS - started))

    # For tools run inside the namespace: the certificate's name resolves to the DC there.
    # Optional (a read-only /etc only loses this convenience).
    [[ -d /etc/netns ]] || add_cleanup _ad_root rmdir /etc/netns
    add_cleanup _ad_root rm -rf "/etc/netns/$ns"
    if _ad_root mkdir -p "/etc/netns/$ns" 2>/dev/null &&
        printf '127.0.0.1 %s dc1\n::1 %s dc1\n' "$tls_name" "$tls_name" |
        _ad_root tee "/etc/netns/$ns/hosts" >/dev/null; then
        export GOVTUI_TEST_AD_NETNS_URL="ldaps://$tls_name"
    fi

    _ad_root ip netns exec "$ns" samba -D -s "$conf" -l "$dir/dc/log" ||
        _samba_ad_fail "$dir" "samba did not start"
    # The forwarder: two free loopback ports here, to 636 and 389 in the namespace.
    _ad_root python3 "$GOVTUI_ROOT/scripts/lib/netns_forward.py" "$ns" "$dir/ports" 636 389 \
        </dev/null >"$dir/forward.log" 2>&1 &
    # Also stopped as a process of the namespace; this is for one that never got there.
    add_cleanup _samba_ad_kill "$!"
    tries=0
    until [[ -s $dir/ports ]]; do
        ((tries++ < 100)) || _samba_ad_fail "$dir" "the port forwarder did not start"
        sleep 0.05
    done
    ports=$(<"$dir/ports")
    local ldaps_port ldap_port
    ldaps_port=$(awk '$1 == 636 { print $2 }' <<<"$ports")
    ldap_port=$(awk '$1 == 389 { print $2 }' <<<"$ports")

    # Ready when LDAPS answers a search, then StartTLS must work too. The certificate is made
    # on samba's first start; it is checked by name in the tests (see TLS naming above).
    # The tools read the password from a file in the private (0700) directory, never from
    # their command line, which any login on the machine reads in ps.
    (umask 077 && printf '%s' "$password" >"$dir/admin.pw")
    tries=0
    until LDAPTLS_REQCERT=never ldapsearch -x -H "ldaps://127.0.0.1:$ldaps_port" \
        -D "CN=Administrator,CN=Users,$base" -y "$dir/admin.pw" -b "$base" -s base dn \
        >/dev/null 2>&1; do
        ((tries++ < 300)) || _samba_ad_fail "$dir" "samba does not answer on LDAPS"
        if [[ -s $dir/dc/run/samba.pid ]] && ! _ad_root kill -0 "$(<"$dir/dc/run/samba.pid")" 2>/dev/null; then
            _samba_ad_fail "$dir" "samba exited"
        fi
        sleep 0.1
    done
    LDAPTLS_REQCERT=never ldapsearch -ZZ -x -H "ldap://127.0.0.1:$ldap_port" \
        -D "CN=Administrator,CN=Users,$base" -y "$dir/admin.pw" -b "$base" -s base dn \
        >/dev/null 2>&1 || _samba_ad_fail "$dir" "samba does not answer LDAP with StartTLS"

    # The CA certificate where the tests can read it (the private dir is root's only).
    _ad_root cat "$dir/dc/private/tls/ca.pem" >"$dir/ca.pem"
    if ((provisioned)); then
        _samba_ad_save_template "$dir" "$template" "$password"
    fi

    export GOVTUI_TEST_AD_URL="ldaps://127.0.0.1:$ldaps_port"
    export GOVTUI_TEST_AD_STARTTLS_URL="ldap://127.0.0.1:$ldap_port"
    export GOVTUI_TEST_AD_BASE="$base"
    export GOVTUI_TEST_AD_REALM="$_SAMBA_AD_REALM"
    export GOVTUI_TEST_AD_DOMAIN="$_SAMBA_AD_DOMAIN"
    export GOVTUI_TEST_AD_ADMIN_DN="CN=Administrator,CN=Users,$base"
    export GOVTUI_TEST_AD_ADMIN_PASSWORD="$password"
    export GOVTUI_TEST_AD_ADMIN_PASSWORD_FILE="$dir/admin.pw"
    export GOVTUI_TEST_AD_CA="$dir/ca.pem"
    export GOVTUI_TEST_AD_TLS_NAME="$tls_name"
    export GOVTUI_TEST_AD_NETNS="$ns"
    export GOVTUI_TEST_AD_SMB_CONF="$conf"
    unset GOVTUI_TEST_AD_SKIP
    echo "ok: $GOVTUI_TEST_AD_URL and StartTLS on $GOVTUI_TEST_AD_STARTTLS_URL" \
        "($base, certificate $tls_name, namespace $ns; $setup s to set up ($from), $((SECONDS - started - setup)) s to start)"
}

# _ad_root CMD...: CMD as root, never asking for a password (start_samba_ad checked that).
_ad_root() {
    if ((EUID == 0)); then
        "$@"
    else
        sudo -n "$@"
    fi
}

_samba_ad_skip() {
    echo "AD tests will be SKIPPED: $1" >&2
    export GOVTUI_TEST_AD_SKIP="$1"
}

# _samba_ad_fail DIR MESSAGE: the end of samba's log, then die.
_samba_ad_fail() {
    local dir=$1
    shift
    if _ad_root test -s "$dir/dc/log/log.samba"; then
        echo "--- last lines of $dir/dc/log/log.samba:" >&2
        _ad_root tail -n 40 "$dir/dc/log/log.samba" >&2
    fi
    if [[ -s $dir/forward.log ]]; then
        echo "--- port forwarder:" >&2
        tail -n 20 "$dir/forward.log" >&2
    fi
    die "$*"
}

# _samba_ad_stop NS DIR: stops every process in the namespace (samba and its children, the
# forwarder), SIGTERM first, SIGKILL for what is left after 5 s.
_samba_ad_stop() {
    local ns=$1 pids i
    for i in $(seq 50); do
        pids=$(_ad_root ip netns pids "$ns" 2>/dev/null) || return 0
        [[ -n $pids ]] || return 0
        # shellcheck disable=SC2086  # one pid per word
        ((i == 1)) && _ad_root kill $pids 2>/dev/null
        sleep 0.1
    done
    # shellcheck disable=SC2086
    _ad_root kill -9 $pids 2>/dev/null || true
}

_samba_ad_kill() {
    _ad_root kill "$1" 2>/dev/null || true
}

_samba_ad_remove_netns() {
    _ad_root ip netns delete "$1" 2>/dev/null
}

# _samba_ad_provision NS DIR PASSWORD: a new domain in DIR/dc, provisioned inside NS (so
# whatever it might look up on the network stays there), configured to keep out of /run and
# /var/lib and to run the LDAP server only.
_samba_ad_provision() {
    local ns=$1 dir=$2 password=$3 conf="$2/dc/etc/smb.conf"
    : >"$dir/empty.conf"
    if ! _ad_root ip netns exec "$ns" samba-tool domain provision -s "$dir/empty.conf" \
        --use-rfc2307 --dns-backend=NONE --server-role=dc --host-name=dc1 \
        --realm="$_SAMBA_AD_REALM" --domain="$_SAMBA_AD_DOMAIN" --adminpass="$password" \
        --option="interfaces = lo" --option="bind interfaces only = yes" \
        --targetdir="$dir/dc" >"$dir/provision.log" 2>&1; then
        tail -n 30 "$dir/provision.log" >&2
        die "samba-tool domain provision failed (log above)"
    fi
    # What --targetdir does not move, and only the LDAP server.
    _ad_root mkdir -p "$dir/dc/run" "$dir/dc/log"
    _ad_root sed -i \
        -e '/^[[:space:]]*server services[[:space:]]*=/d' \
        -e "/^\[global\]/a\\
\tserver services = ldap\\
\tpid directory = $dir/dc/run\\
\tncalrpc dir = $dir/dc/run/ncalrpc\\
\twinbindd socket directory = $dir/dc/run/winbindd\\
\tntp signd socket directory = $dir/dc/run/ntp_signd\\
\tmax log size = 0" \
        "$conf"
}

# _samba_ad_template_ok TEMPLATE: whether TEMPLATE is a complete saved DC whose certificate
# is good for another week.
_samba_ad_template_ok() {
    _ad_root test -f "$1/complete" &&
        _ad_root openssl x509 -checkend 604800 -noout -in "$1/dc/private/tls/cert.pem" \
            >/dev/null 2>&1
}

# _samba_ad_save_template DIR TEMPLATE PASSWORD: completes the copy made before samba's first
# start with the certificate samba has made since, and puts it in place, replacing templates
# of other keys. Best effort: a run that cannot save one just provisions again next time.
_samba_ad_save_template() {
    local dir=$1 template=$2 tmp="$2.tmp.$$" old
    if _ad_root cp -a "$dir/dc/private/tls" "$tmp/dc/private/" &&
        printf '%s\n' "$3" | _ad_root tee "$tmp/password" >/dev/null &&
        printf '%s\n' "$dir/dc" | _ad_root tee "$tmp/prefix" >/dev/null &&
        _ad_root touch "$tmp/complete" &&
        _ad_root rm -rf "$template" &&
        _ad_root mv -T "$tmp" "$template"; then
        for old in "${template%-*}"-*; do
            [[ $old == "$template" || $old == *.tmp.* ]] || _ad_root rm -rf "$old"
        done
    else
        echo "note: could not save the provisioned DC in $template" >&2
    fi
}
