//! Rotation cost of the nftables engine, for `benches/engines.sh` (not a criterion bench).
//!
//! `cargo test --all-targets` runs bench binaries without `--bench`: then this exits 0 at
//! once. With `--bench` (as `cargo bench` passes it) it takes a sub-command:
//!
//!   engines --bench render-lab DIR TABLE PORT A B RATE BURST BAN
//!       writes DIR/base.nft and DIR/doors.nft: the library's base ruleset and one door
//!       (ports A, B) valid from a minute ago for an hour.
//!   engines --bench rotation TABLE RUNS
//!       run inside a network namespace as root: times `nft -f -` (TZ=UTC, as the server
//!       runs it) of the base ruleset and, for 3, 300 and 3,000 doors shifted one window at
//!       each whole second, of what the daemon loads at a boundary (the new doors added,
//!       else flushed and refilled) and of the flush-and-refill transaction; also the time
//!       to render each.
//!       Prints {"id", "samples"} lines in milliseconds (benches/report.py's format).
//!
//! Without a sub-command it prints this hint and exits 0 (`cargo bench` alone stays green).

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use knock_totp::server::engine::nftables::ruleset::{
    added_doors_transaction, base_ruleset, doors_transaction, live_doors, rotation_transaction,
    NftDoor, NftParams, NftUser, SERVER_SLOT,
};

/// The server's period; only the door time bounds depend on it.
const PERIOD: u64 = 30;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let Some(pos) = args.iter().position(|a| a == "--bench") else {
        return;
    };
    args.remove(pos);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["render-lab", dir, table, port, a, b, rate, burst, ban] => render_lab(
            dir,
            table,
            num(port),
            [num(a), num(b)],
            num(rate),
            num(burst),
            num(ban),
        ),
        ["rotation", table, runs] => rotation(table, num(runs)),
        _ => {
            eprintln!("benches/engines.rs: run by benches/engines.sh (root, network namespaces)");
            Ok(())
        }
    };
    if let Err(e) = result {
        eprintln!("engines: {e}");
        std::process::exit(1);
    }
}

fn num<T: std::str::FromStr>(s: &str) -> T {
    s.parse()
        .unwrap_or_else(|_| panic!("engines: not a number: {s:?}"))
}

fn wall() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
}

fn now() -> u64 {
    wall().as_secs()
}

/// Sleeps until 5 ms past the next whole second (a bench window's boundary); returns then.
fn next_boundary() -> Duration {
    let past = wall().subsec_millis();
    std::thread::sleep(Duration::from_millis(u64::from(1005 - past)));
    wall()
}

fn params(table: &str, port: u16) -> NftParams {
    let p = NftParams::with_defaults(table, port);
    p.validate().expect("valid bench parameters");
    p
}

fn render_lab(
    dir: &str,
    table: &str,
    port: u16,
    ports: [u16; 2],
    rate: u32,
    burst: u32,
    ban: u64,
) -> Result<(), String> {
    let mut p = params(table, port);
    p.limits.rate_per_minute = rate;
    p.limits.burst = burst;
    p.limits.ban_seconds = ban;
    p.validate()?;
    let t = now();
    let door = NftDoor {
        counter: t / PERIOD,
        ports,
        valid_from: t - 60,
        valid_until: t + 3600,
        user: None,
        slot: SERVER_SLOT,
    };
    if !door.is_renderable(&p) {
        return Err(format!("door ports {ports:?} are not renderable"));
    }
    let write = |name: &str, text: String| {
        std::fs::write(format!("{dir}/{name}"), text).map_err(|e| format!("{dir}/{name}: {e}"))
    };
    write("base.nft", base_ruleset(&p))?;
    write(
        "doors.nft",
        doors_transaction(&p, &[door], Duration::from_secs(t)),
    )
}

/// `n` doors: the previous, current and next windows' (ending at window `last`) of each of
/// `n / 3` users (the single secret's when `n` is 3), with knock ports derived from the
/// counter and the user. The bench's windows last a second (counter = unix second), so that
/// the kernel's element timeouts run out between boundaries as they do on the server; each
/// door lives from the window before its own to the one after, as the server's do.
fn doors(n: u64, last: u64) -> Vec<NftDoor> {
    let users = (n / 3).max(1);
    (0..users)
        .flat_map(|u| (last - 2..=last).map(move |c| (u, c)))
        .map(|(u, c)| {
            let user = (users > 1).then(|| NftUser {
                name: format!("user{u}"),
                tag: format!("{u:06x}"),
                open_seconds: 30,
            });
            // Ports as unrelated as TOTP codes' (splitmix64 of user and window): A ports
            // collide as often as real ones, pairs rarely.
            let mix = |mut z: u64| {
                z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                z ^ (z >> 31)
            };
            let r = mix(c << 16 | u);
            let a = 1000 + (r % 9000) as u16;
            let mut b = 1000 + ((r >> 32) % 9000) as u16;
            if b == a {
                b = if b == 9999 { 1000 } else { b + 1 };
            }
            NftDoor {
                counter: c,
                ports: [a, b],
                valid_from: c - 1,
                valid_until: c + 2,
                user,
                slot: SERVER_SLOT + 1 + u as u16,
            }
        })
        .collect()
}

/// Loads `text` with `nft -f -` as the server does; returns the wall time in ms.
fn nft_load(text: &str) -> Result<f64, String> {
    let start = Instant::now();
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .env("TZ", "UTC")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("nft: {e}"))?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(text.as_bytes())
        .map_err(|e| format!("nft stdin: {e}"))?;
    let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "nft -f failed: {}",
            err.lines().next().unwrap_or("")
        ));
    }
    Ok(ms)
}

fn emit(id: &str, samples: &[f64]) {
    let list: Vec<String> = samples.iter().map(|s| format!("{s:.4}")).collect();
    println!("{{\"id\": \"{id}\", \"samples\": [{}]}}", list.join(", "));
}

fn rotation(table: &str, runs: usize) -> Result<(), String> {
    let p = params(table, 2222);
    let base = base_ruleset(&p);
    let mut base_ms = Vec::new();
    for _ in 0..runs + 1 {
        base_ms.push(nft_load(&base)?);
    }
    base_ms.remove(0); // warm-up (first table creation, page cache)
    emit("rot-base", &base_ms);

    for n in [3u64, 300, 3000] {
        // The table as the server leaves it: base, then the doors of this window.
        nft_load(&base)?;
        let at = next_boundary();
        let first = doors(n, at.as_secs() + 1);
        nft_load(&doors_transaction(&p, &first, at))?;
        let mut in_kernel = live_doors(&p, &first, at);
        let (mut load_ms, mut full_ms, mut render_ms) = (Vec::new(), Vec::new(), Vec::new());
        let (mut refilled, mut grown) = (0, 0);
        for i in 0..runs + 1 {
            let at = next_boundary();
            let next = doors(n, at.as_secs() + 1);
            let t = Instant::now();
            // What the daemon loads at a boundary (its repair re-asserts the chains apart).
            let added = added_doors_transaction(&p, &in_kernel, &next, at);
            let refill = added.is_none();
            let text = added.unwrap_or_else(|| rotation_transaction(&p, &next, at));
            let render = t.elapsed().as_secs_f64() * 1000.0;
            let load = nft_load(&text)?;
            // The flush-and-refill transaction of the same doors, for comparison.
            let full = nft_load(&rotation_transaction(&p, &next, wall()))?;
            in_kernel = live_doors(&p, &next, wall());
            if i > 0 {
                render_ms.push(render);
                load_ms.push(load);
                full_ms.push(full);
                refilled += usize::from(refill);
                grown += usize::from(text.contains("delete element"));
            }
        }
        emit(&format!("rot-load-{n}"), &load_ms);
        emit(&format!("rot-full-{n}"), &full_ms);
        emit(&format!("rot-render-{n}"), &render_ms);
        let text = rotation_transaction(&p, &doors(n, now() + 1), wall());
        eprintln!(
            "engines: {n} doors: transaction of {} lines, {} KiB; refilled at {refilled} of {runs} boundaries; a start grown at {grown}",
            text.lines().count(),
            text.len() / 1024
        );
    }
    nft_load(&format!("delete table inet {table}\n"))?;
    Ok(())
}
