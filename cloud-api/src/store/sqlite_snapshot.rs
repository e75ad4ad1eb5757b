//! Whole-store dumps and loads of the SQLite backend ([`SnapshotStore`]), for
//! `metcon-cloud export` / `import`. Loads insert rows as they are, one transaction each.

use async_trait::async_trait;
use metcon_shared::batch::{BatchState, RecordedEvent};
use metcon_shared::flow::Flow;
use rusqlite::{params, OptionalExtension};

use super::snapshot::*;
use super::sqlite::{backend, parse_ts, ts, SqliteStore};
use super::sqlite_devices as devices;
use super::{AuditHead, AuditRecord, StoreError, StoreResult, User};

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn count(c: &rusqlite::Connection, sql: &str) -> StoreResult<u64> {
    c.query_row(sql, [], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
        .map_err(backend)
}

#[async_trait]
impl SnapshotStore for SqliteStore {
    async fn snapshot_counts(&self) -> StoreResult<SnapshotCounts> {
        self.read(|c| {
            Ok(SnapshotCounts {
                users: count(c, "SELECT COUNT(*) FROM users")?,
                sessions: count(c, "SELECT COUNT(*) FROM sessions")?,
                refresh_tokens: count(c, "SELECT COUNT(*) FROM refresh_tokens")?,
                flows: count(c, "SELECT COUNT(*) FROM flows")?,
                batches: count(c, "SELECT COUNT(*) FROM batches")?,
                events: count(c, "SELECT COUNT(*) FROM batch_events")?,
                batch_counters: count(c, "SELECT COUNT(*) FROM batch_counters")?,
                setup_tokens: count(c, "SELECT COUNT(*) FROM setup_tokens")?,
                audit_records: count(c, "SELECT COUNT(*) FROM audit")?,
                devices: count(c, "SELECT COUNT(*) FROM devices")?,
                device_keys: count(c, "SELECT COUNT(*) FROM device_keys")?,
                enrollment_codes: count(c, "SELECT COUNT(*) FROM enrollment_codes")?,
                calibrations: count(c, "SELECT COUNT(*) FROM calibrations")?,
                arms: count(c, "SELECT COUNT(*) FROM arms")?,
                presences: count(c, "SELECT COUNT(*) FROM device_presence")?,
                presence_changes: count(c, "SELECT COUNT(*) FROM presence_changes")?,
                readings: count(c, "SELECT COUNT(*) FROM readings")?,
                rejections: count(c, "SELECT COUNT(*) FROM ingest_rejections")?,
                photos: count(c, "SELECT COUNT(*) FROM photos")?,
            })
        })
        .await
    }

    async fn dump_sessions(&self) -> StoreResult<Vec<SessionDump>> {
        self.read(|c| {
            let mut stmt = c
                .prepare("SELECT id, user_id, created_at, last_seen, revoked_at FROM sessions ORDER BY id")
                .map_err(backend)?;
            let raw = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<String>>(4)?,
                    ))
                })
                .map_err(backend)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(backend)?;
            let mut tokens = c
                .prepare_cached(
                    "SELECT token_hash, user_id, expires_at, used_at FROM refresh_tokens WHERE session_id = ?1 ORDER BY token_hash",
                )
                .map_err(backend)?;
            let mut out = Vec::with_capacity(raw.len());
            for (id, user_id, created, seen, revoked) in raw {
                let refresh_tokens = tokens
                    .query_map([&id], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, Option<String>>(3)?,
                        ))
                    })
                    .map_err(backend)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(backend)?
                    .into_iter()
                    .map(|(token_hash, user_id, expires, used)| {
                        Ok(RefreshTokenDump {
                            token_hash,
                            user_id,
                            expires_at: parse_ts(&expires)?,
                            used_at: used.as_deref().map(parse_ts).transpose()?,
                        })
                    })
                    .collect::<StoreResult<Vec<_>>>()?;
                out.push(SessionDump {
                    id,
                    user_id,
                    created_at: parse_ts(&created)?,
                    last_seen: parse_ts(&seen)?,
                    revoked_at: revoked.as_deref().map(parse_ts).transpose()?,
                    refresh_tokens,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn dump_batches(
        &self,
        after: Option<&BatchKey>,
        limit: u32,
    ) -> StoreResult<Vec<BatchDump>> {
        let after = after.cloned();
        self.read(move |c| {
            let (created, id) = after.map(|k| (k.created_at, k.id)).unwrap_or_default();
            let mut stmt = c
                .prepare_cached(
                    "SELECT id, state, current_station, current_step FROM batches
                     WHERE (created_at, id) > (?1, ?2) ORDER BY created_at, id LIMIT ?3",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![created, id, limit], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Option<String>>(3)?,
                    ))
                })
                .map_err(backend)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(backend)?;
            let mut events = c
                .prepare_cached("SELECT doc FROM batch_events WHERE batch_id = ?1 ORDER BY seq")
                .map_err(backend)?;
            rows.into_iter()
                .map(|(id, state, current_station, current_step)| {
                    let events = events
                        .query_map([&id], |r| r.get::<_, String>(0))
                        .map_err(backend)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                        .map_err(backend)?
                        .iter()
                        .map(|d| serde_json::from_str::<RecordedEvent>(d).map_err(corrupt))
                        .collect::<StoreResult<Vec<_>>>()?;
                    Ok(BatchDump {
                        state: serde_json::from_str::<BatchState>(&state).map_err(corrupt)?,
                        current_station,
                        current_step,
                        events,
                    })
                })
                .collect()
        })
        .await
    }

    async fn dump_counters(&self) -> StoreResult<Vec<CounterDump>> {
        self.read(|c| {
            let mut stmt = c
                .prepare("SELECT pipeline, year, last FROM batch_counters ORDER BY pipeline, year")
                .map_err(backend)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(CounterDump {
                        pipeline: r.get(0)?,
                        year: r.get(1)?,
                        last: r.get(2)?,
                    })
                })
                .map_err(backend)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(backend)?;
            Ok(rows)
        })
        .await
    }

    async fn dump_setup_token(&self) -> StoreResult<Option<SetupTokenDump>> {
        self.read(|c| {
            let raw = c
                .query_row(
                    "SELECT token_hash, expires_at FROM setup_tokens ORDER BY token_hash LIMIT 1",
                    [],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
                )
                .optional()
                .map_err(backend)?;
            raw.map(|(token_hash, expires)| {
                Ok(SetupTokenDump {
                    token_hash,
                    expires_at: parse_ts(&expires)?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn load_users(&self, users: &[User]) -> StoreResult<()> {
        let users = users.to_vec();
        self.write(move |tx| {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO users (id, username, display_name, role, stations, active, password_hash, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(backend)?;
            for u in &users {
                stmt.execute(params![
                    u.id,
                    u.username,
                    u.display_name,
                    u.role.as_str(),
                    serde_json::to_string(&u.stations).map_err(backend)?,
                    u.active as i64,
                    u.password_hash,
                    ts(u.created_at),
                    ts(u.updated_at)
                ])
                .map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn load_sessions(&self, sessions: &[SessionDump]) -> StoreResult<()> {
        let sessions = sessions.to_vec();
        self.write(move |tx| {
            for s in &sessions {
                tx.execute(
                    "INSERT INTO sessions (id, user_id, created_at, last_seen, revoked_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![s.id, s.user_id, ts(s.created_at), ts(s.last_seen), s.revoked_at.map(ts)],
                )
                .map_err(backend)?;
                for t in &s.refresh_tokens {
                    tx.execute(
                        "INSERT INTO refresh_tokens (token_hash, session_id, user_id, expires_at, used_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![t.token_hash, s.id, t.user_id, ts(t.expires_at), t.used_at.map(ts)],
                    )
                    .map_err(backend)?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn load_flows(&self, flows: &[Flow]) -> StoreResult<()> {
        let flows = flows.to_vec();
        self.write(move |tx| {
            for f in &flows {
                tx.execute(
                    "INSERT INTO flows (flow_id, version, status, effective_date, pipeline, doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        f.flow_id,
                        f.version,
                        f.status.as_str(),
                        f.effective_date.map(ts),
                        f.content.pipeline,
                        serde_json::to_string(f).map_err(backend)?
                    ],
                )
                .map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn load_audit(&self, records: &[AuditRecord]) -> StoreResult<()> {
        let records = records.to_vec();
        self.write(move |tx| {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO audit (seq, at, actor, action, target, details, ip, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(backend)?;
            for r in &records {
                let e = &r.entry;
                stmt.execute(params![
                    r.seq as i64,
                    e.at.format(&time::format_description::well_known::Rfc3339).map_err(backend)?,
                    e.actor,
                    e.action,
                    e.target,
                    e.details.to_string(),
                    e.ip,
                    r.prev_hash,
                    r.hash
                ])
                .map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn load_audit_head(&self, head: &AuditHead) -> StoreResult<()> {
        let head = head.clone();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?1, ?2) ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                params![head.seq as i64, head.hash],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn load_counters(&self, counters: &[CounterDump]) -> StoreResult<()> {
        let counters = counters.to_vec();
        self.write(move |tx| {
            for c in &counters {
                tx.execute(
                    "INSERT INTO batch_counters (pipeline, year, last) VALUES (?1, ?2, ?3)
                     ON CONFLICT(pipeline, year) DO UPDATE SET last = MAX(last, excluded.last)",
                    params![c.pipeline, c.year, c.last],
                )
                .map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn load_setup_token(&self, token: &SetupTokenDump) -> StoreResult<()> {
        let token = token.clone();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO setup_tokens (token_hash, expires_at) VALUES (?1, ?2)",
                params![token.token_hash, ts(token.expires_at)],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn dump_enrollment_codes(&self) -> StoreResult<Vec<EnrollmentCodeDump>> {
        self.read(devices::dump_enrollment_codes).await
    }

    async fn dump_readings(
        &self,
        after: Option<(&str, u64)>,
        limit: u32,
    ) -> StoreResult<Vec<ReadingDump>> {
        let after = after.map(|(d, s)| (d.to_string(), s));
        self.read(move |c| devices::dump_readings(c, after, limit))
            .await
    }

    async fn dump_rejections(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<(String, RejectionDump)>> {
        let after = after.map(str::to_string);
        self.read(move |c| devices::dump_rejections(c, after, limit))
            .await
    }

    async fn load_device(&self, dump: &DeviceDump) -> StoreResult<()> {
        let dump = dump.clone();
        self.write(move |tx| devices::load_device(tx, &dump)).await
    }

    async fn load_readings(&self, readings: &[ReadingDump]) -> StoreResult<()> {
        let readings = readings.to_vec();
        self.write(move |tx| devices::load_readings(tx, &readings))
            .await
    }

    async fn load_rejections(&self, rejections: &[RejectionDump]) -> StoreResult<()> {
        let rejections = rejections.to_vec();
        self.write(move |tx| devices::load_rejections(tx, &rejections))
            .await
    }
}
