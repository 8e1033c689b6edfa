#!/usr/bin/env bash
# Checks dependencies with cargo-deny: licences, bans and sources always; security advisories
# when the advisory database can be fetched (or is already on disk), with a note when not.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deny >/dev/null || cargo install --locked cargo-deny
cargo deny --log-level error check licenses bans sources
if cargo deny --log-level error check advisories 2>/tmp/knock-totp-deny.log; then
    echo "cargo deny: advisories ok"
elif grep -qiE "fetch|network|resolve|connect|clone" /tmp/knock-totp-deny.log; then
    echo "cargo deny: advisory database unreachable from here; advisories not checked"
    head -3 /tmp/knock-totp-deny.log
else
    cat /tmp/knock-totp-deny.log
    exit 1
fi
