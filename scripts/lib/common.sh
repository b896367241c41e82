# shellcheck shell=bash
# Shared helpers for scripts/test and scripts/run. Sourced, never executed: it installs an EXIT
# trap in the sourcing shell, so whatever a script starts is stopped however the script ends.

# The repository root, whatever directory the calling script was started from.
GOVTUI_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
readonly GOVTUI_ROOT
export GOVTUI_ROOT

# A headline before each step, so a long CI log shows where it failed.
step() {
    printf '\n==> %s\n' "$*"
}

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Runs a command as root: directly when we are root (CI, containers), else through sudo.
as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        die "need root for: $* (not root, and no sudo)"
    fi
}

# ---------------------------------------------------------------------------------------------
# Cleanup: one EXIT trap runs every registered command, last registered first, so a service
# is stopped before the directory it lives in is removed. It runs on success, on failure
# (set -e) and on Ctrl-C or kill, because INT/TERM/HUP are turned into an ordinary exit.
# Register only from the main shell: a registration made inside $(...) or a pipeline is lost
# with that subshell.

_GOVTUI_CLEANUPS=()

# add_cleanup CMD [ARG...]: run CMD ARG... at exit. The words are quoted now, so paths with
# spaces or odd characters are safe when the command is evaluated later.
add_cleanup() {
    local cmd
    printf -v cmd '%q ' "$@"
    _GOVTUI_CLEANUPS+=("$cmd")
}

_govtui_run_cleanups() {
    local rc=$? i
    # A second Ctrl-C must not cut the teardown short and leave a server running.
    trap '' INT TERM HUP
    set +e
    for ((i = ${#_GOVTUI_CLEANUPS[@]} - 1; i >= 0; i--)); do
        eval "${_GOVTUI_CLEANUPS[i]}"
    done
    _GOVTUI_CLEANUPS=()
    exit "$rc"
}

trap _govtui_run_cleanups EXIT
# Without these, a signal could kill bash without the EXIT trap on some versions; exiting with
# the conventional 128+N status keeps the "killed by a signal" meaning for the caller.
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Debian packages.

_GOVTUI_APT_UPDATED=

# ensure_debs PKG...: installs those of PKG that are not installed yet; nothing (and no root,
# no network) when all are there, which is the common case on a developer's machine.
ensure_debs() {
    local pkg status missing=() log
    for pkg in "$@"; do
        status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
        [[ $status == "install ok installed" ]] || missing+=("$pkg")
    done
    ((${#missing[@]})) || return 0

    echo "installing Debian packages: ${missing[*]}"
    # apt's progress is long and rarely interesting; keep it, and show it only on failure.
    log=$(mktemp -t govtui-apt.XXXXXX)
    # sudo resets the environment, so DEBIAN_FRONTEND goes through env(1) to reach apt/debconf
    # (slapd, for one, would otherwise ask questions on a terminal CI does not have).
    if { [[ -n $_GOVTUI_APT_UPDATED ]] || as_root apt-get update; } >"$log" 2>&1 &&
        _GOVTUI_APT_UPDATED=1 &&
        as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y --no-install-recommends "${missing[@]}" >>"$log" 2>&1; then
        rm -f "$log"
    else
        tail -n 40 "$log" >&2
        rm -f "$log"
        die "could not install: ${missing[*]}"
    fi
}

# ---------------------------------------------------------------------------------------------
# The project's virtualenv.

# _venv_stamp LOCKFILE: what .venv/.govtui-lock says once LOCKFILE is installed. pyproject.toml
# is part of it: a new console script or package needs govtui reinstalled even when no pin
# changed.
_venv_stamp() {
    printf '%s %s pyproject %s' "$(basename "$1")" "$(sha256sum <"$1" | cut -d' ' -f1)" \
        "$(sha256sum <"$GOVTUI_ROOT/pyproject.toml" | cut -d' ' -f1)"
}

# _govtui_stamp: what .venv/.govtui-tree says once this checkout's govtui is installed: one
# SHA-256 over the name and content of every file a build of govtui takes (the package, with
# the lock its symbolic link points to, pyproject.toml and the README it puts in the metadata).
_govtui_stamp() {
    (
        cd "$GOVTUI_ROOT" &&
            find -L govtui pyproject.toml README.md -type f ! -path '*/__pycache__/*' -print0 |
            LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
    )
}

# venv_holds LOCKFILE: whether .venv holds exactly LOCKFILE's packages (and this pyproject).
venv_holds() {
    local stamp="$GOVTUI_ROOT/.venv/.govtui-lock"
    [[ -x $GOVTUI_ROOT/.venv/bin/python && -f $stamp && $(<"$stamp") == "$(_venv_stamp "$1")" ]]
}

# ensure_govtui: installs this checkout's govtui into .venv unless the very same files are
# installed already. Not editable: a wheel's RECORD lists every file of govtui with its
# SHA-256, which `govtui doctor` checks (an editable install's RECORD lists only a path hook).
# The build runs on a copy of the tree in a temporary folder, so no build/ or egg-info left in
# the checkout can carry a deleted module into the wheel; the symbolic link
# govtui/requirements.lock becomes a real file there (the lock doctor checks against).
# Tests import the checkout (pytest's rootdir), subprocesses and tmux the installed copy:
# the stamp makes every change of the tree reinstall, and tests/test_install_integrity.py
# fails when the two differ.
ensure_govtui() {
    local venv="$GOVTUI_ROOT/.venv" stamp="$GOVTUI_ROOT/.venv/.govtui-tree" want src
    want=$(_govtui_stamp)
    [[ -f $stamp && $(<"$stamp") == "$want" ]] && return 0
    step "installing govtui into .venv"
    src=$(mktemp -d -t govtui-build.XXXXXX)
    add_cleanup rm -rf "$src"
    cp -RL "$GOVTUI_ROOT/govtui" "$GOVTUI_ROOT/pyproject.toml" "$GOVTUI_ROOT/README.md" "$src/"
    find "$src/govtui" -name __pycache__ -prune -exec rm -rf {} +
    # With --no-build-isolation the locked setuptools builds it, so the build fetches nothing
    # the lock did not check; the project is the one thing installed without hashes.
    "$venv/bin/pip" --quiet --quiet --disable-pip-version-check --no-input \
        install --no-deps --no-build-isolation --force-reinstall "$src"
    rm -rf "$src"
    printf '%s\n' "$want" >"$stamp.tmp"
    mv "$stamp.tmp" "$stamp"
}

# install_lock VENV LOCKFILE: installs LOCKFILE's packages into VENV, every file checked against
# the lock's hashes, and wheels only: no package's build code (setup.py, a build backend) runs
# here, and scripts/lock refuses a pin without wheels for the Pythons we support
# (tests/test_lock_wheels.py). govtui itself is built by ensure_govtui with the locked
# setuptools, so the build fetches nothing the lock did not check.
install_lock() {
    # -qq: errors only; the machine's pip configuration can add pages of harmless warnings.
    "$1/bin/pip" --quiet --quiet --disable-pip-version-check --no-input \
        install --require-hashes --only-binary :all: -r "$2"
}

# ensure_venv LOCKFILE: makes $GOVTUI_ROOT/.venv hold exactly LOCKFILE's packages plus govtui
# itself (ensure_govtui). Reinstalls the packages only when LOCKFILE or pyproject.toml changed
# since the last successful install, and govtui when its files did, so a second run costs
# nothing.
ensure_venv() {
    local lock=$1 venv="$GOVTUI_ROOT/.venv" stamp want
    [[ -f $lock ]] || die "no lock file: $lock"
    command -v python3 >/dev/null || ensure_debs python3 python3-venv

    if [[ ! -x $venv/bin/python ]]; then
        step "creating $venv"
        # Debian's python3 has the venv module but not ensurepip without python3-venv, so
        # trying is the only reliable test; a failed attempt leaves a venv without pip.
        if ! python3 -m venv "$venv" >/dev/null 2>&1; then
            rm -rf "$venv"
            ensure_debs python3-venv
            python3 -m venv "$venv" || { rm -rf "$venv"; die "python3 -m venv failed"; }
        fi
    fi

    want=$(_venv_stamp "$lock")
    stamp="$venv/.govtui-lock"
    if venv_holds "$lock"; then
        ensure_govtui
        return 0
    fi

    step "installing $lock into .venv"
    install_lock "$venv" "$lock"
    rm -f "$venv/.govtui-tree" # pyproject.toml may have changed: install govtui afresh
    ensure_govtui
    # Written last: an interrupted install is retried by the next run.
    printf '%s\n' "$want" >"$stamp.tmp"
    mv "$stamp.tmp" "$stamp"
}

# ---------------------------------------------------------------------------------------------

# free_port: prints a TCP port on 127.0.0.1 that was free a moment ago. Another process could
# take it before we bind it; on a test machine that is rare enough.
free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}
