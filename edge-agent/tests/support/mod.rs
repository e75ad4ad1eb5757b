//! Starting real things for the end-to-end tests: a Mosquitto broker, the scale simulator on
//! a pty, the `metcon-edge` binary, and an MQTT subscriber that verifies every signed
//! reading. Every helper picks free loopback ports and temporary directories, waits by
//! polling with a deadline, and kills what it started when dropped.

#![allow(dead_code, unused_imports)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

mod agent;
mod broker;
mod sim;
mod subscriber;

pub use agent::Agent;
pub use broker::Broker;
pub use sim::Sim;
pub use subscriber::Subscriber;

/// Polls `f` every 20 ms until it returns `Some`, or panics with `what` after `limit`.
pub fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

pub(crate) fn sibling_binary(name: &str) -> PathBuf {
    let edge = PathBuf::from(env!("CARGO_BIN_EXE_metcon-edge"));
    let path = edge.with_file_name(name);
    assert!(
        path.exists(),
        "{} not found: test both packages together (`cargo test -p metcon-scale-sim -p metcon-edge`) \
         or build it first (`cargo build [--release] -p metcon-scale-sim`)",
        path.display()
    );
    path
}

pub(crate) fn port_open(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}
