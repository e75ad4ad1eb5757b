//! Ingest benchmarks against a real `metcon-cloud` (release build) and a real broker.
//!
//! - `throughput`: N enrolled devices (real enrollment, own Ed25519 keys, own broker logins)
//!   publish pre-signed readings as fast as QoS 1 allows; the figure is readings durably
//!   stored per second, counted through the fleet API.
//! - `latency`: the same devices publish at a fixed total rate; each reading's time from
//!   publish to the `reading` event on the station's Server-Sent Events stream (which the cloud
//!   sends after the commit) gives the reading-to-stored latency, end to end.
//! - `kiosk`: the scale simulator on a pty and an enrolled `metcon-edge`; the time from the
//!   simulated scale becoming stable to the stable `weight` event on the kiosk's stream.
//!
//! `--broker mosquitto` runs the same through Mosquitto started with the shipped
//! `deploy/mosquitto/mosquitto.conf` (TLS, dynamic-security ACLs).
//!
//! ```sh
//! cargo build --release --workspace --bins
//! target/release/ingest_bench throughput --devices 100 --per-device 3000
//! target/release/ingest_bench latency --devices 100 --rate 5000 --seconds 20
//! target/release/ingest_bench kiosk --trials 100
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use metcon_e2e::edge::Edge;
use metcon_e2e::fleet::{enroll_many, options, run_device, setup, signed, total_stored, Setup};
use metcon_e2e::scale_sim::Sim;
use rumqttc::MqttOptions;
use serde_json::Value;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum BrokerKind {
    Embedded,
    Mosquitto,
}

impl From<BrokerKind> for metcon_e2e::fleet::BrokerKind {
    fn from(k: BrokerKind) -> Self {
        match k {
            BrokerKind::Embedded => metcon_e2e::fleet::BrokerKind::Embedded,
            BrokerKind::Mosquitto => metcon_e2e::fleet::BrokerKind::Mosquitto,
        }
    }
}

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, value_enum, default_value_t = BrokerKind::Embedded)]
    broker: BrokerKind,
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
    Throughput {
        #[arg(long, default_value_t = 100)]
        devices: usize,
        #[arg(long, default_value_t = 3000)]
        per_device: u64,
    },
    Latency {
        #[arg(long, default_value_t = 100)]
        devices: usize,
        /// Readings per second, all devices together.
        #[arg(long, default_value_t = 5000)]
        rate: u64,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
    Kiosk {
        #[arg(long, default_value_t = 100)]
        trials: usize,
    },
}

async fn throughput(s: Setup, devices: usize, per_device: u64) -> Result<()> {
    let devs = enroll_many(&s, devices).await;
    eprintln!("signing {} readings…", devices as u64 * per_device);
    let work: Vec<(MqttOptions, String, Vec<Vec<u8>>)> = devs
        .iter()
        .map(|d| {
            (
                options(&s, d),
                format!("metcon/v1/dev/{}/reading", d.id),
                (1..=per_device).map(|q| signed(d, q)).collect(),
            )
        })
        .collect();
    let total = devices as u64 * per_device;
    let sent = Arc::new(Mutex::new(HashMap::new()));
    let start = Instant::now();
    for (o, topic, payloads) in work {
        tokio::spawn(run_device(
            o,
            topic,
            payloads,
            start,
            None,
            sent.clone(),
            String::new(),
            None,
        ));
    }
    let mut last = (Instant::now(), 0u64);
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let n = total_stored(&s).await;
        if n != last.1 {
            last = (Instant::now(), n);
        }
        if n >= total || last.0.elapsed() > Duration::from_secs(20) {
            break;
        }
    }
    let secs = last.0.duration_since(start).as_secs_f64();
    println!(
        "throughput: {} of {total} readings from {devices} devices stored in {secs:.2} s = {:.0} readings/s",
        last.1,
        last.1 as f64 / secs
    );
    drop(s.server);
    Ok(())
}

async fn latency(s: Setup, devices: usize, rate: u64, seconds: u64) -> Result<()> {
    let devs = enroll_many(&s, devices).await;
    let per_device = rate * seconds / devices as u64;
    let interval = Duration::from_secs_f64(devices as f64 / rate as f64);
    let sent: Arc<Mutex<HashMap<(String, u64), Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let seen = Arc::new(AtomicU64::new(0));
    // the kiosk stream of the devices' station
    let res = reqwest::Client::new()
        .get(format!("{}/api/stations/receiving/events", s.server.base))
        .bearer_auth(&s.t.operator)
        .send()
        .await?;
    let (sent2, hist2, seen2) = (sent.clone(), hist.clone(), seen.clone());
    tokio::spawn(async move {
        let mut body = res.bytes_stream();
        let mut buf = String::new();
        while let Some(Ok(chunk)) = body.next().await {
            let now = Instant::now();
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let frame: String = buf.drain(..end + 2).collect();
                let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) else {
                    continue;
                };
                let Ok(e) = serde_json::from_str::<Value>(data) else {
                    continue;
                };
                if e["event"] != "reading" {
                    continue;
                }
                let key = (
                    e["device_id"].as_str().unwrap_or_default().to_string(),
                    e["seq"].as_u64().unwrap_or_default(),
                );
                let at = sent2.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
                if let Some(at) = at {
                    let us = now.duration_since(at).as_micros() as u64;
                    let _ = hist2
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .record(us.max(1));
                    seen2.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });
    let work: Vec<_> = devs
        .iter()
        .map(|d| {
            (
                options(&s, d),
                format!("metcon/v1/dev/{}/reading", d.id),
                (1..=per_device).map(|q| signed(d, q)).collect::<Vec<_>>(),
                d.id.clone(),
            )
        })
        .collect();
    let start = Instant::now() + Duration::from_secs(1);
    let mut tasks = Vec::new();
    for (i, (o, topic, payloads, id)) in work.into_iter().enumerate() {
        // spread the devices over one interval
        let offset = interval.mul_f64(i as f64 / devices as f64);
        tasks.push(tokio::spawn(run_device(
            o,
            topic,
            payloads,
            start + offset,
            Some(interval),
            sent.clone(),
            id,
            None,
        )));
    }
    for t in tasks {
        let _ = t.await;
    }
    let h = hist.lock().unwrap_or_else(|p| p.into_inner()).clone();
    println!(
        "latency at {rate}/s over {seconds} s from {devices} devices: {} readings; publish → stored (SSE) p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        seen.load(Ordering::Relaxed),
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.9) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0,
    );
    let metrics = reqwest::get(format!("{}/metrics", s.server.base))
        .await?
        .text()
        .await?;
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("metcon_ingest_store_seconds{"))
    {
        println!("  server side: {line}");
    }
    Ok(())
}

async fn kiosk(s: Setup, trials: usize) -> Result<()> {
    let mut sim = Sim::start("mt-sics", &["--capacity", "5000"]);
    let code = s
        .api
        .register_device(&s.t.admin, "kiosk-scale", "mt-sics", &sim.pty)
        .await;
    let mut edge = Edge::enroll(&s.server.base, &code);
    edge.amend(
        "unit = \"g\"",
        "unit = \"g\"\npoll_ms = 50\nstable_count = 3",
    );
    edge.amend("[mqtt]", "[mqtt]\nlive_rate_hz = 10");
    edge.start();
    let res = reqwest::Client::new()
        .get(format!("{}/api/stations/receiving/events", s.server.base))
        .bearer_auth(&s.t.operator)
        .send()
        .await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Value)>();
    tokio::spawn(async move {
        let mut body = res.bytes_stream();
        let mut buf = String::new();
        while let Some(Ok(chunk)) = body.next().await {
            let now = Instant::now();
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let frame: String = buf.drain(..end + 2).collect();
                if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) {
                    if let Ok(v) = serde_json::from_str::<Value>(data) {
                        let _ = tx.send((now, v));
                    }
                }
            }
        }
    });
    let mut hist = Histogram::<u64>::new(3)?;
    for i in 0..trials {
        let load = format!("{}.{:02}", 200 + (i % 7) * 50, i % 100);
        sim.cmd(&format!("set {load}"));
        // the instant the simulated scale reports stable
        let settled = loop {
            if sim.cmd("status").contains("stable=true") {
                break Instant::now();
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let next = tokio::time::timeout_at(deadline, rx.recv()).await;
            let Ok(Some((at, v))) = next else {
                eprintln!("trial {i}: no stable {load} within 5 s\n{}", edge.logs());
                break;
            };
            if v["event"] == "weight" && v["stable"] == true && v["net"] == load.as_str() {
                let ms = at.saturating_duration_since(settled).as_micros() as u64;
                hist.record(ms.max(1))?;
                break;
            }
        }
    }
    println!(
        "kiosk: {} trials; scale stable → stable weight on the kiosk stream p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        hist.len(),
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.9) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        hist.max() as f64 / 1000.0
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let s = setup(args.broker.into()).await?;
    match args.what {
        What::Throughput {
            devices,
            per_device,
        } => throughput(s, devices, per_device).await,
        What::Latency {
            devices,
            rate,
            seconds,
        } => latency(s, devices, rate, seconds).await,
        What::Kiosk { trials } => kiosk(s, trials).await,
    }
}
