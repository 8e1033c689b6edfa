//! The daemon's metrics as a Prometheus node_exporter textfile (`server --metrics-file`):
//! the kernel's counters, the attack state, the doors in place and the last rotation, in the
//! text exposition format. Pure: the engine reads the counters and writes the file.
//!
//! Nothing here knows a door's ports or a secret: the input holds only counts, so no knock
//! port can reach the file.

use std::fmt::Write as _;

use super::status::Counters;

/// What one metrics file says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsInput {
    /// The server's name (the `server` label of every metric).
    pub server: String,
    /// The table's named counters.
    pub counters: Counters,
    /// Each user served and the doors they opened (empty on a single-secret server).
    pub users: Vec<(String, u64)>,
    pub under_attack: bool,
    /// Doors in place in the kernel.
    pub doors: usize,
    /// The unix second the daemon last put the doors of a window in place.
    pub last_rotation: u64,
}

/// One metric family: name, help, type.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
}

const fn counter(name: &'static str, help: &'static str) -> Family {
    Family {
        name,
        help,
        kind: "counter",
    }
}

const fn gauge(name: &'static str, help: &'static str) -> Family {
    Family {
        name,
        help,
        kind: "gauge",
    }
}

/// `value` as a label value of the text format: backslash, double quote and newline escaped.
pub fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The metrics file's text: every family with its HELP and TYPE lines, every sample labelled
/// with the server; the per-user family only when there are users.
pub fn render(input: &MetricsInput) -> String {
    let c = &input.counters;
    let server = format!("server=\"{}\"", escape_label_value(&input.server));
    let families: [(Family, u64); 13] = [
        (
            counter(
                "knock_totp_knocks_total",
                "Knocks (SYNs to the knock range, public ports aside) that reached the knock chain.",
            ),
            c.knocks,
        ),
        (
            counter("knock_totp_doors_opened_total", "Doors opened by a completed knock."),
            c.opened,
        ),
        (
            counter(
                "knock_totp_replays_refused_total",
                "Completed knocks refused because another source had opened that door (replays).",
            ),
            c.refused,
        ),
        (
            counter(
                "knock_totp_stages_cancelled_total",
                "Knocks after a door's first port that completed no door (the stage ended).",
            ),
            c.cancelled,
        ),
        (
            counter("knock_totp_bans_total", "Sources or networks banned."),
            c.bans,
        ),
        (
            counter(
                "knock_totp_banned_drops_total",
                "Knocks dropped because their source or its network was banned.",
            ),
            c.banned,
        ),
        (
            counter(
                "knock_totp_attack_drops_total",
                "Untrusted knocks dropped while the server was under attack.",
            ),
            c.attacked,
        ),
        (
            counter(
                "knock_totp_untracked_drops_total",
                "Knocks dropped because a full set could not track their source.",
            ),
            c.untracked,
        ),
        (
            counter(
                "knock_totp_rate_limited_drops_total",
                "Trusted sources' knocks dropped over the rate (never a ban).",
            ),
            c.limited,
        ),
        (
            counter(
                "knock_totp_protected_port_drops_total",
                "SYNs to the protected port dropped (no grant for their source).",
            ),
            c.denied,
        ),
        (
            gauge(
                "knock_totp_under_attack",
                "1 while the server is under attack (only trusted sources reach a door), else 0.",
            ),
            u64::from(input.under_attack),
        ),
        (
            gauge("knock_totp_doors", "Doors in place in the kernel."),
            input.doors as u64,
        ),
        (
            gauge(
                "knock_totp_last_rotation_timestamp_seconds",
                "Unix time the daemon last put a window's doors in place.",
            ),
            input.last_rotation,
        ),
    ];
    let mut out = String::new();
    let head = |out: &mut String, f: &Family| {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
    };
    for (family, value) in &families {
        head(&mut out, family);
        let _ = writeln!(out, "{}{{{server}}} {value}", family.name);
    }
    if !input.users.is_empty() {
        let family = counter(
            "knock_totp_user_doors_opened_total",
            "Doors each user opened (since the user's counter was made).",
        );
        head(&mut out, &family);
        for (name, opened) in &input.users {
            let _ = writeln!(
                out,
                "{}{{{server},user=\"{}\"}} {opened}",
                family.name,
                escape_label_value(name)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> MetricsInput {
        MetricsInput {
            server: "web".into(),
            counters: Counters {
                knocks: 12,
                opened: 3,
                refused: 1,
                cancelled: 4,
                bans: 2,
                denied: 7,
                banned: 40,
                attacked: 0,
                untracked: 0,
                limited: 5,
            },
            users: Vec::new(),
            under_attack: false,
            doors: 3,
            last_rotation: 1_796_609_940,
        }
    }

    const SINGLE: &str = r#"# HELP knock_totp_knocks_total Knocks (SYNs to the knock range, public ports aside) that reached the knock chain.
# TYPE knock_totp_knocks_total counter
knock_totp_knocks_total{server="web"} 12
# HELP knock_totp_doors_opened_total Doors opened by a completed knock.
# TYPE knock_totp_doors_opened_total counter
knock_totp_doors_opened_total{server="web"} 3
# HELP knock_totp_replays_refused_total Completed knocks refused because another source had opened that door (replays).
# TYPE knock_totp_replays_refused_total counter
knock_totp_replays_refused_total{server="web"} 1
# HELP knock_totp_stages_cancelled_total Knocks after a door's first port that completed no door (the stage ended).
# TYPE knock_totp_stages_cancelled_total counter
knock_totp_stages_cancelled_total{server="web"} 4
# HELP knock_totp_bans_total Sources or networks banned.
# TYPE knock_totp_bans_total counter
knock_totp_bans_total{server="web"} 2
# HELP knock_totp_banned_drops_total Knocks dropped because their source or its network was banned.
# TYPE knock_totp_banned_drops_total counter
knock_totp_banned_drops_total{server="web"} 40
# HELP knock_totp_attack_drops_total Untrusted knocks dropped while the server was under attack.
# TYPE knock_totp_attack_drops_total counter
knock_totp_attack_drops_total{server="web"} 0
# HELP knock_totp_untracked_drops_total Knocks dropped because a full set could not track their source.
# TYPE knock_totp_untracked_drops_total counter
knock_totp_untracked_drops_total{server="web"} 0
# HELP knock_totp_rate_limited_drops_total Trusted sources' knocks dropped over the rate (never a ban).
# TYPE knock_totp_rate_limited_drops_total counter
knock_totp_rate_limited_drops_total{server="web"} 5
# HELP knock_totp_protected_port_drops_total SYNs to the protected port dropped (no grant for their source).
# TYPE knock_totp_protected_port_drops_total counter
knock_totp_protected_port_drops_total{server="web"} 7
# HELP knock_totp_under_attack 1 while the server is under attack (only trusted sources reach a door), else 0.
# TYPE knock_totp_under_attack gauge
knock_totp_under_attack{server="web"} 0
# HELP knock_totp_doors Doors in place in the kernel.
# TYPE knock_totp_doors gauge
knock_totp_doors{server="web"} 3
# HELP knock_totp_last_rotation_timestamp_seconds Unix time the daemon last put a window's doors in place.
# TYPE knock_totp_last_rotation_timestamp_seconds gauge
knock_totp_last_rotation_timestamp_seconds{server="web"} 1796609940
"#;

    #[test]
    fn a_single_secret_server_has_no_user_family() {
        assert_eq!(render(&input()), SINGLE);
    }

    #[test]
    fn users_get_one_sample_each_after_the_server_families() {
        let mut input = input();
        input.under_attack = true;
        input.doors = 6;
        input.users = vec![("alice".into(), 2), ("bob".into(), 0)];
        let text = render(&input);
        let expected = SINGLE
            .replace(
                "knock_totp_under_attack{server=\"web\"} 0",
                "knock_totp_under_attack{server=\"web\"} 1",
            )
            .replace(
                "knock_totp_doors{server=\"web\"} 3",
                "knock_totp_doors{server=\"web\"} 6",
            )
            + "# HELP knock_totp_user_doors_opened_total Doors each user opened (since the user's counter was made).\n\
               # TYPE knock_totp_user_doors_opened_total counter\n\
               knock_totp_user_doors_opened_total{server=\"web\",user=\"alice\"} 2\n\
               knock_totp_user_doors_opened_total{server=\"web\",user=\"bob\"} 0\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn label_values_are_escaped_as_the_format_says() {
        assert_eq!(escape_label_value("alice"), "alice");
        assert_eq!(
            escape_label_value("a\"b\\c\nd"),
            "a\\\"b\\\\c\\nd".to_string()
        );
        let mut input = input();
        input.server = "we\"b".into();
        input.users = vec![("o\\'brien\n".into(), 1)];
        let text = render(&input);
        assert!(
            text.contains("knock_totp_doors{server=\"we\\\"b\"} 3\n"),
            "{text}"
        );
        assert!(
            text.ends_with(
                "knock_totp_user_doors_opened_total{server=\"we\\\"b\",user=\"o\\\\'brien\\n\"} 1\n"
            ),
            "{text}"
        );
        // Every sample is one line: name, labels, value.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert_eq!(
                line.rsplit_once(' ').map(|(_, v)| v.parse::<u64>().is_ok()),
                Some(true)
            );
        }
    }

    #[test]
    fn every_family_has_help_and_type_before_its_samples() {
        let mut input = input();
        input.users = vec![("alice".into(), 2)];
        let text = render(&input);
        let mut declared = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.push(rest.split(' ').next().unwrap().to_owned());
            } else if !line.starts_with('#') {
                let name = line.split('{').next().unwrap();
                assert_eq!(declared.last().map(String::as_str), Some(name), "{line}");
                assert!(line.contains("server=\"web\""), "{line}");
            }
        }
        assert_eq!(declared.len(), 14);
        assert_eq!(text.matches("# HELP ").count(), 14);
    }
}
