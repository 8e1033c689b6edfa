//! Per-call cost of the pure core: port derivation and TOTP code generation.
//!
//! `benches/run.sh` runs this and turns criterion's estimates into the report table.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use knock_totp::core::ports::port_pair;
use knock_totp::core::secret::SecretKey;
use knock_totp::core::totp::{Algorithm, Totp};

/// RFC 6238's SHA-1 test secret ("12345678901234567890"), so the numbers are reproducible.
const SECRET: &str = "GEZDGNBVGY3DQOJQGEZDGNBVGY3DQOJQ";

/// A fixed moment: the clock is not what is being measured.
const T: u64 = 1_111_111_109;

fn port_derivation(c: &mut Criterion) {
    // Codes of every shape widen() handles: six digits, leading zeros, zero groups.
    let codes: [u32; 8] = [970_113, 0, 100_000, 81_804, 5_924, 418, 24, 999_999];
    let mut group = c.benchmark_group("core");
    group.bench_function("port_pair", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) % codes.len();
            port_pair(black_box(codes[i]))
        })
    });
    group.finish();
}

fn code_generation(c: &mut Criterion) {
    let secret = SecretKey::from_base32(SECRET).expect("test secret is valid");
    let totp = Totp::new(&secret, Algorithm::Sha1, 30).expect("30 s is a valid period");
    let mut group = c.benchmark_group("core");
    group.bench_function("code_at", |b| {
        let mut t = T;
        b.iter(|| {
            // A new window each call, as a real caller sees: no cached result to hit.
            t += 30;
            totp.code_at(black_box(t))
        })
    });
    group.bench_function("code_at+port_pair", |b| {
        let mut t = T;
        b.iter(|| {
            t += 30;
            port_pair(totp.code_at(black_box(t)).value())
        })
    });
    // What one `knock-totp code` invocation does in the core: parse the stored secret, build
    // the generator, derive the ports.
    group.bench_function("from_base32+new+code_at+port_pair", |b| {
        b.iter(|| {
            let secret = SecretKey::from_base32(black_box(SECRET)).expect("valid");
            let totp = Totp::new(&secret, Algorithm::Sha1, 30).expect("valid");
            port_pair(totp.code_at(black_box(T)).value())
        })
    });
    group.finish();
}

criterion_group!(benches, port_derivation, code_generation);
criterion_main!(benches);
