//! The door commands `setup` writes for GCP and Azure, run by `sh` as knockd runs them,
//! against a stand-in `az` that keeps a network security group in a directory and refuses
//! two inbound rules with one priority, as Azure does (SecurityRuleConflict); and the
//! server's refusal of a protected port that a cloud firewall would open with the knock range.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::{have, stderr_of, Env};

/// `az network nsg rule list|create|delete`: one file per rule (its name) holding its
/// priority; the listing is slow, so concurrent doors really race.
const FAKE_AZ: &str = r#"#!/bin/sh
state="$KT_NSG"
cmd="$4"
shift 4
name= prio=
while [ $# -gt 0 ]; do
    case "$1" in
        --name) name="$2"; shift ;;
        --priority) prio="$2"; shift ;;
    esac
    shift
done
exec 9>"$state.lock"
case "$cmd" in
list)
    flock 9; cat "$state"/* 2>/dev/null; flock -u 9; sleep 0.2 ;;
create)
    sleep 0.05
    flock 9
    for f in "$state"/*; do
        [ -e "$f" ] || continue
        [ "$(basename "$f")" = "$name" ] && continue
        if [ "$(cat "$f")" = "$prio" ]; then
            echo "(SecurityRuleConflict) Security rule $name conflicts with rule $(basename "$f"). Rules cannot have the same Priority and Direction." >&2
            exit 1
        fi
    done
    echo "$prio" > "$state/$name" ;;
delete)
    flock 9; rm -f "$state/$name" ;;
esac
"#;

/// knockd.conf's first values of `keys` from `setup` for `firewall` (extra flags after it).
fn door_commands<const N: usize>(env: &Env, firewall: &[&str], keys: [&str; N]) -> [String; N] {
    let out_dir = env.path().join(format!("out-{}", firewall[0]));
    let out = env
        .cmd()
        .args(["setup", "web", "--engine", "knockd", "--firewall"])
        .args(firewall)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "setup: {}", stderr_of(&out));
    let conf = std::fs::read_to_string(out_dir.join("knockd.conf")).unwrap();
    keys.map(|key| {
        conf.lines()
            .find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == key).then(|| v.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no {key} in:\n{conf}"))
    })
}

fn priorities(nsg: &Path) -> Vec<(String, u32)> {
    std::fs::read_dir(nsg)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let priority = std::fs::read_to_string(e.path()).unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                priority.trim().parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn forty_concurrent_azure_grants_get_forty_distinct_priorities() {
    if !["flock", "cksum", "awk", "seq"].into_iter().all(have) {
        crate::support::can_run("needs flock, cksum, awk and seq", false);
        return;
    }
    let env = Env::new();
    let [start, stop] = door_commands(
        &env,
        &[
            "azure",
            "--resource-group",
            "rg1",
            "--security-group",
            "nsg1",
        ],
        ["start_command", "stop_command"],
    );
    let bin = env.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("az"), FAKE_AZ).unwrap();
    std::fs::set_permissions(bin.join("az"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let nsg = env.path().join("nsg");
    std::fs::create_dir_all(&nsg).unwrap();
    // An admin's rules, some inside the grants' pool.
    for (name, priority) in [("admin-deny", 100), ("kt-open", 3900), ("admin-web", 1234)] {
        std::fs::write(nsg.join(name), format!("{priority}\n")).unwrap();
    }
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());

    // 10.213.200.1-40 as knockd would substitute them, all at once. Under the old scheme
    // (priority = first three digits of cksum + 1000) .4/.5, .22/.23, .24/.26 and .2/.34
    // shared a priority, so one of each pair was refused.
    let knockers: Vec<String> = (1..=40).map(|i| format!("10.213.200.{i}")).collect();
    let children: Vec<_> = knockers
        .iter()
        .map(|ip| {
            Command::new("sh")
                .args(["-c", &start.replace("%IP%", ip)])
                .env("PATH", &path)
                .env("KT_NSG", &nsg)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (ip, child) in knockers.iter().zip(children) {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "grant for {ip}: {}", stderr_of(&out));
    }
    let rules = priorities(&nsg);
    let grants: Vec<&(String, u32)> = rules
        .iter()
        .filter(|(n, _)| n.starts_with("kt-web-"))
        .collect();
    assert_eq!(grants.len(), knockers.len(), "{rules:?}");
    let distinct: BTreeSet<u32> = rules.iter().map(|(_, p)| *p).collect();
    assert_eq!(
        distinct.len(),
        rules.len(),
        "a priority is shared: {rules:?}"
    );
    assert!(
        grants.iter().all(|(_, p)| (1000..=3899).contains(p)),
        "{grants:?}"
    );

    // The stop command deletes exactly the knocker's own rule.
    let status = Command::new("sh")
        .args(["-c", &stop.replace("%IP%", "10.213.200.7")])
        .env("PATH", &path)
        .env("KT_NSG", &nsg)
        .status()
        .unwrap();
    assert!(status.success());
    let after = priorities(&nsg);
    assert_eq!(after.len(), rules.len() - 1);
    assert!(after.iter().all(|(n, _)| !n.ends_with("-10-213-200-7")));
}

#[test]
fn gcp_servers_whose_names_share_sixteen_characters_get_their_own_rules() {
    let env = Env::new();
    let mut rules = Vec::new();
    for name in ["production-web-01", "production-web-02"] {
        let out_dir = env.path().join(name);
        let out = env
            .cmd()
            .args(["setup", name, "--engine", "knockd", "--firewall", "gcp"])
            .args(["--network", "prod", "--out"])
            .arg(&out_dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "setup: {}", stderr_of(&out));
        let conf = std::fs::read_to_string(out_dir.join("knockd.conf")).unwrap();
        let start = conf
            .lines()
            .find(|l| l.trim_start().starts_with("start_command "))
            .unwrap()
            .to_owned();
        let word = |prefix: &str| {
            start
                .split_whitespace()
                .find(|w| w.starts_with(prefix))
                .unwrap()
                .to_owned()
        };
        rules.push((word("kt-"), word("--target-tags=")));
    }
    assert_ne!(rules[0].0, rules[1].0, "rule names: {rules:?}");
    assert_ne!(rules[0].1, rules[1].1, "target tags: {rules:?}");
}

#[test]
fn server_refuses_a_protected_port_in_the_knock_range_with_knockd_on_a_cloud() {
    let env = Env::new();
    let config = env.path().join("web.toml");
    for (firewall, table) in [
        ("aws", "[aws]\nsecurity_group = \"sg-0123abcd\"\n"),
        ("gcp", "[gcp]\nnetwork = \"prod\"\n"),
        (
            "azure",
            "[azure]\nresource_group = \"rg1\"\nnsg = \"nsg1\"\n",
        ),
    ] {
        std::fs::write(
            &config,
            format!(
                "name = \"web\"\nsecret_file = \"/etc/knock-totp/web.secret\"\nport = 2222\n\
                 engine = \"knockd\"\ninterface = \"eth0\"\n\
                 knockd_conf = \"/etc/knock-totp/knockd/web.conf\"\n\
                 knockd_pid_file = \"/run/knockd.pid\"\nfirewall = \"{firewall}\"\n{table}"
            ),
        )
        .unwrap();
        let out = env
            .cmd()
            .args(["server", "--once", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{firewall}: {}",
            stderr_of(&out)
        );
        let err = stderr_of(&out);
        assert!(
            err.contains("web.toml:3:")
                && err.contains("port 2222 is in the knock range 1000-9999")
                && err.contains("open to the world"),
            "{firewall}: {err}"
        );
        assert_eq!(
            err.lines().filter(|l| !l.starts_with("hint:")).count(),
            1,
            "{err}"
        );
    }
}
