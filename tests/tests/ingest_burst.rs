//! A burst larger than the gate's in-flight limit (8,192 readings, `broker/backlog.rs`) from
//! many devices at once through the embedded broker: every acknowledged reading is stored,
//! once. This is the loss rumqttd's bounded log caused before the gate applied back-pressure
//! (devices had their PUBACKs and had dropped the readings from their outboxes).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use metcon_e2e::fleet::{
    enroll_many, options, run_device, setup, signed, total_stored, BrokerKind, Device,
};
use reqwest::Method;
use rumqttc::MqttOptions;

/// Publishes readings 1..=n of `d` as fast as the connection allows; the task ends once all
/// are acknowledged (each acknowledgement also counted in `acked`, if given).
fn publish_all(
    o: MqttOptions,
    d: &Device,
    n: u64,
    acked: Option<Arc<AtomicU64>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run_device(
        o,
        format!("metcon/v1/dev/{}/reading", d.id),
        (1..=n).map(|q| signed(d, q)).collect(),
        Instant::now(),
        None,
        Arc::new(Mutex::new(HashMap::new())),
        String::new(),
        acked,
    ))
}

const DEVICES: usize = 20;
const PER_DEVICE: u64 = 5_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_beyond_the_in_flight_limit_loses_nothing() {
    let s = setup(BrokerKind::Embedded).await.expect("server");
    let devs = enroll_many(&s, DEVICES).await;
    let mut publishers = Vec::new();
    for d in &devs {
        // 20 × 1,000 unacknowledged publishes at once: well past the gate's 8,192.
        let mut o = options(&s, d);
        o.set_inflight(1000);
        publishers.push(publish_all(o, d, PER_DEVICE, None));
    }
    // Every publisher returns once the broker has acknowledged all its readings.
    for p in publishers {
        p.await.expect("publisher");
    }
    let total = DEVICES as u64 * PER_DEVICE;
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut stored = 0;
    while Instant::now() < deadline {
        stored = total_stored(&s).await;
        if stored >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(stored, total, "every acknowledged reading is stored");
    // Per device: all of its sequence numbers, none twice, nothing rejected.
    let fleet = s
        .api
        .must(Method::GET, "/api/devices", &s.t.admin, None, 200)
        .await;
    let fleet = fleet.as_array().expect("device list");
    assert_eq!(fleet.len(), DEVICES);
    for d in fleet {
        assert_eq!(d["readings"].as_u64(), Some(PER_DEVICE), "{d}");
    }
    let health = s
        .api
        .must(
            Method::GET,
            "/api/reports/device-health",
            &s.t.admin,
            None,
            200,
        )
        .await;
    assert_eq!(health["summary"]["rejected"], 0, "{}", health["summary"]);
    // The burst did go past the limit: the gate held devices back. (It may also have given
    // up waiting now and then on a slow machine, `metcon_broker_backlog_timeouts_total`;
    // the count above is what must hold either way.)
    let metrics = reqwest::get(format!("{}/metrics", s.server.base))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().last()?.parse().ok())
            .unwrap_or(0.0)
    };
    assert!(
        value("metcon_broker_backlog_waits_total") > 0.0,
        "the gate never had to wait:\n{metrics}"
    );
}

/// The embedded broker's log is memory, so a device's PUBACK must mean "stored": a crash
/// of `metcon-cloud` the moment the last acknowledgement reaches the devices loses none of
/// the readings they were told are delivered (and so deleted from their outboxes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_right_after_the_acknowledgements_loses_no_acknowledged_reading() {
    const DEVICES: usize = 10;
    const PER_DEVICE: u64 = 2_000;
    let mut s = setup(BrokerKind::Embedded).await.expect("server");
    let devs = enroll_many(&s, DEVICES).await;
    let acked = Arc::new(AtomicU64::new(0));
    let publishers: Vec<_> = devs
        .iter()
        .map(|d| publish_all(options(&s, d), d, PER_DEVICE, Some(acked.clone())))
        .collect();
    let total = DEVICES as u64 * PER_DEVICE;
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.load(Ordering::Relaxed) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(
        acked.load(Ordering::Relaxed),
        total,
        "every reading acknowledged"
    );
    s.crash_and_restart().await.expect("restart");
    for p in publishers {
        p.abort();
    }
    let stored = total_stored(&s).await;
    assert_eq!(
        stored, total,
        "readings acknowledged to the devices but not stored"
    );
}
