//! Simulated device fleets for ingest tests and benchmarks: a server with the embedded broker
//! or Mosquitto, devices enrolled through the real enrollment API (each with its own Ed25519
//! key and broker login), pre-signed COSE_Sign1 readings, and publishers that keep their
//! connection until every QoS 1 publish is acknowledged (as an edge agent keeps its outbox).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ed25519_dalek::SigningKey;
use metcon_shared::device::EnrollResponse;
use metcon_shared::mass::MassUnit;
use metcon_shared::reading::{sign, Measurement, Reading, FORMAT_VERSION};
use metcon_shared::topic::DeviceId;
use reqwest::Method;
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS, TlsConfiguration, Transport};
use serde_json::json;
use time::OffsetDateTime;

use crate::api::{Api, Tokens};
use crate::mosquitto::Mosquitto;
use crate::{sibling_binary, Server};

/// Which broker the devices publish to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    Embedded,
    Mosquitto,
}

pub struct Setup {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    pub server: Server,
    pub api: Api,
    pub t: Tokens,
    /// Host, port and (Mosquitto) the CA file of the broker devices connect to.
    pub broker: (String, u16, Option<std::path::PathBuf>),
    _mosquitto: Option<Mosquitto>,
}

impl std::fmt::Debug for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup")
            .field("base", &self.server.base)
            .field("broker", &self.broker)
            .finish_non_exhaustive()
    }
}

/// Starts `metcon-cloud` (and Mosquitto if asked) in a temporary folder and bootstraps one
/// user per role.
pub async fn setup(kind: BrokerKind) -> Result<Setup> {
    let dir = tempfile::tempdir()?;
    let mosquitto = matches!(kind, BrokerKind::Mosquitto).then(Mosquitto::start);
    let env: Vec<(String, String)> = match &mosquitto {
        Some(m) => m.cloud_env(),
        None => vec![],
    };
    let server = start_server(dir.path(), &env)?;
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
        dir,
        env,
        server,
        api,
        t,
        broker,
        _mosquitto: mosquitto,
    })
}

fn start_server(dir: &std::path::Path, env: &[(String, String)]) -> Result<Server> {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Server::start(&sibling_binary("metcon-cloud")?, dir, &env)
}

impl Setup {
    /// Kills `metcon-cloud` without warning (SIGKILL: no shutdown, nothing flushed) and
    /// starts it again on the same data folder, then logs every user in again. The broker's
    /// port changes: devices connected before are gone.
    pub async fn crash_and_restart(&mut self) -> Result<()> {
        self.server.kill();
        self.server = start_server(self.dir.path(), &self.env)?;
        self.api = Api::new(&self.server.base);
        self.t = Tokens {
            admin: self.api.login("admin").await,
            supervisor: self.api.login("supervisor").await,
            operator: self.api.login("operator").await,
            analyst: self.api.login("analyst").await,
        };
        Ok(())
    }
}

/// An enrolled simulated device.
#[derive(Debug)]
pub struct Device {
    pub id: String,
    pub key: SigningKey,
    pub creds: EnrollResponse,
}

/// Registers and enrolls `n` devices (`bench-000`, …) through the real API.
pub async fn enroll_many(s: &Setup, n: usize) -> Vec<Device> {
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

/// Reading `seq` of device `d`, signed with its key.
pub fn signed(d: &Device, seq: u64) -> Vec<u8> {
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

/// The device's MQTT options (its login, and TLS for Mosquitto).
pub fn options(s: &Setup, d: &Device) -> MqttOptions {
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

/// Readings stored, over all devices (from the fleet API).
pub async fn total_stored(s: &Setup) -> u64 {
    let v = s
        .api
        .must(Method::GET, "/api/devices", &s.t.admin, None, 200)
        .await;
    v.as_array()
        .map(|a| a.iter().filter_map(|d| d["readings"].as_u64()).sum())
        .unwrap_or(0)
}

/// Publishes `payloads` in order with QoS 1, pacing them `interval` apart if given (then
/// recording each publish instant in `sent`), and returns once the broker has acknowledged
/// every one (or after 120 s). Each acknowledgement is also counted in `acked_total`, if
/// given, the moment it arrives.
#[allow(clippy::too_many_arguments)]
pub async fn run_device(
    o: MqttOptions,
    topic: String,
    payloads: Vec<Vec<u8>>,
    start: Instant,
    interval: Option<Duration>,
    sent: Arc<Mutex<HashMap<(String, u64), Instant>>>,
    device: String,
    acked_total: Option<Arc<AtomicU64>>,
) {
    let (client, mut events) = AsyncClient::new(o, 256);
    let acked = Arc::new(AtomicU64::new(0));
    let acks = acked.clone();
    let pump = tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Incoming::PubAck(_))) => {
                    acks.fetch_add(1, Ordering::Relaxed);
                    if let Some(t) = &acked_total {
                        t.fetch_add(1, Ordering::Relaxed);
                    }
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
