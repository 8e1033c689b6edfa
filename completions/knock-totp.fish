# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_knock_totp_global_optspecs
    string join \n v/verbose q/quiet h/help V/version
end

function __fish_knock_totp_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_knock_totp_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_knock_totp_using_subcommand
    set -l cmd (__fish_knock_totp_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c knock-totp -n "__fish_knock_totp_needs_command" -s v -l verbose -d 'Say more on stderr (repeat for more detail); never shows secrets'
complete -c knock-totp -n "__fish_knock_totp_needs_command" -s q -l quiet -d 'Print only results and errors'
complete -c knock-totp -n "__fish_knock_totp_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c knock-totp -n "__fish_knock_totp_needs_command" -s V -l version -d 'Print version'
complete -c knock-totp -n "__fish_knock_totp_needs_command" -f -a "add" -d 'Add a host profile and store its secret'
complete -c knock-totp -n "__fish_knock_totp_needs_command" -f -a "list" -d 'List host profiles (never shows secrets)'
complete -c knock-totp -n "__fish_knock_totp_needs_command" -f -a "show" -d 'Show one host profile; with --qr, its enrollment QR code and URI'
complete -c knock-totp -n "__fish_knock_totp_needs_command" -f -a "remove" -d 'Remove a host profile and its secret'
complete -c knock-totp -n "__fish_knock_totp_needs_command" -f -a "code" -d 'Print the current code and seconds left; without NAME, every host\'s'
complete -c knock-totp -n "__fish_knock_totp_needs_command" -f -a "ports" -d 'Print the knock ports of the current (or another) window'
complete -c knock-totp -n "__fish_knock_totp_needs_command" -f -a "knock" -d 'Knock a host\'s port sequence'
complete -c knock-totp -n "__fish_knock_totp_needs_command" -f -a "ssh" -d 'Run ssh through a ProxyCommand that knocks, waits for the port and hands ssh that connection'
complete -c knock-totp -n "__fish_knock_totp_needs_command" -f -a "proxy" -d 'Knock, connect and relay stdin/stdout (for ssh\'s ProxyCommand)'
complete -c knock-totp -n "__fish_knock_totp_needs_command" -f -a "setup" -d 'Enroll a server: secret, QR code, the nftables base table (or knockd.conf), firewall, server and systemd configs'
complete -c knock-totp -n "__fish_knock_totp_needs_command" -f -a "server" -d 'Run the rotation daemon that keeps the doors following the code'
complete -c knock-totp -n "__fish_knock_totp_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c knock-totp -n "__fish_knock_totp_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand add" -s a -l address -d 'DNS name or IP address of the server' -r
complete -c knock-totp -n "__fish_knock_totp_using_subcommand add" -s p -l port -d 'Protected port that the knock opens' -r
complete -c knock-totp -n "__fish_knock_totp_using_subcommand add" -s u -l user -d 'User for ssh' -r
complete -c knock-totp -n "__fish_knock_totp_using_subcommand add" -l delay-ms -d 'Milliseconds between the two knocks' -r
complete -c knock-totp -n "__fish_knock_totp_using_subcommand add" -l algorithm -d 'HMAC algorithm (from the URI when --uri is given)' -r
complete -c knock-totp -n "__fish_knock_totp_using_subcommand add" -l period -d 'TOTP period in seconds (from the URI when --uri is given)' -r
complete -c knock-totp -n "__fish_knock_totp_using_subcommand add" -l store -d 'Secret store for this host (default: `secret_store` in hosts.toml, else keyring)' -r -f -a "keyring\t'The OS keyring (Secret Service, macOS Keychain, Windows Credential Manager)'
file\t'One 0600 file per host under the config directory'"
complete -c knock-totp -n "__fish_knock_totp_using_subcommand add" -l secret -d 'Base32 secret, - to read it from stdin, or nothing to be asked (hidden prompt on a terminal, else stdin); a value on the command line lands in shell history' -r
complete -c knock-totp -n "__fish_knock_totp_using_subcommand add" -l secret-file -d 'Read the Base32 secret from a file' -r -F
complete -c knock-totp -n "__fish_knock_totp_using_subcommand add" -l uri -d 'An otpauth://totp/ URI (as `setup` prints it), or - to read it from stdin' -r
complete -c knock-totp -n "__fish_knock_totp_using_subcommand add" -s f -l force -d 'Replace an existing profile of the same name'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand add" -s v -l verbose -d 'Say more on stderr (repeat for more detail); never shows secrets'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand add" -s q -l quiet -d 'Print only results and errors'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand add" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand list" -l json -d 'Print JSON'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand list" -l names -d 'Print only the host names, one per line (for shell completion)'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand list" -s v -l verbose -d 'Say more on stderr (repeat for more detail); never shows secrets'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand list" -s q -l quiet -d 'Print only results and errors'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand list" -s h -l help -d 'Print help'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand show" -l qr -d 'Show the enrollment QR code and otpauth URI (reveals the secret)'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand show" -l secret -d 'Print the Base32 secret'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand show" -s y -l yes -d 'Do not ask before revealing the secret'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand show" -l json -d 'Print JSON (never includes the secret)'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand show" -s v -l verbose -d 'Say more on stderr (repeat for more detail); never shows secrets'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand show" -s q -l quiet -d 'Print only results and errors'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand show" -s h -l help -d 'Print help'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand remove" -s y -l yes -d 'Do not ask for confirmation'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand remove" -s v -l verbose -d 'Say more on stderr (repeat for more detail); never shows secrets'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand remove" -s q -l quiet -d 'Print only results and errors'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand remove" -s h -l help -d 'Print help'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand code" -l at -d 'Compute for this moment: unix seconds or RFC 3339 (2026-01-02T03:04:05Z)' -r
complete -c knock-totp -n "__fish_knock_totp_using_subcommand code" -s w -l watch -d 'Redraw every second with a countdown until Ctrl-C'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand code" -l json -d 'Print JSON'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand code" -s v -l verbose -d 'Say more on stderr (repeat for more detail); never shows secrets'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand code" -s q -l quiet -d 'Print only results and errors'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand code" -s h -l help -d 'Print help'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand ports" -l at -d 'Compute for this moment: unix seconds or RFC 3339 (2026-01-02T03:04:05Z)' -r
complete -c knock-totp -n "__fish_knock_totp_using_subcommand ports" -l from-code -d 'Turn a code read off an authenticator app into ports (no host, no secret)' -r
complete -c knock-totp -n "__fish_knock_totp_using_subcommand ports" -s n -l next -d 'The next window\'s ports instead of the current one\'s'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand ports" -l json -d 'Print JSON'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand ports" -s v -l verbose -d 'Say more on stderr (repeat for more detail); never shows secrets'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand ports" -s q -l quiet -d 'Print only results and errors'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand ports" -s h -l help -d 'Print help'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand knock" -s a -l address -d 'Knock this address instead of a profile\'s (the secret comes from stdin)' -r
complete -c knock-totp -n "__fish_knock_totp_using_subcommand knock" -s p -l port -d 'Protected port, for --address' -r
complete -c knock-totp -n "__fish_knock_totp_using_subcommand knock" -l secret -d 'With --address: - reads the Base32 secret from stdin' -r
complete -c knock-totp -n "__fish_knock_totp_using_subcommand knock" -l delay-ms -d 'Milliseconds between knocks (default: the profile\'s, else 10)' -r
complete -c knock-totp -n "__fish_knock_totp_using_subcommand knock" -l algorithm -d 'With --address: HMAC algorithm' -r
complete -c knock-totp -n "__fish_knock_totp_using_subcommand knock" -l period -d 'With --address: TOTP period in seconds' -r
complete -c knock-totp -n "__fish_knock_totp_using_subcommand knock" -l timeout -d 'Seconds to wait for the protected port to open' -r
complete -c knock-totp -n "__fish_knock_totp_using_subcommand knock" -l margin -d 'Wait for the next window when fewer than this many seconds are left' -r
complete -c knock-totp -n "__fish_knock_totp_using_subcommand knock" -l verify -d 'Wait until the protected port accepts a connection (knock again once if the window changed)'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand knock" -s v -l verbose -d 'Say more on stderr (repeat for more detail); never shows secrets'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand knock" -s q -l quiet -d 'Print only results and errors'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand knock" -s h -l help -d 'Print help'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand ssh" -l ssh-bin -d 'ssh program to run' -r -F
complete -c knock-totp -n "__fish_knock_totp_using_subcommand ssh" -l timeout -d 'Seconds to wait for the protected port to open' -r
complete -c knock-totp -n "__fish_knock_totp_using_subcommand ssh" -l margin -d 'Wait for the next window when fewer than this many seconds are left' -r
complete -c knock-totp -n "__fish_knock_totp_using_subcommand ssh" -s v -l verbose -d 'Say more on stderr (repeat for more detail); never shows secrets'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand ssh" -s q -l quiet -d 'Print only results and errors'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand ssh" -s h -l help -d 'Print help'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand proxy" -l timeout -d 'Seconds to wait for the protected port to open' -r
complete -c knock-totp -n "__fish_knock_totp_using_subcommand proxy" -l margin -d 'Wait for the next window when fewer than this many seconds are left' -r
complete -c knock-totp -n "__fish_knock_totp_using_subcommand proxy" -l fdpass -d 'Hand the connection to ssh and exit instead of relaying it (needs `ProxyUseFdpass yes`)'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand proxy" -s v -l verbose -d 'Say more on stderr (repeat for more detail); never shows secrets'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand proxy" -s q -l quiet -d 'Print only results and errors'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand proxy" -s h -l help -d 'Print help'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand setup" -s a -l address -d 'Address clients use to reach the server (for the enrollment command)' -r
complete -c knock-totp -n "__fish_knock_totp_using_subcommand setup" -s p -l port -d 'Protected port' -r
complete -c knock-totp -n "__fish_knock_totp_using_subcommand setup" -s i -l interface -d 'Network interface knockd listens on' -r
complete -c knock-totp -n "__fish_knock_totp_using_subcommand setup" -l engine -d 'Knock engine: nftables (in the kernel) or knockd (the original design)' -r -f -a "nftables\t'In-kernel doors: sweep-proof, rate-limited, single-use, fail-closed'
knockd\t'knockd with one door per window (the original design)'"
complete -c knock-totp -n "__fish_knock_totp_using_subcommand setup" -l firewall -d 'How the door opens the protected port (default: nftables; iptables with --engine knockd)' -r -f -a "iptables\t'iptables/ip6tables rules inserted and deleted per client'
nftables\t'an nftables set whose elements time out by themselves'
aws\t'AWS security group rules through the aws CLI'
gcp\t'Google Cloud firewall rules through gcloud'
azure\t'Azure network security group rules through az'"
complete -c knock-totp -n "__fish_knock_totp_using_subcommand setup" -l security-group -d 'AWS security group (sg-...) for --firewall aws; the NSG name for --firewall azure' -r
complete -c knock-totp -n "__fish_knock_totp_using_subcommand setup" -l region -d 'Cloud region, for --firewall aws' -r
complete -c knock-totp -n "__fish_knock_totp_using_subcommand setup" -l resource-group -d 'Azure resource group of the network security group (--security-group), for --firewall azure' -r
complete -c knock-totp -n "__fish_knock_totp_using_subcommand setup" -l network -d 'VPC network for the firewall rules, for --firewall gcp' -r
complete -c knock-totp -n "__fish_knock_totp_using_subcommand setup" -l secret -d '- reads the Base32 secret from stdin instead of generating one' -r
complete -c knock-totp -n "__fish_knock_totp_using_subcommand setup" -l period -d 'TOTP period in seconds, 5-120 (authenticator apps assume 30)' -r
complete -c knock-totp -n "__fish_knock_totp_using_subcommand setup" -l open-seconds -d 'Seconds a door stays open for the knocking address, 1-300 (default 30; with --user, the user\'s own, default the server\'s)' -r
complete -c knock-totp -n "__fish_knock_totp_using_subcommand setup" -l out -d 'Write the files into this directory instead of printing them (created 0700; an existing one must be yours and writable by you only)' -r -F
complete -c knock-totp -n "__fish_knock_totp_using_subcommand setup" -l qr-png -d 'Also write the QR code as a PNG image' -r -F
complete -c knock-totp -n "__fish_knock_totp_using_subcommand setup" -l qr-svg -d 'Also write the QR code as an SVG image' -r -F
complete -c knock-totp -n "__fish_knock_totp_using_subcommand setup" -l at -d 'Render the example doors for this moment instead of now (for tests and previews)' -r
complete -c knock-totp -n "__fish_knock_totp_using_subcommand setup" -l user -d 'Enroll user USER of server NAME instead: write NAME.d/USER.toml, USER.secret and USER.otpauth under --out (default /etc/knock-totp), with the server\'s period and algorithm' -r
complete -c knock-totp -n "__fish_knock_totp_using_subcommand setup" -l expires -d 'With --user, when the user stops opening doors: unix seconds or RFC 3339 (2027-01-31T18:00:00Z)' -r
complete -c knock-totp -n "__fish_knock_totp_using_subcommand setup" -s f -l force -d 'Overwrite existing files under --out'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand setup" -l show-secret -d 'With --out or --user, print the QR code and the otpauth URI (they hold the secret) even when stdout is not a terminal; they are always in NAME.otpauth (mode 0600) under --out'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand setup" -s v -l verbose -d 'Say more on stderr (repeat for more detail); never shows secrets'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand setup" -s q -l quiet -d 'Print only results and errors'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand setup" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand server; and not __fish_seen_subcommand_from unban" -s c -l config -d 'Server configuration file (written by `setup`)' -r -F
complete -c knock-totp -n "__fish_knock_totp_using_subcommand server; and not __fish_seen_subcommand_from unban" -l metrics-file -d 'Write Prometheus metrics (counters, attack state, doors) to PATH, replaced atomically after each rotation and within seconds of a change, for node_exporter\'s textfile collector (name it *.prom); nftables engine only' -r -F
complete -c knock-totp -n "__fish_knock_totp_using_subcommand server; and not __fish_seen_subcommand_from unban" -l once -d 'Do one rotation and exit'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand server; and not __fish_seen_subcommand_from unban" -l dry-run -d 'Print the actions instead of doing them, window after window (it never exits: add --once for one pass)'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand server; and not __fish_seen_subcommand_from unban" -l status -d 'Print the engine\'s state (doors, allowed and banned sources, counters) and exit; with -v, the door ports too'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand server; and not __fish_seen_subcommand_from unban" -l json -d 'With --status: print JSON'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand server; and not __fish_seen_subcommand_from unban" -s v -l verbose -d 'Say more on stderr (repeat for more detail); never shows secrets'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand server; and not __fish_seen_subcommand_from unban" -s q -l quiet -d 'Print only results and errors'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand server; and not __fish_seen_subcommand_from unban" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand server; and not __fish_seen_subcommand_from unban" -f -a "unban" -d 'Lift the nftables engine\'s bans of an address and forget its wrong knocks'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand server; and __fish_seen_subcommand_from unban" -s c -l config -d 'Server configuration file (written by `setup`), here or before `unban`' -r -F
complete -c knock-totp -n "__fish_knock_totp_using_subcommand server; and __fish_seen_subcommand_from unban" -s v -l verbose -d 'Say more on stderr (repeat for more detail); never shows secrets'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand server; and __fish_seen_subcommand_from unban" -s q -l quiet -d 'Print only results and errors'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand server; and __fish_seen_subcommand_from unban" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand completions" -s v -l verbose -d 'Say more on stderr (repeat for more detail); never shows secrets'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand completions" -s q -l quiet -d 'Print only results and errors'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand completions" -s h -l help -d 'Print help'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand help; and not __fish_seen_subcommand_from add list show remove code ports knock ssh proxy setup server completions help" -f -a "add" -d 'Add a host profile and store its secret'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand help; and not __fish_seen_subcommand_from add list show remove code ports knock ssh proxy setup server completions help" -f -a "list" -d 'List host profiles (never shows secrets)'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand help; and not __fish_seen_subcommand_from add list show remove code ports knock ssh proxy setup server completions help" -f -a "show" -d 'Show one host profile; with --qr, its enrollment QR code and URI'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand help; and not __fish_seen_subcommand_from add list show remove code ports knock ssh proxy setup server completions help" -f -a "remove" -d 'Remove a host profile and its secret'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand help; and not __fish_seen_subcommand_from add list show remove code ports knock ssh proxy setup server completions help" -f -a "code" -d 'Print the current code and seconds left; without NAME, every host\'s'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand help; and not __fish_seen_subcommand_from add list show remove code ports knock ssh proxy setup server completions help" -f -a "ports" -d 'Print the knock ports of the current (or another) window'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand help; and not __fish_seen_subcommand_from add list show remove code ports knock ssh proxy setup server completions help" -f -a "knock" -d 'Knock a host\'s port sequence'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand help; and not __fish_seen_subcommand_from add list show remove code ports knock ssh proxy setup server completions help" -f -a "ssh" -d 'Run ssh through a ProxyCommand that knocks, waits for the port and hands ssh that connection'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand help; and not __fish_seen_subcommand_from add list show remove code ports knock ssh proxy setup server completions help" -f -a "proxy" -d 'Knock, connect and relay stdin/stdout (for ssh\'s ProxyCommand)'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand help; and not __fish_seen_subcommand_from add list show remove code ports knock ssh proxy setup server completions help" -f -a "setup" -d 'Enroll a server: secret, QR code, the nftables base table (or knockd.conf), firewall, server and systemd configs'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand help; and not __fish_seen_subcommand_from add list show remove code ports knock ssh proxy setup server completions help" -f -a "server" -d 'Run the rotation daemon that keeps the doors following the code'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand help; and not __fish_seen_subcommand_from add list show remove code ports knock ssh proxy setup server completions help" -f -a "completions" -d 'Print a shell completion script'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand help; and not __fish_seen_subcommand_from add list show remove code ports knock ssh proxy setup server completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c knock-totp -n "__fish_knock_totp_using_subcommand help; and __fish_seen_subcommand_from server" -f -a "unban" -d 'Lift the nftables engine\'s bans of an address and forget its wrong knocks'

# Host names for the commands that take one.
complete -c knock-totp -n "__fish_knock_totp_using_subcommand show remove code ports knock ssh proxy" -f -a "(knock-totp list --names 2>/dev/null)" -d host
