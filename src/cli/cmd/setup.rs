//! `setup`: enroll a server in one command (secret, QR code, server, knockd, firewall and
//! systemd configs, and the client's `add` command). Everything is checked before anything
//! is written. What the files hold is `server::artifacts`; this is the command around it:
//! arguments, the secret, the checks and writes under --out, and what is printed.

use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::cli::args::SetupArgs;
use crate::cli::qr;
use crate::cli::term::{now, read_stdin_value, stdout_is_tty};
use crate::cli::Context;
use crate::core::names::{validate_address, validate_host_name};
use crate::core::otpauth::OtpauthUri;
use crate::core::ports::{knock_range_text, MAX_KNOCK_PORT, MIN_KNOCK_PORT};
use crate::core::secret::SecretKey;
use crate::core::totp::{Algorithm, Totp, DEFAULT_PERIOD};
use crate::error::UserError;
use crate::fsutil::{create_private_dir, unsafe_directory, StagedFile};
use crate::server::artifacts::{
    add_secret_artifacts, public_artifacts, secret_file_name, uri_artifact, uri_file_name,
    Artifact, FIREWALL_SCRIPT_FILE, KNOCKD_CONF_FILE,
};
use crate::server::config::EngineKind;
use crate::server::config::{
    validate_interface, ServerConfig, DEFAULT_OPEN_SECONDS, MAX_OPEN_SECONDS,
};
use crate::server::engine::nftables::report::rfc3339;
use crate::server::engine::{design, AtBoot};
use crate::server::firewall::{
    AwsTarget, AzureTarget, Firewall, FirewallKind, GcpTarget, SettingsSource,
};
use crate::server::paths::{self, users_dir, SERVER_DIR};
use crate::server::systemd;
use crate::server::users::{validate_user_name, UserSettings};

/// Stands in for the server's address in the client command when --address is not given.
const ADDRESS_PLACEHOLDER: &str = "SERVER_ADDRESS";

pub fn run(ctx: &Context, args: SetupArgs) -> anyhow::Result<()> {
    if let Some(user) = &args.user {
        return run_user(ctx, &args, user);
    }
    // 1. Check every argument before reading a secret or touching the disk.
    validate_host_name(&args.name).map_err(UserError::usage)?;
    if let Some(address) = &args.address {
        validate_address(address).map_err(UserError::usage)?;
    }
    validate_interface(&args.interface).map_err(UserError::usage)?;
    let engine = args.engine;
    let firewall = firewall_from(&args, engine)?;
    if engine == EngineKind::Knockd {
        warn_if_absent_here(ctx, &args.interface);
    }
    check_secret_flag(&args)?;

    let mut config = ServerConfig::new(&args.name, args.port, engine, &args.interface, &firewall);
    let cloud = firewall
        .backend()
        .static_opening(&config.protected_port())
        .is_some();
    if let (true, Some(nft)) = (cloud, config.nftables.as_mut()) {
        // The cloud firewall opens the knock range to everyone: the host must drop it.
        nft.drop_knock_range = true;
    }
    if cloud
        && engine == EngineKind::Knockd
        && (MIN_KNOCK_PORT..=MAX_KNOCK_PORT).contains(&args.port)
    {
        return Err(UserError::usage(format!(
            "port {} is in the knock range {}, which the cloud firewall opens to everyone for \
             knockd: the port would be open to the world",
            args.port,
            knock_range_text()
        ))
        .with_hint("use --engine nftables (it keeps such a port closed), or another port")
        .into());
    }
    config.period = args.period;
    config.open_seconds = args.open_seconds.unwrap_or(DEFAULT_OPEN_SECONDS);
    config
        .validate()
        .map_err(|(_, message)| UserError::usage(message))?;

    let executable = running_executable()?;
    warn_if_others_can_replace(ctx, &executable);
    let artifacts = public_artifacts(&config, &firewall, &executable)?;
    plan_writes(&args, &config, &artifacts)?;

    // 2. The secret: generated, or read from stdin.
    let secret = read_secret(&args)?;
    let at = match args.at {
        Some(at) => at,
        None => now()?,
    };
    let totp = Totp::new(&secret, config.algorithm, config.period)
        .map_err(|e| UserError::usage(e.to_string()))?;
    let window = totp.window_at(at);
    let uri =
        OtpauthUri::for_host(&args.name, secret.clone(), config.algorithm, config.period).to_uri();
    // With --out the URI has a 0600 file of its own: print it (and the QR code) only where
    // no log keeps it, unless asked.
    let show_secret = args.out.is_none() || args.show_secret || stdout_is_tty();
    let terminal_qr = if show_secret {
        qr::to_terminal(&uri, stdout_is_tty())?
    } else {
        String::new()
    };

    let mut artifacts = artifacts;
    add_secret_artifacts(&mut artifacts, &config, &secret, &totp, window)?;
    if args.out.is_some() {
        artifacts.push(uri_artifact(&config.name, &uri));
    }

    // 3. Write (only after every check passed), then print. Every file under --out is
    // staged before any is put in place, so a failure leaves none of them.
    if let Some(out) = &args.out {
        write_artifacts(out, "--out", &artifacts)?;
    }
    write_qr_files(&args, &uri)?;

    let address = args.address.as_deref().unwrap_or(ADDRESS_PLACEHOLDER);
    let client = format!(
        "knock-totp add {} --address {address} --port {} --uri -",
        args.name, args.port
    );
    let mut text = Zeroizing::new(String::new());
    if show_secret {
        let heading = format!(
            "# knock-totp setup for {}: scan the code with an authenticator app.",
            args.name
        );
        show_code(ctx, &mut text, &heading, &terminal_qr, &uri);
        let _ = writeln!(
            text,
            "# On each client (paste the URI above on stdin, then Ctrl-D):\n{client}"
        );
    } else if let Some(out) = &args.out {
        let uri_file = out.join(uri_file_name(&args.name));
        ctx.log.note(format!(
            "the QR code and otpauth URI (they hold the secret) are not printed when stdout is \
             not a terminal: the URI is in {} (mode 0600); --show-secret prints them",
            uri_file.display()
        ));
        let _ = writeln!(
            text,
            "# knock-totp setup for {name}: the otpauth URI (it holds the secret) is in {file};\n\
             # for the authenticator app, `knock-totp show {name} --qr` on an enrolled client \
             draws its QR code.\n\
             # On each client (copy {file_name} there over a safe channel):\n{client} < {file_name}",
            name = args.name,
            file = uri_file.display(),
            file_name = uri_file_name(&args.name),
        );
    }
    if args.address.is_none() {
        let _ = writeln!(
            text,
            "# replace {ADDRESS_PLACEHOLDER} with the server's DNS name or IP address"
        );
    }
    match &args.out {
        Some(out) => {
            let _ = writeln!(text, "\n# Written to {}:", out.display());
            for artifact in &artifacts {
                let _ = write!(
                    text,
                    "#   {:<28} mode {:04o}",
                    artifact.file_name, artifact.mode
                );
                match &artifact.server_path {
                    Some(path) => {
                        let _ = writeln!(text, "  install as {}", path.display());
                    }
                    None => text.push('\n'),
                }
            }
        }
        None => {
            for artifact in &artifacts {
                let place = match &artifact.server_path {
                    Some(path) => path.display().to_string(),
                    None => artifact.file_name.clone(),
                };
                let _ = writeln!(
                    text,
                    "\n==> {place} (mode {:04o}): {} <==",
                    artifact.mode, artifact.title
                );
                text.push_str(&artifact.contents);
            }
        }
    }
    match &config.knockd_conf {
        Some(conf_path) => {
            let firewall_step = if systemd::at_boot(&config, &firewall) == AtBoot::FirewallScript {
                format!(
                    "put the files in place and run `sh {script}` once;\n\
                     #      `systemctl daemon-reload && systemctl enable {base}` runs it again at\n\
                     #      every boot, before sshd starts (the firewall's rules do not survive one);",
                    script = paths::host_firewall_script_path(&args.name).display(),
                    base = paths::base_unit_name(&args.name),
                )
            } else {
                format!(
                    "put the files in place and run {FIREWALL_SCRIPT_FILE} once;\n\
                     #      `systemctl daemon-reload && systemctl enable {base}` drops the knock\n\
                     #      range on this host again at every boot;",
                    base = paths::base_unit_name(&args.name),
                )
            };
            let _ = writeln!(
                text,
                "\n# Then, on the server:\n\
                 #   1. {firewall_step}\n\
                 #   2. point knockd at the doors: in /etc/default/knockd set START_KNOCKD=1 and\n\
                 #      KNOCKD_OPTS=\"-i {} -c {}\", then `systemctl enable --now knockd`;\n\
                 #   3. `systemctl daemon-reload && systemctl enable --now knock-totp-{}`.",
                args.interface,
                conf_path.display(),
                args.name
            );
        }
        None => {
            let _ = writeln!(
                text,
                "\n# Then, on the server:\n\
                 #   1. put the files in place and run firewall-setup.sh once (it closes port {port}\n\
                 #      now, and runs the one-time cloud firewall commands if there are any);\n\
                 #   2. `systemctl daemon-reload && systemctl enable {base}` closes port {port}\n\
                 #      at every boot, before sshd starts;\n\
                 #   3. `systemctl enable --now knock-totp-{name}` keeps the doors following the code.",
                port = args.port,
                base = paths::base_unit_name(&args.name),
                name = args.name
            );
        }
    }
    let _ = writeln!(
        text,
        "# The daemon's unit runs {} (this binary): on another machine, install knock-totp\n\
         # there at the same path or change the unit's ExecStart.",
        executable.display()
    );
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// `setup NAME --user USER`: the user's settings, secret and URI in the server's users
/// directory. The server's config, units and scripts stay as they are.
fn run_user(ctx: &Context, args: &SetupArgs, user: &str) -> anyhow::Result<()> {
    validate_host_name(&args.name).map_err(UserError::usage)?;
    validate_user_name(user)
        .map_err(|e| UserError::usage(e).with_hint("a user name is like alice or bob-laptop"))?;
    if let Some(address) = &args.address {
        validate_address(address).map_err(UserError::usage)?;
    }
    check_secret_flag(args)?;
    if let Some(open) = args.open_seconds {
        if !(1..=MAX_OPEN_SECONDS).contains(&open) {
            return Err(UserError::usage(format!(
                "--open-seconds {open} is out of range (1 to {MAX_OPEN_SECONDS})"
            ))
            .into());
        }
    }
    if let Some(expires) = args.expires {
        if expires <= now()? {
            ctx.log.note(format!(
                "warning: --expires {} is already past: {user} opens no door",
                rfc3339(expires)
            ));
        }
    }

    let (dir, what) = match &args.out {
        Some(out) => (out.clone(), "--out"),
        None => (PathBuf::from(SERVER_DIR), "the server directory"),
    };
    let config_path = dir.join(format!("{}.toml", args.name));
    let users = users_dir(&config_path);
    // The user's codes follow the server's period and algorithm.
    let server = match fs::symlink_metadata(&config_path) {
        Ok(_) => Some(ServerConfig::load(&config_path)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(
                UserError::usage(format!("cannot read {}: {e}", config_path.display())).into(),
            )
        }
    };
    if let Some(config) = server.as_ref().filter(|c| c.engine == EngineKind::Knockd) {
        return Err(UserError::usage(format!(
            "server {} uses the knockd engine, which takes one secret: it cannot have users",
            config.name
        ))
        .with_hint("users need the nftables engine (`knock-totp setup NAME --engine nftables`)")
        .into());
    }
    let (algorithm, period, port) = match &server {
        Some(config) => (config.algorithm, config.period, config.port),
        None => (Algorithm::Sha1, DEFAULT_PERIOD, args.port),
    };
    check_out_dir(&dir, what)?;
    check_out_dir(&users, "the users directory")?;
    check_directory(&users, what)?;
    let names = [
        format!("{user}.toml"),
        secret_file_name(user),
        uri_file_name(user),
    ];
    check_targets(args, names.iter().map(|n| users.join(n)).collect())?;

    let secret = read_secret(args)?;
    let uri = OtpauthUri::for_user(&args.name, user, secret.clone(), algorithm, period).to_uri();
    let show_secret = args.show_secret || stdout_is_tty();
    let terminal_qr = if show_secret {
        qr::to_terminal(&uri, stdout_is_tty())?
    } else {
        String::new()
    };
    let settings = UserSettings {
        enabled: true,
        expires: args.expires.map(rfc3339),
        open_seconds: args.open_seconds,
    };
    let mut settings_text = format!(
        "# User {user} of knock-totp server {name}; its secret is {user}.secret beside this file.\n\
         # After a change (enabled = false, expires = \"2027-01-31T18:00:00Z\", open_seconds = 60)\n\
         # or removing both files: `systemctl reload knock-totp-{name}` (or\n\
         # knock-totp-server@{name}, the packaged unit), or SIGHUP to the daemon.\n",
        name = args.name
    );
    settings_text.push_str(
        &toml::to_string(&settings)
            .map_err(|e| UserError::runtime(format!("cannot write {user}'s settings: {e}")))?,
    );
    let mut secret_text = secret.to_base32();
    secret_text.push('\n');
    let artifacts = [
        Artifact {
            title: "the user's settings",
            server_path: None,
            file_name: names[0].clone(),
            contents: Zeroizing::new(settings_text),
            mode: 0o644,
        },
        Artifact {
            title: "the user's secret",
            server_path: None,
            file_name: names[1].clone(),
            contents: secret_text,
            mode: 0o600,
        },
        uri_artifact(user, &uri),
    ];

    create_out_dir(&dir, what)?;
    write_artifacts(&users, "the users directory", &artifacts)?;
    write_qr_files(args, &uri)?;

    let uri_file = users.join(&names[2]);
    let mut text = Zeroizing::new(String::new());
    if show_secret {
        let heading = format!(
            "# knock-totp setup for {}, user {user}: {user} scans the code with an authenticator app.",
            args.name
        );
        show_code(ctx, &mut text, &heading, &terminal_qr, &uri);
    } else {
        ctx.log.note(format!(
            "the QR code and otpauth URI (they hold the secret) are not printed when stdout is \
             not a terminal: the URI is in {} (mode 0600); --show-secret prints them",
            uri_file.display()
        ));
        let _ = writeln!(
            text,
            "# knock-totp setup for {}, user {user}: the otpauth URI (it holds {user}'s secret) \
             is in {};\n# give it to {user} over a safe channel.",
            args.name,
            uri_file.display()
        );
    }
    let address = args.address.as_deref().unwrap_or(ADDRESS_PLACEHOLDER);
    let _ = writeln!(
        text,
        "# On {user}'s client:\nknock-totp add {} --address {address} --port {port} --uri - < {}",
        args.name, names[2]
    );
    if args.address.is_none() {
        let _ = writeln!(
            text,
            "# replace {ADDRESS_PLACEHOLDER} with the server's DNS name or IP address"
        );
    }
    let _ = writeln!(
        text,
        "# The codes use {}: period {period} s, {algorithm}.",
        match &server {
            Some(_) => format!("the server's settings in {}", config_path.display()),
            None => format!("the defaults ({} does not exist)", config_path.display()),
        }
    );
    let _ = writeln!(text, "\n# Written to {}:", users.display());
    for artifact in &artifacts {
        let _ = writeln!(
            text,
            "#   {:<28} mode {:04o}",
            artifact.file_name, artifact.mode
        );
    }
    let _ = writeln!(
        text,
        "\n# Then, on the server, make the daemon read its users again (SIGHUP):\n\
         systemctl reload knock-totp-{0}    # or knock-totp-server@{0}, the packaged unit",
        args.name
    );
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// This binary's own path, for the unit's ExecStart: the README installs it in ~/.cargo/bin
/// or (packaged) /usr/bin, so no fixed path fits.
fn running_executable() -> anyhow::Result<PathBuf> {
    std::env::current_exe()
        .and_then(fs::canonicalize)
        .map_err(|e| {
            UserError::runtime(format!("cannot tell where this knock-totp binary is: {e}")).into()
        })
}

/// The firewall backend from the flags, refusing flags that do not belong to it.
fn firewall_from(args: &SetupArgs, engine: EngineKind) -> Result<Firewall, UserError> {
    let kind = match (args.firewall, engine) {
        (Some(FirewallKind::Iptables), EngineKind::Nftables) => {
            return Err(UserError::usage(
                "--firewall iptables does not apply to --engine nftables: the engine is the \
                 host firewall (its drop holds whatever iptables rules accept)",
            )
            .with_hint("leave out --firewall, or give a cloud firewall (aws, gcp, azure)"))
        }
        (Some(kind), _) => kind,
        (None, engine) => design(engine).default_firewall(),
    };
    let firewall = Firewall::from_settings(kind, &CloudFlags { args, kind })?;
    firewall
        .validate()
        .map_err(|e| UserError::usage(e.to_string()))?;
    Ok(firewall)
}

/// setup's cloud flags, as the settings of the backend `kind`.
struct CloudFlags<'a> {
    args: &'a SetupArgs,
    kind: FirewallKind,
}

impl CloudFlags<'_> {
    /// Refuses a cloud flag given that the backend does not take.
    fn only(&self, taken: &[&str]) -> Result<(), UserError> {
        let given = [
            ("--security-group", self.args.security_group.is_some()),
            ("--region", self.args.region.is_some()),
            ("--resource-group", self.args.resource_group.is_some()),
        ];
        match given
            .into_iter()
            .find(|(flag, given)| *given && !taken.contains(flag))
        {
            Some((flag, _)) => Err(UserError::usage(format!(
                "{flag} does not apply to --firewall {}",
                self.kind.as_str()
            ))),
            None => Ok(()),
        }
    }
}

impl SettingsSource for CloudFlags<'_> {
    type Error = UserError;

    fn none(&self) -> Result<(), UserError> {
        self.only(&[])
    }

    fn aws(&self) -> Result<AwsTarget, UserError> {
        self.only(&["--security-group", "--region"])?;
        Ok(AwsTarget {
            security_group: self.args.security_group.clone().ok_or_else(|| {
                UserError::usage("--firewall aws needs --security-group")
                    .with_hint("give the instance's security group id, e.g. --security-group sg-0123456789abcdef0")
            })?,
            region: self.args.region.clone(),
            profile: None,
        })
    }

    fn gcp(&self) -> Result<GcpTarget, UserError> {
        self.only(&[])?;
        Ok(GcpTarget {
            network: self.args.network.clone(),
        })
    }

    fn azure(&self) -> Result<AzureTarget, UserError> {
        self.only(&["--security-group", "--resource-group"])?;
        Ok(AzureTarget {
            resource_group: self
                .args
                .resource_group
                .clone()
                .ok_or_else(|| UserError::usage("--firewall azure needs --resource-group"))?,
            nsg: self.args.security_group.clone().ok_or_else(|| {
                UserError::usage(
                    "--firewall azure needs --security-group (the network security group's name)",
                )
            })?,
        })
    }
}

/// Every path `setup` will write, checked: no existing file without --force, and a
/// writable directory for each. Writes nothing.
fn plan_writes(
    args: &SetupArgs,
    config: &ServerConfig,
    artifacts: &[Artifact],
) -> anyhow::Result<()> {
    let mut targets = Vec::new();
    if let Some(out) = &args.out {
        check_out_dir(out, "--out")?;
        check_directory(out, "--out")?;
        // The files added once the secret is known (knockd.conf for the knockd engine only).
        let late = config
            .knockd_conf
            .is_some()
            .then(|| KNOCKD_CONF_FILE.to_owned());
        let names = artifacts
            .iter()
            .map(|a| a.file_name.clone())
            .chain([secret_file_name(&args.name), uri_file_name(&args.name)])
            .chain(late);
        targets.extend(names.map(|n| out.join(n)));
    }
    check_targets(args, targets)
}

/// Adds the QR files to `targets`, then checks them all: none written twice, none a
/// directory, none that exists without --force.
fn check_targets(args: &SetupArgs, mut targets: Vec<PathBuf>) -> anyhow::Result<()> {
    for (flag, path) in [("--qr-png", &args.qr_png), ("--qr-svg", &args.qr_svg)] {
        if let Some(path) = path {
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            if !parent.is_dir() {
                return Err(UserError::usage(format!(
                    "{flag} {}: directory {} does not exist",
                    path.display(),
                    parent.display()
                ))
                .into());
            }
            check_directory(parent, flag)?;
            targets.push(path.clone());
        }
    }
    for (i, target) in targets.iter().enumerate() {
        if targets[..i].contains(target) {
            return Err(UserError::usage(format!(
                "{} would be written twice: give the QR files other names",
                target.display()
            ))
            .into());
        }
        match fs::symlink_metadata(target) {
            Ok(meta) if meta.is_dir() => {
                return Err(UserError::usage(format!("{} is a directory", target.display())).into())
            }
            Ok(_) if !args.force => {
                return Err(
                    UserError::usage(format!("{} already exists", target.display()))
                        .with_hint(
                            "pass --force to overwrite it, or choose another --out directory",
                        )
                        .into(),
                )
            }
            _ => {}
        }
    }
    Ok(())
}

/// Writes `artifacts` into `dir` (created 0700 if missing): every file is staged before any
/// is put in place, so a failure leaves none of them.
fn write_artifacts(dir: &Path, what: &str, artifacts: &[Artifact]) -> anyhow::Result<()> {
    let created = create_out_dir(dir, what)?;
    let staged: anyhow::Result<Vec<StagedFile>> = artifacts
        .iter()
        .map(|a| StagedFile::new(&dir.join(&a.file_name), a.contents.as_bytes(), a.mode))
        .collect();
    match staged {
        Ok(files) => {
            for file in files {
                file.commit()?;
            }
            Ok(())
        }
        Err(e) => {
            if created {
                let _ = fs::remove_dir(dir);
            }
            Err(e)
        }
    }
}

fn write_qr_files(args: &SetupArgs, uri: &str) -> anyhow::Result<()> {
    if let Some(path) = &args.qr_png {
        qr::write_png(uri, path)?;
    }
    if let Some(path) = &args.qr_svg {
        qr::write_svg(uri, path)?;
    }
    Ok(())
}

/// --secret takes only `-`: a secret in argv lands in shell history and `ps`.
fn check_secret_flag(args: &SetupArgs) -> Result<(), UserError> {
    if args.secret.as_deref().is_some_and(|s| s != "-") {
        return Err(
            UserError::usage("--secret only takes - (read the secret from stdin)").with_hint(
                "a secret on the command line lands in shell history: pipe it in with `--secret -`",
            ),
        );
    }
    Ok(())
}

/// The secret: read from stdin with `--secret -`, else a new one.
fn read_secret(args: &SetupArgs) -> anyhow::Result<SecretKey> {
    Ok(match args.secret.as_deref() {
        Some(_) => {
            let text = read_stdin_value("secret")?;
            SecretKey::from_base32(&text).map_err(|e| UserError::usage(e.to_string()))?
        }
        None => SecretKey::generate(),
    })
}

/// An existing --out (`what`) must be ours and closed to others: whoever can write in it can
/// read the secret (through a file planted before we write) or replace firewall-setup.sh,
/// which root then runs.
fn check_out_dir(out: &Path, what: &str) -> anyhow::Result<()> {
    let reason = unsafe_directory(out)
        .map_err(|e| UserError::usage(format!("{what} {}: {e}", out.display())))?;
    match reason {
        None => Ok(()),
        Some(reason) => Err(UserError::usage(format!(
            "{what} {} {reason}: another user could read the secret or replace the files",
            out.display()
        ))
        .with_hint(
            "give a directory that does not exist yet (setup creates it, mode 0700), or one \
             you own that only you can write to",
        )
        .into()),
    }
}

/// Creates --out, mode 0700 (its missing parents too); true when it did not exist. One that
/// appeared since it was checked is checked again.
fn create_out_dir(out: &Path, what: &str) -> anyhow::Result<bool> {
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_private_dir(parent)?;
    }
    let mut builder = fs::DirBuilder::new();
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    match builder.create(out) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            check_out_dir(out, what)?;
            Ok(false)
        }
        Err(e) => Err(UserError::runtime(format!("cannot create {}: {e}", out.display())).into()),
    }
}

/// `dir` (or, when it does not exist yet, its nearest existing ancestor) is a directory we
/// can create files in. The probe file is removed at once.
fn check_directory(dir: &Path, flag: &str) -> anyhow::Result<()> {
    let mut existing = dir.to_path_buf();
    while !existing.exists() {
        match existing.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => existing = parent.to_path_buf(),
            _ => {
                existing = PathBuf::from(".");
                break;
            }
        }
    }
    if !existing.is_dir() {
        return Err(UserError::usage(format!(
            "{flag} {}: {} is not a directory",
            dir.display(),
            existing.display()
        ))
        .into());
    }
    let probe = existing.join(format!(".knock-totp-probe-{}", std::process::id()));
    match OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(UserError::usage(format!(
            "{flag} {}: cannot write in {}: {e}",
            dir.display(),
            existing.display()
        ))
        .into()),
    }
}

/// The unit runs `executable` as root: a binary (or a directory above it) that another user
/// owns or others can write would let them run code as root. Such a path (a user's
/// ~/.cargo/bin, say) is also one root without capabilities may not be able to enter.
fn warn_if_others_can_replace(ctx: &Context, executable: &Path) {
    use std::os::unix::fs::MetadataExt;
    let unsafe_part = executable.ancestors().find(|part| {
        fs::metadata(part).is_ok_and(|meta| {
            // In a sticky directory (/tmp) others cannot replace what they do not own.
            let sticky_dir = meta.is_dir() && meta.mode() & 0o1000 != 0;
            meta.uid() != 0 || (meta.mode() & 0o022 != 0 && !sticky_dir)
        })
    });
    if let Some(part) = unsafe_part {
        ctx.log.alarm(format!(
            "the daemon's unit runs {} as root, but {} is not root's alone (another owner, or \
             writable by others): install the binary as root, e.g. `install -m 0755 {} \
             /usr/local/bin/knock-totp`, and run setup from there or change the unit's ExecStart",
            executable.display(),
            part.display(),
            executable.display()
        ));
    }
}

/// setup may run on another machine than the server, so an interface missing here is only
/// worth a warning: knockd on this machine would not start on it.
fn warn_if_absent_here(ctx: &Context, interface: &str) {
    let Ok(entries) = std::fs::read_dir("/sys/class/net") else {
        return;
    };
    let present: Vec<String> = entries
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    if !present.iter().any(|name| name == interface) {
        let mut present = present;
        present.sort();
        ctx.log.note(format!(
            "warning: this machine has no interface {interface} (it has {}): if knockd runs \
             here, pass one of those with --interface",
            present.join(", ")
        ));
    }
}

/// Adds to `text` the heading, the QR code and the URI that hold a new secret (warning first
/// when they go to a terminal, where they may end up pasted).
fn show_code(ctx: &Context, text: &mut String, heading: &str, terminal_qr: &str, uri: &str) {
    if stdout_is_tty() {
        ctx.log
            .note("this output holds the new secret: do not paste it into logs or tickets");
    }
    let _ = writeln!(text, "{heading}");
    text.push_str(terminal_qr);
    if !terminal_qr.ends_with('\n') {
        text.push('\n');
    }
    let _ = writeln!(text, "{uri}\n");
}
