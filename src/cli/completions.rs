//! Shell completion scripts: clap_complete's, plus host names from `knock-totp list --names`
//! for every argument that names an existing host.

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::args::Cli;

/// Subcommands whose first positional argument is an existing host.
pub const HOST_SUBCOMMANDS: &[&str] = &["show", "remove", "code", "ports", "knock", "ssh", "proxy"];

/// Every shell we ship a script for, with its file name under `completions/`.
pub const SHELLS: &[(Shell, &str)] = &[
    (Shell::Bash, "knock-totp.bash"),
    (Shell::Zsh, "_knock-totp"),
    (Shell::Fish, "knock-totp.fish"),
    (Shell::Elvish, "knock-totp.elv"),
    (Shell::PowerShell, "_knock-totp.ps1"),
];

pub fn script(shell: Shell) -> String {
    let mut bytes = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "knock-totp", &mut bytes);
    let generated = String::from_utf8(bytes).expect("clap_complete writes UTF-8");
    let subcommands = HOST_SUBCOMMANDS.join(" ");
    match shell {
        Shell::Bash => bash(&generated, &subcommands),
        Shell::Zsh => zsh(&generated),
        Shell::Fish => format!(
            "{generated}\n# Host names for the commands that take one.\n\
             complete -c knock-totp -n \"__fish_knock_totp_using_subcommand {subcommands}\" \
             -f -a \"(knock-totp list --names 2>/dev/null)\" -d host\n"
        ),
        Shell::Elvish => with_host_candidates(
            &generated,
            |sub| format!("        &'knock-totp;{sub}'= {{"),
            "            try { for host [(knock-totp list --names)] { cand $host 'host' } } catch { }",
        ),
        Shell::PowerShell => with_host_candidates(
            &generated,
            |sub| format!("        'knock-totp;{sub}' {{"),
            "            knock-totp list --names 2>$null | ForEach-Object { \
             [CompletionResult]::new($_, $_, [CompletionResultType]::ParameterValue, 'host') }",
        ),
        _ => generated,
    }
}

/// Inserts `line` (which offers the host names) at the top of each host subcommand's block,
/// found by the block's opening line.
fn with_host_candidates(generated: &str, opening: impl Fn(&str) -> String, line: &str) -> String {
    let openings: Vec<String> = HOST_SUBCOMMANDS.iter().map(|sub| opening(sub)).collect();
    let mut out = String::with_capacity(generated.len() + 2048);
    for text in generated.lines() {
        out.push_str(text);
        out.push('\n');
        if openings.iter().any(|o| o == text) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn bash(generated: &str, subcommands: &str) -> String {
    let registration = generated
        .find("\nif [[ \"${BASH_VERSINFO[0]}\"")
        .expect("clap_complete's bash script ends with its `complete` registration");
    let (functions, _) = generated.split_at(registration);
    // clap_complete names the subcommand states of a hyphenated binary inconsistently
    // (`knock__totp__subcmd__x` where they are set, `knock__subcmd__totp__subcmd__x` where
    // they are matched), which leaves every subcommand without flag completion.
    let functions = functions.replace("knock__subcmd__totp", "knock__totp");
    let case = subcommands.replace(' ', "|");
    format!(
        r#"{functions}

# Host names for the commands that take one, then clap's completion for everything else.
_knock_totp_hosts_or_default() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" i sub="" sub_index=0
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${{COMP_WORDS[i]}}" in
            -*) ;;
            *) sub="${{COMP_WORDS[i]}}"; sub_index=$i; break ;;
        esac
    done
    case "$sub" in
        {case})
            if [[ $cur != -* && $COMP_CWORD -eq $((sub_index + 1)) ]]; then
                COMPREPLY=( $(compgen -W "$(knock-totp list --names 2>/dev/null)" -- "$cur") )
                return 0
            fi
            ;;
    esac
    _knock__totp "$@"
}}

if [[ "${{BASH_VERSINFO[0]}}" -eq 4 && "${{BASH_VERSINFO[1]}}" -ge 4 || "${{BASH_VERSINFO[0]}}" -gt 4 ]]; then
    complete -F _knock_totp_hosts_or_default -o nosort -o bashdefault -o default knock-totp
else
    complete -F _knock_totp_hosts_or_default -o bashdefault -o default knock-totp
fi
"#
    )
}

fn zsh(generated: &str) -> String {
    let helper = "\n(( $+functions[_knock_totp_hosts] )) ||\n_knock_totp_hosts() {\n    \
                  local -a hosts\n    hosts=(${(f)\"$(knock-totp list --names 2>/dev/null)\"})\n    \
                  _describe -t hosts 'host' hosts\n}\n";
    let mut out = String::with_capacity(generated.len() + helper.len());
    for line in generated.lines() {
        if line.contains("name -- Host profile") && line.ends_with(":_default' \\") {
            out.push_str(&line.replace(":_default' \\", ":_knock_totp_hosts' \\"));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    let marker = "\nif [ \"$funcstack[1]\" = \"_knock-totp\" ]; then";
    match out.find(marker) {
        Some(at) => {
            out.insert_str(at, helper);
            out
        }
        None => out + helper,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shell_gets_a_script() {
        for (shell, _) in SHELLS {
            assert!(script(*shell).contains("knock-totp"), "{shell}");
        }
    }

    #[test]
    fn host_names_are_completed_in_bash_zsh_and_fish() {
        assert!(script(Shell::Bash).contains("complete -F _knock_totp_hosts_or_default"));
        let zsh = script(Shell::Zsh);
        assert_eq!(
            zsh.matches(":_knock_totp_hosts' \\").count(),
            HOST_SUBCOMMANDS.len()
        );
        assert!(script(Shell::Fish).contains("list --names"));
        for shell in [Shell::Elvish, Shell::PowerShell] {
            let text = script(shell);
            assert_eq!(
                text.matches("list --names").count(),
                HOST_SUBCOMMANDS.len(),
                "{shell}"
            );
        }
    }
}
