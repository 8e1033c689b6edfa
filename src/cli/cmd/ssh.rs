//! `ssh`: knock, wait for the port, then replace this process with ssh to the knocked IP.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use super::knock::{policy, target_for_host};
use crate::cli::args::SshArgs;
use crate::cli::Context;
use crate::client::knock::knock_target;
use crate::error::UserError;

pub fn run(ctx: &Context, args: SshArgs) -> anyhow::Result<()> {
    // Before knocking: a knock for an ssh that cannot start opens the door for nothing.
    if !is_runnable(&args.ssh_bin) {
        return Err(cannot_run(&args.ssh_bin, "no such executable program"));
    }
    let (profile, target, totp) = target_for_host(ctx, &args.name, None)?;
    let addr = target.addr;
    // The probe connection only proved the door is open; ssh makes its own.
    drop(knock_target(
        &ctx.log,
        &target,
        &totp,
        &policy(&args.options, true),
    )?);

    let argv = ssh_argv(
        &args.name,
        &addr.ip().to_string(),
        addr.port(),
        profile.user.as_deref(),
        &args.ssh_args,
    );
    ctx.log.detail(format!(
        "running {} {}",
        args.ssh_bin.display(),
        argv.iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    ));
    // exec only returns on failure; on success ssh's signals and exit code are the user's.
    let error = Command::new(&args.ssh_bin).args(&argv).exec();
    Err(cannot_run(&args.ssh_bin, error))
}

fn cannot_run(program: &Path, why: impl std::fmt::Display) -> anyhow::Error {
    UserError::runtime(format!("cannot run {}: {why}", program.display()))
        .with_hint(
            "install the OpenSSH client, or choose the program with --ssh-bin or KNOCK_TOTP_SSH",
        )
        .into()
}

/// Whether `program` names an executable file: a path as it is, a bare name on `PATH` (as
/// exec will look it up).
fn is_runnable(program: &Path) -> bool {
    let executable = |path: &Path| {
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.components().count() != 1 || program.as_os_str().is_empty() {
        return executable(program);
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| executable(&dir.join(program))))
}

/// ssh's arguments: the knocked IP (so the connection comes from the address the door opened
/// for), the profile name as HostKeyAlias (so known_hosts still matches), port and user, then
/// the user's own arguments after the destination (OpenSSH reads options there too).
pub fn ssh_argv(
    name: &str,
    ip: &str,
    port: u16,
    user: Option<&str>,
    extra: &[String],
) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec![
        "-o".into(),
        format!("HostKeyAlias={name}").into(),
        "-p".into(),
        port.to_string().into(),
    ];
    if let Some(user) = user {
        argv.push("-l".into());
        argv.push(user.into());
    }
    argv.push(ip.into());
    argv.extend(extra.iter().map(OsString::from));
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_puts_alias_port_user_then_destination_then_extra() {
        let argv = ssh_argv(
            "web",
            "2001:db8::5",
            2222,
            Some("alice"),
            &["-A".into(), "uptime".into()],
        );
        let argv: Vec<&str> = argv.iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            argv,
            [
                "-o",
                "HostKeyAlias=web",
                "-p",
                "2222",
                "-l",
                "alice",
                "2001:db8::5",
                "-A",
                "uptime"
            ]
        );
        let argv = ssh_argv("db", "192.0.2.1", 22, None, &[]);
        assert_eq!(argv.len(), 5);
        assert_eq!(argv[4], "192.0.2.1");
    }
}
