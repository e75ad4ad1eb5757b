//! [`DeviceStore`] on SQLite: devices and keys, enrollment codes, readings (append-only
//! evidence: triggers refuse deletes and edits, and a reading binds once), rejections with a
//! quarantine for late key rotations, arms, calibrations and presence.

use async_trait::async_trait;
use metcon_shared::batch::RecordedEvent;
use metcon_shared::calibration::CalibrationRecord;
use metcon_shared::reading::{Measurement, PublicKeyHex, Reading};
use rusqlite::{params, OptionalExtension, Transaction};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use super::devices::*;
use super::sqlite::{
    append_audit_tx, append_batch_tx, backend, corrupt, map_sql, parse_ts, ts, SqliteStore,
};
use super::{BatchRecord, NewAudit, StoreError, StoreResult};

/// The tables [`MIGRATION`] creates.
#[cfg(test)]
pub(super) const TABLES: &[&str] = &[
    "devices",
    "device_keys",
    "enrollment_codes",
    "readings",
    "reading_stats",
    "ingest_rejections",
    "arms",
    "calibrations",
    "device_presence",
    "presence_changes",
];

pub(super) const MIGRATION: &str = r#"
CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    station_id TEXT NOT NULL,
    state TEXT NOT NULL,
    doc TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX devices_station ON devices (station_id, state);

CREATE TABLE device_keys (
    device_id TEXT NOT NULL REFERENCES devices (id),
    from_seq INTEGER NOT NULL,
    public_key TEXT NOT NULL,
    registered_at TEXT NOT NULL,
    PRIMARY KEY (device_id, from_seq)
);

CREATE TABLE enrollment_codes (
    code_hash TEXT PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES devices (id),
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT
);
CREATE INDEX enrollment_codes_device ON enrollment_codes (device_id);

CREATE TABLE readings (
    device_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    received_at TEXT NOT NULL,
    envelope_sha256 TEXT NOT NULL,
    envelope BLOB NOT NULL,
    doc TEXT NOT NULL,
    stable INTEGER NOT NULL,
    bound_batch TEXT,
    binding TEXT,
    PRIMARY KEY (device_id, seq)
);
CREATE INDEX readings_unbound ON readings (device_id, seq) WHERE bound_batch IS NULL;
CREATE TRIGGER readings_append_only BEFORE DELETE ON readings
BEGIN SELECT RAISE(ABORT, 'readings are append-only evidence'); END;
CREATE TRIGGER readings_immutable BEFORE UPDATE OF device_id, seq, received_at, envelope_sha256, envelope, doc, stable ON readings
BEGIN SELECT RAISE(ABORT, 'readings are immutable evidence'); END;
CREATE TRIGGER readings_bind_once BEFORE UPDATE OF bound_batch, binding ON readings WHEN OLD.bound_batch IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'a reading is bound once'); END;

CREATE TABLE reading_stats (
    device_id TEXT PRIMARY KEY,
    readings INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    last_at TEXT NOT NULL
);

CREATE TABLE ingest_rejections (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    device_id TEXT,
    topic TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    size INTEGER NOT NULL,
    payload_sha256 TEXT NOT NULL,
    seq INTEGER,
    quarantined BLOB
);
CREATE INDEX ingest_rejections_at ON ingest_rejections (at);
CREATE INDEX ingest_rejections_quarantine ON ingest_rejections (device_id, seq) WHERE quarantined IS NOT NULL;

CREATE TABLE arms (
    device_id TEXT PRIMARY KEY,
    batch_id TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX arms_batch ON arms (batch_id);

CREATE TABLE calibrations (
    id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    performed_at TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX calibrations_device ON calibrations (device_id, performed_at);
CREATE TRIGGER calibrations_append_only BEFORE DELETE ON calibrations
BEGIN SELECT RAISE(ABORT, 'calibration records are append-only'); END;
CREATE TRIGGER calibrations_immutable BEFORE UPDATE ON calibrations
BEGIN SELECT RAISE(ABORT, 'calibration records are immutable'); END;

CREATE TABLE device_presence (
    device_id TEXT PRIMARY KEY,
    online INTEGER NOT NULL,
    received_at TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE TABLE presence_changes (
    id INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL,
    online INTEGER NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX presence_changes_at ON presence_changes (at);
"#;

/// Migration 4: readings by arrival time, for the device health report's windows.
pub(super) const MIGRATION_READINGS_RECEIVED: &str =
    "CREATE INDEX IF NOT EXISTS readings_received ON readings (received_at);";

/// Counts one new reading in `reading_stats` (?1 device, ?2 sequence, ?3 arrival).
const STATS_ADD_ONE: &str =
    "INSERT INTO reading_stats (device_id, readings, last_seq, last_at) VALUES (?1, 1, ?2, ?3)
     ON CONFLICT (device_id) DO UPDATE SET readings = readings + 1,
       last_seq = MAX(last_seq, excluded.last_seq), last_at = MAX(last_at, excluded.last_at)";
const INSERT_REJECTION: &str = "INSERT INTO ingest_rejections (at, device_id, topic, reason, detail, size, payload_sha256, seq, quarantined)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
const INSERT_KEY: &str =
    "INSERT INTO device_keys (device_id, from_seq, public_key, registered_at) VALUES (?1, ?2, ?3, ?4)";
const INSERT_CALIBRATION: &str =
    "INSERT INTO calibrations (id, device_id, performed_at, doc) VALUES (?1, ?2, ?3, ?4)";

/// One rejection row (the quarantined envelope passed apart: a dump carries it beside).
fn insert_rejection(
    st: &mut rusqlite::CachedStatement<'_>,
    r: &Rejection,
    quarantined: Option<&[u8]>,
) -> StoreResult<()> {
    st.execute(params![
        ts(r.at),
        r.device_id,
        r.topic,
        r.reason,
        r.detail,
        r.size as i64,
        r.payload_sha256,
        r.seq.map(|s| s as i64),
        quarantined
    ])
    .map_err(backend)?;
    Ok(())
}

fn json<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(backend)
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> StoreResult<T> {
    serde_json::from_str(s).map_err(corrupt)
}

fn upsert_device_tx(tx: &Transaction<'_>, d: &Device, insert: bool) -> StoreResult<()> {
    let doc = json(d)?;
    if insert {
        tx.execute(
            "INSERT INTO devices (id, station_id, state, doc, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![d.id.as_str(), d.station_id, d.state.as_str(), doc, ts(d.created_at), ts(d.updated_at)],
        )
        .map_err(|e| match map_sql(e) {
            StoreError::Duplicate(_) => StoreError::Duplicate(format!("device {}", d.id)),
            other => other,
        })?;
    } else {
        let n = tx
            .execute(
                "UPDATE devices SET station_id = ?2, state = ?3, doc = ?4, updated_at = ?5 WHERE id = ?1",
                params![d.id.as_str(), d.station_id, d.state.as_str(), doc, ts(d.updated_at)],
            )
            .map_err(backend)?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("device {}", d.id)));
        }
    }
    Ok(())
}

fn device_tx(c: &rusqlite::Connection, id: &str) -> StoreResult<Option<Device>> {
    c.query_row("SELECT doc FROM devices WHERE id = ?1", [id], |r| {
        r.get::<_, String>(0)
    })
    .optional()
    .map_err(backend)?
    .map(|d| from_json(&d))
    .transpose()
}

fn stored_reading(
    doc: String,
    sha: String,
    at: String,
    binding: Option<String>,
) -> StoreResult<StoredReading> {
    Ok(StoredReading {
        reading: from_json(&doc)?,
        envelope_sha256: sha,
        received_at: parse_ts(&at)?,
        binding: binding.map(|b| from_json(&b)).transpose()?,
    })
}

fn is_stable(r: &Reading) -> bool {
    matches!(r.measurement, Measurement::Weight { stable: true, .. })
}

#[async_trait]
impl DeviceStore for SqliteStore {
    async fn create_device(&self, device: &Device, audit: &[NewAudit]) -> StoreResult<()> {
        let (d, audit) = (device.clone(), audit.to_vec());
        self.write(move |tx| {
            upsert_device_tx(tx, &d, true)?;
            append_audit_tx(tx, &audit)?;
            Ok(())
        })
        .await
    }

    async fn update_device(
        &self,
        device: &Device,
        expected: OffsetDateTime,
        audit: &[NewAudit],
    ) -> StoreResult<()> {
        let (d, audit) = (device.clone(), audit.to_vec());
        self.write(move |tx| {
            let stored: Option<String> = tx
                .query_row(
                    "SELECT updated_at FROM devices WHERE id = ?1",
                    [d.id.as_str()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            match stored {
                None => return Err(StoreError::NotFound(format!("device {}", d.id))),
                Some(at) if at != ts(expected) => return Err(StoreError::Conflict),
                Some(_) => {}
            }
            upsert_device_tx(tx, &d, false)?;
            append_audit_tx(tx, &audit)?;
            Ok(())
        })
        .await
    }

    async fn device(&self, id: &str) -> StoreResult<Option<Device>> {
        let id = id.to_string();
        self.read(move |c| device_tx(c, &id)).await
    }

    async fn list_devices(&self) -> StoreResult<Vec<Device>> {
        self.read(|c| {
            let mut st = c
                .prepare("SELECT doc FROM devices ORDER BY id")
                .map_err(backend)?;
            let rows = st
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(backend)?;
            rows.map(|r| from_json(&r.map_err(backend)?)).collect()
        })
        .await
    }

    async fn device_keys(&self, id: &str) -> StoreResult<Vec<DeviceKeyRecord>> {
        let id = id.to_string();
        self.read(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT from_seq, public_key, registered_at FROM device_keys WHERE device_id = ?1 ORDER BY from_seq",
                )
                .map_err(backend)?;
            let rows = st
                .query_map([&id], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
                })
                .map_err(backend)?;
            rows.map(|r| {
                let (from, key, at) = r.map_err(backend)?;
                Ok(DeviceKeyRecord {
                    device_id: id.clone(),
                    public_key: PublicKeyHex::parse(&key).map_err(corrupt)?,
                    from_seq: from as u64,
                    registered_at: parse_ts(&at)?,
                })
            })
            .collect()
        })
        .await
    }

    async fn add_device_key(&self, key: &DeviceKeyRecord, audit: &[NewAudit]) -> StoreResult<()> {
        let (k, audit) = (key.clone(), audit.to_vec());
        self.write(move |tx| {
            let later: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM device_keys WHERE device_id = ?1 AND from_seq >= ?2",
                    params![k.device_id, k.from_seq as i64],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            if later > 0 {
                return Err(StoreError::Duplicate(format!(
                    "a key of device {} from sequence {}",
                    k.device_id, k.from_seq
                )));
            }
            tx.execute(
                INSERT_KEY,
                params![
                    k.device_id,
                    k.from_seq as i64,
                    k.public_key.to_string(),
                    ts(k.registered_at)
                ],
            )
            .map_err(map_sql)?;
            append_audit_tx(tx, &audit)?;
            Ok(())
        })
        .await
    }

    async fn create_enrollment_code(
        &self,
        code: &EnrollmentCode,
        audit: &[NewAudit],
    ) -> StoreResult<()> {
        let (c, audit) = (code.clone(), audit.to_vec());
        self.write(move |tx| {
            // An unused earlier code of the same device stops working.
            tx.execute(
                "DELETE FROM enrollment_codes WHERE device_id = ?1 AND used_at IS NULL",
                [&c.device_id],
            )
            .map_err(backend)?;
            tx.execute(
                "INSERT INTO enrollment_codes (code_hash, device_id, created_by, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![c.code_hash, c.device_id, c.created_by, ts(c.created_at), ts(c.expires_at)],
            )
            .map_err(map_sql)?;
            append_audit_tx(tx, &audit)?;
            Ok(())
        })
        .await
    }

    async fn consume_enrollment_code(
        &self,
        code_hash: &str,
        e: &Enrollment,
        audit_ok: &[NewAudit],
    ) -> StoreResult<Result<Device, EnrollRefusal>> {
        let (hash, e, audit) = (code_hash.to_string(), e.clone(), audit_ok.to_vec());
        self.write(move |tx| {
            let row: Option<(String, String, Option<String>)> = tx
                .query_row(
                    "SELECT device_id, expires_at, used_at FROM enrollment_codes WHERE code_hash = ?1",
                    [&hash],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(backend)?;
            let Some((device_id, expires, used)) = row else {
                return Ok(Err(EnrollRefusal::Unknown));
            };
            if used.is_some() {
                return Ok(Err(EnrollRefusal::Used));
            }
            if parse_ts(&expires)? <= e.at {
                return Ok(Err(EnrollRefusal::Expired));
            }
            let Some(mut device) = device_tx(tx, &device_id)? else {
                return Ok(Err(EnrollRefusal::Unknown));
            };
            if device.state != DeviceState::Pending {
                return Ok(Err(EnrollRefusal::DeviceNotPending));
            }
            tx.execute(
                "UPDATE enrollment_codes SET used_at = ?2 WHERE code_hash = ?1",
                params![hash, ts(e.at)],
            )
            .map_err(backend)?;
            device.state = DeviceState::Active;
            device.broker_secret_hash = Some(e.broker_secret_hash.clone());
            device.agent_version = Some(e.agent_version.clone());
            device.hostname = e.hostname.clone();
            device.enrolled_at = Some(e.at);
            device.updated_at = e.at;
            upsert_device_tx(tx, &device, false)?;
            tx.execute(
                "INSERT INTO device_keys (device_id, from_seq, public_key, registered_at) VALUES (?1, 0, ?2, ?3)",
                params![device_id, e.public_key.to_string(), ts(e.at)],
            )
            .map_err(map_sql)?;
            let audit: Vec<NewAudit> = audit
                .into_iter()
                .map(|mut a| {
                    a.target = format!("device:{device_id}");
                    a
                })
                .collect();
            append_audit_tx(tx, &audit)?;
            Ok(Ok(device))
        })
        .await
    }

    async fn insert_readings(&self, readings: &[NewReading]) -> StoreResult<Vec<InsertOutcome>> {
        if readings.is_empty() {
            return Ok(Vec::new());
        }
        let readings = readings.to_vec();
        self.write(move |tx| {
            let mut out = Vec::with_capacity(readings.len());
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO readings (device_id, seq, received_at, envelope_sha256, envelope, doc, stable)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (device_id, seq) DO NOTHING",
                )
                .map_err(backend)?;
            let mut existing = tx
                .prepare_cached("SELECT envelope_sha256 FROM readings WHERE device_id = ?1 AND seq = ?2")
                .map_err(backend)?;
            let mut stats = tx
                .prepare_cached(
                    STATS_ADD_ONE,
                )
                .map_err(backend)?;
            for n in &readings {
                let r = &n.reading;
                let sha = hex::encode(Sha256::digest(&n.envelope));
                let changed = insert
                    .execute(params![
                        r.device.as_str(),
                        r.seq as i64,
                        ts(n.received_at),
                        sha,
                        n.envelope,
                        json(r)?,
                        is_stable(r)
                    ])
                    .map_err(backend)?;
                if changed == 1 {
                    stats
                        .execute(params![r.device.as_str(), r.seq as i64, ts(n.received_at)])
                        .map_err(backend)?;
                    out.push(InsertOutcome::Inserted);
                } else {
                    let stored: String = existing
                        .query_row(params![r.device.as_str(), r.seq as i64], |row| row.get(0))
                        .map_err(backend)?;
                    out.push(if stored == sha {
                        InsertOutcome::Duplicate
                    } else {
                        InsertOutcome::Conflict
                    });
                }
            }
            Ok(out)
        })
        .await
    }

    async fn reading(&self, device_id: &str, seq: u64) -> StoreResult<Option<StoredReading>> {
        let id = device_id.to_string();
        self.read(move |c| {
            c.query_row(
                "SELECT doc, envelope_sha256, received_at, binding FROM readings WHERE device_id = ?1 AND seq = ?2",
                params![id, seq as i64],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(backend)?
            .map(|(d, s, a, b)| stored_reading(d, s, a, b))
            .transpose()
        })
        .await
    }

    async fn list_readings(
        &self,
        device_id: &str,
        unbound_only: bool,
        limit: u32,
    ) -> StoreResult<Vec<StoredReading>> {
        let id = device_id.to_string();
        self.read(move |c| {
            let sql = if unbound_only {
                "SELECT doc, envelope_sha256, received_at, binding FROM readings
                 WHERE device_id = ?1 AND bound_batch IS NULL ORDER BY seq DESC LIMIT ?2"
            } else {
                "SELECT doc, envelope_sha256, received_at, binding FROM readings
                 WHERE device_id = ?1 ORDER BY seq DESC LIMIT ?2"
            };
            let mut st = c.prepare_cached(sql).map_err(backend)?;
            let rows = st
                .query_map(params![id, limit as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .map_err(backend)?;
            rows.map(|r| {
                let (d, s, a, b) = r.map_err(backend)?;
                stored_reading(d, s, a, b)
            })
            .collect()
        })
        .await
    }

    async fn record_rejections(
        &self,
        rejections: &[Rejection],
        audit: &[NewAudit],
    ) -> StoreResult<()> {
        let (rs, audit) = (rejections.to_vec(), audit.to_vec());
        self.write(move |tx| {
            let mut st = tx.prepare_cached(INSERT_REJECTION).map_err(backend)?;
            for r in &rs {
                insert_rejection(&mut st, r, r.quarantined.as_deref())?;
            }
            append_audit_tx(tx, &audit)?;
            Ok(())
        })
        .await
    }

    async fn take_quarantined(&self, device_id: &str, from_seq: u64) -> StoreResult<Vec<Vec<u8>>> {
        let id = device_id.to_string();
        self.write(move |tx| {
            let mut st = tx
                .prepare_cached(
                    "SELECT id, quarantined FROM ingest_rejections
                     WHERE device_id = ?1 AND seq >= ?2 AND quarantined IS NOT NULL ORDER BY seq",
                )
                .map_err(backend)?;
            let rows: Vec<(i64, Vec<u8>)> = st
                .query_map(params![id, from_seq as i64], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(backend)?
                .collect::<Result<_, _>>()
                .map_err(backend)?;
            let mut release = tx
                .prepare_cached("UPDATE ingest_rejections SET quarantined = NULL WHERE id = ?1")
                .map_err(backend)?;
            for (rid, _) in &rows {
                release.execute([rid]).map_err(backend)?;
            }
            Ok(rows.into_iter().map(|(_, b)| b).collect())
        })
        .await
    }

    async fn arm(&self, arm: &Arm, audit: &[NewAudit]) -> StoreResult<()> {
        let (a, audit) = (arm.clone(), audit.to_vec());
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO arms (device_id, batch_id, doc) VALUES (?1, ?2, ?3)
                 ON CONFLICT (device_id) DO UPDATE SET batch_id = excluded.batch_id, doc = excluded.doc",
                params![a.device_id, a.batch_id.to_string(), json(&a)?],
            )
            .map_err(backend)?;
            append_audit_tx(tx, &audit)?;
            Ok(())
        })
        .await
    }

    async fn disarm(&self, device_id: &str, batch_id: Uuid) -> StoreResult<()> {
        let id = device_id.to_string();
        self.write(move |tx| {
            tx.execute(
                "DELETE FROM arms WHERE device_id = ?1 AND batch_id = ?2",
                params![id, batch_id.to_string()],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn arm_for_device(&self, device_id: &str) -> StoreResult<Option<Arm>> {
        let id = device_id.to_string();
        self.read(move |c| {
            c.query_row("SELECT doc FROM arms WHERE device_id = ?1", [id], |r| {
                r.get::<_, String>(0)
            })
            .optional()
            .map_err(backend)?
            .map(|d| from_json(&d))
            .transpose()
        })
        .await
    }

    async fn arms_for_batch(&self, batch_id: Uuid) -> StoreResult<Vec<Arm>> {
        self.read(move |c| {
            let mut st = c
                .prepare_cached("SELECT doc FROM arms WHERE batch_id = ?1")
                .map_err(backend)?;
            let rows = st
                .query_map([batch_id.to_string()], |r| r.get::<_, String>(0))
                .map_err(backend)?;
            rows.map(|r| from_json(&r.map_err(backend)?)).collect()
        })
        .await
    }

    async fn list_arms(&self) -> StoreResult<Vec<Arm>> {
        self.read(|c| {
            let mut st = c
                .prepare_cached("SELECT doc FROM arms ORDER BY device_id")
                .map_err(backend)?;
            let rows = st
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(backend)?;
            rows.map(|r| from_json(&r.map_err(backend)?)).collect()
        })
        .await
    }

    async fn bind_reading(
        &self,
        device_id: &str,
        seq: u64,
        binding: &ReadingBinding,
        batch: &BatchRecord,
        expected_version: u64,
        events: &[RecordedEvent],
        audit: &[NewAudit],
    ) -> StoreResult<()> {
        let (id, binding, batch, events, audit) = (
            device_id.to_string(),
            binding.clone(),
            batch.clone(),
            events.to_vec(),
            audit.to_vec(),
        );
        self.write(move |tx| {
            let n = tx
                .execute(
                    "UPDATE readings SET bound_batch = ?3, binding = ?4
                     WHERE device_id = ?1 AND seq = ?2 AND bound_batch IS NULL",
                    params![
                        id,
                        seq as i64,
                        binding.batch_id.to_string(),
                        json(&binding)?
                    ],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::Conflict);
            }
            append_batch_tx(tx, &batch, expected_version, &events, &audit)?;
            tx.execute(
                "DELETE FROM arms WHERE device_id = ?1 AND batch_id = ?2",
                params![id, binding.batch_id.to_string()],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn add_calibration(
        &self,
        record: &CalibrationRecord,
        audit: &[NewAudit],
    ) -> StoreResult<()> {
        let (r, audit) = (record.clone(), audit.to_vec());
        self.write(move |tx| {
            tx.execute(
                INSERT_CALIBRATION,
                params![r.id, r.device_id, ts(r.performed_at), json(&r)?],
            )
            .map_err(map_sql)?;
            append_audit_tx(tx, &audit)?;
            Ok(())
        })
        .await
    }

    async fn calibrations(&self, device_id: &str) -> StoreResult<Vec<CalibrationRecord>> {
        let id = device_id.to_string();
        self.read(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT doc FROM calibrations WHERE device_id = ?1 ORDER BY performed_at, id",
                )
                .map_err(backend)?;
            let rows = st
                .query_map([id], |r| r.get::<_, String>(0))
                .map_err(backend)?;
            rows.map(|r| from_json(&r.map_err(backend)?)).collect()
        })
        .await
    }

    async fn record_presence(&self, p: &Presence) -> StoreResult<()> {
        let p = p.clone();
        self.write(move |tx| {
            let online = p.status.presence == metcon_shared::topic::Presence::Online;
            let before: Option<bool> = tx
                .query_row(
                    "SELECT online FROM device_presence WHERE device_id = ?1",
                    [&p.device_id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            tx.execute(
                "INSERT INTO device_presence (device_id, online, received_at, doc) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (device_id) DO UPDATE SET online = excluded.online,
                   received_at = excluded.received_at, doc = excluded.doc",
                params![p.device_id, online, ts(p.received_at), json(&p.status)?],
            )
            .map_err(backend)?;
            if before != Some(online) {
                tx.execute(
                    "INSERT INTO presence_changes (device_id, online, at) VALUES (?1, ?2, ?3)",
                    params![p.device_id, online, ts(p.received_at)],
                )
                .map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn presences(&self) -> StoreResult<Vec<Presence>> {
        self.read(|c| {
            let mut st = c
                .prepare(
                    "SELECT device_id, received_at, doc FROM device_presence ORDER BY device_id",
                )
                .map_err(backend)?;
            let rows = st
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })
                .map_err(backend)?;
            rows.map(|r| {
                let (device_id, at, doc) = r.map_err(backend)?;
                Ok(Presence {
                    device_id,
                    status: from_json(&doc)?,
                    received_at: parse_ts(&at)?,
                })
            })
            .collect()
        })
        .await
    }

    async fn device_counts(&self) -> StoreResult<Vec<DeviceCounts>> {
        self.read(|c| {
            let mut st = c
                .prepare(
                    "SELECT s.device_id, s.readings, s.last_seq, s.last_at,
                       (SELECT COUNT(*) FROM readings r WHERE r.device_id = s.device_id AND r.bound_batch IS NULL)
                     FROM reading_stats s ORDER BY s.device_id",
                )
                .map_err(backend)?;
            let rows = st
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                })
                .map_err(backend)?;
            rows.map(|r| {
                let (device_id, n, last_seq, last_at, unbound) = r.map_err(backend)?;
                Ok(DeviceCounts {
                    device_id,
                    readings: n as u64,
                    unbound: unbound as u64,
                    last_reading_at: Some(parse_ts(&last_at)?),
                    last_seq: Some(last_seq as u64),
                })
            })
            .collect()
        })
        .await
    }

    async fn reading_counts(
        &self,
        from: Option<OffsetDateTime>,
        to: Option<OffsetDateTime>,
    ) -> StoreResult<Vec<ReadingCount>> {
        self.read(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT device_id, COUNT(*), SUM(bound_batch IS NULL) FROM readings
                     WHERE (?1 IS NULL OR received_at >= ?1) AND (?2 IS NULL OR received_at < ?2)
                     GROUP BY device_id ORDER BY device_id",
                )
                .map_err(backend)?;
            let rows = st
                .query_map(params![from.map(ts), to.map(ts)], |r| {
                    Ok(ReadingCount {
                        device_id: r.get(0)?,
                        readings: r.get::<_, i64>(1)? as u64,
                        unbound: r.get::<_, i64>(2)? as u64,
                    })
                })
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }

    async fn rejection_counts(
        &self,
        from: Option<OffsetDateTime>,
        to: Option<OffsetDateTime>,
    ) -> StoreResult<Vec<RejectionCount>> {
        self.read(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT device_id, reason, COUNT(*) FROM ingest_rejections
                     WHERE (?1 IS NULL OR at >= ?1) AND (?2 IS NULL OR at < ?2)
                     GROUP BY device_id, reason ORDER BY device_id, reason",
                )
                .map_err(backend)?;
            let rows = st
                .query_map(params![from.map(ts), to.map(ts)], |r| {
                    Ok(RejectionCount {
                        device_id: r.get(0)?,
                        reason: r.get(1)?,
                        count: r.get::<_, i64>(2)? as u64,
                    })
                })
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }

    async fn presence_changes(
        &self,
        from: Option<OffsetDateTime>,
        to: Option<OffsetDateTime>,
    ) -> StoreResult<Vec<PresenceChange>> {
        self.read(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT device_id, online, at FROM presence_changes
                     WHERE (?1 IS NULL OR at >= ?1) AND (?2 IS NULL OR at < ?2) ORDER BY at, id",
                )
                .map_err(backend)?;
            let rows = st
                .query_map(params![from.map(ts), to.map(ts)], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, bool>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })
                .map_err(backend)?;
            rows.map(|r| {
                let (device_id, online, at) = r.map_err(backend)?;
                Ok(PresenceChange {
                    device_id,
                    online,
                    at: parse_ts(&at)?,
                })
            })
            .collect()
        })
        .await
    }
}

// --- whole-store dumps and loads (`SnapshotStore`, see `sqlite_snapshot`) ------------------

use super::snapshot::{DeviceDump, EnrollmentCodeDump, ReadingDump, RejectionDump};

pub(super) fn dump_enrollment_codes(
    c: &rusqlite::Connection,
) -> StoreResult<Vec<EnrollmentCodeDump>> {
    let mut st = c
        .prepare(
            "SELECT code_hash, device_id, created_by, created_at, expires_at, used_at
             FROM enrollment_codes ORDER BY device_id, code_hash",
        )
        .map_err(backend)?;
    let rows = st
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<String>>(5)?,
            ))
        })
        .map_err(backend)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(backend)?;
    rows.into_iter()
        .map(
            |(code_hash, device_id, created_by, created, expires, used)| {
                Ok(EnrollmentCodeDump {
                    code_hash,
                    device_id,
                    created_by,
                    created_at: parse_ts(&created)?,
                    expires_at: parse_ts(&expires)?,
                    used_at: used.as_deref().map(parse_ts).transpose()?,
                })
            },
        )
        .collect()
}

pub(super) fn dump_readings(
    c: &rusqlite::Connection,
    after: Option<(String, u64)>,
    limit: u32,
) -> StoreResult<Vec<ReadingDump>> {
    let (device, seq) = match after {
        Some((d, s)) => (d, s as i64),
        None => (String::new(), -1),
    };
    let mut st = c
        .prepare_cached(
            "SELECT doc, envelope, received_at, binding FROM readings
             WHERE (device_id, seq) > (?1, ?2) ORDER BY device_id, seq LIMIT ?3",
        )
        .map_err(backend)?;
    let rows = st
        .query_map(params![device, seq, limit], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })
        .map_err(backend)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(backend)?;
    rows.into_iter()
        .map(|(doc, envelope, at, binding)| {
            Ok(ReadingDump {
                reading: from_json(&doc)?,
                envelope,
                received_at: parse_ts(&at)?,
                binding: binding.map(|b| from_json(&b)).transpose()?,
            })
        })
        .collect()
}

pub(super) fn dump_rejections(
    c: &rusqlite::Connection,
    after: Option<String>,
    limit: u32,
) -> StoreResult<Vec<(String, RejectionDump)>> {
    let after: i64 = match after {
        Some(a) => a
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("bad rejection cursor {a:?}")))?,
        None => 0,
    };
    let mut st = c
        .prepare_cached(
            "SELECT id, at, device_id, topic, reason, detail, size, payload_sha256, seq, quarantined
             FROM ingest_rejections WHERE id > ?1 ORDER BY id LIMIT ?2",
        )
        .map_err(backend)?;
    let rows = st
        .query_map(params![after, limit], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, Option<i64>>(8)?,
                r.get::<_, Option<Vec<u8>>>(9)?,
            ))
        })
        .map_err(backend)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(backend)?;
    rows.into_iter()
        .map(
            |(id, at, device_id, topic, reason, detail, size, payload_sha256, seq, quarantined)| {
                Ok((
                    id.to_string(),
                    RejectionDump {
                        rejection: Rejection {
                            at: parse_ts(&at)?,
                            device_id,
                            topic,
                            reason,
                            detail,
                            size: size as u64,
                            payload_sha256,
                            seq: seq.map(|s| s as u64),
                            quarantined: None,
                        },
                        quarantined,
                    },
                ))
            },
        )
        .collect()
}

pub(super) fn load_device(tx: &Transaction<'_>, d: &DeviceDump) -> StoreResult<()> {
    upsert_device_tx(tx, &d.device, true)?;
    for k in &d.keys {
        tx.execute(
            INSERT_KEY,
            params![
                k.device_id,
                k.from_seq as i64,
                k.public_key.to_string(),
                ts(k.registered_at)
            ],
        )
        .map_err(map_sql)?;
    }
    for c in &d.enrollment_codes {
        tx.execute(
            "INSERT INTO enrollment_codes (code_hash, device_id, created_by, created_at, expires_at, used_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                c.code_hash,
                c.device_id,
                c.created_by,
                ts(c.created_at),
                ts(c.expires_at),
                c.used_at.map(ts)
            ],
        )
        .map_err(map_sql)?;
    }
    for r in &d.calibrations {
        tx.execute(
            INSERT_CALIBRATION,
            params![r.id, r.device_id, ts(r.performed_at), json(r)?],
        )
        .map_err(map_sql)?;
    }
    if let Some(p) = &d.presence {
        let online = p.status.presence == metcon_shared::topic::Presence::Online;
        tx.execute(
            "INSERT INTO device_presence (device_id, online, received_at, doc) VALUES (?1, ?2, ?3, ?4)",
            params![p.device_id, online, ts(p.received_at), json(&p.status)?],
        )
        .map_err(map_sql)?;
    }
    for p in &d.presence_changes {
        tx.execute(
            "INSERT INTO presence_changes (device_id, online, at) VALUES (?1, ?2, ?3)",
            params![p.device_id, p.online, ts(p.at)],
        )
        .map_err(map_sql)?;
    }
    if let Some(a) = &d.arm {
        tx.execute(
            "INSERT INTO arms (device_id, batch_id, doc) VALUES (?1, ?2, ?3)",
            params![a.device_id, a.batch_id.to_string(), json(a)?],
        )
        .map_err(map_sql)?;
    }
    Ok(())
}

pub(super) fn load_readings(tx: &Transaction<'_>, readings: &[ReadingDump]) -> StoreResult<()> {
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO readings (device_id, seq, received_at, envelope_sha256, envelope, doc, stable, bound_batch, binding)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .map_err(backend)?;
    let mut stats = tx.prepare_cached(STATS_ADD_ONE).map_err(backend)?;
    for d in readings {
        let r = &d.reading;
        insert
            .execute(params![
                r.device.as_str(),
                r.seq as i64,
                ts(d.received_at),
                hex::encode(Sha256::digest(&d.envelope)),
                d.envelope,
                json(r)?,
                is_stable(r),
                d.binding.as_ref().map(|b| b.batch_id.to_string()),
                d.binding.as_ref().map(json).transpose()?
            ])
            .map_err(map_sql)?;
        stats
            .execute(params![r.device.as_str(), r.seq as i64, ts(d.received_at)])
            .map_err(backend)?;
    }
    Ok(())
}

pub(super) fn load_rejections(
    tx: &Transaction<'_>,
    rejections: &[RejectionDump],
) -> StoreResult<()> {
    let mut st = tx.prepare_cached(INSERT_REJECTION).map_err(backend)?;
    for d in rejections {
        insert_rejection(&mut st, &d.rejection, d.quarantined.as_deref())?;
    }
    Ok(())
}
