#!/usr/bin/env bash
# Installs what the tests use (run as root): Debian packages, the aws CLI with the moto EC2
# emulator from PyPI, and cargo-deb from crates.io (the Debian package test; a few minutes to
# compile). With --check, only says (by its exit code) whether all are present.
set -euo pipefail
packages=(oathtool dbus gnome-keyring libsecret-tools knockd iptables ipset nftables iproute2
    zbar-tools mandoc socat procps bsdutils util-linux elvish systemd faketime
    openssh-server openssh-client python3 binutils dpkg-dev)
programs=(oathtool dbus-run-session gnome-keyring-daemon secret-tool knockd iptables ipset nft ip
    zbarimg mandoc socat pgrep script knock unshare setpriv elvish systemd-analyze ss faketime
    sshd ssh scp ssh-keygen python3 nm ldd strip dpkg-shlibdeps chroot apt-get)
python_programs=(aws moto_server)
# Pinned: `cargo deb` builds the package the README describes (Cargo.toml's metadata.deb).
cargo_deb_version=3.8.0
if [ "${1:-}" = "--check" ]; then
    for p in "${programs[@]}" "${python_programs[@]}" cargo-deb; do
        command -v "$p" >/dev/null || exit 1
    done
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
for p in "${python_programs[@]}"; do
    if ! command -v "$p" >/dev/null; then
        python3 -m pip install --quiet --disable-pip-version-check 'awscli>=1.29' 'moto[server]>=5'
        hash -r
        break
    fi
done
if ! cargo deb --version >/dev/null 2>&1; then
    cargo install --quiet --locked cargo-deb --version "$cargo_deb_version"
fi
