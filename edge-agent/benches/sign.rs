//! Signing cost per reading, verification cost, and the durable outbox append (two fsyncs
//! and a rename) on this machine's disk. `cargo bench -p metcon-edge --bench sign`.

use std::time::Instant;

use ed25519_dalek::SigningKey;
use metcon_edge::outbox::{Limits, Outbox};
use metcon_shared::mass::MassUnit;
use metcon_shared::reading::{self, FrameDigest, Measurement, Reading, FORMAT_VERSION};
use metcon_shared::topic::DeviceId;
use rust_decimal::Decimal;

fn reading(seq: u64) -> Reading {
    Reading {
        v: FORMAT_VERSION,
        device: DeviceId::parse("scale-01").expect("valid id"),
        seq,
        measurement: Measurement::Weight {
            net: Decimal::new(14830 + seq as i64 % 100, 2),
            gross: None,
            tare: None,
            unit: MassUnit::G,
            stable: true,
        },
        scale_serial: Some("B123456789".into()),
        raw_line: "S S     148.30 g".into(),
        device_time: time::OffsetDateTime::now_utc(),
        frame_sha256: Some(FrameDigest([7; 32])),
        capture_request: None,
    }
}

fn main() {
    let n: u64 = std::env::var("METCON_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let key = SigningKey::from_bytes(&[42; 32]);
    let readings: Vec<Reading> = (1..=n).map(reading).collect();

    let t = Instant::now();
    let signed: Vec<_> = readings
        .iter()
        .map(|r| reading::sign(r, &key).expect("sign"))
        .collect();
    let sign = t.elapsed();

    let vk = key.verifying_key();
    let t = Instant::now();
    for s in &signed {
        reading::verify(s.as_bytes(), &vk).expect("verify");
    }
    let verify = t.elapsed();

    let appends = n.min(2_000);
    let dir =
        tempfile::tempdir_in(std::env::var("METCON_BENCH_DIR").unwrap_or_else(|_| ".".into()))
            .expect("tempdir");
    let mut outbox = Outbox::open(
        dir.path(),
        Limits {
            max_entries: u64::MAX,
            max_bytes: u64::MAX,
        },
    )
    .expect("outbox");
    let t = Instant::now();
    for (i, s) in signed.iter().take(appends as usize).enumerate() {
        outbox
            .append(i as u64 + 1, s.as_bytes(), None)
            .expect("append");
    }
    let append = t.elapsed();

    let size = signed.first().map_or(0, |s| s.as_bytes().len());
    println!("signed reading: {size} bytes (COSE_Sign1, CBOR payload, Ed25519)");
    println!(
        "sign (CBOR encode + Ed25519): {:.1} µs/reading over {n}",
        sign.as_secs_f64() * 1e6 / n as f64
    );
    println!(
        "verify (decode + Ed25519 verify_strict): {:.1} µs/reading over {n}",
        verify.as_secs_f64() * 1e6 / n as f64
    );
    println!(
        "durable outbox append (write, fsync, rename, dir fsync): {:.0} µs/reading over {appends} ({:.0}/s)",
        append.as_secs_f64() * 1e6 / appends as f64,
        appends as f64 / append.as_secs_f64()
    );
}
