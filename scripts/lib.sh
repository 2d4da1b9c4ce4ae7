# shellcheck shell=bash
# Helpers shared by the scripts in this folder. Source it; do not run it.

set -euo pipefail

VF_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export VF_ROOT

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# apt_missing PKG...: the ones the package database does not have installed.
apt_missing() {
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || echo "$pkg"
    done
}

# ensure_apt PKG...: install the Debian packages that are missing, once.
# Reads the package database first so a machine that has them makes no
# network call and needs no root. One install at a time: the lanes of
# `make test` and the background image build install what they need side by
# side, and a second apt-get would fail on dpkg's lock.
ensure_apt() {
    local missing lock
    mapfile -t missing < <(apt_missing "$@")
    ((${#missing[@]})) || return 0
    [[ $(id -u) -eq 0 ]] || die "missing Debian packages: ${missing[*]} (run as root or install them)"
    exec {lock}>/var/lock/voice-fleet-apt.lock
    flock "$lock"
    # Whoever held the lock may have installed them meanwhile.
    mapfile -t missing < <(apt_missing "${missing[@]}")
    if ((${#missing[@]})); then
        log "Installing Debian packages: ${missing[*]}"
        # A stale package index is the usual cause of 404s on a fresh machine.
        DEBIAN_FRONTEND=noninteractive apt-get update -qq \
            || die "apt-get update failed; check access to the Debian mirrors"
        NEEDRESTART_SUSPEND=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
            || die "apt-get install failed for: ${missing[*]}"
    fi
    exec {lock}>&-
}

# wait_for DESCRIPTION SECONDS COMMAND...: poll COMMAND once a second until it
# succeeds; after SECONDS, fail naming DESCRIPTION.
wait_for() {
    local what=$1 seconds=$2 i
    shift 2
    for ((i = 0; i < seconds; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 1
    done
    die "timed out after ${seconds}s waiting for ${what}"
}
