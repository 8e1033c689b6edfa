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
    let top_value_options = value_options(None);
    let sub_value_options: String = HOST_SUBCOMMANDS
        .iter()
        .map(|sub| format!("        {sub}) echo \"{}\" ;;\n", value_options(Some(sub))))
        .collect();
    format!(
        r#"{functions}

# The options of each host command that take a value (the next word is that value).
_knock_totp_value_options() {{
    case "$1" in
{sub_value_options}        *) echo "{top_value_options}" ;;
    esac
}}

# Host names for the commands that take one, wherever the name goes among their options;
# clap's completion for everything else.
_knock_totp_hosts_or_default() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" i word sub="" sub_index=0 values
    values=" $(_knock_totp_value_options) "
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${{COMP_WORDS[i]}}"
        case "$word" in
            -*) [[ $values == *" $word "* ]] && ((i++)) ;;
            *) sub="$word"; sub_index=$i; break ;;
        esac
    done
    case "$sub" in
        {case})
            values=" $(_knock_totp_value_options "$sub") "
            for ((i = sub_index + 1; i < COMP_CWORD; i++)); do
                word="${{COMP_WORDS[i]}}"
                case "$word" in
                    --) break ;;
                    -*) [[ $values == *" $word "* ]] && ((i++)) ;;
                    *) break ;;
                esac
            done
            # Offer hosts only when no host was given yet and `cur` is no option's value.
            if [[ $cur != -* && $i -eq $COMP_CWORD ]]; then
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

/// The options (long and short spellings) that take a value, of `subcommand` or of the top level.
fn value_options(subcommand: Option<&str>) -> String {
    let mut command = Cli::command();
    command.build();
    let command = match subcommand {
        Some(name) => command
            .find_subcommand(name)
            .expect("HOST_SUBCOMMANDS names subcommands")
            .clone(),
        None => command,
    };
    let mut spellings = Vec::new();
    for arg in command.get_arguments() {
        if arg.is_positional() || !arg.get_action().takes_values() {
            continue;
        }
        spellings.extend(
            arg.get_long_and_visible_aliases()
                .into_iter()
                .flatten()
                .map(|l| format!("--{l}")),
        );
        spellings.extend(
            arg.get_short_and_visible_aliases()
                .into_iter()
                .flatten()
                .map(|s| format!("-{s}")),
        );
    }
    spellings.join(" ")
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
