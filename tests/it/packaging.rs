//! What `cargo package` would publish (no test fixtures: they hold test secrets), and the
//! Debian package that `cargo deb` makes, installed with apt into a throwaway root.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime};

use crate::support::{can_run, have, is_root, stderr_of, stdout_of};

#[test]
fn package_does_not_ship_fixtures() {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["package", "--list", "--allow-dirty", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let files = stdout_of(&out);
    assert!(files.lines().any(|f| f == "src/main.rs"), "{files}");
    assert!(files.lines().any(|f| f == "man/knock-totp.1"), "{files}");
    let shipped: Vec<&str> = files
        .lines()
        .filter(|f| f.starts_with("tests/fixtures/"))
        .collect();
    assert!(shipped.is_empty(), "fixtures would ship: {shipped:?}");
}

/// What this machine's root file system has of the package, to compare before and after.
fn host_state() -> Vec<(String, Option<SystemTime>)> {
    let mut state: Vec<(String, Option<SystemTime>)> = [
        "/usr/bin/knock-totp",
        "/lib/systemd/system/knock-totp-server@.service",
        "/usr/share/man/man1/knock-totp.1.gz",
    ]
    .iter()
    .map(|p| {
        let modified = std::fs::symlink_metadata(p).and_then(|m| m.modified()).ok();
        (p.to_string(), modified)
    })
    .collect();
    let dpkg = Command::new("dpkg-query")
        .args(["-W", "-f=${Status} ${Version}", "knock-totp"])
        .output()
        .unwrap();
    state.push((format!("dpkg-query: {}", stdout_of(&dpkg)), None));
    state
}

/// `cargo deb --no-build` around the binary under test (a private target dir whose
/// target/release/knock-totp it is): the package's metadata and assets as `cargo deb` uses
/// them, without a release build in the test. KNOCK_TOTP_DEB=PATH tests a .deb built already
/// (.ci/run passes the one `cargo deb` made from the release build).
fn build_deb(dir: &Path) -> PathBuf {
    if let Some(deb) = std::env::var_os("KNOCK_TOTP_DEB") {
        return PathBuf::from(deb);
    }
    let target = dir.join("target");
    std::fs::create_dir_all(target.join("release")).unwrap();
    std::fs::copy(
        env!("CARGO_BIN_EXE_knock-totp"),
        target.join("release/knock-totp"),
    )
    .unwrap();
    let out_dir = dir.join("deb");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = Command::new(env!("CARGO"))
        .args("deb --no-build --offline --locked --strip --fast".split(' '))
        .arg("--output")
        .arg(&out_dir)
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "cargo deb: {}", stderr_of(&out));
    assert!(
        !stderr_of(&out).contains("warning"),
        "cargo deb warns:\n{}",
        stderr_of(&out)
    );
    let debs: Vec<PathBuf> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "{debs:?}");
    debs[0].clone()
}

/// Checks run in the throwaway root, after `apt-get install ./knock-totp_*.deb` there. A
/// stand-in for /usr/bin/systemctl and a /run/systemd/system make the maintainer scripts
/// believe that systemd runs, and log what they ask of it.
const INSIDE: &str = r#"
set -eu
fail() { echo "FAIL: $*"; exit 1; }
export DEBIAN_FRONTEND=noninteractive
mkdir -p /run/systemd/system
rm -f /usr/bin/systemctl
printf '#!/bin/sh\necho "$*" >>/tmp/systemctl.log\n' >/usr/bin/systemctl
chmod 755 /usr/bin/systemctl
cd /tmp/pkg
# A knock-totp that this machine has already (the package, or a copy) goes first, in here only.
if dpkg-query -W -f='${Status}' knock-totp 2>/dev/null | grep -q ' installed$'; then
    dpkg --purge knock-totp >/dev/null
fi
rm -f /usr/bin/knock-totp /tmp/systemctl.log
apt-get install -y --no-install-recommends ./knock-totp_*.deb
echo "status: $(dpkg-query -W -f='${Status}' knock-totp)"
echo "version: $(/usr/bin/knock-totp --version)"
unit=/lib/systemd/system/knock-totp-server@.service
[ -f "$unit" ] || fail "no $unit"
# Instantiates the template and checks (among the rest) that ExecStart's binary exists.
systemd-analyze verify --man=no "$unit" || fail "systemd-analyze verify $unit"
for page in knock-totp knock-totp-server knock-totp-setup; do
    zcat "/usr/share/man/man1/$page.1.gz" | grep -q '^\.TH' || fail "man page $page"
done
bash -c '. /usr/share/bash-completion/completions/knock-totp && complete -p knock-totp' ||
    fail "bash completion"
[ -s /usr/share/zsh/vendor-completions/_knock-totp ] || fail "zsh completion"
[ -s /usr/share/fish/vendor_completions.d/knock-totp.fish ] || fail "fish completion"
systemctl_log() {
    touch /tmp/systemctl.log
    echo "systemctl $1: $(tr '\n' ';' </tmp/systemctl.log)"
    rm /tmp/systemctl.log
}
systemctl_log install
apt-get install -y --reinstall ./knock-totp_*.deb
systemctl_log upgrade
apt-get purge -y knock-totp
systemctl_log purge
[ ! -e /usr/bin/knock-totp ] || fail "purge left /usr/bin/knock-totp"
[ ! -e "$unit" ] || fail "purge left $unit"
echo "all checks passed"
"#;

/// The Debian package installs with `apt-get install ./knock-totp_*.deb` (its dependencies
/// already on this machine, no network) into a throwaway root: a mount namespace whose / is
/// an overlay of this machine's / (read-only, below) and a tmpfs (on top), so apt sees the
/// installed packages and everything it writes goes with the namespace. In there: the
/// binary runs, the template unit passes `systemd-analyze verify`, man pages and completions
/// are where the shells look, the maintainer scripts ask systemd for what they should, and a
/// purge removes it all. This machine's / is untouched afterwards.
#[test]
fn debian_package_installs_with_apt_into_a_throwaway_root() {
    if !can_run(
        "needs root (mounts an overlay of / in a mount namespace)",
        is_root(),
    ) || !can_run(
        "needs cargo-deb (scripts/test-deps.sh installs it)",
        std::env::var_os("KNOCK_TOTP_DEB").is_some() || have("cargo-deb"),
    ) || !can_run(
        "needs apt-get, dpkg-query, unshare, chroot and systemd-analyze",
        "apt-get dpkg-query unshare chroot systemd-analyze"
            .split(' ')
            .all(have),
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let deb = build_deb(dir.path());
    let built = started.elapsed();
    let before = host_state();

    let ns = dir.path().join("ns");
    std::fs::create_dir_all(&ns).unwrap();
    let outside = r#"
set -eu
deb=$1 t=$2
mount -t tmpfs -o mode=0755 knock-totp-root "$t"
mkdir "$t/upper" "$t/work" "$t/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$t/upper,workdir=$t/work" "$t/root"
mount --bind /proc "$t/root/proc"
mount --rbind /dev "$t/root/dev"
mkdir -p "$t/root/tmp/pkg"
cp "$deb" "$t/root/tmp/pkg/"
exec chroot "$t/root" /bin/sh -c "$3"
"#;
    let out = Command::new("timeout")
        .args("600 unshare --mount --propagation private --net".split(' '))
        .args(["sh", "-c", outside, "sh"])
        .arg(&deb)
        .arg(&ns)
        .arg(INSIDE)
        .output()
        .unwrap();
    let installed = started.elapsed() - built;
    let stdout = stdout_of(&out);
    let report = format!("stdout:\n{stdout}\nstderr:\n{}", stderr_of(&out));
    assert!(out.status.success(), "{report}");
    assert!(stdout.contains("all checks passed"), "{report}");
    for line in [
        "status: install ok installed".to_owned(),
        format!("version: knock-totp {}", env!("CARGO_PKG_VERSION")),
        // Nothing enabled or started at install, only a reload.
        "systemctl install: --system daemon-reload;".to_owned(),
        "systemctl upgrade: --system daemon-reload;try-restart knock-totp-server@*.service;"
            .to_owned(),
        "systemctl purge: stop knock-totp-server@*.service;--system daemon-reload;--system daemon-reload;"
            .to_owned(),
    ] {
        assert!(stdout.lines().any(|l| l == line), "no {line:?}:\n{report}");
    }
    assert!(
        !stderr_of(&out).contains("dpkg: warning"),
        "dpkg warns about the package:\n{report}"
    );
    assert_eq!(
        host_state(),
        before,
        "the install in the throwaway root changed this machine's /"
    );
    eprintln!("packaging: cargo deb {built:.1?}, apt install and checks {installed:.1?}");
}
