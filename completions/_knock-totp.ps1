
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'knock-totp' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'knock-totp'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'knock-totp' {
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more on stderr (repeat for more detail); never shows secrets')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more on stderr (repeat for more detail); never shows secrets')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Add a host profile and store its secret')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List host profiles (never shows secrets)')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show one host profile; with --qr, its enrollment QR code and URI')
            [CompletionResult]::new('remove', 'remove', [CompletionResultType]::ParameterValue, 'Remove a host profile and its secret')
            [CompletionResult]::new('code', 'code', [CompletionResultType]::ParameterValue, 'Print the current code and seconds left; without NAME, every host''s')
            [CompletionResult]::new('ports', 'ports', [CompletionResultType]::ParameterValue, 'Print the knock ports of the current (or another) window')
            [CompletionResult]::new('knock', 'knock', [CompletionResultType]::ParameterValue, 'Knock a host''s port sequence')
            [CompletionResult]::new('ssh', 'ssh', [CompletionResultType]::ParameterValue, 'Run ssh through a ProxyCommand that knocks, waits for the port and hands ssh that connection')
            [CompletionResult]::new('proxy', 'proxy', [CompletionResultType]::ParameterValue, 'Knock, connect and relay stdin/stdout (for ssh''s ProxyCommand)')
            [CompletionResult]::new('setup', 'setup', [CompletionResultType]::ParameterValue, 'Enroll a server: secret, QR code, the nftables base table (or knockd.conf), firewall, server and systemd configs')
            [CompletionResult]::new('server', 'server', [CompletionResultType]::ParameterValue, 'Run the rotation daemon that keeps the doors following the code')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'knock-totp;add' {
            [CompletionResult]::new('-a', '-a', [CompletionResultType]::ParameterName, 'DNS name or IP address of the server')
            [CompletionResult]::new('--address', '--address', [CompletionResultType]::ParameterName, 'DNS name or IP address of the server')
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Protected port that the knock opens')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'Protected port that the knock opens')
            [CompletionResult]::new('-u', '-u', [CompletionResultType]::ParameterName, 'User for ssh')
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'User for ssh')
            [CompletionResult]::new('--delay-ms', '--delay-ms', [CompletionResultType]::ParameterName, 'Milliseconds between the two knocks')
            [CompletionResult]::new('--algorithm', '--algorithm', [CompletionResultType]::ParameterName, 'HMAC algorithm (from the URI when --uri is given)')
            [CompletionResult]::new('--period', '--period', [CompletionResultType]::ParameterName, 'TOTP period in seconds (from the URI when --uri is given)')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Secret store for this host (default: `secret_store` in hosts.toml, else keyring)')
            [CompletionResult]::new('--secret', '--secret', [CompletionResultType]::ParameterName, 'Base32 secret, - to read it from stdin, or nothing to be asked (hidden prompt on a terminal, else stdin); a value on the command line lands in shell history')
            [CompletionResult]::new('--secret-file', '--secret-file', [CompletionResultType]::ParameterName, 'Read the Base32 secret from a file')
            [CompletionResult]::new('--uri', '--uri', [CompletionResultType]::ParameterName, 'An otpauth://totp/ URI (as `setup` prints it), or - to read it from stdin')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Replace an existing profile of the same name')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Replace an existing profile of the same name')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more on stderr (repeat for more detail); never shows secrets')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more on stderr (repeat for more detail); never shows secrets')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'knock-totp;list' {
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON')
            [CompletionResult]::new('--names', '--names', [CompletionResultType]::ParameterName, 'Print only the host names, one per line (for shell completion)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more on stderr (repeat for more detail); never shows secrets')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more on stderr (repeat for more detail); never shows secrets')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'knock-totp;show' {
            knock-totp list --names 2>$null | ForEach-Object { [CompletionResult]::new($_, $_, [CompletionResultType]::ParameterValue, 'host') }
            [CompletionResult]::new('--qr', '--qr', [CompletionResultType]::ParameterName, 'Show the enrollment QR code and otpauth URI (reveals the secret)')
            [CompletionResult]::new('--secret', '--secret', [CompletionResultType]::ParameterName, 'Print the Base32 secret')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask before revealing the secret')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask before revealing the secret')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON (never includes the secret)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more on stderr (repeat for more detail); never shows secrets')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more on stderr (repeat for more detail); never shows secrets')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'knock-totp;remove' {
            knock-totp list --names 2>$null | ForEach-Object { [CompletionResult]::new($_, $_, [CompletionResultType]::ParameterValue, 'host') }
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more on stderr (repeat for more detail); never shows secrets')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more on stderr (repeat for more detail); never shows secrets')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'knock-totp;code' {
            knock-totp list --names 2>$null | ForEach-Object { [CompletionResult]::new($_, $_, [CompletionResultType]::ParameterValue, 'host') }
            [CompletionResult]::new('--at', '--at', [CompletionResultType]::ParameterName, 'Compute for this moment: unix seconds or RFC 3339 (2026-01-02T03:04:05Z)')
            [CompletionResult]::new('-w', '-w', [CompletionResultType]::ParameterName, 'Redraw every second with a countdown until Ctrl-C')
            [CompletionResult]::new('--watch', '--watch', [CompletionResultType]::ParameterName, 'Redraw every second with a countdown until Ctrl-C')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more on stderr (repeat for more detail); never shows secrets')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more on stderr (repeat for more detail); never shows secrets')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'knock-totp;ports' {
            knock-totp list --names 2>$null | ForEach-Object { [CompletionResult]::new($_, $_, [CompletionResultType]::ParameterValue, 'host') }
            [CompletionResult]::new('--at', '--at', [CompletionResultType]::ParameterName, 'Compute for this moment: unix seconds or RFC 3339 (2026-01-02T03:04:05Z)')
            [CompletionResult]::new('--from-code', '--from-code', [CompletionResultType]::ParameterName, 'Turn a code read off an authenticator app into ports (no host, no secret)')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'The next window''s ports instead of the current one''s')
            [CompletionResult]::new('--next', '--next', [CompletionResultType]::ParameterName, 'The next window''s ports instead of the current one''s')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more on stderr (repeat for more detail); never shows secrets')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more on stderr (repeat for more detail); never shows secrets')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'knock-totp;knock' {
            knock-totp list --names 2>$null | ForEach-Object { [CompletionResult]::new($_, $_, [CompletionResultType]::ParameterValue, 'host') }
            [CompletionResult]::new('-a', '-a', [CompletionResultType]::ParameterName, 'Knock this address instead of a profile''s (the secret comes from stdin)')
            [CompletionResult]::new('--address', '--address', [CompletionResultType]::ParameterName, 'Knock this address instead of a profile''s (the secret comes from stdin)')
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Protected port, for --address')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'Protected port, for --address')
            [CompletionResult]::new('--secret', '--secret', [CompletionResultType]::ParameterName, 'With --address: - reads the Base32 secret from stdin')
            [CompletionResult]::new('--delay-ms', '--delay-ms', [CompletionResultType]::ParameterName, 'Milliseconds between knocks (default: the profile''s, else 10)')
            [CompletionResult]::new('--algorithm', '--algorithm', [CompletionResultType]::ParameterName, 'With --address: HMAC algorithm')
            [CompletionResult]::new('--period', '--period', [CompletionResultType]::ParameterName, 'With --address: TOTP period in seconds')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Seconds to wait for the protected port to open')
            [CompletionResult]::new('--margin', '--margin', [CompletionResultType]::ParameterName, 'Wait for the next window when fewer than this many seconds are left')
            [CompletionResult]::new('--verify', '--verify', [CompletionResultType]::ParameterName, 'Wait until the protected port accepts a connection (knock again once if the window changed)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more on stderr (repeat for more detail); never shows secrets')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more on stderr (repeat for more detail); never shows secrets')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'knock-totp;ssh' {
            knock-totp list --names 2>$null | ForEach-Object { [CompletionResult]::new($_, $_, [CompletionResultType]::ParameterValue, 'host') }
            [CompletionResult]::new('--ssh-bin', '--ssh-bin', [CompletionResultType]::ParameterName, 'ssh program to run')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Seconds to wait for the protected port to open')
            [CompletionResult]::new('--margin', '--margin', [CompletionResultType]::ParameterName, 'Wait for the next window when fewer than this many seconds are left')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more on stderr (repeat for more detail); never shows secrets')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more on stderr (repeat for more detail); never shows secrets')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'knock-totp;proxy' {
            knock-totp list --names 2>$null | ForEach-Object { [CompletionResult]::new($_, $_, [CompletionResultType]::ParameterValue, 'host') }
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Seconds to wait for the protected port to open')
            [CompletionResult]::new('--margin', '--margin', [CompletionResultType]::ParameterName, 'Wait for the next window when fewer than this many seconds are left')
            [CompletionResult]::new('--fdpass', '--fdpass', [CompletionResultType]::ParameterName, 'Hand the connection to ssh and exit instead of relaying it (needs `ProxyUseFdpass yes`)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more on stderr (repeat for more detail); never shows secrets')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more on stderr (repeat for more detail); never shows secrets')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'knock-totp;setup' {
            [CompletionResult]::new('-a', '-a', [CompletionResultType]::ParameterName, 'Address clients use to reach the server (for the enrollment command)')
            [CompletionResult]::new('--address', '--address', [CompletionResultType]::ParameterName, 'Address clients use to reach the server (for the enrollment command)')
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Protected port')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'Protected port')
            [CompletionResult]::new('-i', '-i', [CompletionResultType]::ParameterName, 'Network interface knockd listens on')
            [CompletionResult]::new('--interface', '--interface', [CompletionResultType]::ParameterName, 'Network interface knockd listens on')
            [CompletionResult]::new('--engine', '--engine', [CompletionResultType]::ParameterName, 'Knock engine: nftables (in the kernel) or knockd (the original design)')
            [CompletionResult]::new('--firewall', '--firewall', [CompletionResultType]::ParameterName, 'How the door opens the protected port (default: nftables; iptables with --engine knockd)')
            [CompletionResult]::new('--security-group', '--security-group', [CompletionResultType]::ParameterName, 'AWS security group (sg-...) for --firewall aws; the NSG name for --firewall azure')
            [CompletionResult]::new('--region', '--region', [CompletionResultType]::ParameterName, 'Cloud region, for --firewall aws')
            [CompletionResult]::new('--resource-group', '--resource-group', [CompletionResultType]::ParameterName, 'Azure resource group of the network security group (--security-group), for --firewall azure')
            [CompletionResult]::new('--network', '--network', [CompletionResultType]::ParameterName, 'VPC network for the firewall rules, for --firewall gcp')
            [CompletionResult]::new('--secret', '--secret', [CompletionResultType]::ParameterName, '- reads the Base32 secret from stdin instead of generating one')
            [CompletionResult]::new('--period', '--period', [CompletionResultType]::ParameterName, 'TOTP period in seconds, 5-120 (authenticator apps assume 30)')
            [CompletionResult]::new('--open-seconds', '--open-seconds', [CompletionResultType]::ParameterName, 'Seconds a door stays open for the knocking address, 1-300 (default 30; with --user, the user''s own, default the server''s)')
            [CompletionResult]::new('--out', '--out', [CompletionResultType]::ParameterName, 'Write the files into this directory instead of printing them (created 0700; an existing one must be yours and writable by you only)')
            [CompletionResult]::new('--qr-png', '--qr-png', [CompletionResultType]::ParameterName, 'Also write the QR code as a PNG image')
            [CompletionResult]::new('--qr-svg', '--qr-svg', [CompletionResultType]::ParameterName, 'Also write the QR code as an SVG image')
            [CompletionResult]::new('--at', '--at', [CompletionResultType]::ParameterName, 'Render the example doors for this moment instead of now (for tests and previews)')
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'Enroll user USER of server NAME instead: write NAME.d/USER.toml, USER.secret and USER.otpauth under --out (default /etc/knock-totp), with the server''s period and algorithm')
            [CompletionResult]::new('--expires', '--expires', [CompletionResultType]::ParameterName, 'With --user, when the user stops opening doors: unix seconds or RFC 3339 (2027-01-31T18:00:00Z)')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Overwrite existing files under --out')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Overwrite existing files under --out')
            [CompletionResult]::new('--show-secret', '--show-secret', [CompletionResultType]::ParameterName, 'With --out or --user, print the QR code and the otpauth URI (they hold the secret) even when stdout is not a terminal; they are always in NAME.otpauth (mode 0600) under --out')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more on stderr (repeat for more detail); never shows secrets')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more on stderr (repeat for more detail); never shows secrets')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'knock-totp;server' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Server configuration file (written by `setup`)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Server configuration file (written by `setup`)')
            [CompletionResult]::new('--metrics-file', '--metrics-file', [CompletionResultType]::ParameterName, 'Write Prometheus metrics (counters, attack state, doors) to PATH, replaced atomically after each rotation and within seconds of a change, for node_exporter''s textfile collector (name it *.prom); nftables engine only')
            [CompletionResult]::new('--once', '--once', [CompletionResultType]::ParameterName, 'Do one rotation and exit')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Print the actions instead of doing them, window after window (it never exits: add --once for one pass)')
            [CompletionResult]::new('--status', '--status', [CompletionResultType]::ParameterName, 'Print the engine''s state (doors, allowed and banned sources, counters) and exit; with -v, the door ports too')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'With --status: print JSON')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more on stderr (repeat for more detail); never shows secrets')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more on stderr (repeat for more detail); never shows secrets')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('unban', 'unban', [CompletionResultType]::ParameterValue, 'Lift the nftables engine''s bans of an address and forget its wrong knocks')
            break
        }
        'knock-totp;server;unban' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Server configuration file (written by `setup`), here or before `unban`')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Server configuration file (written by `setup`), here or before `unban`')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more on stderr (repeat for more detail); never shows secrets')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more on stderr (repeat for more detail); never shows secrets')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'knock-totp;completions' {
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say more on stderr (repeat for more detail); never shows secrets')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say more on stderr (repeat for more detail); never shows secrets')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'knock-totp;help' {
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Add a host profile and store its secret')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List host profiles (never shows secrets)')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show one host profile; with --qr, its enrollment QR code and URI')
            [CompletionResult]::new('remove', 'remove', [CompletionResultType]::ParameterValue, 'Remove a host profile and its secret')
            [CompletionResult]::new('code', 'code', [CompletionResultType]::ParameterValue, 'Print the current code and seconds left; without NAME, every host''s')
            [CompletionResult]::new('ports', 'ports', [CompletionResultType]::ParameterValue, 'Print the knock ports of the current (or another) window')
            [CompletionResult]::new('knock', 'knock', [CompletionResultType]::ParameterValue, 'Knock a host''s port sequence')
            [CompletionResult]::new('ssh', 'ssh', [CompletionResultType]::ParameterValue, 'Run ssh through a ProxyCommand that knocks, waits for the port and hands ssh that connection')
            [CompletionResult]::new('proxy', 'proxy', [CompletionResultType]::ParameterValue, 'Knock, connect and relay stdin/stdout (for ssh''s ProxyCommand)')
            [CompletionResult]::new('setup', 'setup', [CompletionResultType]::ParameterValue, 'Enroll a server: secret, QR code, the nftables base table (or knockd.conf), firewall, server and systemd configs')
            [CompletionResult]::new('server', 'server', [CompletionResultType]::ParameterValue, 'Run the rotation daemon that keeps the doors following the code')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'knock-totp;help;add' {
            break
        }
        'knock-totp;help;list' {
            break
        }
        'knock-totp;help;show' {
            break
        }
        'knock-totp;help;remove' {
            break
        }
        'knock-totp;help;code' {
            break
        }
        'knock-totp;help;ports' {
            break
        }
        'knock-totp;help;knock' {
            break
        }
        'knock-totp;help;ssh' {
            break
        }
        'knock-totp;help;proxy' {
            break
        }
        'knock-totp;help;setup' {
            break
        }
        'knock-totp;help;server' {
            [CompletionResult]::new('unban', 'unban', [CompletionResultType]::ParameterValue, 'Lift the nftables engine''s bans of an address and forget its wrong knocks')
            break
        }
        'knock-totp;help;server;unban' {
            break
        }
        'knock-totp;help;completions' {
            break
        }
        'knock-totp;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
