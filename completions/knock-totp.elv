
use builtin;
use str;

set edit:completion:arg-completer[knock-totp] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'knock-totp'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'knock-totp'= {
            cand -v 'Say more on stderr (repeat for more detail); never shows secrets'
            cand --verbose 'Say more on stderr (repeat for more detail); never shows secrets'
            cand -q 'Print only results and errors'
            cand --quiet 'Print only results and errors'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand add 'Add a host profile and store its secret'
            cand list 'List host profiles (never shows secrets)'
            cand show 'Show one host profile; with --qr, its enrollment QR code and URI'
            cand remove 'Remove a host profile and its secret'
            cand code 'Print the current code and seconds left; without NAME, every host''s'
            cand ports 'Print the knock ports of the current (or another) window'
            cand knock 'Knock a host''s port sequence'
            cand ssh 'Run ssh through a ProxyCommand that knocks, waits for the port and hands ssh that connection'
            cand proxy 'Knock, connect and relay stdin/stdout (for ssh''s ProxyCommand)'
            cand setup 'Enroll a server: secret, QR code, the nftables base table (or knockd.conf), firewall, server and systemd configs'
            cand server 'Run the rotation daemon that keeps the doors following the code'
            cand completions 'Print a shell completion script'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'knock-totp;add'= {
            cand -a 'DNS name or IP address of the server'
            cand --address 'DNS name or IP address of the server'
            cand -p 'Protected port that the knock opens'
            cand --port 'Protected port that the knock opens'
            cand -u 'User for ssh'
            cand --user 'User for ssh'
            cand --delay-ms 'Milliseconds between the two knocks'
            cand --algorithm 'HMAC algorithm (from the URI when --uri is given)'
            cand --period 'TOTP period in seconds (from the URI when --uri is given)'
            cand --store 'Secret store for this host (default: `secret_store` in hosts.toml, else keyring)'
            cand --secret 'Base32 secret, - to read it from stdin, or nothing to be asked (hidden prompt on a terminal, else stdin); a value on the command line lands in shell history'
            cand --secret-file 'Read the Base32 secret from a file'
            cand --uri 'An otpauth://totp/ URI (as `setup` prints it), or - to read it from stdin'
            cand -f 'Replace an existing profile of the same name'
            cand --force 'Replace an existing profile of the same name'
            cand -v 'Say more on stderr (repeat for more detail); never shows secrets'
            cand --verbose 'Say more on stderr (repeat for more detail); never shows secrets'
            cand -q 'Print only results and errors'
            cand --quiet 'Print only results and errors'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'knock-totp;list'= {
            cand --json 'Print JSON'
            cand --names 'Print only the host names, one per line (for shell completion)'
            cand -v 'Say more on stderr (repeat for more detail); never shows secrets'
            cand --verbose 'Say more on stderr (repeat for more detail); never shows secrets'
            cand -q 'Print only results and errors'
            cand --quiet 'Print only results and errors'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'knock-totp;show'= {
            try { for host [(knock-totp list --names)] { cand $host 'host' } } catch { }
            cand --qr 'Show the enrollment QR code and otpauth URI (reveals the secret)'
            cand --secret 'Print the Base32 secret'
            cand -y 'Do not ask before revealing the secret'
            cand --yes 'Do not ask before revealing the secret'
            cand --json 'Print JSON (never includes the secret)'
            cand -v 'Say more on stderr (repeat for more detail); never shows secrets'
            cand --verbose 'Say more on stderr (repeat for more detail); never shows secrets'
            cand -q 'Print only results and errors'
            cand --quiet 'Print only results and errors'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'knock-totp;remove'= {
            try { for host [(knock-totp list --names)] { cand $host 'host' } } catch { }
            cand -y 'Do not ask for confirmation'
            cand --yes 'Do not ask for confirmation'
            cand -v 'Say more on stderr (repeat for more detail); never shows secrets'
            cand --verbose 'Say more on stderr (repeat for more detail); never shows secrets'
            cand -q 'Print only results and errors'
            cand --quiet 'Print only results and errors'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'knock-totp;code'= {
            try { for host [(knock-totp list --names)] { cand $host 'host' } } catch { }
            cand --at 'Compute for this moment: unix seconds or RFC 3339 (2026-01-02T03:04:05Z)'
            cand -w 'Redraw every second with a countdown until Ctrl-C'
            cand --watch 'Redraw every second with a countdown until Ctrl-C'
            cand --json 'Print JSON'
            cand -v 'Say more on stderr (repeat for more detail); never shows secrets'
            cand --verbose 'Say more on stderr (repeat for more detail); never shows secrets'
            cand -q 'Print only results and errors'
            cand --quiet 'Print only results and errors'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'knock-totp;ports'= {
            try { for host [(knock-totp list --names)] { cand $host 'host' } } catch { }
            cand --at 'Compute for this moment: unix seconds or RFC 3339 (2026-01-02T03:04:05Z)'
            cand --from-code 'Turn a code read off an authenticator app into ports (no host, no secret)'
            cand -n 'The next window''s ports instead of the current one''s'
            cand --next 'The next window''s ports instead of the current one''s'
            cand --json 'Print JSON'
            cand -v 'Say more on stderr (repeat for more detail); never shows secrets'
            cand --verbose 'Say more on stderr (repeat for more detail); never shows secrets'
            cand -q 'Print only results and errors'
            cand --quiet 'Print only results and errors'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'knock-totp;knock'= {
            try { for host [(knock-totp list --names)] { cand $host 'host' } } catch { }
            cand -a 'Knock this address instead of a profile''s (the secret comes from stdin)'
            cand --address 'Knock this address instead of a profile''s (the secret comes from stdin)'
            cand -p 'Protected port, for --address'
            cand --port 'Protected port, for --address'
            cand --secret 'With --address: - reads the Base32 secret from stdin'
            cand --delay-ms 'Milliseconds between knocks (default: the profile''s, else 10)'
            cand --algorithm 'With --address: HMAC algorithm'
            cand --period 'With --address: TOTP period in seconds'
            cand --timeout 'Seconds to wait for the protected port to open'
            cand --margin 'Wait for the next window when fewer than this many seconds are left'
            cand --verify 'Wait until the protected port accepts a connection (knock again once if the window changed)'
            cand -v 'Say more on stderr (repeat for more detail); never shows secrets'
            cand --verbose 'Say more on stderr (repeat for more detail); never shows secrets'
            cand -q 'Print only results and errors'
            cand --quiet 'Print only results and errors'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'knock-totp;ssh'= {
            try { for host [(knock-totp list --names)] { cand $host 'host' } } catch { }
            cand --ssh-bin 'ssh program to run'
            cand --timeout 'Seconds to wait for the protected port to open'
            cand --margin 'Wait for the next window when fewer than this many seconds are left'
            cand -v 'Say more on stderr (repeat for more detail); never shows secrets'
            cand --verbose 'Say more on stderr (repeat for more detail); never shows secrets'
            cand -q 'Print only results and errors'
            cand --quiet 'Print only results and errors'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'knock-totp;proxy'= {
            try { for host [(knock-totp list --names)] { cand $host 'host' } } catch { }
            cand --timeout 'Seconds to wait for the protected port to open'
            cand --margin 'Wait for the next window when fewer than this many seconds are left'
            cand --fdpass 'Hand the connection to ssh and exit instead of relaying it (needs `ProxyUseFdpass yes`)'
            cand -v 'Say more on stderr (repeat for more detail); never shows secrets'
            cand --verbose 'Say more on stderr (repeat for more detail); never shows secrets'
            cand -q 'Print only results and errors'
            cand --quiet 'Print only results and errors'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'knock-totp;setup'= {
            cand -a 'Address clients use to reach the server (for the enrollment command)'
            cand --address 'Address clients use to reach the server (for the enrollment command)'
            cand -p 'Protected port'
            cand --port 'Protected port'
            cand -i 'Network interface knockd listens on'
            cand --interface 'Network interface knockd listens on'
            cand --engine 'Knock engine: nftables (in the kernel) or knockd (the original design)'
            cand --firewall 'How the door opens the protected port (default: nftables; iptables with --engine knockd)'
            cand --security-group 'AWS security group (sg-...) for --firewall aws; the NSG name for --firewall azure'
            cand --region 'Cloud region, for --firewall aws'
            cand --resource-group 'Azure resource group of the network security group (--security-group), for --firewall azure'
            cand --network 'VPC network for the firewall rules, for --firewall gcp'
            cand --secret '- reads the Base32 secret from stdin instead of generating one'
            cand --period 'TOTP period in seconds, 5-120 (authenticator apps assume 30)'
            cand --open-seconds 'Seconds a door stays open for the knocking address, 1-300 (default 30; with --user, the user''s own, default the server''s)'
            cand --out 'Write the files into this directory instead of printing them (created 0700; an existing one must be yours and writable by you only)'
            cand --qr-png 'Also write the QR code as a PNG image'
            cand --qr-svg 'Also write the QR code as an SVG image'
            cand --at 'Render the example doors for this moment instead of now (for tests and previews)'
            cand --user 'Enroll user USER of server NAME instead: write NAME.d/USER.toml, USER.secret and USER.otpauth under --out (default /etc/knock-totp), with the server''s period and algorithm'
            cand --expires 'With --user, when the user stops opening doors: unix seconds or RFC 3339 (2027-01-31T18:00:00Z)'
            cand -f 'Overwrite existing files under --out'
            cand --force 'Overwrite existing files under --out'
            cand --show-secret 'With --out or --user, print the QR code and the otpauth URI (they hold the secret) even when stdout is not a terminal; they are always in NAME.otpauth (mode 0600) under --out'
            cand -v 'Say more on stderr (repeat for more detail); never shows secrets'
            cand --verbose 'Say more on stderr (repeat for more detail); never shows secrets'
            cand -q 'Print only results and errors'
            cand --quiet 'Print only results and errors'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'knock-totp;server'= {
            cand -c 'Server configuration file (written by `setup`)'
            cand --config 'Server configuration file (written by `setup`)'
            cand --metrics-file 'Write Prometheus metrics (counters, attack state, doors) to PATH, replaced atomically after each rotation and within seconds of a change, for node_exporter''s textfile collector (name it *.prom); nftables engine only'
            cand --once 'Do one rotation and exit'
            cand --dry-run 'Print the actions instead of doing them, window after window (it never exits: add --once for one pass)'
            cand --status 'Print the engine''s state (doors, allowed and banned sources, counters) and exit; with -v, the door ports too'
            cand --json 'With --status: print JSON'
            cand -v 'Say more on stderr (repeat for more detail); never shows secrets'
            cand --verbose 'Say more on stderr (repeat for more detail); never shows secrets'
            cand -q 'Print only results and errors'
            cand --quiet 'Print only results and errors'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand unban 'Lift the nftables engine''s bans of an address and forget its wrong knocks'
        }
        &'knock-totp;server;unban'= {
            cand -c 'Server configuration file (written by `setup`), here or before `unban`'
            cand --config 'Server configuration file (written by `setup`), here or before `unban`'
            cand -v 'Say more on stderr (repeat for more detail); never shows secrets'
            cand --verbose 'Say more on stderr (repeat for more detail); never shows secrets'
            cand -q 'Print only results and errors'
            cand --quiet 'Print only results and errors'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'knock-totp;completions'= {
            cand -v 'Say more on stderr (repeat for more detail); never shows secrets'
            cand --verbose 'Say more on stderr (repeat for more detail); never shows secrets'
            cand -q 'Print only results and errors'
            cand --quiet 'Print only results and errors'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'knock-totp;help'= {
            cand add 'Add a host profile and store its secret'
            cand list 'List host profiles (never shows secrets)'
            cand show 'Show one host profile; with --qr, its enrollment QR code and URI'
            cand remove 'Remove a host profile and its secret'
            cand code 'Print the current code and seconds left; without NAME, every host''s'
            cand ports 'Print the knock ports of the current (or another) window'
            cand knock 'Knock a host''s port sequence'
            cand ssh 'Run ssh through a ProxyCommand that knocks, waits for the port and hands ssh that connection'
            cand proxy 'Knock, connect and relay stdin/stdout (for ssh''s ProxyCommand)'
            cand setup 'Enroll a server: secret, QR code, the nftables base table (or knockd.conf), firewall, server and systemd configs'
            cand server 'Run the rotation daemon that keeps the doors following the code'
            cand completions 'Print a shell completion script'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'knock-totp;help;add'= {
        }
        &'knock-totp;help;list'= {
        }
        &'knock-totp;help;show'= {
        }
        &'knock-totp;help;remove'= {
        }
        &'knock-totp;help;code'= {
        }
        &'knock-totp;help;ports'= {
        }
        &'knock-totp;help;knock'= {
        }
        &'knock-totp;help;ssh'= {
        }
        &'knock-totp;help;proxy'= {
        }
        &'knock-totp;help;setup'= {
        }
        &'knock-totp;help;server'= {
            cand unban 'Lift the nftables engine''s bans of an address and forget its wrong knocks'
        }
        &'knock-totp;help;server;unban'= {
        }
        &'knock-totp;help;completions'= {
        }
        &'knock-totp;help;help'= {
        }
    ]
    $completions[$command]
}
