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
    for (title, sources) in [("allowed now", &status.allowed), ("banned", &status.banned)] {
        let _ = writeln!(out, "{title}: {}", sources.len());
        for s in sources.iter() {
            let _ = writeln!(out, "  {} ({})", source(s), left(s));
        }
    }
    let c = &status.counters;
    let _ = writeln!(
        out,
        "counters: knocks {}, doors opened {}, replays refused {}, stages cancelled {}, \
         bans {}, protected-port SYNs dropped {}",
        c.knocks, c.opened, c.refused, c.cancelled, c.bans, c.denied
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
        "counters": {
            "knocks": c.knocks,
            "opened": c.opened,
            "refused": c.refused,
            "cancelled": c.cancelled,
            "bans": c.bans,
            "denied": c.denied,
        },
    })
}
