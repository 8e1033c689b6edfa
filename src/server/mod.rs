//! The rotation daemon: keeps knockd's doors, and the AWS knock-port rules, following the code.

pub mod cloud;
pub mod config;
pub mod engine;
pub mod firewall;
pub mod schedule;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::clock::wall_clock;
use crate::core::ports::PortPair;
use crate::core::secret::SecretKey;
use crate::core::totp::Totp;
use crate::core::window::Window;
use crate::error::UserError;
pub use crate::log::Log;

use self::cloud::aws::{diff, retrying, AwsCli, AwsError, KnockPortRules, PortDiff};
use self::engine::knockd::process::{Knockd, ReloadError};
use self::schedule::{clock_jump, door_windows, next_step, ClockJump, Step};

/// One knockd door: the window it serves and that window's knock ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveDoor {
    pub window: Window,
    pub ports: PortPair,
}

/// The doors for `window`: previous, current and next.
pub fn active_doors(totp: &Totp, window: Window) -> Vec<ActiveDoor> {
    door_windows(window)
        .into_iter()
        .map(|window| ActiveDoor {
            window,
            ports: totp.ports_for(window),
        })
        .collect()
}

/// Every knock port some door uses.
pub fn door_ports(doors: &[ActiveDoor]) -> BTreeSet<u16> {
    doors.iter().flat_map(|d| d.ports.0).collect()
}

/// Turns the doors into the text of knockd.conf.
pub type RenderConf = Box<dyn Fn(&[ActiveDoor]) -> anyhow::Result<String>>;

/// Reads the server's secret from a file that only its owner may read.
pub fn load_secret_file(path: &Path) -> anyhow::Result<SecretKey> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| {
        UserError::usage(format!(
            "cannot read the secret file {}: {e}",
            path.display()
        ))
        .with_hint("`knock-totp setup NAME --out DIR` writes one; point secret_file at it")
    })?;
    if !meta.is_file() {
        return Err(UserError::usage(format!(
            "the secret file {} is not a regular file",
            path.display()
        ))
        .into());
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(UserError::usage(format!(
            "refusing the secret file {}: its mode {mode:03o} lets others read it",
            path.display()
        ))
        .with_hint(format!(
            "chmod 600 {} (and consider the secret leaked: run setup again)",
            path.display()
        ))
        .into());
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
        UserError::usage(format!(
            "cannot read the secret file {}: {e}",
            path.display()
        ))
    })?);
    SecretKey::from_base32(text.trim())
        .map_err(|e| UserError::usage(format!("the secret file {}: {e}", path.display())).into())
}

/// SIGTERM and SIGINT, turned into a channel the loop can sleep on.
pub struct StopSignal {
    rx: mpsc::Receiver<&'static str>,
    received: Option<&'static str>,
}

impl StopSignal {
    /// Installs the handlers (before anything that needs undoing on shutdown happens).
    pub fn install() -> anyhow::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                use tokio::signal::unix::{signal, SignalKind};
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let handlers = signal(SignalKind::terminate())
                        .and_then(|t| Ok((t, signal(SignalKind::interrupt())?)));
                    let (mut term, mut int) = match handlers {
                        Ok(h) => h,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    loop {
                        let name = tokio::select! {
                            _ = term.recv() => "SIGTERM",
                            _ = int.recv() => "SIGINT",
                        };
                        if tx.send(name).is_err() {
                            return;
                        }
                    }
                });
            })?;
        ready_rx
            .recv()
            .map_err(|e| anyhow::anyhow!("the signal thread died: {e}"))?
            .map_err(|e| UserError::runtime(format!("cannot handle SIGTERM/SIGINT: {e}")))?;
        Ok(Self { rx, received: None })
    }

    /// Sleeps up to `duration`; false as soon as a stop signal arrives (now or earlier).
    pub fn pause(&mut self, duration: Duration) -> bool {
        if self.received.is_some() {
            return false;
        }
        match self.rx.recv_timeout(duration) {
            Ok(name) => {
                self.received = Some(name);
                false
            }
            Err(mpsc::RecvTimeoutError::Timeout) => true,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(duration);
                true
            }
        }
    }

    /// The stop signal received so far, if any.
    pub fn received(&mut self) -> Option<&'static str> {
        if self.received.is_none() {
            self.received = self.rx.try_recv().ok();
        }
        self.received
    }
}

/// Everything the loop needs, already loaded and checked.
pub struct Server<C> {
    pub totp: Totp,
    pub knockd: Knockd,
    pub rules: Option<KnockPortRules<C>>,
    pub render: RenderConf,
    pub log: Log,
    pub dry_run: bool,
    /// The knock ports last put in place.
    rendered_ports: Option<BTreeSet<u16>>,
}

/// A failure that ends the daemon (as opposed to one it retries at the next boundary).
fn is_fatal(error: &anyhow::Error) -> bool {
    matches!(
        error.downcast_ref::<ReloadError>(),
        Some(ReloadError::DiedNotRestarted(_) | ReloadError::NotRunning(_))
    )
}

/// How long to keep retrying AWS calls while shutting down.
const SHUTDOWN_RETRY: Duration = Duration::from_secs(30);

impl<C: AwsCli> Server<C> {
    pub fn new(
        totp: Totp,
        knockd: Knockd,
        rules: Option<KnockPortRules<C>>,
        render: RenderConf,
        log: Log,
        dry_run: bool,
    ) -> Self {
        Self {
            totp,
            knockd,
            rules,
            render,
            log,
            dry_run,
            rendered_ports: None,
        }
    }

    /// Checks what must hold before anything changes: the config directory is usable and
    /// knockd runs (and is old enough to survive a SIGHUP).
    pub fn preflight(&self) -> anyhow::Result<()> {
        self.knockd.check_conf_dir().map_err(|e| {
            anyhow::Error::from(e).context(UserError::runtime(format!(
                "cannot manage {}",
                self.knockd.conf.display()
            )))
        })?;
        match self.knockd.running_pid() {
            Ok(pid) => {
                if !self.dry_run {
                    self.knockd.wait_ready(pid);
                }
                self.log.detail(format!("knockd runs as pid {pid}"));
                Ok(())
            }
            Err(e) if self.dry_run => {
                self.log.alarm(format!("{e} (dry run: going on)"));
                Ok(())
            }
            Err(e) => Err(UserError::runtime(e.to_string())
                .with_hint(match self.knockd.pid_source {
                    engine::knockd::process::PidSource::File(_) => {
                        "start knockd in daemon mode first (knockd -d, with PidFile in its \
                         config) and check knockd_pid_file"
                    }
                    engine::knockd::process::PidSource::SystemdUnit(_) => {
                        "start knockd first (systemctl start knockd) and check \
                         knockd_reload_command"
                    }
                })
                .into()),
        }
    }

    /// Rotates now, then at every window boundary until a stop signal (or once). On a stop
    /// signal or a fatal error, revokes every knock-port rule it manages.
    pub fn run(&mut self, once: bool, stop: &mut StopSignal) -> anyhow::Result<()> {
        let mut window = Window::at(wall_clock()?.as_secs(), self.totp.period());
        if let Err(e) = self.rotate(window, stop, true) {
            if let Some(signal) = stop.received() {
                // Interrupted while retrying: a stop, not a failure.
                self.log
                    .note(format!("{signal}: revoking the knock ports and stopping"));
                return self.revoke_all();
            }
            return Err(self.cleanup_after(e));
        }
        if once {
            return Ok(());
        }
        while stop.received().is_none() {
            let wall_before = wall_clock()?;
            let mono_before = Instant::now();
            match next_step(window, wall_before) {
                Step::Rotate(next) => {
                    if next.counter < window.counter {
                        self.log.alarm(format!(
                            "the clock went back: window {} is before {}; putting its doors in place",
                            next.counter, window.counter
                        ));
                    } else if next.counter > window.counter + 1 {
                        self.log.note(format!(
                            "skipped {} windows (suspend or clock change)",
                            next.counter - window.counter - 1
                        ));
                    }
                    window = next;
                    if let Err(e) = self.rotate(window, stop, false) {
                        if is_fatal(&e) {
                            return Err(self.cleanup_after(e));
                        }
                        self.log.alarm(format!(
                            "rotation to window {} failed, knockd keeps the last good config; \
                             trying again at the next boundary: {e:#}",
                            window.counter
                        ));
                    }
                }
                Step::Sleep(duration) => {
                    if !stop.pause(duration) {
                        break;
                    }
                    match clock_jump(wall_before, wall_clock()?, mono_before.elapsed()) {
                        ClockJump::None => {}
                        ClockJump::Back(by) => self.log.alarm(format!(
                            "the wall clock jumped back by {:.1} s; re-checking the window",
                            by.as_secs_f64()
                        )),
                        ClockJump::Forward(by) => self.log.detail(format!(
                            "the wall clock moved {:.1} s further than the monotonic clock \
                             (suspend or clock change)",
                            by.as_secs_f64()
                        )),
                    }
                }
            }
        }
        let signal = stop.received().unwrap_or("a stop signal");
        self.log
            .note(format!("{signal}: revoking the knock ports and stopping"));
        self.revoke_all()
    }

    /// Leaves the firewall safe after a fatal error and returns the error.
    fn cleanup_after(&mut self, error: anyhow::Error) -> anyhow::Error {
        if let Err(e) = self.revoke_all() {
            self.log.alarm(format!("{e:#}"));
        }
        error
    }

    /// Revokes every knock-port rule this server owns.
    fn revoke_all(&mut self) -> anyhow::Result<()> {
        let Some(rules) = self.rules.as_mut() else {
            return Ok(());
        };
        let owned = rules.owned().clone();
        if owned.is_empty() || self.dry_run {
            return Ok(());
        }
        let log = self.log;
        let result = retrying(
            Instant::now() + SHUTDOWN_RETRY,
            &mut |d| {
                std::thread::sleep(d);
                true
            },
            &mut |e| log.alarm(format!("revoking knock ports failed: {e}")),
            || rules.revoke(&owned),
        );
        match result {
            Ok(()) => {
                log.note(format!("revoked {} knock-port rules", owned.len()));
                log.detail(format!("revoked ports {}", join(&owned)));
                Ok(())
            }
            Err(e) => Err(UserError::runtime(format!(
                "could not revoke the knock ports {} from the security group: {e}",
                join(rules.owned())
            ))
            .with_hint("revoke them by hand (aws ec2 revoke-security-group-ingress)")
            .into()),
        }
    }

    /// Puts the doors for `window` in place: authorize new knock ports, install and reload
    /// knockd.conf, revoke knock ports no door uses. `first` reconciles with the group.
    pub fn rotate(
        &mut self,
        window: Window,
        stop: &mut StopSignal,
        first: bool,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        let doors = active_doors(&self.totp, window);
        let desired = door_ports(&doors);
        let text = (self.render)(&doors)?;
        if self.dry_run {
            self.print_dry_run(window, &doors, &desired, &text);
            self.rendered_ports = Some(desired);
            return Ok(());
        }
        let previous = match &self.rendered_ports {
            Some(ports) => ports.clone(),
            // A fresh start: compare with the doors of the file knockd runs now.
            None => std::fs::read_to_string(&self.knockd.conf)
                .map(|text| sequence_ports(&text))
                .unwrap_or_default(),
        };
        let now = wall_clock()?.as_secs();
        // Retry AWS calls until the window ends (at least a few seconds, after a late start).
        let deadline = Instant::now() + Duration::from_secs(window.seconds_left(now).max(5));
        let log = self.log;
        let mut aws_trouble: Option<AwsError> = None;

        if let Some(rules) = self.rules.as_mut() {
            let mut report = |e: &AwsError| log.alarm(format!("aws: {e}"));
            let mut pause = |d| stop.pause(d);
            if first {
                let present = retrying(deadline, &mut pause, &mut report, || rules.refresh())
                    .map_err(|e| aws_failure("cannot read the security group", e))?;
                log.detail(format!(
                    "the group has our rules for {} knock ports",
                    present.len()
                ));
            }
            let plan = rules.plan(&desired);
            log.detail(format!("authorizing {}", join(&plan.authorize)));
            if let Err(e) = retrying(deadline, &mut pause, &mut report, || {
                rules.authorize(&plan.authorize)
            }) {
                if first {
                    return Err(aws_failure("cannot open the knock ports", e));
                }
                aws_trouble = Some(e);
            }
        }

        let installed = self.knockd.install(&text)?;
        if let Some(died) = &installed.died {
            self.log.alarm(format!(
                "KNOCKD WAS GONE ({died}); restarted it, now pid {}",
                installed.pid
            ));
        }

        if let Some(rules) = self.rules.as_mut() {
            let stale = rules.plan(&desired).revoke;
            log.detail(format!("revoking {}", join(&stale)));
            let mut report = |e: &AwsError| log.alarm(format!("aws: {e}"));
            if let Err(e) = retrying(deadline, &mut |d| stop.pause(d), &mut report, || {
                rules.revoke(&stale)
            }) {
                if first {
                    return Err(aws_failure("cannot revoke stale knock ports", e));
                }
                aws_trouble = Some(e);
            }
        }

        let PortDiff {
            authorize: added,
            revoke: removed,
        } = diff(&desired, &previous);
        self.log.note(format!(
            "window {}: doors for {}..={}, knock ports +{} -{}, {} ms{}",
            window.counter,
            doors.first().map_or(window.counter, |d| d.window.counter),
            doors.last().map_or(window.counter, |d| d.window.counter),
            added.len(),
            removed.len(),
            started.elapsed().as_millis(),
            if aws_trouble.is_some() {
                " (security group not in step, retrying next window)"
            } else {
                ""
            }
        ));
        self.log.detail(format!(
            "knock ports now {} (added {}, removed {}), knockd pid {}",
            join(&desired),
            join(&added),
            join(&removed),
            installed.pid
        ));
        self.rendered_ports = Some(desired);
        Ok(())
    }

    fn print_dry_run(
        &self,
        window: Window,
        doors: &[ActiveDoor],
        desired: &BTreeSet<u16>,
        text: &str,
    ) {
        let mut out = String::new();
        let _ = writeln!(out, "# dry run: window {}", window.counter);
        for door in doors {
            let _ = writeln!(
                out,
                "# door for window {}: knock {}",
                door.window.counter, door.ports
            );
        }
        if let Some(rules) = &self.rules {
            let mut ports = desired.clone();
            if let Some(previous) = &self.rendered_ports {
                ports = ports.difference(previous).copied().collect();
            } else {
                let _ = writeln!(
                    out,
                    "would read the group: {}",
                    rules.cli().show(&rules.describe_args())
                );
            }
            if !ports.is_empty() {
                let _ = writeln!(
                    out,
                    "would authorize (where not already ours): {}",
                    rules.cli().show(&rules.change_args(false, &ports))
                );
            }
        }
        let candidate = self.knockd.candidate_path();
        let _ = writeln!(
            out,
            "would write {} and check it: {} -c {} -i {}",
            candidate.display(),
            self.knockd.program.display(),
            candidate.display(),
            engine::knockd::process::NO_SUCH_INTERFACE
        );
        let _ = writeln!(out, "would rename it over {}:", self.knockd.conf.display());
        out.push_str(text);
        if !text.ends_with('\n') {
            out.push('\n');
        }
        match &self.knockd.reload_command {
            Some(command) => {
                let _ = writeln!(out, "would reload knockd: {}", command.join(" "));
            }
            None => {
                let pid = self
                    .knockd
                    .running_pid()
                    .map_or_else(|_| "PID".to_string(), |p| p.to_string());
                let _ = writeln!(
                    out,
                    "would reload knockd: kill -HUP {pid} (from its {})",
                    self.knockd.pid_source
                );
            }
        }
        if let Some(rules) = &self.rules {
            let _ = writeln!(
                out,
                "would revoke our rules ({}) for knock ports other than {}",
                rules.description(),
                join(desired)
            );
        }
        print!("{out}");
    }
}

/// The ports of every `sequence = P:tcp,...` line of a knockd.conf.
pub fn sequence_ports(text: &str) -> BTreeSet<u16> {
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.split_once('=')?;
            (key.trim().eq_ignore_ascii_case("sequence")).then_some(value)
        })
        .flat_map(|value| value.split(','))
        .filter_map(|knock| knock.trim().split(':').next()?.trim().parse().ok())
        .collect()
}

fn aws_failure(what: &str, error: AwsError) -> anyhow::Error {
    UserError::runtime(format!("{what}: {error}"))
        .with_hint("check the aws CLI, its credentials, the region and the security group id")
        .into()
}

fn join(ports: &BTreeSet<u16>) -> String {
    if ports.is_empty() {
        return "none".into();
    }
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::totp::Algorithm;

    fn totp() -> Totp {
        Totp::new(
            &SecretKey::from_base32("LPI3UVRWMUTRNDBD").unwrap(),
            Algorithm::Sha1,
            30,
        )
        .unwrap()
    }

    fn snapshot(doors: &[ActiveDoor]) -> String {
        doors
            .iter()
            .map(|d| format!("{} {}", d.window.counter, d.ports))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn doors_around_a_window_whose_code_starts_with_zeros() {
        // 1740012930 -> 000418 -> 4000 4180 (the 0000 group widened). Neighbours checked
        // with `oathtool --totp -b LPI3UVRWMUTRNDBD -N @T`.
        let doors = active_doors(&totp(), Window::at(1_740_012_930, 30));
        assert_eq!(doors[1].ports, PortPair([4000, 4180]));
        insta_like(
            &snapshot(&doors),
            "58000430 2332 3279\n58000431 4000 4180\n58000432 1015 1537",
        );
    }

    #[test]
    fn doors_around_a_window_whose_code_is_000024() {
        let doors = active_doors(&totp(), Window::at(1_740_134_610, 30));
        assert_eq!(doors[1].ports, PortPair([1000, 2400]));
        insta_like(
            &snapshot(&doors),
            "58004486 7374 7437\n58004487 1000 2400\n58004488 4979 7937",
        );
    }

    #[test]
    fn the_previous_and_next_doors_are_the_neighbours_current_doors() {
        let t = totp();
        let w = Window::at(1_740_012_930, 30);
        let now = active_doors(&t, w);
        let later = active_doors(&t, w.next());
        assert_eq!(now[1..], later[..2]);
        let ports = door_ports(&now);
        assert!(ports.contains(&4000) && ports.contains(&4180));
        assert!(ports.len() <= 6);
    }

    /// Compares with an inline snapshot and prints the actual text when it differs.
    fn insta_like(actual: &str, expected: &str) {
        assert_eq!(actual, expected, "\nactual snapshot:\n{actual}\n");
    }

    #[test]
    fn ports_are_read_back_from_a_knockd_conf() {
        let text = "[options]\n\tInterface = eth0\n[a]\n\tsequence        = 4000:tcp,4180:tcp\n\
                    [b]\n  Sequence=1000:tcp, 2400:udp\n\tstart_command = x\n";
        assert_eq!(
            sequence_ports(text),
            BTreeSet::from([1000, 2400, 4000, 4180])
        );
    }

    #[test]
    fn secret_files_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        assert!(load_secret_file(&path).is_err());
        std::fs::write(&path, "LPI3UVRWMUTRNDBD\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = load_secret_file(&path).unwrap_err().to_string();
        assert!(err.contains("640"), "{err}");
        assert!(!err.contains("LPI3"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            load_secret_file(&path).unwrap().to_base32().as_str(),
            "LPI3UVRWMUTRNDBD"
        );
    }
}
