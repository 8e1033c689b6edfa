//! `server --status`: the kernel's state of a server's table, as text or JSON.
//!
//! Door ports are the code: they appear only when the operator asks (`-v`).

use std::fmt::Write as _;

use serde_json::{json, Value};

use super::status::{NftStatus, TimedSource};

fn source(s: &TimedSource) -> String {
    if s.prefix_len == 32 || s.prefix_len == 128 {
        s.addr.to_string()
    } else {
        format!("{}/{}", s.addr, s.prefix_len)
    }
}

fn left(s: &TimedSource) -> String {
    s.seconds_left
        .map_or_else(|| "no timeout".into(), |t| format!("{t} s left"))
}

/// The status as lines of text.
pub fn text(table: &str, status: &NftStatus, now: u64, show_ports: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "table inet {table}");
    if let Some(left) = status.attack_seconds_left {
        let _ = writeln!(
            out,
            "UNDER ATTACK ({left} s left unless it goes on): wrong knocks over the global budget \
             or more sources than the sets hold; only trusted sources reach a door"
        );
    }
    let active: Vec<_> = status.active_doors(now).collect();
    let _ = writeln!(out, "doors: {} active", active.len());
    for door in &active {
        let _ = write!(
            out,
            "  window {}: valid {}..{} ({} s left), {}",
            door.door.counter,
            door.door.valid_from,
            door.door.valid_until,
            door.door.valid_until.saturating_sub(now),
            match door.owner {
                Some(owner) => format!("owned by {owner}"),
                None => "not used yet".into(),
            },
        );
        if show_ports {
            let _ = write!(out, ", knock {} {}", door.door.ports[0], door.door.ports[1]);
        }
        out.push('\n');
    }
    for (title, sources) in [
        ("allowed now", &status.allowed),
        ("banned", &status.banned),
        ("trusted", &status.trusted),
    ] {
        let _ = writeln!(out, "{title}: {}", sources.len());
        for s in sources.iter() {
            let _ = writeln!(out, "  {} ({})", source(s), left(s));
        }
    }
    let c = &status.counters;
    let _ = writeln!(
        out,
        "counters: knocks {}, doors opened {}, replays refused {}, stages cancelled {}, \
         bans {}, protected-port SYNs dropped {}, dropped as banned {}, dropped under attack {}, \
         dropped untracked {}, trusted over the rate {}",
        c.knocks,
        c.opened,
        c.refused,
        c.cancelled,
        c.bans,
        c.denied,
        c.banned,
        c.attacked,
        c.untracked,
        c.limited
    );
    out
}

/// The status as JSON.
pub fn json(table: &str, status: &NftStatus, now: u64, show_ports: bool) -> Value {
    let sources = |list: &[TimedSource]| -> Vec<Value> {
        list.iter()
            .map(|s| json!({"source": source(s), "seconds_left": s.seconds_left}))
            .collect()
    };
    let doors: Vec<Value> = status
        .active_doors(now)
        .map(|d| {
            let mut door = json!({
                "window": d.door.counter,
                "valid_from": d.door.valid_from,
                "valid_until": d.door.valid_until,
                "owner": d.owner.map(|o| o.to_string()),
            });
            if show_ports {
                door["ports"] = json!(d.door.ports);
            }
            door
        })
        .collect();
    let c = &status.counters;
    json!({
        "table": table,
        "doors": doors,
        "allowed": sources(&status.allowed),
        "banned": sources(&status.banned),
        "trusted": sources(&status.trusted),
        "under_attack": status.attack_seconds_left.is_some(),
        "attack_seconds_left": status.attack_seconds_left,
        "counters": {
            "knocks": c.knocks,
            "opened": c.opened,
            "refused": c.refused,
            "cancelled": c.cancelled,
            "bans": c.bans,
            "denied": c.denied,
            "banned": c.banned,
            "attacked": c.attacked,
            "untracked": c.untracked,
            "limited": c.limited,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::engine::nftables::ruleset::NftDoor;
    use crate::server::engine::nftables::status::DoorStatus;

    fn status() -> NftStatus {
        NftStatus {
            doors: vec![DoorStatus {
                door: NftDoor {
                    counter: 7,
                    ports: [4321, 8765],
                    valid_from: 100,
                    valid_until: 190,
                },
                owner: Some("10.213.0.2".parse().unwrap()),
                staged: Vec::new(),
            }],
            allowed: vec![TimedSource {
                addr: "10.213.0.2".parse().unwrap(),
                prefix_len: 32,
                seconds_left: Some(12),
            }],
            banned: vec![TimedSource {
                addr: "fd13:213:0:2::".parse().unwrap(),
                prefix_len: 64,
                seconds_left: Some(500),
            }],
            trusted: Vec::new(),
            attack_seconds_left: Some(42),
            counters: Default::default(),
            base_settings: None,
        }
    }

    #[test]
    fn ports_appear_only_when_asked() {
        let quiet = text("t", &status(), 150, false);
        assert!(
            !quiet.contains("4321") && !quiet.contains("8765"),
            "{quiet}"
        );
        assert!(quiet.contains("window 7") && quiet.contains("owned by 10.213.0.2"));
        assert!(quiet.contains("10.213.0.2 (12 s left)") && quiet.contains("fd13:213:0:2::/64"));
        assert!(text("t", &status(), 150, true).contains("knock 4321 8765"));
        let value = json("t", &status(), 150, false);
        assert!(value["doors"][0].get("ports").is_none());
        assert_eq!(
            json("t", &status(), 150, true)["doors"][0]["ports"][0],
            4321
        );
        assert!(quiet.contains("UNDER ATTACK (42 s left"));
        assert_eq!(value["under_attack"], true);
        // A door past its window is not active.
        assert!(text("t", &status(), 190, true).contains("doors: 0 active"));
    }
}
