//! Man pages (clap_mangen) for the tool and each subcommand, with the sections users need.

use clap::CommandFactory;

use crate::cli::args::Cli;

const EXIT_STATUS: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
Success, also when the reader of standard output went away (as with \fB| head\fR).
.TP
\fB1\fR
Runtime failure: network error, the protected port never opened, an I/O error.
.TP
\fB2\fR
Usage error or bad input: arguments, secrets, otpauth URIs, configuration files.
.TP
\fB3\fR
No such host profile.
.TP
\fB4\fR
The secret store is unavailable (no reachable Secret Service or keychain).
.PP
\fBknock\-totp ssh\fR becomes ssh once the host and its secret are found: from then on the
exit status is ssh's (255 when its ProxyCommand could not knock the port open, the reason
on standard error).
"#;

const FILES: &str = r#".SH FILES
.TP
\fI~/.config/knock\-totp/hosts.toml\fR
Host profiles (address, protected port, ssh user, knock delay, algorithm, period, store,
and optionally the server's \fBopen_seconds\fR). Written atomically; unknown keys are kept.
.TP
\fI~/.local/state/knock\-totp/knocks.toml\fR
What the client remembers of its knocks per host (mode 0600, written atomically): the last
success and its address (reused while the name still resolves to it) and recent failures,
from which a failed knock's message is chosen (a ban, the clock, a used door). Removing it
only loses those hints.
.TP
\fI~/.config/knock\-totp/secrets/NAME\fR
The file store: one Base32 secret per host, mode 0600 (a file others can read is refused),
in a 0700 directory, used only for
hosts added with \fB\-\-store file\fR or when hosts.toml says \fBsecret_store = "file"\fR.
.TP
OS keyring
By default secrets are kept in the Secret Service (Linux), Keychain (macOS) or Credential
Manager (Windows) under service \fBknock\-totp\fR, account = host name.
.TP
\fI/etc/knock\-totp/\fR
Server side: the server configuration and its 0600 secret file written by \fBsetup\fR.
.TP
\fI/etc/knock\-totp/NAME.d/USER.toml\fR, \fIUSER.secret\fR
Server side: the server's users, written by \fBsetup NAME \-\-user USER\fR (settings
\fBenabled\fR, \fBexpires\fR, \fBopen_seconds\fR; the secret 0600). With at least one user
file the server's own secret opens no door. \fBsystemctl reload\fR (SIGHUP) makes the
daemon read them again: a removed, disabled or expired user's doors and grants go at once.
.TP
\fI/var/lib/knock\-totp/NAME.window\fR
Server side (in \fB$STATE_DIRECTORY\fR when systemd sets it, as the unit's
\fBStateDirectory=knock\-totp\fR does): one line \fBwindow=N\fR, the newest TOTP window whose
door \fBserver\fR put in the firewall, written (0600, atomically) before that door goes in.
A daemon started with its clock behind that window serves no door until the clock passes
it, so a knock captured before is never accepted again. Even with the clock right, a
restarted daemon serves only windows after that one: knocks may fail for up to two windows
after a restart. A damaged file, a symbolic link or one others may write stops
the daemon. If the clock was wrong when the file was written and is right now, remove the
file.
"#;

const ENVIRONMENT: &str = r#".SH ENVIRONMENT
.TP
\fBKNOCK_TOTP_CONFIG\fR
Path of hosts.toml, instead of the platform configuration directory. The file store lives
in \fIsecrets/\fR beside it.
.TP
\fBKNOCK_TOTP_SSH\fR
The ssh program \fBknock\-totp ssh\fR runs (default \fBssh\fR).
.TP
\fBJOURNAL_STREAM\fR
Set by systemd when standard error is the journal: when it names the file on standard
error, every line starts with its syslog priority (\fB<3>\fR errors, \fB<4>\fR warnings,
\fB<6>\fR notes, \fB<7>\fR details), so \fBjournalctl \-p warning\fR shows attacks and
failures only.
"#;

const EXAMPLES: &str = r#".SH EXAMPLES
Enroll a host with the URI its administrator gave you, read from standard input:
.PP
.nf
    printf '%s' "$URI" | knock\-totp add web \-\-address web.example.com \-\-uri \-
.fi
.PP
Run ssh; its ProxyCommand knocks, waits for the port and hands ssh that connection:
.PP
.nf
    knock\-totp ssh web
.fi
.PP
Knock from ssh itself, in \fI~/.ssh/config\fR:
.PP
.nf
    Host web
        HostName web.example.com
        HostKeyAlias web
        ProxyCommand knock\-totp proxy %n %h %p
.fi
.PP
Turn a code read off a phone into ports, on a machine without the secret:
.PP
.nf
    knock\-totp ports \-\-from\-code 970113
.fi
.PP
Enroll a server (prints the QR code; writes the nftables base table, firewall, server and
systemd files):
.PP
.nf
    knock\-totp setup web \-\-address web.example.com \-\-out /etc/knock\-totp
.fi
"#;

const SECURITY: &str = r#".SH SECURITY
The knock keeps the protected port closed to scanners and to anyone without the secret, and
a sequence expires with its 30 second window, so an old capture cannot be replayed later.
With the nftables engine (the default) a door is single use: it opens for the first address
that completes it and, for the rest of its life, for that address only, so a knock captured
on the network path and replayed from elsewhere is refused (\fBserver \-\-status\fR counts
it under replays refused). The knockd engine does not refuse it: with knockd a captured knock
can be replayed from elsewhere within the same window (and the neighbouring windows the
server accepts for clock skew). An observer on the path who can send from the knocker's own
address is not stopped by either. TOTP knocking is not single packet authorization; keep the
protected service's own authentication strong. Secrets are never printed, logged or passed
in the argument list of programs knock\-totp starts, unless asked for with
\fBshow \-\-secret\fR, \fBshow \-\-qr\fR or \fBsetup\fR.
"#;

/// Date printed in the pages' footer; fixed so that regenerating them is reproducible.
const PAGES_DATE: &str = "2026-11-25";

/// `(file name, roff text)` for `knock-totp.1` and one page per subcommand.
pub fn pages() -> Vec<(String, String)> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut pages = vec![render(cmd.clone(), true)];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        pages.push(render(sub.clone(), false));
        // `server unban` and the like: a page of their own.
        for nested in sub.get_subcommands().filter(|s| !s.is_hide_set()) {
            pages.push(render(nested.clone(), false));
        }
    }
    pages
}

fn render(cmd: clap::Command, main: bool) -> (String, String) {
    let man = clap_mangen::Man::new(cmd.clone())
        .date(PAGES_DATE)
        .source(concat!("knock-totp ", env!("CARGO_PKG_VERSION")))
        .manual("knock-totp manual");
    let mut out = Vec::new();
    let write = |out: &mut Vec<u8>| -> std::io::Result<()> {
        man.render_title(out)?;
        man.render_name_section(out)?;
        man.render_synopsis_section(out)?;
        man.render_description_section(out)?;
        if cmd.get_arguments().any(|a| !a.is_hide_set()) {
            man.render_options_section(out)?;
        }
        if cmd.has_subcommands() {
            man.render_subcommands_section(out)?;
        }
        out.extend_from_slice(EXIT_STATUS.as_bytes());
        if main {
            for section in [FILES, ENVIRONMENT, EXAMPLES, SECURITY] {
                out.extend_from_slice(section.as_bytes());
            }
        } else {
            out.extend_from_slice(b".SH \"SEE ALSO\"\n\\fBknock\\-totp\\fR(1)\n");
        }
        if main {
            man.render_version_section(out)?;
        }
        Ok(())
    };
    write(&mut out).expect("writing to memory cannot fail");
    let text = String::from_utf8(out).expect("clap_mangen writes UTF-8");
    // clap_mangen puts an empty line between two `.br` before a value list, which mandoc
    // rightly warns about; one break is what it means.
    (
        man.get_filename(),
        text.replace("\n.br\n\n.br\n", "\n.br\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_per_subcommand_with_exit_status() {
        let pages = pages();
        let names: Vec<_> = pages.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"knock-totp.1"));
        assert!(names.contains(&"knock-totp-ssh.1"));
        assert!(names.contains(&"knock-totp-server-unban.1"), "{names:?}");
        for (name, text) in &pages {
            assert!(text.contains(".SH \"EXIT STATUS\""), "{name}");
        }
        let main = &pages[0].1;
        for section in ["FILES", "ENVIRONMENT", "EXAMPLES", "SECURITY"] {
            assert!(main.contains(&format!(".SH {section}")), "{section}");
        }
    }
}
