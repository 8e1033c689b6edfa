//! `server --status`: the kernel's state of a server's table, as text or JSON.
//!
//! Door ports are the code: they appear only when the operator asks (`-v`).

use std::fmt::Write as _;

use serde_json::{json, Value};

use super::status::{NftStatus, TimedSource, UserStatus};

fn source(s: &TimedSource) -> String {
    if s.prefix_len == 32 || s.prefix_len == 128 {
        s.addr.to_string()
    } else {
        format!("{}/{}", s.addr, s.prefix_len)
    }
}

/// A duration as people read it: `42 s`, `9 min 12 s`, `2 h 5 min`, `6 d 23 h`.
pub fn human_duration(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    match seconds {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{m} min {s} s"),
        3600..=86_399 => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h"),
    }
}

/// Unix seconds as RFC 3339 (`2026-12-06T23:10:00Z`).
pub fn rfc3339(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|t| jiff::Timestamp::from_second(t).ok())
        .map_or_else(|| unix.to_string(), |t| t.to_string())
}

/// Unix seconds as a UTC clock reading for text (`2026-12-06 23:10:00 UTC`).
pub fn clock(unix: u64) -> String {
    rfc3339(unix).replace('T', " ").replace('Z', " UTC")
}

fn left(s: &TimedSource) -> String {
    s.seconds_left.map_or_else(
        || "no timeout".into(),
        |t| format!("{} left", human_duration(t)),
    )
}

/// Which level of the ban holds: the address itself or a network around it.
pub fn ban_level(s: &TimedSource) -> String {
    if s.prefix_len == 32 || s.prefix_len == 128 {
        "the address itself".into()
    } else if s.addr.is_ipv6() && s.prefix_len == 64 {
        "its /64 (one IPv6 subscriber)".into()
    } else {
        format!("its whole /{} network", s.prefix_len)
    }
}

/// The loud line for a table without a door for the current window (no knock can open the
/// port), if it has none. The signal is the doors' own time bounds (read from their rules),
/// not the daemon's process: a table whose doors all lie outside `now` opens for nobody,
/// whether the daemon never ran (the bare base table of `firewall-setup.sh`), stopped and
/// removed them, or died or hangs and they expired.
pub fn doorless_warning(status: &NftStatus, now: u64) -> Option<String> {
    if status.active_doors(now).next().is_some() {
        return None;
    }
    let why = match (status.windows.first(), status.windows.last()) {
        (Some(first), Some(last)) if !status.doors.is_empty() => format!(
            "the doors in the kernel (windows {first}..{last}) have expired: the daemon is not \
             rotating (it died, hangs, or its clock is wrong)"
        ),
        _ if !status.doors.is_empty() => {
            "the doors in the kernel have expired: the daemon is not rotating".into()
        }
        _ => "the table is the bare base table (no door at all): the daemon is not running".into(),
    };
    Some(format!(
        "WARNING: no door for the current window, nobody can knock the port open: {why}; \
         start the daemon (systemctl start knock-totp-NAME, or knock-totp server --config FILE)"
    ))
}

/// The status as lines of text.
pub fn text(table: &str, status: &NftStatus, now: u64, show_ports: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "table inet {table} at {}", clock(now));
    if let Some(warning) = doorless_warning(status, now) {
        let _ = writeln!(out, "{warning}");
    }
    if let Some(left) = status.attack_seconds_left {
        let _ = writeln!(
            out,
            "UNDER ATTACK ({} left unless it goes on, until {}): wrong knocks over the global \
             budget or more sources than the sets hold; only trusted sources reach a door",
            human_duration(left),
            clock(now + left)
        );
    }
    let active: Vec<_> = status.active_doors(now).collect();
    let _ = writeln!(out, "doors: {} active", active.len());
    for door in &active {
        let _ = write!(
            out,
            "  window {}{}: valid until {} ({} left), {}",
            door.door.counter,
            door.door
                .user
                .as_ref()
                .map(|u| format!(" ({})", u.name))
                .unwrap_or_default(),
            clock(door.door.valid_until),
            human_duration(door.door.valid_until.saturating_sub(now)),
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
    if show_ports && !status.staged.is_empty() {
        let staged: Vec<String> = status
            .staged
            .iter()
            .map(|s| format!("{} ({})", source(s), left(s)))
            .collect();
        let _ = writeln!(out, "half-way (knocked a door's A): {}", staged.join(", "));
    }
    if !status.users.is_empty() {
        let _ = writeln!(out, "users: {}", status.users.len());
        for user in &status.users {
            let _ = writeln!(out, "  {}", user_line(user, status, now));
        }
    }
    let _ = writeln!(out, "allowed now: {}", status.allowed.len());
    for s in &status.allowed {
        let _ = writeln!(out, "  {} ({})", source(s), left(s));
    }
    let _ = writeln!(out, "banned: {}", status.banned.len());
    for s in &status.banned {
        let until = s
            .seconds_left
            .map(|t| format!(", until {}", clock(now + t)))
            .unwrap_or_default();
        let _ = writeln!(out, "  {}: {}, {}{until}", source(s), ban_level(s), left(s));
    }
    let _ = writeln!(out, "trusted: {}", status.trusted.len());
    for s in &status.trusted {
        let _ = writeln!(out, "  {} ({})", source(s), left(s));
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

/// One user: their doors now, their grants, the doors they opened and when they last did.
fn user_line(user: &UserStatus, status: &NftStatus, now: u64) -> String {
    let doors = status
        .active_doors(now)
        .filter(|d| d.door.user.as_ref().is_some_and(|u| u.tag == user.user.tag))
        .count();
    let grants: Vec<String> = user
        .grants
        .iter()
        .map(|g| format!("{} ({})", source(g), left(g)))
        .collect();
    format!(
        "{}: {doors} doors, {}, opened {}{}",
        user.user.name,
        if grants.is_empty() {
            "no grant now".to_owned()
        } else {
            format!("let in: {}", grants.join(", "))
        },
        user.opened,
        user.last_opened_ago()
            .map(|ago| format!(", last {} ago", human_duration(ago)))
            .unwrap_or_default()
    )
}

/// The status as JSON: the seconds fields as before, and every moment in RFC 3339 beside them.
pub fn json(table: &str, status: &NftStatus, now: u64, show_ports: bool) -> Value {
    let timed = |s: &TimedSource| {
        json!({
            "source": source(s),
            "prefix_len": s.prefix_len,
            "seconds_left": s.seconds_left,
            "expires": s.seconds_left.map(|t| rfc3339(now + t)),
        })
    };
    let sources = |list: &[TimedSource]| -> Vec<Value> { list.iter().map(timed).collect() };
    let banned: Vec<Value> = status
        .banned
        .iter()
        .map(|s| {
            let mut v = timed(s);
            let full = s.prefix_len == 32 || s.prefix_len == 128;
            v["level"] = json!(if full { "address" } else { "network" });
            v["reason"] = json!(ban_level(s));
            v
        })
        .collect();
    let doors: Vec<Value> = status
        .active_doors(now)
        .map(|d| {
            let mut door = json!({
                "window": d.door.counter,
                "valid_from": d.door.valid_from,
                "valid_until": d.door.valid_until,
                "valid_from_time": rfc3339(d.door.valid_from),
                "valid_until_time": rfc3339(d.door.valid_until),
                "seconds_left": d.door.valid_until.saturating_sub(now),
                "owner": d.owner.map(|o| o.to_string()),
                "user": d.door.user.as_ref().map(|u| u.name.clone()),
            });
            if show_ports {
                door["ports"] = json!(d.door.ports);
            }
            door
        })
        .collect();
    let users: Vec<Value> = status
        .users
        .iter()
        .map(|u| {
            json!({
                "name": u.user.name,
                "open_seconds": u.user.open_seconds,
                "doors": status
                    .active_doors(now)
                    .filter(|d| d.door.user.as_ref().is_some_and(|du| du.tag == u.user.tag))
                    .count(),
                "grants": sources(&u.grants),
                "opened": u.opened,
                "last_opened_seconds_ago": u.last_opened_ago(),
            })
        })
        .collect();
    let warning = doorless_warning(status, now);
    let c = &status.counters;
    json!({
        "users": users,
        "table": table,
        "checked_at": rfc3339(now),
        "current_door": warning.is_none(),
        "warnings": warning.into_iter().collect::<Vec<_>>(),
        "installed_windows": status.windows,
        "doors": doors,
        "staged": if show_ports { json!(sources(&status.staged)) } else { json!(status.staged.len()) },
        "allowed": sources(&status.allowed),
        "banned": banned,
        "trusted": sources(&status.trusted),
        "under_attack": status.attack_seconds_left.is_some(),
        "attack_seconds_left": status.attack_seconds_left,
        "attack_until": status.attack_seconds_left.map(|t| rfc3339(now + t)),
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
                    user: None,
                    slot: 1,
                },
                owner: Some("10.213.0.2".parse().unwrap()),
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
            users: Vec::new(),
            staged: Vec::new(),
            attack_seconds_left: Some(42),
            counters: Default::default(),
            base_settings: None,
            windows: vec![6, 7, 8],
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

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(human_duration(0), "0 s");
        assert_eq!(human_duration(59), "59 s");
        assert_eq!(human_duration(552), "9 min 12 s");
        assert_eq!(human_duration(3600 + 300), "1 h 5 min");
        assert_eq!(human_duration(604_790), "6 d 23 h");
        assert_eq!(rfc3339(1_795_663_547), "2026-11-26T03:25:47Z");
        assert_eq!(clock(1_795_663_547), "2026-11-26 03:25:47 UTC");
    }

    #[test]
    fn bans_say_their_level_and_when_they_end() {
        let mut st = status();
        st.banned.push(TimedSource {
            addr: "10.213.0.0".parse().unwrap(),
            prefix_len: 24,
            seconds_left: Some(552),
        });
        st.banned.push(TimedSource {
            addr: "10.213.0.5".parse().unwrap(),
            prefix_len: 32,
            seconds_left: Some(41),
        });
        let t = text("t", &st, 150, false);
        assert!(
            t.contains("  10.213.0.0/24: its whole /24 network, 9 min 12 s left, until 1970-01-01 00:11:42 UTC"),
            "{t}"
        );
        assert!(
            t.contains("  10.213.0.5: the address itself, 41 s left"),
            "{t}"
        );
        assert!(
            t.contains("fd13:213:0:2::/64: its /64 (one IPv6 subscriber), 8 min 20 s left"),
            "{t}"
        );
        assert!(
            t.contains("valid until 1970-01-01 00:03:10 UTC (40 s left)"),
            "{t}"
        );
        let v = json("t", &st, 150, false);
        assert_eq!(v["banned"][1]["expires"], "1970-01-01T00:11:42Z");
        assert_eq!(v["banned"][1]["level"], "network");
        assert_eq!(v["banned"][2]["level"], "address");
        assert_eq!(v["banned"][2]["seconds_left"], 41);
        assert_eq!(v["doors"][0]["valid_until_time"], "1970-01-01T00:03:10Z");
        assert_eq!(v["doors"][0]["valid_until"], 190);
        assert_eq!(v["attack_until"], "1970-01-01T00:03:12Z");
        assert_eq!(v["checked_at"], "1970-01-01T00:02:30Z");
        assert_eq!(v["current_door"], true);
        assert!(v["doors"][0].get("staged").is_none());
    }

    #[test]
    fn a_table_without_a_current_door_says_so_loudly() {
        let st = status();
        assert_eq!(doorless_warning(&st, 150), None);
        // The doors installed have expired: the daemon stopped rotating.
        let expired = doorless_warning(&st, 190).unwrap();
        assert!(
            expired.starts_with("WARNING: no door for the current window"),
            "{expired}"
        );
        assert!(
            expired.contains("not rotating") && expired.contains("windows 6..8"),
            "{expired}"
        );
        // The bare base table: no door, no window.
        let bare = NftStatus::default();
        let warning = doorless_warning(&bare, 150).unwrap();
        assert!(warning.contains("bare base table"), "{warning}");
        assert!(text("t", &bare, 150, false).contains(&warning));
        let v = json("t", &bare, 150, false);
        assert_eq!(v["current_door"], false);
        assert_eq!(v["warnings"][0], warning.as_str());
    }
}
