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

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use ed25519_dalek::SigningKey;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use metcon_e2e::api::{Api, Tokens};
use metcon_e2e::edge::Edge;
use metcon_e2e::mosquitto::Mosquitto;
use metcon_e2e::scale_sim::Sim;
use metcon_e2e::{sibling_binary, Server};
use metcon_shared::device::EnrollResponse;
use metcon_shared::mass::MassUnit;
use metcon_shared::reading::{sign, Measurement, Reading, FORMAT_VERSION};
use metcon_shared::topic::DeviceId;
use reqwest::Method;
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS, TlsConfiguration, Transport};
use serde_json::{json, Value};
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum BrokerKind {
    Embedded,
    Mosquitto,
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

struct Setup {
    _dir: tempfile::TempDir,
    server: Server,
    api: Api,
    t: Tokens,
    broker: (String, u16, Option<std::path::PathBuf>),
    _mosquitto: Option<Mosquitto>,
}

async fn setup(kind: BrokerKind) -> Result<Setup> {
    let dir = tempfile::tempdir()?;
    let mosquitto = matches!(kind, BrokerKind::Mosquitto).then(Mosquitto::start);
    let env: Vec<(String, String)> = match &mosquitto {
        Some(m) => m.cloud_env(),
        None => vec![],
    };
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::start(&sibling_binary("metcon-cloud")?, dir.path(), &env)?;
    let api = Api::new(&server.base);
    let t = api
        .bootstrap(server.setup_token.as_deref().context("setup token")?)
        .await;
    let broker = match &mosquitto {
        Some(m) => ("127.0.0.1".to_string(), m.port, Some(m.ca_file())),
        None => {
            let gate = server
                .broker
                .clone()
                .context("no embedded broker address")?;
            let (h, p) = gate.rsplit_once(':').context("broker address")?;
            (h.to_string(), p.parse()?, None)
        }
    };
    Ok(Setup {
        _dir: dir,
        server,
        api,
        t,
        broker,
        _mosquitto: mosquitto,
    })
}

struct Device {
    id: String,
    key: SigningKey,
    creds: EnrollResponse,
}

async fn enroll_many(s: &Setup, n: usize) -> Vec<Device> {
    let mut out = Vec::new();
    for i in 0..n {
        let id = format!("bench-{i:03}");
        let code = s
            .api
            .register_device(&s.t.admin, &id, "mt-sics", "/dev/null")
            .await;
        let key = SigningKey::from_bytes(&[(i % 250) as u8 + 1; 32]);
        let (st, v) = s
            .api
            .call(
                Method::POST,
                "/api/enroll",
                None,
                Some(json!({ "code": code, "public_key": hex::encode(key.verifying_key().to_bytes()), "agent_version": "bench" })),
            )
            .await;
        assert_eq!(st, 200, "{v}");
        out.push(Device {
            id,
            key,
            creds: serde_json::from_value(v).expect("enrollment answer"),
        });
    }
    out
}

fn signed(d: &Device, seq: u64) -> Vec<u8> {
    let r = Reading {
        v: FORMAT_VERSION,
        device: DeviceId::parse(&d.id).expect("id"),
        seq,
        measurement: Measurement::Weight {
            net: rust_decimal::Decimal::new(148_300 + (seq % 100) as i64, 3),
            gross: None,
            tare: None,
            unit: MassUnit::G,
            stable: true,
        },
        scale_serial: Some("B123456789".into()),
        raw_line: "S S    148.300 g".into(),
        device_time: OffsetDateTime::now_utc(),
        frame_sha256: None,
        capture_request: None,
    };
    sign(&r, &d.key).expect("sign").into_bytes()
}

fn options(s: &Setup, d: &Device) -> MqttOptions {
    let mut o = MqttOptions::new(
        format!("metcon-edge-{}", d.id),
        s.broker.0.clone(),
        s.broker.1,
    );
    o.set_credentials(d.creds.username.clone(), d.creds.password.clone());
    o.set_keep_alive(Duration::from_secs(30));
    o.set_inflight(200);
    if let Some(ca) = &s.broker.2 {
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
            ca: std::fs::read(ca).expect("ca"),
            alpn: None,
            client_auth: None,
        }));
    }
    o
}

async fn total_stored(s: &Setup) -> u64 {
    let v = s
        .api
        .must(Method::GET, "/api/devices", &s.t.admin, None, 200)
        .await;
    v.as_array()
        .map(|a| a.iter().filter_map(|d| d["readings"].as_u64()).sum())
        .unwrap_or(0)
}

/// Publishes `payloads` in order with QoS 1, at most `window` unacknowledged, pacing each
/// publish at `at(i)` if given; records publish instants.
async fn run_device(
    o: MqttOptions,
    topic: String,
    payloads: Vec<Vec<u8>>,
    start: Instant,
    interval: Option<Duration>,
    sent: Arc<Mutex<HashMap<(String, u64), Instant>>>,
    device: String,
) {
    let (client, mut events) = AsyncClient::new(o, 256);
    let acked = Arc::new(AtomicU64::new(0));
    let acks = acked.clone();
    let pump = tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Incoming::PubAck(_))) => {
                    acks.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Event::Incoming(Incoming::Disconnect)) | Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                _ => {}
            }
        }
    });
    let n = payloads.len() as u64;
    for (i, p) in payloads.into_iter().enumerate() {
        if let Some(every) = interval {
            let due = start + every * i as u32;
            tokio::time::sleep_until(due.into()).await;
            sent.lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert((device.clone(), i as u64 + 1), Instant::now());
        }
        if client
            .publish(&topic, QoS::AtLeastOnce, false, p)
            .await
            .is_err()
        {
            break;
        }
    }
    // `publish` only queues: keep the connection until the broker has acknowledged every
    // reading (as an edge agent keeps its outbox), within a generous bound.
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.load(Ordering::Relaxed) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    pump.abort();
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
    let s = setup(args.broker).await?;
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
