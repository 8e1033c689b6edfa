//! knockd.conf rendering: one `[door]` per TOTP window (a pure string builder, no I/O).

use std::collections::HashSet;
use std::fmt::Write as _;

use crate::core::ports::PortPair;

/// Prefix of every door name knock-totp writes; the window counter follows it.
pub const DOOR_PREFIX: &str = "knock-totp-";

/// Where knockd logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KnockdLog {
    /// `UseSyslog`
    Syslog,
    /// `LogFile = PATH`
    File(String),
}

/// The `[options]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnockdOptions {
    pub log: KnockdLog,
    /// Interface knockd listens on (`Interface = ...`).
    pub interface: String,
    /// `PidFile = ...`; knockd writes it only in daemon mode (`-d`).
    pub pid_file: Option<String>,
}

/// One knockd door: a two-port TCP SYN sequence and the commands it runs for the knocker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnockdDoor {
    /// Section name, e.g. `knock-totp-57870467` (see [`door_name`]); unique in a file.
    pub name: String,
    pub ports: PortPair,
    /// Seconds allowed between the first and the second knock.
    pub seq_timeout: u64,
    /// Seconds knockd waits before running the stop commands (only written with a stop command).
    pub cmd_timeout: u64,
    /// IPv4 knocker; `%IP%` is replaced by the knocking address.
    pub start_command: String,
    pub stop_command: Option<String>,
    /// IPv6 knocker.
    pub start_command_6: Option<String>,
    pub stop_command_6: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KnockdError {
    #[error("invalid knockd door name {0:?}: use letters, digits, '.', '_' and '-' (at most 64)")]
    DoorName(String),
    #[error("two knockd doors are named {0:?}: door names must be unique")]
    DuplicateDoor(String),
    #[error("door {door}: {field} is empty or spans several lines")]
    Command { door: String, field: &'static str },
    #[error("door {0}: seq_timeout and cmd_timeout must be between 1 and 86400 seconds")]
    Timeout(String),
    #[error("invalid knockd option {0}: empty, or contains a newline, '#' or '='")]
    Option(&'static str),
}

/// The door name for a TOTP window counter: `knock-totp-<counter>`.
pub fn door_name(counter: u64) -> String {
    format!("{DOOR_PREFIX}{counter}")
}

fn valid_door_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.eq_ignore_ascii_case("options")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A single-line value knockd's parser reads back as written.
fn valid_value(value: &str) -> bool {
    !value.trim().is_empty() && !value.contains(['\n', '\r', '\0'])
}

fn valid_option(value: &str) -> bool {
    valid_value(value) && !value.contains(['#', '=']) && value.trim() == value
}

/// The whole knockd.conf: `[options]`, then one section per door, in the order given.
pub fn render_knockd_conf(
    options: &KnockdOptions,
    doors: &[KnockdDoor],
) -> Result<String, KnockdError> {
    if !valid_option(&options.interface) {
        return Err(KnockdError::Option("Interface"));
    }
    let mut seen = HashSet::new();
    for door in doors {
        if !valid_door_name(&door.name) {
            return Err(KnockdError::DoorName(door.name.chars().take(80).collect()));
        }
        if !seen.insert(door.name.to_ascii_lowercase()) {
            return Err(KnockdError::DuplicateDoor(door.name.clone()));
        }
        for (field, value) in [
            ("start_command", Some(&door.start_command)),
            ("stop_command", door.stop_command.as_ref()),
            ("start_command_6", door.start_command_6.as_ref()),
            ("stop_command_6", door.stop_command_6.as_ref()),
        ] {
            if value.is_some_and(|v| !valid_value(v)) {
                return Err(KnockdError::Command {
                    door: door.name.clone(),
                    field,
                });
            }
        }
        let has_stop = door.stop_command.is_some() || door.stop_command_6.is_some();
        if !(1..=86_400).contains(&door.seq_timeout)
            || (has_stop && !(1..=86_400).contains(&door.cmd_timeout))
        {
            return Err(KnockdError::Timeout(door.name.clone()));
        }
    }

    let mut out = String::new();
    out.push_str("# knockd.conf written by knock-totp: one door per TOTP window.\n");
    out.push_str("# `knock-totp server` rewrites this file at every window; edits are lost.\n\n");
    out.push_str("[options]\n");
    match &options.log {
        // knockd 0.8 reopens LogFile at every reload, even with UseSyslog, and warns
        // "cannot open logfile" when there is none: /dev/null keeps the journal clean.
        KnockdLog::Syslog => out.push_str("\tUseSyslog\n\tLogFile = /dev/null\n"),
        KnockdLog::File(path) => {
            if !valid_option(path) {
                return Err(KnockdError::Option("LogFile"));
            }
            let _ = writeln!(out, "\tLogFile = {path}");
        }
    }
    let _ = writeln!(out, "\tInterface = {}", options.interface);
    if let Some(pid_file) = &options.pid_file {
        if !valid_option(pid_file) {
            return Err(KnockdError::Option("PidFile"));
        }
        let _ = writeln!(out, "\tPidFile = {pid_file}");
    }
    for door in doors {
        let _ = write!(
            out,
            "\n[{}]\n\tsequence        = {}:tcp,{}:tcp\n\tseq_timeout     = {}\n\ttcpflags        = syn\n",
            door.name,
            door.ports.first(),
            door.ports.second(),
            door.seq_timeout
        );
        let _ = writeln!(out, "\tstart_command   = {}", door.start_command);
        if let Some(command) = &door.start_command_6 {
            let _ = writeln!(out, "\tstart_command_6 = {command}");
        }
        if door.stop_command.is_some() || door.stop_command_6.is_some() {
            let _ = writeln!(out, "\tcmd_timeout     = {}", door.cmd_timeout);
        }
        if let Some(command) = &door.stop_command {
            let _ = writeln!(out, "\tstop_command    = {command}");
        }
        if let Some(command) = &door.stop_command_6 {
            let _ = writeln!(out, "\tstop_command_6  = {command}");
        }
    }
    Ok(out)
}

/// The window counters of the doors knock-totp wrote into a knockd.conf (`[knock-totp-N]`).
pub fn door_counters(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|line| {
            let name = line.trim().strip_prefix('[')?.strip_suffix(']')?;
            name.strip_prefix(DOOR_PREFIX)?.parse().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn door(counter: u64, ports: [u16; 2]) -> KnockdDoor {
        KnockdDoor {
            name: door_name(counter),
            ports: PortPair(ports),
            seq_timeout: 10,
            cmd_timeout: 30,
            start_command: "start %IP%".into(),
            stop_command: Some("stop %IP%".into()),
            start_command_6: Some("start6 %IP%".into()),
            stop_command_6: None,
        }
    }

    fn options() -> KnockdOptions {
        KnockdOptions {
            log: KnockdLog::Syslog,
            interface: "eth0".into(),
            pid_file: None,
        }
    }

    #[test]
    fn renders_options_and_doors_exactly() {
        let text = render_knockd_conf(
            &KnockdOptions {
                log: KnockdLog::File("/var/log/knockd.log".into()),
                interface: "ens5".into(),
                pid_file: Some("/run/knockd.pid".into()),
            },
            &[door(37037036, [8180, 1804])],
        )
        .unwrap();
        assert_eq!(
            text,
            "# knockd.conf written by knock-totp: one door per TOTP window.\n\
             # `knock-totp server` rewrites this file at every window; edits are lost.\n\
             \n\
             [options]\n\
             \tLogFile = /var/log/knockd.log\n\
             \tInterface = ens5\n\
             \tPidFile = /run/knockd.pid\n\
             \n\
             [knock-totp-37037036]\n\
             \tsequence        = 8180:tcp,1804:tcp\n\
             \tseq_timeout     = 10\n\
             \ttcpflags        = syn\n\
             \tstart_command   = start %IP%\n\
             \tstart_command_6 = start6 %IP%\n\
             \tcmd_timeout     = 30\n\
             \tstop_command    = stop %IP%\n"
        );
    }

    #[test]
    fn no_cmd_timeout_without_a_stop_command() {
        let mut d = door(1, [1000, 2000]);
        d.stop_command = None;
        d.cmd_timeout = 0;
        let text = render_knockd_conf(&options(), &[d]).unwrap();
        assert!(!text.contains("cmd_timeout"), "{text}");
        assert!(text.contains("\tUseSyslog\n"));
    }

    #[test]
    fn door_names_are_unique_and_valid() {
        let err = render_knockd_conf(&options(), &[door(5, [1, 2]), door(5, [3, 4])]);
        assert_eq!(err, Err(KnockdError::DuplicateDoor("knock-totp-5".into())));
        for bad in ["", "a]b", "a b", "options", "x\ny"] {
            let mut d = door(1, [1000, 2000]);
            d.name = bad.into();
            assert!(
                matches!(
                    render_knockd_conf(&options(), &[d]),
                    Err(KnockdError::DoorName(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn rejects_values_that_would_break_the_file() {
        let mut d = door(1, [1000, 2000]);
        d.start_command = "a\n[evil]".into();
        assert!(matches!(
            render_knockd_conf(&options(), &[d]),
            Err(KnockdError::Command { .. })
        ));
        let mut d = door(1, [1000, 2000]);
        d.seq_timeout = 0;
        assert!(render_knockd_conf(&options(), &[d]).is_err());
        let mut o = options();
        o.interface = "eth0\n[x]".into();
        assert_eq!(
            render_knockd_conf(&o, &[]),
            Err(KnockdError::Option("Interface"))
        );
    }

    #[test]
    fn door_counters_are_read_back_from_our_sections_only() {
        let text = render_knockd_conf(
            &options(),
            &[
                door(57_870_466, [4000, 4180]),
                door(57_870_467, [1000, 2400]),
            ],
        )
        .unwrap();
        let text = format!("{text}\n[openSSH]\n\tsequence = 7000,8000,9000\n");
        assert_eq!(door_counters(&text), [57_870_466, 57_870_467]);
        assert!(door_counters(&render_knockd_conf(&options(), &[]).unwrap()).is_empty());
    }
}
