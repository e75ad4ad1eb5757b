//! Backlog drain rate after an outage: N signed readings wait in the outbox (written while
//! "offline"), then the agent starts against a real Mosquitto and a verifying subscriber.
//! Reports the rate at which the outbox empties (every reading PUBACKed and removed) and the
//! rate at which the subscriber holds them all, verified.
//!
//! `cargo build --release -p metcon-scale-sim -p metcon-edge && cargo bench -p metcon-edge --bench drain`
//! (`METCON_BENCH_N`, default 20000).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use metcon_edge::keystore;
use metcon_edge::outbox::{Limits, Outbox};
use metcon_shared::mass::MassUnit;
use metcon_shared::reading::{self, Measurement, Reading, FORMAT_VERSION};
use metcon_shared::topic::DeviceId;
use rust_decimal::Decimal;
use support::{wait_for, Agent, Broker, Subscriber};

fn main() {
    let n: u64 = std::env::var("METCON_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let broker = Broker::start();
    // a scale that is not there: the agent only drains
    let mut agent = Agent::new(
        broker.port,
        "protocol = \"mt-sics\"\nport = \"/dev/metcon-bench-no-scale\"",
        "[outbox]\nmax_entries = 1000000\n",
    );
    let key = keystore::load_or_create(&agent.data_dir().join("keys")).expect("key");
    let mut outbox = Outbox::open(
        &agent.data_dir().join("outbox"),
        Limits {
            max_entries: u64::MAX,
            max_bytes: u64::MAX,
        },
    )
    .expect("outbox");
    let t = Instant::now();
    for seq in 1..=n {
        let r = Reading {
            v: FORMAT_VERSION,
            device: DeviceId::parse("scale-01").expect("id"),
            seq,
            measurement: Measurement::Weight {
                net: Decimal::new(14830, 2),
                gross: None,
                tare: None,
                unit: MassUnit::G,
                stable: true,
            },
            scale_serial: None,
            raw_line: "S S     148.30 g".into(),
            device_time: time::OffsetDateTime::now_utc(),
            frame_sha256: None,
            capture_request: None,
        };
        let s = reading::sign(&r, key.signing()).expect("sign");
        outbox.append(seq, s.as_bytes(), None).expect("append");
    }
    println!(
        "backlog of {n} readings written in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    drop(outbox);

    let sub = Subscriber::start(broker.port);
    sub.set_key(key.verifying());
    let t = Instant::now();
    agent.start();
    wait_for(Duration::from_secs(600), "the outbox to drain", || {
        (agent.outbox_depth() == 0).then_some(())
    });
    let drained = t.elapsed();
    wait_for(
        Duration::from_secs(600),
        "the subscriber to have everything",
        || sub.with(|s| s.decoded.contains_key(&n)).then_some(()),
    );
    let received = t.elapsed();
    let last = sub.assert_in_order();
    assert_eq!(last, n);
    println!(
        "outbox drained (PUBACK + unlink for every reading) in {:.2} s: {:.0} readings/s",
        drained.as_secs_f64(),
        n as f64 / drained.as_secs_f64()
    );
    println!(
        "subscriber verified all {n} in order after {:.2} s: {:.0} readings/s",
        received.as_secs_f64(),
        n as f64 / received.as_secs_f64()
    );
}
