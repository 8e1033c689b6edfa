//! Every knock-totp command in README.md's shell blocks is one the CLI accepts, the blocks are
//! valid shell, and the set-up command prints what the README says it prints.

use clap::Parser;
use knock_totp::cli::args::Cli;

use crate::support::Env;

pub(crate) fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

/// The fenced blocks of the given language tag (`""` for untagged ones).
pub(crate) fn blocks(text: &str, lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(tag)) => {
                if tag.trim() == lang {
                    current = Some(String::new());
                } else {
                    current = Some("\u{0}skip".into());
                }
            }
            (Some(block), Some(_)) => {
                if !block.starts_with('\u{0}') {
                    out.push(block.clone());
                }
                current = None;
            }
            (Some(block), None) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

/// Splits a shell line into words, honouring simple quotes (enough for the README).
fn words(segment: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    for c in segment.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => quote = Some(c),
            (None, c) if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            (None, c) => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// The knock-totp invocations in a block of shell.
fn invocations(block: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for line in block.lines() {
        let line = match line.find(" #") {
            Some(at) => &line[..at],
            None => line,
        };
        if line.trim_start().starts_with('#') {
            continue;
        }
        for segment in line
            .split("&&")
            .flat_map(|s| s.split('|'))
            .flat_map(|s| s.split(';'))
        {
            let words = words(segment);
            if words.first().map(String::as_str) == Some("knock-totp") {
                found.push(words);
            }
        }
    }
    found
}

#[test]
fn readme_commands_parse() {
    let text = readme();
    let mut checked = 0;
    for block in blocks(&text, "sh") {
        for argv in invocations(&block) {
            if let Err(e) = Cli::try_parse_from(&argv) {
                panic!("README command {argv:?} does not parse:\n{e}");
            }
            checked += 1;
        }
        let syntax = std::process::Command::new("bash")
            .args(["-n", "-c", &block])
            .output()
            .unwrap();
        assert!(syntax.status.success(), "not valid shell:\n{block}");
    }
    for block in blocks(&text, "") {
        for line in block.lines() {
            if let Some(command) = line.trim().strip_prefix("ProxyCommand ") {
                // ssh expands these tokens before running the command.
                let command = command
                    .replace("%n", "web")
                    .replace("%h", "web.example.com")
                    .replace("%p", "22");
                let argv = words(&command);
                Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
                checked += 1;
            }
        }
    }
    // Commands quoted inline in the prose too.
    for span in text.split('`').skip(1).step_by(2) {
        if span.starts_with("knock-totp ") {
            let span = span
                .replace("%n", "web")
                .replace("%h", "web.example.com")
                .replace("%p", "22");
            for argv in invocations(&span) {
                Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("README `{span}`: {e}"));
                checked += 1;
            }
        }
    }
    assert!(checked >= 15, "only {checked} README commands found");
}

/// The README's ssh_config recipe keeps the host key under the knock-totp host name, the
/// alias `knock-totp ssh NAME` passes, so the two ways in share one known_hosts entry.
#[test]
fn ssh_config_recipe_uses_the_alias_of_knock_totp_ssh() {
    let text = readme();
    let recipe = blocks(&text, "")
        .into_iter()
        .find(|b| b.contains("ProxyCommand knock-totp proxy"))
        .expect("an ssh_config recipe in the README");
    let host = recipe
        .lines()
        .find_map(|l| l.trim().strip_prefix("Host "))
        .expect("a Host line")
        .trim()
        .to_owned();
    // What `knock-totp ssh` passes for this name.
    let ssh_alias = knock_totp::cli::cmd::ssh::ssh_argv(&host, "PROXY", "192.0.2.1", 22, None, &[])
        .iter()
        .find_map(|a| a.to_str()?.strip_prefix("HostKeyAlias=").map(str::to_owned))
        .expect("knock-totp ssh passes a HostKeyAlias");
    if !crate::support::have("ssh") {
        crate::support::can_run("needs the OpenSSH client (ssh -G)", false);
        return;
    }
    let env = Env::new();
    let config = env.path().join("ssh_config");
    std::fs::write(&config, &recipe).unwrap();
    let out = std::process::Command::new("ssh")
        .args(["-G", "-F"])
        .arg(&config)
        .arg(&host)
        .output()
        .unwrap();
    let resolved = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        resolved
            .lines()
            .any(|l| l == format!("hostkeyalias {ssh_alias}")),
        "ssh through the recipe records the key under another name than `knock-totp ssh` \
         (HostKeyAlias={ssh_alias}):\n{resolved}"
    );
}

#[test]
fn setup_command_output_is_as_documented() {
    let env = Env::new();
    env.cmd()
        .args(["ports", "--from-code", "970113"])
        .assert()
        .success()
        .stdout("9701 1130\n");
    assert!(readme().contains("knock-totp ports --from-code 970113"));
    assert!(readme().contains("it prints `9701 1130`"));
}

#[test]
fn readme_quick_start_runs_against_a_file_store() {
    // The user quick start, with the file store and a fixed time so that it is checkable.
    let env = Env::new();
    let uri = "otpauth://totp/knock-totp:web?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=knock-totp&algorithm=SHA1&digits=6&period=30";
    env.cmd()
        .args([
            "add",
            "web",
            "--address",
            "web.example.com",
            "--store",
            "file",
            "--uri",
            "-",
        ])
        .write_stdin(uri)
        .assert()
        .success();
    env.cmd()
        .args(["code", "web", "--at", "1111111109"])
        .assert()
        .stdout("081804\n");
    env.cmd()
        .args(["ports", "web", "--at", "1111111109"])
        .assert()
        .stdout("8180 1804\n");
    assert!(readme().contains("knock-totp code web          # 081804"));
    assert!(readme().contains("knock-totp ports web         # 8180 1804"));
}
