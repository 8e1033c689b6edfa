//! What the binary is built from: crates in the dependency tree that we chose to keep out.

use crate::support::stdout_of;

/// The crates (name only) the release binary is built from on this machine's target.
fn normal_dependencies() -> Vec<String> {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["tree", "--offline", "--edges", "normal", "--prefix", "none"])
        .args(["--format", "{p}"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout_of(&out)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn png_is_written_without_the_image_crate() {
    let crates = normal_dependencies();
    assert!(crates.iter().any(|c| c == "png"), "{crates:?}");
    for unwanted in ["image", "moxcms"] {
        assert!(
            !crates.iter().any(|c| c == unwanted),
            "{unwanted} is in the dependency tree again"
        );
    }
}
