//! The embedded SQLite backend: one file, WAL, numbered migrations.
//!
//! One writer connection behind a mutex (SQLite allows one writer at a time anyway) and a
//! small pool of reader connections, all used from `spawn_blocking` so the async workers
//! never wait on disk. `synchronous=FULL`: a committed batch event survives power loss.
//! Batch and audit rows are protected from UPDATE and DELETE by triggers; the hash chain
//! (see `audit`) detects tampering by anyone who drops them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use metcon_shared::batch::{BatchState, RecordedEvent};
use metcon_shared::flow::Flow;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use time::OffsetDateTime;

use super::sqlite_readmodel;
use super::*;
use crate::audit;

/// Migrations in order; the index + 1 is the schema version. Never edit a released one.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL,
    stations TEXT NOT NULL,
    active INTEGER NOT NULL,
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE setup_tokens (
    token_hash TEXT PRIMARY KEY,
    expires_at TEXT NOT NULL
);
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    created_at TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    user_id TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT
);
CREATE INDEX refresh_tokens_session ON refresh_tokens(session_id);
CREATE TABLE flows (
    flow_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    status TEXT NOT NULL,
    effective_date TEXT,
    pipeline TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (flow_id, version)
);
CREATE INDEX flows_status_effective ON flows(status, effective_date);
CREATE TABLE batch_counters (
    pipeline TEXT NOT NULL,
    year INTEGER NOT NULL,
    last INTEGER NOT NULL,
    PRIMARY KEY (pipeline, year)
);
CREATE TABLE batches (
    id TEXT PRIMARY KEY,
    batch_number TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    flow_id TEXT NOT NULL,
    flow_version INTEGER NOT NULL,
    status TEXT NOT NULL,
    current_station TEXT,
    current_step TEXT,
    priority TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version INTEGER NOT NULL,
    state TEXT NOT NULL
);
CREATE UNIQUE INDEX batches_number ON batches(pipeline, batch_number);
CREATE INDEX batches_status_station ON batches(status, current_station);
CREATE INDEX batches_pipeline_status ON batches(pipeline, status);
CREATE INDEX batches_created_at ON batches(created_at);
CREATE INDEX batches_flow ON batches(flow_id, flow_version);
CREATE TABLE batch_events (
    batch_id TEXT NOT NULL REFERENCES batches(id),
    seq INTEGER NOT NULL,
    event_id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    at TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (batch_id, seq)
);
CREATE TRIGGER batch_events_append_only_u BEFORE UPDATE ON batch_events
BEGIN SELECT RAISE(ABORT, 'batch events are append-only'); END;
CREATE TRIGGER batch_events_append_only_d BEFORE DELETE ON batch_events
BEGIN SELECT RAISE(ABORT, 'batch events are append-only'); END;
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    details TEXT NOT NULL,
    ip TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_action ON audit(action, at);
CREATE TRIGGER audit_append_only_u BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER audit_append_only_d BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL
);
"#,
    // 2: the analytics read model; filled from existing events when created.
    sqlite_readmodel::MIGRATION,
    // 3: devices, enrollment, readings, calibration (ingest).
    super::sqlite_devices::MIGRATION,
    // 4: readings by arrival time (device health report).
    super::sqlite_devices::MIGRATION_READINGS_RECEIVED,
    // 5: photo evidence metadata.
    super::sqlite_photos::MIGRATION,
    // 6: a device's frames by upload time (the display-region editor).
    super::sqlite_photos::MIGRATION_DEVICE_FRAMES,
];

/// The schema version whose migration creates the read model (rebuilt from events then).
const READ_MODEL_VERSION: usize = 2;

const READERS: usize = 4;

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

pub(crate) fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

pub(super) fn map_sql(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(err, msg) = &e {
        if err.code == rusqlite::ErrorCode::ConstraintViolation {
            return StoreError::Duplicate(msg.clone().unwrap_or_else(|| "record".into()));
        }
    }
    backend(e)
}

pub(super) fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// Fixed-width UTC timestamps, so that text order is time order in indexes.
pub(crate) fn ts(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

pub(crate) fn parse_ts(s: &str) -> StoreResult<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).map_err(corrupt)
}

fn open_connection(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open(path).map_err(backend)?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=10000;",
    )
    .map_err(backend)?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub fn open(path: &Path) -> StoreResult<SqliteStore> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(backend)?;
            }
        }
        let mut writer = open_connection(path)?;
        migrate(&mut writer)?;
        let readers = (0..READERS)
            .map(|_| open_connection(path).map(Mutex::new))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                writer: Mutex::new(writer),
                readers,
                next_reader: AtomicUsize::new(0),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub(crate) async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Transaction<'_>) -> StoreResult<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner
                .writer
                .lock()
                .map_err(|_| backend("writer connection poisoned"))?;
            let mut tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(backend)?;
            let out = f(&mut tx)?;
            tx.commit().map_err(map_sql)?;
            Ok(out)
        })
        .await
        .map_err(backend)?
    }

    pub(crate) async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let i = inner.next_reader.fetch_add(1, Ordering::Relaxed) % inner.readers.len();
            let conn = inner.readers[i]
                .lock()
                .map_err(|_| backend("reader connection poisoned"))?;
            f(&conn)
        })
        .await
        .map_err(backend)?
    }
}

fn migrate(conn: &mut Connection) -> StoreResult<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL);",
    )
    .map_err(backend)?;
    let current: i64 = conn
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )
        .map_err(backend)?;
    if current as usize > MIGRATIONS.len() {
        return Err(StoreError::Backend(format!(
            "the database has schema version {current}, newer than this binary knows ({}); upgrade metcon-cloud",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction().map_err(backend)?;
        tx.execute_batch(sql).map_err(backend)?;
        if i + 1 == READ_MODEL_VERSION {
            sqlite_readmodel::rebuild(&tx)?;
        }
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            params![i as i64 + 1, ts(OffsetDateTime::now_utc())],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)?;
    }
    Ok(())
}

pub(super) fn append_audit_tx(
    tx: &Transaction<'_>,
    entries: &[NewAudit],
) -> StoreResult<Vec<AuditRecord>> {
    let mut out = Vec::with_capacity(entries.len());
    if entries.is_empty() {
        return Ok(out);
    }
    let head: Option<(u64, String)> = tx
        .query_row("SELECT seq, hash FROM audit_head WHERE id = 1", [], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get(1)?))
        })
        .optional()
        .map_err(backend)?;
    let (mut seq, mut prev) = head.unwrap_or((0, audit::GENESIS.to_string()));
    for e in entries {
        seq += 1;
        let hash = audit::link_hash(&prev, seq, e);
        tx.execute(
            "INSERT INTO audit (seq, at, actor, action, target, details, ip, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                seq as i64,
                e.at.format(&time::format_description::well_known::Rfc3339).map_err(backend)?,
                e.actor,
                e.action,
                e.target,
                e.details.to_string(),
                e.ip,
                prev,
                hash
            ],
        )
        .map_err(map_sql)?;
        out.push(AuditRecord {
            seq,
            entry: e.clone(),
            prev_hash: prev.clone(),
            hash: hash.clone(),
        });
        prev = hash;
    }
    tx.execute(
        "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?1, ?2) ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        params![seq as i64, prev],
    )
    .map_err(backend)?;
    Ok(out)
}

fn user_from_row(
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<(User, String, String, String, String)> {
    Ok((
        User {
            id: r.get(0)?,
            username: r.get(1)?,
            display_name: r.get(2)?,
            role: metcon_shared::role::Role::Admin, // replaced below after parsing `role`
            stations: Vec::new(),
            active: r.get::<_, i64>(5)? != 0,
            password_hash: r.get(6)?,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        },
        r.get(3)?,
        r.get(4)?,
        r.get(7)?,
        r.get(8)?,
    ))
}

fn finish_user(raw: (User, String, String, String, String)) -> StoreResult<User> {
    let (mut u, role, stations, created, updated) = raw;
    u.role = role.parse().map_err(corrupt)?;
    u.stations = serde_json::from_str(&stations).map_err(corrupt)?;
    u.created_at = parse_ts(&created)?;
    u.updated_at = parse_ts(&updated)?;
    Ok(u)
}

const USER_COLS: &str =
    "id, username, display_name, role, stations, active, password_hash, created_at, updated_at";

fn insert_user_tx(tx: &Transaction<'_>, u: &User) -> StoreResult<()> {
    tx.execute(
        &format!("INSERT INTO users ({USER_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
        params![
            u.id,
            u.username,
            u.display_name,
            u.role.as_str(),
            serde_json::to_string(&u.stations).map_err(backend)?,
            u.active as i64,
            u.password_hash,
            ts(u.created_at),
            ts(u.updated_at)
        ],
    )
    .map_err(|e| match map_sql(e) {
        StoreError::Duplicate(_) => StoreError::Duplicate(format!("user {}", u.username)),
        other => other,
    })?;
    Ok(())
}

fn flow_doc(f: &Flow) -> StoreResult<String> {
    serde_json::to_string(f).map_err(backend)
}

fn flow_from_doc(doc: String) -> StoreResult<Flow> {
    serde_json::from_str(&doc).map_err(corrupt)
}

fn query_flows(conn: &Connection, sql: &str, p: impl rusqlite::Params) -> StoreResult<Vec<Flow>> {
    let mut stmt = conn.prepare_cached(sql).map_err(backend)?;
    let docs = stmt
        .query_map(p, |r| r.get::<_, String>(0))
        .map_err(backend)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(backend)?;
    docs.into_iter().map(flow_from_doc).collect()
}

fn batch_from_row(
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<(String, Option<String>, Option<String>)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
}

fn finish_batch(raw: (String, Option<String>, Option<String>)) -> StoreResult<BatchRecord> {
    let (state, current_station, current_step) = raw;
    Ok(BatchRecord {
        state: serde_json::from_str::<BatchState>(&state).map_err(corrupt)?,
        current_station,
        current_step,
    })
}

fn insert_events_tx(
    tx: &Transaction<'_>,
    batch_id: &str,
    events: &[RecordedEvent],
) -> StoreResult<()> {
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO batch_events (batch_id, seq, event_id, type, at, doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(backend)?;
    for e in events {
        stmt.execute(params![
            batch_id,
            e.seq as i64,
            e.event_id.to_string(),
            e.event.type_name(),
            ts(e.at),
            serde_json::to_string(e).map_err(backend)?
        ])
        .map_err(|err| match map_sql(err) {
            // (batch_id, seq) taken: a concurrent append won.
            StoreError::Duplicate(_) => StoreError::Conflict,
            other => other,
        })?;
    }
    Ok(())
}

fn insert_batch_row_tx(tx: &Transaction<'_>, b: &BatchRecord) -> StoreResult<()> {
    let s = &b.state;
    tx.prepare_cached(
        "INSERT INTO batches (id, batch_number, pipeline, flow_id, flow_version, status, current_station, current_step, priority, created_at, updated_at, version, state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )
    .map_err(backend)?
    .execute(params![
        s.batch_id.to_string(),
        s.batch_number,
        s.pipeline,
        s.flow_id,
        s.flow_version,
        s.status.as_str(),
        b.current_station,
        b.current_step,
        serde_json::to_value(s.priority).map_err(backend)?.as_str().unwrap_or("normal"),
        ts(s.created_at),
        ts(s.updated_at),
        s.version as i64,
        serde_json::to_string(s).map_err(backend)?
    ])
    .map_err(|e| match map_sql(e) {
        StoreError::Duplicate(_) => StoreError::Duplicate(format!("batch {}", s.batch_number)),
        other => other,
    })?;
    Ok(())
}

/// Appends events to a batch conditionally on its version, with the read model and audit
/// records, inside the caller's transaction (see [`Store::append_batch_events`]).
pub(super) fn append_batch_tx(
    tx: &Transaction<'_>,
    b: &BatchRecord,
    expected_version: u64,
    events: &[RecordedEvent],
    audit: &[NewAudit],
) -> StoreResult<()> {
    let s = &b.state;
    let id = s.batch_id.to_string();
    let n = tx
        .prepare_cached(
            "UPDATE batches SET status = ?3, current_station = ?4, current_step = ?5, updated_at = ?6, version = ?7, state = ?8
             WHERE id = ?1 AND version = ?2",
        )
        .map_err(backend)?
        .execute(params![
            id,
            expected_version as i64,
            s.status.as_str(),
            b.current_station,
            b.current_step,
            ts(s.updated_at),
            s.version as i64,
            serde_json::to_string(s).map_err(backend)?
        ])
        .map_err(backend)?;
    if n == 0 {
        return Err(StoreError::Conflict);
    }
    insert_events_tx(tx, &id, events)?;
    let station = sqlite_readmodel::visit_station(s.status, b.current_station.as_deref());
    sqlite_readmodel::project(tx, s, events, station)?;
    append_audit_tx(tx, audit)?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.read(|c| {
            c.query_row("SELECT 1", [], |_| Ok(())).map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn create_user(&self, user: &User, audit: &[NewAudit]) -> StoreResult<()> {
        let (user, audit) = (user.clone(), audit.to_vec());
        self.write(move |tx| {
            insert_user_tx(tx, &user)?;
            append_audit_tx(tx, &audit)?;
            Ok(())
        })
        .await
    }

    async fn update_user(
        &self,
        u: &User,
        expected: OffsetDateTime,
        audit: &[NewAudit],
    ) -> StoreResult<()> {
        let (u, audit) = (u.clone(), audit.to_vec());
        self.write(move |tx| {
            let before: Option<(bool, String, String)> = tx
                .query_row(
                    "SELECT role = 'admin' AND active = 1, updated_at, password_hash FROM users WHERE id = ?1",
                    params![u.id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(map_sql)?;
            let Some((was_admin, updated_at, old_hash)) = before else {
                return Err(StoreError::NotFound(format!("user {}", u.id)));
            };
            if updated_at != ts(expected) {
                return Err(StoreError::Conflict);
            }
            tx.execute(
                "UPDATE users SET display_name = ?2, role = ?3, stations = ?4, active = ?5, password_hash = ?6, updated_at = ?7 WHERE id = ?1",
                params![
                    u.id,
                    u.display_name,
                    u.role.as_str(),
                    serde_json::to_string(&u.stations).map_err(backend)?,
                    u.active as i64,
                    u.password_hash,
                    ts(u.updated_at)
                ],
            )
            .map_err(map_sql)?;
            // The writer is single, so this count is the truth at commit.
            let admins_left: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM users WHERE role = 'admin' AND active = 1",
                    [],
                    |r| r.get(0),
                )
                .map_err(map_sql)?;
            if was_admin && admins_left == 0 {
                return Err(StoreError::LastAdmin);
            }
            if !u.active || u.password_hash != old_hash {
                tx.execute(
                    "UPDATE sessions SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
                    params![u.id, ts(u.updated_at)],
                )
                .map_err(backend)?;
            }
            append_audit_tx(tx, &audit)?;
            Ok(())
        })
        .await
    }

    async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>> {
        let id = id.to_string();
        self.read(move |c| {
            c.query_row(
                &format!("SELECT {USER_COLS} FROM users WHERE id = ?1"),
                [id],
                user_from_row,
            )
            .optional()
            .map_err(backend)?
            .map(finish_user)
            .transpose()
        })
        .await
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        let username = username.to_string();
        self.read(move |c| {
            c.query_row(
                &format!("SELECT {USER_COLS} FROM users WHERE username = ?1"),
                [username],
                user_from_row,
            )
            .optional()
            .map_err(backend)?
            .map(finish_user)
            .transpose()
        })
        .await
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        self.read(|c| {
            let mut stmt = c
                .prepare(&format!("SELECT {USER_COLS} FROM users ORDER BY username"))
                .map_err(backend)?;
            let rows = stmt
                .query_map([], user_from_row)
                .map_err(backend)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(backend)?;
            rows.into_iter().map(finish_user).collect()
        })
        .await
    }

    async fn count_users(&self) -> StoreResult<u64> {
        self.read(|c| {
            c.query_row("SELECT COUNT(*) FROM users", [], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
                .map_err(backend)
        })
        .await
    }

    async fn set_setup_token(
        &self,
        token_hash: &str,
        expires_at: OffsetDateTime,
    ) -> StoreResult<()> {
        let token_hash = token_hash.to_string();
        self.write(move |tx| {
            tx.execute("DELETE FROM setup_tokens", [])
                .map_err(backend)?;
            tx.execute(
                "INSERT INTO setup_tokens (token_hash, expires_at) VALUES (?1, ?2)",
                params![token_hash, ts(expires_at)],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn consume_setup_token(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
        admin: &User,
        audit: &[NewAudit],
    ) -> StoreResult<()> {
        let (token_hash, admin, audit) = (token_hash.to_string(), admin.clone(), audit.to_vec());
        self.write(move |tx| {
            let users: i64 = tx
                .query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))
                .map_err(backend)?;
            let n = tx
                .execute(
                    "DELETE FROM setup_tokens WHERE token_hash = ?1 AND expires_at > ?2",
                    params![token_hash, ts(now)],
                )
                .map_err(backend)?;
            if n == 0 || users > 0 {
                return Err(StoreError::NotFound("setup token".into()));
            }
            insert_user_tx(tx, &admin)?;
            append_audit_tx(tx, &audit)?;
            Ok(())
        })
        .await
    }

    async fn create_session(&self, s: &Session, t: &RefreshToken) -> StoreResult<()> {
        let (s, t) = (s.clone(), t.clone());
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO sessions (id, user_id, created_at, last_seen, revoked_at) VALUES (?1, ?2, ?3, ?4, NULL)",
                params![s.id, s.user_id, ts(s.created_at), ts(s.last_seen)],
            )
            .map_err(map_sql)?;
            tx.execute(
                "INSERT INTO refresh_tokens (token_hash, session_id, user_id, expires_at, used_at) VALUES (?1, ?2, ?3, ?4, NULL)",
                params![t.token_hash, t.session_id, t.user_id, ts(t.expires_at)],
            )
            .map_err(map_sql)?;
            Ok(())
        })
        .await
    }

    async fn session(&self, id: &str) -> StoreResult<Option<Session>> {
        let id = id.to_string();
        self.read(move |c| {
            let raw = c
                .query_row(
                    "SELECT id, user_id, created_at, last_seen, revoked_at FROM sessions WHERE id = ?1",
                    [id],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, Option<String>>(4)?,
                        ))
                    },
                )
                .optional()
                .map_err(backend)?;
            raw.map(|(id, user_id, created, seen, revoked)| {
                Ok(Session {
                    id,
                    user_id,
                    created_at: parse_ts(&created)?,
                    last_seen: parse_ts(&seen)?,
                    revoked_at: revoked.as_deref().map(parse_ts).transpose()?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn touch_session(&self, id: &str, at: OffsetDateTime) -> StoreResult<()> {
        let id = id.to_string();
        self.write(move |tx| {
            tx.execute(
                "UPDATE sessions SET last_seen = ?2 WHERE id = ?1 AND last_seen < ?2",
                params![id, ts(at)],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn revoke_session(&self, id: &str, at: OffsetDateTime) -> StoreResult<()> {
        let id = id.to_string();
        self.write(move |tx| {
            tx.execute(
                "UPDATE sessions SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, ts(at)],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn revoke_user_sessions(&self, user_id: &str, at: OffsetDateTime) -> StoreResult<()> {
        let user_id = user_id.to_string();
        self.write(move |tx| {
            tx.execute(
                "UPDATE sessions SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
                params![user_id, ts(at)],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        new: &RefreshToken,
        now: OffsetDateTime,
    ) -> StoreResult<RotateOutcome> {
        let (old_hash, new) = (old_hash.to_string(), new.clone());
        self.write(move |tx| {
            let row = tx
                .query_row(
                    "SELECT t.session_id, t.expires_at, t.used_at, s.user_id, s.created_at, s.last_seen, s.revoked_at
                     FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = ?1",
                    [&old_hash],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, Option<String>>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, String>(4)?,
                            r.get::<_, String>(5)?,
                            r.get::<_, Option<String>>(6)?,
                        ))
                    },
                )
                .optional()
                .map_err(backend)?;
            let Some((session_id, expires, used, user_id, created, seen, revoked)) = row else {
                return Ok(RotateOutcome::Invalid);
            };
            if used.is_some() {
                tx.execute(
                    "UPDATE sessions SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                    params![session_id, ts(now)],
                )
                .map_err(backend)?;
                return Ok(RotateOutcome::Reused);
            }
            if revoked.is_some() || parse_ts(&expires)? <= now {
                return Ok(RotateOutcome::Invalid);
            }
            tx.execute(
                "UPDATE refresh_tokens SET used_at = ?2 WHERE token_hash = ?1",
                params![old_hash, ts(now)],
            )
            .map_err(backend)?;
            tx.execute(
                "INSERT INTO refresh_tokens (token_hash, session_id, user_id, expires_at, used_at) VALUES (?1, ?2, ?3, ?4, NULL)",
                params![new.token_hash, session_id, user_id, ts(new.expires_at)],
            )
            .map_err(map_sql)?;
            Ok(RotateOutcome::Rotated(Session {
                id: session_id,
                user_id,
                created_at: parse_ts(&created)?,
                last_seen: parse_ts(&seen)?,
                revoked_at: None,
            }))
        })
        .await
    }

    async fn insert_flow(&self, flow: &Flow, audit: &[NewAudit]) -> StoreResult<()> {
        let (flow, audit) = (flow.clone(), audit.to_vec());
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO flows (flow_id, version, status, effective_date, pipeline, doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    flow.flow_id,
                    flow.version,
                    flow.status.as_str(),
                    flow.effective_date.map(ts),
                    flow.content.pipeline,
                    flow_doc(&flow)?
                ],
            )
            .map_err(|e| match map_sql(e) {
                StoreError::Duplicate(_) => {
                    StoreError::Duplicate(format!("flow {} version {}", flow.flow_id, flow.version))
                }
                other => other,
            })?;
            append_audit_tx(tx, &audit)?;
            Ok(())
        })
        .await
    }

    async fn save_draft(&self, flow: &Flow, audit: &[NewAudit]) -> StoreResult<()> {
        let (flow, audit) = (flow.clone(), audit.to_vec());
        self.write(move |tx| {
            let n = tx
                .execute(
                    "UPDATE flows SET pipeline = ?3, doc = ?4 WHERE flow_id = ?1 AND version = ?2 AND status = 'draft'",
                    params![flow.flow_id, flow.version, flow.content.pipeline, flow_doc(&flow)?],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::Conflict);
            }
            append_audit_tx(tx, &audit)?;
            Ok(())
        })
        .await
    }

    async fn publish_flow(
        &self,
        published: &Flow,
        archived: Option<&Flow>,
        audit: &[NewAudit],
    ) -> StoreResult<()> {
        let (published, archived, audit) = (published.clone(), archived.cloned(), audit.to_vec());
        self.write(move |tx| {
            if let Some(a) = &archived {
                let n = tx
                    .execute(
                        "UPDATE flows SET status = ?3, doc = ?4 WHERE flow_id = ?1 AND version = ?2 AND status = 'active'",
                        params![a.flow_id, a.version, a.status.as_str(), flow_doc(a)?],
                    )
                    .map_err(backend)?;
                if n == 0 {
                    return Err(StoreError::Conflict);
                }
            }
            // No other active version may remain (a concurrent publish would leave two).
            let others: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM flows WHERE flow_id = ?1 AND status = 'active' AND version <> ?2",
                    params![published.flow_id, published.version],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            if others > 0 {
                return Err(StoreError::Conflict);
            }
            let n = tx
                .execute(
                    "UPDATE flows SET status = ?3, effective_date = ?4, doc = ?5 WHERE flow_id = ?1 AND version = ?2 AND status = 'draft'",
                    params![
                        published.flow_id,
                        published.version,
                        published.status.as_str(),
                        published.effective_date.map(ts),
                        flow_doc(&published)?
                    ],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::Conflict);
            }
            append_audit_tx(tx, &audit)?;
            Ok(())
        })
        .await
    }

    async fn archive_flow(&self, flow: &Flow, audit: &[NewAudit]) -> StoreResult<()> {
        let (flow, audit) = (flow.clone(), audit.to_vec());
        self.write(move |tx| {
            let n = tx
                .execute(
                    "UPDATE flows SET status = ?3, doc = ?4 WHERE flow_id = ?1 AND version = ?2 AND status = 'active'",
                    params![flow.flow_id, flow.version, flow.status.as_str(), flow_doc(&flow)?],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::Conflict);
            }
            append_audit_tx(tx, &audit)?;
            Ok(())
        })
        .await
    }

    async fn flow(&self, flow_id: &str, version: u32) -> StoreResult<Option<Flow>> {
        let flow_id = flow_id.to_string();
        self.read(move |c| {
            Ok(query_flows(
                c,
                "SELECT doc FROM flows WHERE flow_id = ?1 AND version = ?2",
                params![flow_id, version],
            )?
            .pop())
        })
        .await
    }

    async fn flow_versions(&self, flow_id: &str) -> StoreResult<Vec<Flow>> {
        let flow_id = flow_id.to_string();
        self.read(move |c| {
            query_flows(
                c,
                "SELECT doc FROM flows WHERE flow_id = ?1 ORDER BY version",
                [flow_id],
            )
        })
        .await
    }

    async fn list_flows(&self) -> StoreResult<Vec<Flow>> {
        self.read(|c| {
            query_flows(
                c,
                "SELECT f.doc FROM flows f JOIN (SELECT flow_id, MAX(version) AS v FROM flows GROUP BY flow_id) m
                 ON f.flow_id = m.flow_id AND f.version = m.v ORDER BY f.flow_id",
                [],
            )
        })
        .await
    }

    async fn active_flow(&self, flow_id: &str) -> StoreResult<Option<Flow>> {
        let flow_id = flow_id.to_string();
        self.read(move |c| {
            Ok(query_flows(
                c,
                "SELECT doc FROM flows WHERE flow_id = ?1 AND status = 'active' ORDER BY version DESC LIMIT 1",
                [flow_id],
            )?
            .pop())
        })
        .await
    }

    async fn next_batch_seq(&self, pipeline: &str, year: i32) -> StoreResult<u32> {
        let pipeline = pipeline.to_string();
        self.write(move |tx| {
            tx.query_row(
                "INSERT INTO batch_counters (pipeline, year, last) VALUES (?1, ?2, 1)
                 ON CONFLICT(pipeline, year) DO UPDATE SET last = last + 1 RETURNING last",
                params![pipeline, year],
                |r| r.get::<_, i64>(0),
            )
            .map_err(backend)
            .and_then(|n| u32::try_from(n).map_err(corrupt))
        })
        .await
    }

    async fn insert_batch(&self, b: &BatchRecord, created: &RecordedEvent) -> StoreResult<()> {
        let (b, created) = (b.clone(), created.clone());
        self.write(move |tx| {
            let s = &b.state;
            insert_batch_row_tx(tx, &b)?;
            insert_events_tx(tx, &s.batch_id.to_string(), std::slice::from_ref(&created))?;
            let station = sqlite_readmodel::visit_station(s.status, b.current_station.as_deref());
            sqlite_readmodel::project(tx, s, std::slice::from_ref(&created), station)?;
            Ok(())
        })
        .await
    }

    async fn import_batches(&self, batches: Vec<ImportedBatch>) -> StoreResult<()> {
        self.write(move |tx| {
            for ib in &batches {
                let s = &ib.record.state;
                if ib.stations_after.len() != ib.events.len() {
                    return Err(backend("import: one station-after per event is needed"));
                }
                insert_batch_row_tx(tx, &ib.record)?;
                insert_events_tx(tx, &s.batch_id.to_string(), &ib.events)?;
                for (e, station) in ib.events.iter().zip(&ib.stations_after) {
                    sqlite_readmodel::project(tx, s, std::slice::from_ref(e), station.as_deref())?;
                }
                // Keep the number sequence ahead of imported numbers.
                if let Ok(n) = metcon_shared::batch_number::BatchNumber::parse(&s.batch_number) {
                    tx.prepare_cached(
                        "INSERT INTO batch_counters (pipeline, year, last) VALUES (?1, ?2, ?3)
                         ON CONFLICT(pipeline, year) DO UPDATE SET last = MAX(last, excluded.last)",
                    )
                    .map_err(backend)?
                    .execute(params![s.pipeline, n.year, n.seq])
                    .map_err(backend)?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn append_batch_events(
        &self,
        b: &BatchRecord,
        expected_version: u64,
        events: &[RecordedEvent],
        audit: &[NewAudit],
    ) -> StoreResult<()> {
        let (b, events, audit) = (b.clone(), events.to_vec(), audit.to_vec());
        self.write(move |tx| append_batch_tx(tx, &b, expected_version, &events, &audit))
            .await
    }

    async fn batch(&self, id: uuid::Uuid) -> StoreResult<Option<BatchRecord>> {
        self.read(move |c| {
            c.query_row(
                "SELECT state, current_station, current_step FROM batches WHERE id = ?1",
                [id.to_string()],
                batch_from_row,
            )
            .optional()
            .map_err(backend)?
            .map(finish_batch)
            .transpose()
        })
        .await
    }

    async fn batch_events(&self, id: uuid::Uuid) -> StoreResult<Vec<RecordedEvent>> {
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached("SELECT doc FROM batch_events WHERE batch_id = ?1 ORDER BY seq")
                .map_err(backend)?;
            let docs = stmt
                .query_map([id.to_string()], |r| r.get::<_, String>(0))
                .map_err(backend)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(backend)?;
            docs.iter()
                .map(|d| serde_json::from_str(d).map_err(corrupt))
                .collect()
        })
        .await
    }

    async fn list_batches(&self, f: &BatchFilter) -> StoreResult<Page<BatchRecord>> {
        let f = f.clone();
        self.read(move |c| {
            let mut clauses = Vec::new();
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            if let Some(s) = f.status {
                args.push(s.as_str().to_string().into());
                clauses.push(format!("status = ?{}", args.len()));
            }
            if let Some(s) = &f.station {
                args.push(s.clone().into());
                clauses.push(format!("current_station = ?{}", args.len()));
            }
            if let Some(p) = &f.pipeline {
                args.push(p.clone().into());
                clauses.push(format!("pipeline = ?{}", args.len()));
            }
            if let Some(fl) = &f.flow_id {
                args.push(fl.clone().into());
                clauses.push(format!("flow_id = ?{}", args.len()));
            }
            if let Some(stations) = &f.stations_in {
                if stations.is_empty() {
                    clauses.push("0".into());
                } else {
                    let mut marks = Vec::new();
                    for s in stations {
                        args.push(s.clone().into());
                        marks.push(format!("?{}", args.len()));
                    }
                    clauses.push(format!("current_station IN ({})", marks.join(", ")));
                }
            }
            let filter = if clauses.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", clauses.join(" AND "))
            };
            let total: i64 = c
                .query_row(
                    &format!("SELECT COUNT(*) FROM batches {filter}"),
                    rusqlite::params_from_iter(args.iter()),
                    |r| r.get(0),
                )
                .map_err(backend)?;
            let page = f.page.max(1);
            let offset = (page as i64 - 1) * PAGE_SIZE as i64;
            let mut stmt = c
                .prepare(&format!(
                    "SELECT state, current_station, current_step FROM batches {filter}
                     ORDER BY CASE priority WHEN 'high' THEN 0 ELSE 1 END, created_at DESC LIMIT {PAGE_SIZE} OFFSET {offset}"
                ))
                .map_err(backend)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(args.iter()), batch_from_row)
                .map_err(backend)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(backend)?;
            Ok(Page {
                items: rows.into_iter().map(finish_batch).collect::<StoreResult<_>>()?,
                page,
                per_page: PAGE_SIZE,
                total: total as u64,
            })
        })
        .await
    }

    async fn wip_board(&self) -> StoreResult<Vec<WipCell>> {
        self.read(|c| {
            let mut stmt = c
                .prepare(
                    "SELECT current_station, status, COUNT(*), MIN(updated_at) FROM batches
                     WHERE status <> 'completed' GROUP BY current_station, status ORDER BY current_station, status",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                })
                .map_err(backend)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(backend)?;
            rows.into_iter()
                .map(|(station, status, count, oldest)| {
                    Ok(WipCell {
                        station,
                        status: status.parse().map_err(corrupt)?,
                        count: count as u64,
                        oldest_update: parse_ts(&oldest)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn append_audit(&self, entry: &NewAudit) -> StoreResult<AuditRecord> {
        let entry = entry.clone();
        self.write(move |tx| {
            append_audit_tx(tx, std::slice::from_ref(&entry))?
                .pop()
                .ok_or_else(|| backend("audit append returned nothing"))
        })
        .await
    }

    async fn audit_records(&self, after: u64, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        self.audit_search(&AuditFilter::default(), AuditCursor::After(after), limit)
            .await
    }

    async fn audit_search(
        &self,
        filter: &AuditFilter,
        cursor: AuditCursor,
        limit: u32,
    ) -> StoreResult<Vec<AuditRecord>> {
        use rusqlite::types::Value as Sql;
        let mut sql = String::from(
            "SELECT seq, at, actor, action, target, details, ip, prev_hash, hash FROM audit WHERE 1 = 1",
        );
        let mut args: Vec<Sql> = Vec::new();
        let mut arg = |sql: &mut String, clause: &str, v: Sql| {
            args.push(v);
            sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
        };
        let order = match cursor {
            AuditCursor::After(after) => {
                arg(&mut sql, " AND seq > ?", Sql::Integer(after as i64));
                "ASC"
            }
            AuditCursor::Before(before) => {
                if let Some(b) = before {
                    arg(&mut sql, " AND seq < ?", Sql::Integer(b as i64));
                }
                "DESC"
            }
        };
        if let Some(a) = &filter.actor {
            arg(&mut sql, " AND actor = ?", Sql::Text(a.clone()));
        }
        if let Some(a) = &filter.action {
            arg(&mut sql, " AND action = ?", Sql::Text(a.clone()));
        }
        match &filter.target {
            Some(t) if filter.target_exact => {
                arg(&mut sql, " AND target = ?", Sql::Text(t.clone()));
            }
            // instr: a plain, case-sensitive substring (LIKE would treat % and _ as patterns).
            Some(t) => arg(&mut sql, " AND instr(target, ?) > 0", Sql::Text(t.clone())),
            None => {}
        }
        let (lower, upper) = filter.day_bounds();
        if let Some(l) = lower {
            arg(&mut sql, " AND at >= ?", Sql::Text(l));
        }
        if let Some(u) = upper {
            arg(&mut sql, " AND at < ?", Sql::Text(u));
        }
        arg(
            &mut sql,
            &format!(" ORDER BY seq {order} LIMIT ?"),
            Sql::Integer(i64::from(limit)),
        );
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&sql).map_err(backend)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, Option<String>>(6)?,
                        r.get::<_, String>(7)?,
                        r.get::<_, String>(8)?,
                    ))
                })
                .map_err(backend)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(backend)?;
            rows.into_iter()
                .map(
                    |(seq, at, actor, action, target, details, ip, prev_hash, hash)| {
                        Ok(AuditRecord {
                            seq: seq as u64,
                            entry: NewAudit {
                                at: parse_ts(&at)?,
                                actor,
                                action,
                                target,
                                details: serde_json::from_str(&details).map_err(corrupt)?,
                                ip,
                            },
                            prev_hash,
                            hash,
                        })
                    },
                )
                .collect()
        })
        .await
    }

    async fn audit_head(&self) -> StoreResult<Option<AuditHead>> {
        self.read(|c| {
            c.query_row("SELECT seq, hash FROM audit_head WHERE id = 1", [], |r| {
                Ok(AuditHead {
                    seq: r.get::<_, i64>(0)? as u64,
                    hash: r.get(1)?,
                })
            })
            .optional()
            .map_err(backend)
        })
        .await
    }
}
