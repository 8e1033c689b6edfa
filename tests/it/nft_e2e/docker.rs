//! A protected port that a container publishes, as Docker does it (a DNAT in prerouting, an
//! accept in its own forward chain): its connections take the forward hook, not input, and
//! the nftables engine's table guards them there with the same grants.

use std::net::IpAddr;

use super::{nft_lab_available, v4, Rig, PROTECTED};

/// The port the service listens on inside the container.
const CONTAINER_PORT: u16 = 8022;

#[test]
fn nft_a_port_published_by_docker_stays_shut_until_the_knock() {
    if !nft_lab_available(false) {
        return;
    }
    let mut rig = Rig::setup("nftdock", 30, 30);
    rig.install_base();
    rig.lab.add_container();
    rig.lab.start_container_echo_server(CONTAINER_PORT);
    rig.lab.publish_like_docker(PROTECTED, CONTAINER_PORT);
    rig.start_daemon();
    let client = IpAddr::V4(rig.lab.client_ip);
    let other = v4(rig.lab.add_client_ipv4(7));
    // Docker's accept alone would let everyone through to the container.
    assert!(
        !rig.can_connect(client),
        "the published port was open before any knock\n{}",
        rig.report()
    );
    rig.knock_ok(v4(rig.lab.server_ip), "the knock failed");
    assert!(
        rig.can_connect(client),
        "the knock did not open the published port\n{}",
        rig.report()
    );
    assert!(
        !rig.can_connect(other),
        "the knock opened the published port for another address"
    );
    let status = rig.status();
    assert!(
        status["counters"]["denied"].as_u64().unwrap() >= 2,
        "the forward drops are not counted: {status}"
    );
}
