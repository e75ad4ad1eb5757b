//! The device health report against a brute-force computation over the raw inputs: a seeded
//! fleet (devices at several stations, one revoked), readings (some bound), rejected messages
//! (some from no registered device) and the status messages the devices sent, written
//! through the store; then every filter's report, its pages and its export compared with
//! counts made directly from those inputs (offline time by sampling every minute of the
//! window). Runs on SQLite, on MongoDB when one is available, and through the real server's
//! HTTP API and CSV export.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;

use metcon_cloud::reports::compute::report;
use metcon_cloud::reports::{rows, ReportFilter, ReportName, Window};
use metcon_cloud::store::devices::*;
use metcon_cloud::store::snapshot::ReadingDump;
use metcon_cloud::store::sqlite::SqliteStore;
use metcon_cloud::store::Store;
use metcon_shared::device::{CameraSettings, ScaleSettings};
use metcon_shared::mass::MassUnit;
use metcon_shared::reading::{Measurement, Reading, FORMAT_VERSION};
use metcon_shared::topic::{DeviceConfig, DeviceId, DeviceStatus, Presence as Online};
use reqwest::StatusCode;
use serde_json::Value;
use time::macros::{date, datetime};
use time::{Duration, OffsetDateTime};

const T0: OffsetDateTime = datetime!(2026-05-04 00:00 UTC);
const DAYS: i64 = 6;
const NOW: OffsetDateTime = datetime!(2026-05-10 12:00 UTC);

/// xorshift64*: a fixed seed gives the same fleet every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// A whole minute in the data period.
    fn minute(&mut self) -> OffsetDateTime {
        T0 + Duration::minutes(self.below((DAYS * 24 * 60) as u64) as i64)
    }
}

/// What was sent, kept for the brute force.
struct Raw {
    devices: Vec<Device>,
    /// (device, received_at, bound)
    readings: Vec<(String, OffsetDateTime, bool)>,
    /// (device named in the topic, at, reason)
    rejections: Vec<(Option<String>, OffsetDateTime, String)>,
    /// Every status message, (device, at, online), in time order.
    statuses: Vec<(String, OffsetDateTime, bool)>,
}

fn device(id: &str, station: &str, created: OffsetDateTime, state: DeviceState) -> Device {
    let scale: ScaleSettings =
        serde_json::from_value(serde_json::json!({ "protocol": "sbi", "port": "/dev/ttyUSB0" }))
            .unwrap();
    Device {
        id: DeviceId::parse(id).unwrap(),
        name: format!("Scale {id}"),
        site: "plant-1".into(),
        station_id: station.into(),
        scale,
        camera: CameraSettings::None,
        camera_region: None,
        config: DeviceConfig::default(),
        state,
        broker_secret_hash: None,
        hostname: None,
        agent_version: None,
        created_at: created,
        created_by: "admin".into(),
        enrolled_at: None,
        revoked_at: None,
        revoked_reason: None,
        updated_at: created,
    }
}

async fn seed(s: &dyn Store) -> Raw {
    let mut rng = Rng(0x5eed_0fde_71ce);
    let stations = ["receiving", "refining", "assay", "casting"];
    let mut devices = Vec::new();
    for i in 0..9 {
        // Most devices exist from the start; two come later in the period.
        let created = if i < 7 {
            T0 - Duration::days(3)
        } else {
            T0 + Duration::days(2) + Duration::minutes(37 * i)
        };
        let state = if i == 4 {
            DeviceState::Revoked
        } else {
            DeviceState::Active
        };
        let d = device(
            &format!("scale-{i}"),
            stations[i as usize % stations.len()],
            created,
            state,
        );
        s.create_device(&d, &[]).await.unwrap();
        devices.push(d);
    }
    // Readings: a varying number per device, every seventh bound.
    let mut readings = Vec::new();
    let mut dumps = Vec::new();
    for (i, d) in devices.iter().enumerate() {
        if i == 8 {
            continue; // one device that never delivered
        }
        let n = 20 + rng.below(60);
        let mut times: Vec<OffsetDateTime> =
            (0..n).map(|_| rng.minute().max(d.created_at)).collect();
        times.sort();
        for (k, at) in times.into_iter().enumerate() {
            let seq = k as u64 + 1;
            let bound = seq.is_multiple_of(7);
            let reading = Reading {
                v: FORMAT_VERSION,
                device: d.id.clone(),
                seq,
                measurement: Measurement::Weight {
                    net: rust_decimal::Decimal::new(1_483 + seq as i64, 1),
                    gross: None,
                    tare: None,
                    unit: MassUnit::G,
                    stable: true,
                },
                scale_serial: None,
                raw_line: "+     148.3 g  ".into(),
                device_time: at,
                frame_sha256: None,
                capture_request: None,
            };
            dumps.push(ReadingDump {
                reading,
                envelope: format!("envelope {} {seq}", d.id).into_bytes(),
                received_at: at,
                binding: bound.then(|| ReadingBinding {
                    batch_id: uuid::Uuid::from_u128(seq as u128),
                    step_id: "receiving-weigh".into(),
                    event_seq: 3,
                    kind: BindingKind::Armed,
                    by: "op".into(),
                    at,
                }),
            });
            readings.push((d.id.to_string(), at, bound));
        }
    }
    s.load_readings(&dumps).await.unwrap();
    // Rejections: reasons spread over devices, unknown devices and malformed topics.
    let reasons = [
        "bad_signature",
        "replay",
        "unknown_device",
        "malformed",
        "revoked",
    ];
    let mut rejections = Vec::new();
    let mut batch = Vec::new();
    for _ in 0..150 {
        let at = rng.minute();
        let reason = reasons[rng.below(reasons.len() as u64) as usize].to_string();
        let who = match rng.below(11) {
            9 => None,
            10 => Some("ghost-box".to_string()),
            n => Some(format!("scale-{}", n % 9)),
        };
        batch.push(Rejection {
            at,
            device_id: who.clone(),
            topic: "metcon/v1/dev/x/reading".into(),
            reason: reason.clone(),
            detail: "seeded".into(),
            size: 10,
            payload_sha256: "00".repeat(32),
            seq: None,
            quarantined: None,
        });
        rejections.push((who, at, reason));
    }
    s.record_rejections(&batch, &[]).await.unwrap();
    // Status messages: heartbeats with occasional outages (a will, then a status again).
    let mut statuses = Vec::new();
    for (i, d) in devices.iter().enumerate() {
        if i == 6 {
            continue; // a device that never reported its status
        }
        let mut at = d.created_at.max(T0 - Duration::days(1)) + Duration::minutes(i as i64);
        let mut online = true;
        while at < NOW + Duration::hours(3) {
            statuses.push((d.id.to_string(), at, online));
            // Repeated statuses in the same state are common (heartbeats).
            at += Duration::minutes(1 + rng.below(if online { 900 } else { 240 }) as i64);
            if rng.below(3) > 0 {
                online = !online;
            }
        }
    }
    statuses.sort_by_key(|s| s.1);
    for (id, at, online) in &statuses {
        s.record_presence(&Presence {
            device_id: id.clone(),
            status: DeviceStatus {
                presence: if *online {
                    Online::Online
                } else {
                    Online::Offline
                },
                outbox_depth: 0,
                outbox_full: false,
                last_seq: None,
                scale_connected: *online,
                agent_version: Some("0.1.0".into()),
                device_time: Some(*at),
                last_capture_request: None,
            },
            received_at: *at,
        })
        .await
        .unwrap();
    }
    Raw {
        devices,
        readings,
        rejections,
        statuses,
    }
}

/// The rows the report must show for `f`, keyed by device, as cells by column.
fn brute_force(raw: &Raw, f: &ReportFilter) -> (Vec<BTreeMap<&'static str, String>>, Value) {
    let start = f.from.map(|d| d.midnight().assume_utc());
    let end =
        f.to.map(|d| d.midnight().assume_utc() + Duration::days(1))
            .map_or(NOW, |e| e.min(NOW));
    let within = |t: OffsetDateTime| start.is_none_or(|s| t >= s) && t < end;
    let known: Vec<String> = raw.devices.iter().map(|d| d.id.to_string()).collect();
    let mut out = Vec::new();
    let (mut total_readings, mut total_unbound, mut total_rejected, mut total_off) = (0, 0, 0, 0);
    let mut online_now = 0;
    let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
    for d in &raw.devices {
        if f.station.as_deref().is_some_and(|s| s != d.station_id) {
            continue;
        }
        let id = d.id.to_string();
        let mine: Vec<_> = raw.readings.iter().filter(|r| r.0 == id).collect();
        let readings = mine.iter().filter(|r| within(r.1)).count();
        let unbound = mine.iter().filter(|r| within(r.1) && !r.2).count();
        let last_reading = mine.iter().map(|r| r.1).max();
        let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
        for (who, at, reason) in &raw.rejections {
            if who.as_deref() == Some(id.as_str()) && within(*at) {
                *reasons.entry(reason.clone()).or_default() += 1;
            }
        }
        let rejected: u64 = reasons.values().sum();
        for (k, v) in &reasons {
            *by_reason.entry(k.clone()).or_default() += v;
        }
        // Offline time: the state at each minute is that of the latest status message.
        let from = start.unwrap_or(d.created_at).max(d.created_at);
        let statuses: Vec<_> = raw.statuses.iter().filter(|s| s.0 == id).collect();
        let mut offline_min = 0;
        let mut m = from;
        while m < end {
            let state = statuses.iter().rev().find(|s| s.1 <= m).map(|s| s.2);
            if state == Some(false) {
                offline_min += 1;
            }
            m += Duration::minutes(1);
        }
        let offline_s = offline_min * 60;
        let window_s = (end - from).whole_seconds().max(0);
        let last = statuses.last();
        if last.is_some_and(|s| s.2) {
            online_now += 1;
        }
        let pct = (window_s > 0).then(|| {
            (rust_decimal::Decimal::from(offline_s * 100) / rust_decimal::Decimal::from(window_s))
                .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
                .to_string()
        });
        total_readings += readings;
        total_unbound += unbound;
        total_rejected += rejected;
        total_off += offline_s;
        let t = |v: Option<OffsetDateTime>| v.map(rows::rfc3339).unwrap_or_default();
        out.push(BTreeMap::from([
            ("device_id", id.clone()),
            ("station", d.station_id.clone()),
            ("state", d.state.as_str().to_string()),
            (
                "presence",
                match last.map(|s| s.2) {
                    Some(true) => "online",
                    Some(false) => "offline",
                    None => "unknown",
                }
                .to_string(),
            ),
            ("last_seen", t(last.map(|s| s.1))),
            ("readings", readings.to_string()),
            ("unbound", unbound.to_string()),
            ("last_reading_at", t(last_reading)),
            ("rejected", rejected.to_string()),
            (
                "rejected_by_reason",
                reasons
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            ("offline_s", offline_s.to_string()),
            ("offline_pct", pct.unwrap_or_default()),
        ]));
    }
    let mut unattributed = 0;
    for (who, at, reason) in &raw.rejections {
        let attributed = who.as_ref().is_some_and(|w| known.contains(w));
        if !attributed && within(*at) {
            unattributed += 1;
            *by_reason.entry(reason.clone()).or_default() += 1;
        }
    }
    let summary = serde_json::json!({
        "devices": out.len(),
        "online": online_now,
        "readings": total_readings,
        "unbound": total_unbound,
        "rejected": total_rejected + unattributed,
        "rejected_unattributed": unattributed,
        "offline_s": total_off,
        "by_reason": by_reason,
    });
    (out, summary)
}

fn filters() -> Vec<ReportFilter> {
    vec![
        ReportFilter::default(),
        ReportFilter {
            from: Some(date!(2026 - 05 - 05)),
            to: Some(date!(2026 - 05 - 07)),
            ..ReportFilter::default()
        },
        ReportFilter {
            from: Some(date!(2026 - 05 - 07)),
            ..ReportFilter::default()
        },
        ReportFilter {
            to: Some(date!(2026 - 05 - 04)),
            station: Some("refining".into()),
            ..ReportFilter::default()
        },
        ReportFilter {
            station: Some("receiving".into()),
            ..ReportFilter::default()
        },
    ]
}

fn check_document(doc: &Value, want_rows: &[BTreeMap<&'static str, String>], want: &Value) {
    let rows = doc["rows"].as_array().unwrap();
    assert_eq!(rows.len(), want_rows.len());
    for (got, want) in rows.iter().zip(want_rows) {
        for (k, v) in want {
            assert_eq!(got[*k].as_str().unwrap(), v, "{k} of {}", want["device_id"]);
        }
    }
    for k in [
        "devices",
        "online",
        "readings",
        "unbound",
        "rejected",
        "rejected_unattributed",
        "offline_s",
    ] {
        assert_eq!(doc["summary"][k], want[k], "summary {k}");
    }
    let reasons: BTreeMap<String, u64> = doc["breakdowns"]["by_reason"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["reason"].as_str().unwrap().to_string(),
                b["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(serde_json::to_value(reasons).unwrap(), want["by_reason"]);
}

async fn matches_brute_force(s: &dyn Store) {
    let raw = seed(s).await;
    // The seed must exercise what the report counts.
    assert!(raw.statuses.iter().filter(|x| !x.2).count() > 20);
    for f in filters() {
        let (want_rows, want) = brute_force(&raw, &f);
        let doc = report(s, ReportName::DeviceHealth, &f, NOW, 1)
            .await
            .unwrap();
        check_document(&doc, &want_rows, &want);
        assert_eq!(doc["total"], want_rows.len());
        // Export windows (keyset, two rows at a time) give the same rows in the same order.
        let mut cursor = None;
        let mut exported = Vec::new();
        loop {
            let (cells, next) = rows::page(
                s,
                ReportName::DeviceHealth,
                &f,
                NOW,
                Window::After { cursor, limit: 2 },
            )
            .await
            .unwrap();
            exported.extend(cells);
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let cols = rows::columns(ReportName::DeviceHealth);
        assert_eq!(exported.len(), want_rows.len());
        for (cells, want) in exported.iter().zip(&want_rows) {
            for (i, c) in cols.iter().enumerate() {
                if let Some(v) = want.get(c) {
                    assert_eq!(&cells[i], v, "export {c}");
                }
            }
        }
    }
    let offline: u64 = brute_force(&raw, &ReportFilter::default()).1["offline_s"]
        .as_u64()
        .unwrap();
    assert!(offline > 0, "the seed has outages");
}

#[tokio::test]
async fn sqlite_device_health_matches_a_brute_force_count() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("metcon.db")).unwrap();
    matches_brute_force(&s).await;
}

#[tokio::test]
async fn mongodb_device_health_matches_a_brute_force_count() {
    let Some(target) = metcon_e2e::mongo::MongoTarget::from_env("device_health").unwrap() else {
        eprintln!("no MongoDB (set METCON_TEST_MONGODB_URI or install secantusd-rs): skipped");
        return;
    };
    let opts = metcon_cloud::store::mongo::MongoOptions {
        standalone_transactions: target.standalone_transactions,
    };
    let s = metcon_cloud::store::mongo::MongoStore::open(&target.uri, &opts)
        .await
        .unwrap();
    matches_brute_force(&s).await;
    s.drop_database().await.unwrap();
}

/// The real server answers the same from the same database, to analysts only, and exports it.
#[tokio::test]
async fn the_api_serves_and_exports_device_health() {
    let w = support::World::with_env(&[("METCON_DATABASE", "metcon.db")]).await;
    let store = SqliteStore::open(&w.app.db_path()).unwrap();
    let raw = seed(&store).await;
    let (s, doc) = w
        .app
        .get(
            "/api/reports/device-health?from=2026-05-05&station=receiving",
            &w.analyst,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{doc}");
    assert_eq!(doc["filters"]["station"], "receiving");
    // The server's clock is now, after the seeded period: rows to compare are the readings
    // and rejections, which all lie before it.
    let f = ReportFilter {
        from: Some(date!(2026 - 05 - 05)),
        station: Some("receiving".into()),
        ..ReportFilter::default()
    };
    let (want_rows, _) = brute_force(&raw, &f);
    let rows = doc["rows"].as_array().unwrap();
    assert_eq!(rows.len(), want_rows.len());
    for (got, want) in rows.iter().zip(&want_rows) {
        for k in [
            "device_id",
            "readings",
            "unbound",
            "rejected",
            "rejected_by_reason",
        ] {
            assert_eq!(got[k].as_str().unwrap(), want[k], "{k}");
        }
    }
    let (s, _) = w.app.get("/api/reports/device-health", &w.operator).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = w
        .app
        .get("/api/reports/device-health?pipeline=gold", &w.analyst)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let res = w
        .app
        .call_full(
            reqwest::Method::GET,
            "/api/reports/device-health/csv?from=2026-05-05&station=receiving",
            Some(&w.analyst),
            None,
        )
        .await;
    assert_eq!(res.0, StatusCode::OK);
    assert!(res.2.starts_with("text/csv"), "{}", res.2);
    let text = res.1.as_str().unwrap().to_string();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, rows::columns(ReportName::DeviceHealth));
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(records.len(), want_rows.len());
    for (rec, want) in records.iter().zip(&want_rows) {
        assert_eq!(&rec[0], want["device_id"]);
        assert_eq!(&rec[6], want["readings"]);
    }
    let (s, _) = w
        .app
        .get("/api/reports/device-health/chart.svg", &w.analyst)
        .await;
    assert_eq!(s, StatusCode::OK);
}
