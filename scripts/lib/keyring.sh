# shellcheck shell=bash
# A real, private Secret Service (gnome-keyring on its own D-Bus session bus) for the tests, so
# that keyring code is tested against the backend it meets on a desktop, never against the
# user's own keyring. Needs common.sh sourced first.

# with_secret_service CMD [ARG...]: runs CMD with HOME and XDG_RUNTIME_DIR in a fresh private
# temp dir, a new session bus (DBUS_SESSION_BUS_ADDRESS), and an unlocked gnome-keyring
# "login" collection on it. Returns CMD's exit status; the bus, the daemon and the temp dir are
# gone afterwards (dbus-run-session ends the bus when CMD exits, and gnome-keyring-daemon exits
# with its bus). As root, dbus-daemon logs "Failed to set fd limit ...: Operation not
# permitted" where the sandbox forbids raising the limit; the bus works regardless.
with_secret_service() {
    local home rc=0
    home=$(mktemp -d -t govtui-keyring.XXXXXX)
    # Also registered, for when Ctrl-C or a kill ends the script before we remove it below.
    add_cleanup rm -rf "$home"
    mkdir -m 700 "$home/run"
    chmod 700 "$home"
    # dbus-run-session stops its bus when CMD exits, but a hangup (the terminal closed) kills
    # dbus-run-session itself, and dbus-daemon, which takes SIGHUP as "reload", lived on.
    # The bus is started through a wrapper that notes its pid, stopped by a cleanup (run
    # before the directory's removal: last registered, first run).
    printf '#!/bin/sh\necho $$ >"%s/run/dbus.pid"\nexec dbus-daemon "$@"\n' "$home" >"$home/dbus-daemon"
    chmod 700 "$home/dbus-daemon"
    add_cleanup _stop_secret_service_bus "$home/run/dbus.pid"

    # The keyring password only has to unlock this throw-away keyring; it is random so no
    # test can come to depend on it, and it is removed from the environment before CMD runs.
    # Every XDG base directory is pointed into the temp dir too: gnome-keyring keeps its
    # keyrings under XDG_DATA_HOME, which may be set to the user's real one. A forced backend
    # (PYTHON_KEYRING_BACKEND) or the user's keyring daemon must not leak in either.
    # shellcheck disable=SC2016 # the inner sh expands $_GOVTUI_KEYRING_PW and "$@", not us
    env -u PYTHON_KEYRING_BACKEND -u GNOME_KEYRING_CONTROL -u SSH_AUTH_SOCK \
        -u DBUS_SESSION_BUS_ADDRESS \
        HOME="$home" XDG_RUNTIME_DIR="$home/run" \
        XDG_DATA_HOME="$home/.local/share" XDG_CONFIG_HOME="$home/.config" \
        XDG_CACHE_HOME="$home/.cache" XDG_STATE_HOME="$home/.local/state" \
        _GOVTUI_KEYRING_PW="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" \
        dbus-run-session --dbus-daemon="$home/dbus-daemon" -- sh -c '
            printf %s "$_GOVTUI_KEYRING_PW" |
                gnome-keyring-daemon --unlock --components=secrets >/dev/null || exit 1
            unset _GOVTUI_KEYRING_PW
            exec "$@"' sh "$@" || rc=$?

    rm -rf "$home"
    return "$rc"
}

# _stop_secret_service_bus PIDFILE: stop the bus with_secret_service started, if it outlived
# dbus-run-session (and it is still that dbus-daemon).
_stop_secret_service_bus() {
    local pid
    [[ -f $1 ]] || return 0
    pid=$(<"$1")
    [[ $(ps -o comm= -p "$pid" 2>/dev/null) == dbus-daemon ]] || return 0
    kill "$pid" 2>/dev/null || true
}
