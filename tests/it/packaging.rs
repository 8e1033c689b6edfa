//! What `cargo package` would publish: no test fixtures (they hold test secrets).

use crate::support::{stderr_of, stdout_of};

#[test]
fn package_does_not_ship_fixtures() {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["package", "--list", "--allow-dirty", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let files = stdout_of(&out);
    assert!(files.lines().any(|f| f == "src/main.rs"), "{files}");
    assert!(files.lines().any(|f| f == "man/knock-totp.1"), "{files}");
    let shipped: Vec<&str> = files
        .lines()
        .filter(|f| f.starts_with("tests/fixtures/"))
        .collect();
    assert!(shipped.is_empty(), "fixtures would ship: {shipped:?}");
}
