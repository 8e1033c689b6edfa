//! Client commands against the file store: add, list, show, remove, code, ports.

use crate::support::{Env, RFC_SECRET};

#[test]
fn ports_at_rfc_time() {
    let env = Env::new();
    env.add_file_host("web", "127.0.0.1", RFC_SECRET);
    env.cmd()
        .args(["ports", "web", "--at", "1111111109"])
        .assert()
        .success()
        .stdout("8180 1804\n");
}
