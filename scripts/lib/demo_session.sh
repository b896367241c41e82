#!/usr/bin/env bash
# scripts/lib/demo_session.sh [govtui args...]: the inside of `scripts/run --demo`, run by
# with_secret_service (scripts/lib/keyring.sh) so that the demo's TOTP secrets and signing keys
# and the TUI share one private Secret Service. Fills GOVTUI_DB with `govtui demo` (with the
# private OpenLDAP started by scripts/run, if GOVTUI_DEMO_LDAP_URL is set: registered over
# ldaps:// trusting GOVTUI_DEMO_LDAP_CA_FILE, its people are added and the demo's directory
# operations pushed), then runs the TUI as alex.
set -euo pipefail
govtui="$GOVTUI_ROOT/.venv/bin/govtui"
"$govtui" init >/dev/null
started=$SECONDS
if [[ -n ${GOVTUI_DEMO_LDAP_URL-} ]]; then
    base=$GOVTUI_TEST_LDAP_BASE
    printf '%s\n' "$GOVTUI_TEST_LDAP_ADMIN_PASSWORD" |
        "$govtui" demo --contractors "$GOVTUI_DEMO_CONTRACTORS" \
            --directory-url "$GOVTUI_DEMO_LDAP_URL" --bind-dn "$GOVTUI_TEST_LDAP_ADMIN_DN" \
            --users-base "ou=people,$base" --groups-base "ou=groups,$base" \
            --ca-file "$GOVTUI_DEMO_LDAP_CA_FILE" --password-stdin >/dev/null
    # The demo's people, as an HR system would have put them into the directory (over ldaps://,
    # trusting the demo's CA alone and checking the server's name).
    "$govtui" --as alex contractor list --json --limit 100000 |
        "$GOVTUI_ROOT/.venv/bin/python" -c '
import json, sys
base = sys.argv[1]
for c in json.load(sys.stdin):
    uid, name, mail = c["directory_uid"], c["name"], c["email"]
    print(f"dn: uid={uid},ou=people,{base}\nobjectClass: inetOrgPerson\nuid: {uid}")
    print(f"cn: {name}\nsn: {name.split()[-1]}\nmail: {mail}\n")
' "$base" |
        LDAPTLS_CACERT=$GOVTUI_DEMO_LDAP_CA_FILE LDAPTLS_REQCERT=demand \
            ldapadd -x -H "$GOVTUI_DEMO_LDAP_URL" -D "$GOVTUI_TEST_LDAP_ADMIN_DN" \
            -y "$GOVTUI_TEST_LDAP_ADMIN_PASSWORD_FILE" >/dev/null
    "$govtui" --as alex sync >/dev/null
    echo "demo: directory $GOVTUI_DEMO_LDAP_URL holds the demo's people and groups"
else
    "$govtui" demo --contractors "$GOVTUI_DEMO_CONTRACTORS" >/dev/null
fi
echo "demo: data made through the services in $((SECONDS - started)) s; acting as alex"
GOVTUI_OPERATOR=alex "$govtui" "$@"
