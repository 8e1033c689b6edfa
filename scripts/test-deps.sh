#!/usr/bin/env bash
# Installs the Debian packages the tests use (run as root), or with --check says whether
# they are all present.
set -euo pipefail
packages=(oathtool dbus gnome-keyring libsecret-tools knockd iptables nftables iproute2
    zbar-tools mandoc socat procps bsdutils)
programs=(oathtool dbus-run-session gnome-keyring-daemon secret-tool knockd iptables nft ip
    zbarimg mandoc socat pgrep script knock)
if [ "${1:-}" = "--check" ]; then
    for p in "${programs[@]}"; do command -v "$p" >/dev/null || exit 1; done
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
