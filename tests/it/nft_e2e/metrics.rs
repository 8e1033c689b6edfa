//! `server --metrics-file`, as root in the lab: the daemon writes a Prometheus textfile that
//! counts a legit knock and a replay, never holds a knock port, and is replaced atomically.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use super::{last_knocked_ports, nft_lab_available, v4, Rig, PROTECTED};
use crate::support::{stderr_of, unix_now, wait_until};

/// One sample of the text format: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `a="x",b="y\"z"` (escapes undone).
fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once("=\"")
            .ok_or_else(|| format!("no label value in {text:?}"))?;
        if !is_metric_name(name) || name.contains(':') {
            return Err(format!("bad label name {name:?}"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    other => return Err(format!("bad escape {other:?} in {text:?}")),
                },
                Some((i, '"')) => break i,
                Some((_, '\n')) | None => return Err(format!("unterminated value in {text:?}")),
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(name.to_owned(), value).is_some() {
            return Err(format!("label {name} twice in {text:?}"));
        }
        rest = &after[end + 1..];
        rest = match rest.strip_prefix(',') {
            Some(more) => more,
            None if rest.is_empty() => rest,
            None => return Err(format!("junk after a label value in {text:?}")),
        };
    }
    Ok(labels)
}

/// The whole file in the text format: HELP and TYPE lines, then that family's samples; a
/// complete file ends with a newline.
fn parse(text: &str) -> Result<Vec<Sample>, String> {
    if !text.ends_with('\n') {
        return Err(format!("no final newline (a partial file?): {text:?}"));
    }
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("HELP"), Some(name), Some(_)) if is_metric_name(name) => {}
                (Some("TYPE"), Some(name), Some(kind @ ("counter" | "gauge")))
                    if is_metric_name(name) =>
                {
                    if typed.insert(name.to_owned(), kind.to_owned()).is_some() {
                        return Err(format!("TYPE of {name} twice"));
                    }
                }
                _ => return Err(format!("bad comment line {line:?}")),
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| format!("no value in {line:?}"))?;
        let value: f64 = value
            .parse()
            .map_err(|e| format!("bad value in {line:?}: {e}"))?;
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => {
                let labels = labels
                    .strip_suffix('}')
                    .ok_or_else(|| format!("unclosed labels in {line:?}"))?;
                (name, parse_labels(labels)?)
            }
            None => (series, BTreeMap::new()),
        };
        if !is_metric_name(name) {
            return Err(format!("bad metric name in {line:?}"));
        }
        if !typed.contains_key(name) {
            return Err(format!("{name} has no TYPE line before its sample"));
        }
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    Ok(samples)
}

/// The value of the one sample of `name` labelled only with the server.
fn value(samples: &[Sample], name: &str) -> f64 {
    let found: Vec<&Sample> = samples.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "{name} in {samples:?}");
    found[0].value
}

fn read_metrics(path: &Path) -> Vec<Sample> {
    let text = std::fs::read_to_string(path).unwrap();
    parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn nft_metrics_file_counts_a_knock_and_a_replay_and_is_replaced_atomically() {
    if !nft_lab_available(true) {
        return;
    }
    const PERIOD: u64 = 5;
    let started = Instant::now();
    let mut rig = Rig::setup("nftmetrics", PERIOD, 30);
    let dir = rig.lab.dir.path().join("textfile");
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("knock-totp.prom");
    rig.with_daemon_args(&["--metrics-file", &path.to_string_lossy()]);
    rig.install_base();
    rig.lab.start_echo_server(PROTECTED);
    rig.start_daemon();
    wait_until(
        Duration::from_secs(2),
        Duration::from_millis(10),
        || path.exists(),
        || {
            format!(
                "no metrics file after the first rotation:\n{}",
                rig.log_text()
            )
        },
    );
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(meta.is_file());
    assert_eq!(meta.permissions().mode() & 0o777, 0o644);
    let first = read_metrics(&path);
    assert!(value(&first, "knock_totp_doors") >= 2.0, "{first:?}");
    assert_eq!(value(&first, "knock_totp_doors_opened_total"), 0.0);

    // A legit knock, then its replay from a second address.
    let replayer = rig.lab.add_client_ipv4(3);
    let out = rig.knock_ok(v4(rig.lab.server_ip), "the legit knock failed");
    let knocked = last_knocked_ports(&stderr_of(&out))
        .unwrap_or_else(|| panic!("no ports in {}", stderr_of(&out)));
    rig.send(v4(replayer), &knocked, 100);
    // Within a repair check (every few seconds) the file says so.
    let counted = |samples: &[Sample]| {
        value(samples, "knock_totp_doors_opened_total") >= 1.0
            && value(samples, "knock_totp_replays_refused_total") >= 1.0
    };
    wait_until(
        Duration::from_secs(PERIOD + 3),
        Duration::from_millis(50),
        || counted(&read_metrics(&path)),
        || {
            format!(
                "the metrics never counted the knock and the replay:\n{}\n{}",
                std::fs::read_to_string(&path).unwrap_or_default(),
                rig.report()
            )
        },
    );
    let samples = read_metrics(&path);
    // The legit knock's two SYNs and the replay's two.
    assert!(
        value(&samples, "knock_totp_knocks_total") >= 4.0,
        "{samples:?}"
    );
    assert_eq!(
        value(&samples, "knock_totp_under_attack"),
        0.0,
        "{samples:?}"
    );
    assert_eq!(value(&samples, "knock_totp_bans_total"), 0.0, "{samples:?}");
    // Three doors, two of them live around a rotation (the repair adds the next when it is).
    let doors = value(&samples, "knock_totp_doors");
    assert!((2.0..=3.0).contains(&doors), "{samples:?}");
    let rotated = value(&samples, "knock_totp_last_rotation_timestamp_seconds");
    let now = unix_now().as_secs_f64();
    assert!(
        rotated <= now + 1.0 && rotated >= now - 2.0 * PERIOD as f64 - 2.0,
        "last rotation {rotated}, now {now}"
    );
    for family in [
        "knock_totp_stages_cancelled_total",
        "knock_totp_banned_drops_total",
        "knock_totp_attack_drops_total",
        "knock_totp_untracked_drops_total",
        "knock_totp_protected_port_drops_total",
    ] {
        value(&samples, family);
    }
    for sample in &samples {
        assert_eq!(
            sample.labels.get("server").map(String::as_str),
            Some("web"),
            "{sample:?}"
        );
        assert_eq!(sample.labels.len(), 1, "a single-secret server: {sample:?}");
    }

    // Atomic replacement: read the file as fast as possible while the daemon rewrites it
    // (each rotation changes the last rotation's time), every read whole and parseable.
    let mut inodes = vec![std::fs::metadata(&path).unwrap().ino()];
    let mut reads = 0u64;
    let deadline = Instant::now() + Duration::from_secs(3 * PERIOD + 3);
    while inodes.len() < 3 && Instant::now() < deadline {
        let inode = std::fs::metadata(&path).unwrap().ino();
        let text = std::fs::read_to_string(&path).unwrap();
        let samples = parse(&text).unwrap_or_else(|e| panic!("read {reads}: {e}"));
        assert_eq!(samples.len(), 13, "read {reads}: {text}");
        reads += 1;
        if !inodes.contains(&inode) {
            inodes.push(inode);
        }
    }
    assert!(
        inodes.len() >= 3,
        "the file was not replaced twice in {:?} ({reads} reads, inodes {inodes:?})",
        Duration::from_secs(3 * PERIOD + 3)
    );
    wait_until(
        Duration::from_secs(2),
        Duration::from_millis(10),
        || std::fs::read_dir(&dir).unwrap().count() == 1,
        || {
            let names: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            format!("files beside the metrics: {names:?}")
        },
    );

    // No knock port: the pairs of the windows around now are no number in the file.
    let text = std::fs::read_to_string(&path).unwrap();
    let numbers: Vec<u64> = text
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|t| t.parse().ok())
        .collect();
    let c = rig.counter_at(unix_now().as_secs_f64());
    let mut ports: Vec<u16> = (c.saturating_sub(3)..=c + 2)
        .flat_map(|w| rig.ports(w))
        .collect();
    ports.extend(knocked);
    for port in ports {
        assert!(
            !numbers.contains(&u64::from(port)),
            "port {port} is in the metrics file:\n{text}"
        );
    }
    eprintln!(
        "metrics: {reads} reads across {} files, all whole; {:.1?}",
        inodes.len(),
        started.elapsed()
    );
}

#[test]
fn the_test_parser_reads_the_text_format() {
    let text = "# HELP a_total Things.\n# TYPE a_total counter\na_total{server=\"w\\\"eb\",user=\"x\\\\y\\n\"} 3\n";
    let samples = parse(text).unwrap();
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0].labels["server"], "w\"eb");
    assert_eq!(samples[0].labels["user"], "x\\y\n");
    assert_eq!(samples[0].value, 3.0);
    assert!(parse(&text[..text.len() - 3]).is_err());
    assert!(parse("a_total 3\n").is_err(), "a sample without TYPE");
    assert!(parse("# TYPE a gauge\na{x=\"1} 2\n").is_err());
}
