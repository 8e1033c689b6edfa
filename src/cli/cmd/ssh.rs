//! `ssh`: replace this process with ssh, whose ProxyCommand is `knock-totp proxy --fdpass`: it
//! knocks, waits for the port and hands ssh the connection that answered (ProxyUseFdpass), so
//! sshd sees exactly one connection per login.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use crate::cli::args::{KnockOptions, SshArgs};
use crate::cli::Context;
use crate::error::UserError;
use crate::log::Log;

pub fn run(ctx: &Context, args: SshArgs) -> anyhow::Result<()> {
    // Before anything is sent: a knock for an ssh that cannot start opens the door for nothing.
    if !is_runnable(&args.ssh_bin) {
        return Err(cannot_run(&args.ssh_bin, "no such executable program"));
    }
    // The host and its secret are checked here, where their errors keep their exit codes;
    // the knock itself happens in the ProxyCommand, once ssh runs.
    let (profile, _) = ctx.totp(&args.name)?;
    let exe = std::env::current_exe().map_err(|e| {
        UserError::runtime(format!(
            "cannot find this program's path for ssh's ProxyCommand: {e}"
        ))
    })?;
    let proxy = proxy_command(&exe, &ctx.log, &args.name, &args.options);
    let host = profile
        .address
        .trim_start_matches('[')
        .trim_end_matches(']');
    let argv = ssh_argv(
        &args.name,
        &proxy,
        host,
        profile.port,
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

/// ssh's ProxyCommand: this program's `proxy --fdpass` for host `name`, with our knock
/// options and verbosity. ssh runs it with `sh -c` after expanding `%` tokens, so the path is
/// single-quoted for the shell and its `%` doubled for ssh; names and numbers need neither.
pub fn proxy_command(exe: &Path, log: &Log, name: &str, options: &KnockOptions) -> String {
    let path = exe
        .to_string_lossy()
        .replace('\'', "'\\''")
        .replace('%', "%%");
    let mut command = format!(
        "'{path}' proxy --fdpass --timeout {} --margin {}",
        options.timeout, options.margin
    );
    if log.quiet {
        command.push_str(" -q");
    }
    for _ in 0..log.verbose {
        command.push_str(" -v");
    }
    command.push_str(" -- ");
    command.push_str(name);
    command
}

/// ssh's arguments: the profile name as HostKeyAlias (so known_hosts matches the name, as with
/// the README's ProxyCommand recipe), our ProxyCommand with ProxyUseFdpass, port and user,
/// the profile's address as the destination (ssh connects nowhere itself; it names the host
/// for ssh_config), then the user's own arguments (OpenSSH reads options there too).
pub fn ssh_argv(
    name: &str,
    proxy_command: &str,
    host: &str,
    port: u16,
    user: Option<&str>,
    extra: &[String],
) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec![
        "-o".into(),
        format!("HostKeyAlias={name}").into(),
        "-o".into(),
        format!("ProxyCommand={proxy_command}").into(),
        "-o".into(),
        "ProxyUseFdpass=yes".into(),
        "-p".into(),
        port.to_string().into(),
    ];
    if let Some(user) = user {
        argv.push("-l".into());
        argv.push(user.into());
    }
    argv.push(host.into());
    argv.extend(extra.iter().map(OsString::from));
    argv
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
    !program.as_os_str().is_empty() && which::which(program).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runnable_means_an_executable_file_on_path_or_at_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "").unwrap();
        assert!(is_runnable(Path::new("sh")));
        assert!(is_runnable(Path::new("/bin/sh")));
        assert!(!is_runnable(dir.path()));
        assert!(!is_runnable(&plain));
        assert!(!is_runnable(Path::new("no-such-program-knock-totp")));
        assert!(!is_runnable(Path::new("")));
    }

    #[test]
    fn argv_puts_alias_proxy_port_user_then_destination_then_extra() {
        let argv = ssh_argv(
            "web",
            "PROXY",
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
                "-o",
                "ProxyCommand=PROXY",
                "-o",
                "ProxyUseFdpass=yes",
                "-p",
                "2222",
                "-l",
                "alice",
                "2001:db8::5",
                "-A",
                "uptime"
            ]
        );
        let argv = ssh_argv("db", "PROXY", "192.0.2.1", 22, None, &[]);
        assert_eq!(argv.len(), 9);
        assert_eq!(argv[8], "192.0.2.1");
    }

    #[test]
    fn proxy_command_quotes_the_path_for_sh_and_ssh() {
        let options = KnockOptions {
            timeout: 2.5,
            margin: 0,
        };
        let log = Log {
            verbose: 2,
            quiet: false,
        };
        let command = proxy_command(
            Path::new("/opt/it's 100%/knock-totp"),
            &log,
            "web",
            &options,
        );
        assert_eq!(
            command,
            "'/opt/it'\\''s 100%%/knock-totp' proxy --fdpass --timeout 2.5 --margin 0 -v -v -- web"
        );
    }
}
