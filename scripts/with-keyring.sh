#!/usr/bin/env bash
# Runs a command inside a private D-Bus session with an unlocked gnome-keyring (a real
# Secret Service), then stops the keyring daemon. Needs dbus and gnome-keyring.
#   scripts/with-keyring.sh cargo test
set -euo pipefail

if [ "${1:-}" = "--inside" ]; then
    shift
    # A throwaway password: the keyring lives in this run's private HOME only.
    printf '%s' "knock-totp-test" | gnome-keyring-daemon --daemonize --unlock --components=secrets >/dev/null
    owner=""
    for _ in $(seq 1 100); do
        owner=$(dbus-send --session --print-reply=literal --dest=org.freedesktop.DBus \
            /org/freedesktop/DBus org.freedesktop.DBus.GetConnectionUnixProcessID \
            string:org.freedesktop.secrets 2>/dev/null | awk '{print $NF}') || true
        [ -n "$owner" ] && break
        sleep 0.1
    done
    if [ -z "$owner" ]; then
        echo "with-keyring: org.freedesktop.secrets never appeared on the session bus" >&2
        exit 1
    fi
    status=0
    "$@" || status=$?
    # The daemon does not always exit with its bus; a stale one makes later calls hang.
    kill "$owner" 2>/dev/null || true
    exit "$status"
fi

for tool in dbus-run-session gnome-keyring-daemon dbus-send; do
    command -v "$tool" >/dev/null || { echo "with-keyring: $tool is missing (apt-get install dbus gnome-keyring)" >&2; exit 1; }
done
keyring_home=$(mktemp -d)
trap 'rm -rf "$keyring_home"' EXIT
mkdir -m 0700 "$keyring_home/run"
# HOME and XDG_RUNTIME_DIR must be set before dbus-run-session so that bus-activated
# helpers inherit them. The real HOME is kept for cargo and rustup.
export KNOCK_TOTP_REAL_HOME="${HOME:-/root}"
export CARGO_HOME="${CARGO_HOME:-$KNOCK_TOTP_REAL_HOME/.cargo}"
export RUSTUP_HOME="${RUSTUP_HOME:-$KNOCK_TOTP_REAL_HOME/.rustup}"
export HOME="$keyring_home" XDG_RUNTIME_DIR="$keyring_home/run" XDG_DATA_HOME="$keyring_home/data"
dbus-run-session -- "$0" --inside "$@"
