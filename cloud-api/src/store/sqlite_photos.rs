//! [`PhotoStore`] on SQLite: one row per record, the document as JSON beside the columns it
//! is found by. Records are evidence: a trigger refuses deletes, and only the event link
//! may be set, once.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};
use uuid::Uuid;

use super::photos::{PhotoRecord, PhotoStore};
use super::sqlite::{append_audit_tx, backend, corrupt, map_sql, ts, SqliteStore};
use super::{NewAudit, StoreError, StoreResult};

/// Schema version 5: photo evidence metadata.
pub(super) const MIGRATION: &str = r#"
CREATE TABLE photos (
    id TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    batch_id TEXT,
    uploaded_at TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX photos_sha256 ON photos (sha256);
CREATE INDEX photos_batch ON photos (batch_id, uploaded_at);
CREATE TRIGGER photos_append_only_d BEFORE DELETE ON photos
BEGIN SELECT RAISE(ABORT, 'photo records are evidence'); END;
"#;

/// Schema version 6: a device's frames, newest first (the region editor's latest frame).
pub(super) const MIGRATION_DEVICE_FRAMES: &str = r#"
CREATE INDEX photos_device ON photos (json_extract(doc, '$.source.device_id'), uploaded_at);
"#;

fn from_json(s: &str) -> StoreResult<PhotoRecord> {
    serde_json::from_str(s).map_err(corrupt)
}

fn collect(c: &rusqlite::Connection, sql: &str, key: &str) -> StoreResult<Vec<PhotoRecord>> {
    let mut st = c.prepare_cached(sql).map_err(backend)?;
    let rows = st
        .query_map([key], |r| r.get::<_, String>(0))
        .map_err(backend)?;
    rows.map(|r| from_json(&r.map_err(backend)?)).collect()
}

#[async_trait]
impl PhotoStore for SqliteStore {
    async fn insert_photo(&self, photo: &PhotoRecord, audit: &[NewAudit]) -> StoreResult<()> {
        let (p, audit) = (photo.clone(), audit.to_vec());
        self.write(move |tx| {
            let doc = serde_json::to_string(&p).map_err(backend)?;
            tx.execute(
                "INSERT INTO photos (id, sha256, batch_id, uploaded_at, doc) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    p.id.to_string(),
                    p.sha256,
                    p.batch_id.map(|b| b.to_string()),
                    ts(p.uploaded_at),
                    doc
                ],
            )
            .map_err(|e| match map_sql(e) {
                StoreError::Duplicate(_) => StoreError::Duplicate(format!("photo {}", p.id)),
                other => other,
            })?;
            append_audit_tx(tx, &audit)?;
            Ok(())
        })
        .await
    }

    async fn link_photo_event(&self, id: Uuid, event_seq: u64) -> StoreResult<()> {
        self.write(move |tx| {
            let doc: Option<String> = tx
                .query_row(
                    "SELECT doc FROM photos WHERE id = ?1",
                    [id.to_string()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            let mut p =
                from_json(&doc.ok_or_else(|| StoreError::NotFound(format!("photo {id}")))?)?;
            match p.event_seq {
                Some(s) if s == event_seq => return Ok(()),
                Some(_) => return Err(StoreError::Conflict),
                None => p.event_seq = Some(event_seq),
            }
            let doc = serde_json::to_string(&p).map_err(backend)?;
            tx.execute(
                "UPDATE photos SET doc = ?2 WHERE id = ?1",
                params![id.to_string(), doc],
            )
            .map_err(map_sql)?;
            Ok(())
        })
        .await
    }

    async fn photo(&self, id: Uuid) -> StoreResult<Option<PhotoRecord>> {
        self.read(move |c| {
            c.query_row(
                "SELECT doc FROM photos WHERE id = ?1",
                [id.to_string()],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map_err(backend)?
            .map(|d| from_json(&d))
            .transpose()
        })
        .await
    }

    async fn photos_by_sha256(&self, sha256: &str) -> StoreResult<Vec<PhotoRecord>> {
        let sha = sha256.to_string();
        self.read(move |c| {
            collect(
                c,
                "SELECT doc FROM photos WHERE sha256 = ?1 ORDER BY uploaded_at, id",
                &sha,
            )
        })
        .await
    }

    async fn photos_after(&self, after: Option<Uuid>, limit: u32) -> StoreResult<Vec<PhotoRecord>> {
        let after = after.map(|a| a.to_string()).unwrap_or_default();
        self.read(move |c| {
            let mut st = c
                .prepare_cached("SELECT doc FROM photos WHERE id > ?1 ORDER BY id LIMIT ?2")
                .map_err(backend)?;
            let rows = st
                .query_map(params![after, limit], |r| r.get::<_, String>(0))
                .map_err(backend)?;
            rows.map(|r| from_json(&r.map_err(backend)?)).collect()
        })
        .await
    }

    async fn latest_device_photo(&self, device_id: &str) -> StoreResult<Option<PhotoRecord>> {
        let device = device_id.to_string();
        self.read(move |c| {
            c.query_row(
                "SELECT doc FROM photos WHERE json_extract(doc, '$.source.device_id') = ?1 \
                 AND json_extract(doc, '$.source.kind') = 'device' \
                 ORDER BY uploaded_at DESC, id DESC LIMIT 1",
                [device],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map_err(backend)?
            .map(|d| from_json(&d))
            .transpose()
        })
        .await
    }

    async fn photos_for_batch(&self, batch_id: Uuid) -> StoreResult<Vec<PhotoRecord>> {
        self.read(move |c| {
            collect(
                c,
                "SELECT doc FROM photos WHERE batch_id = ?1 ORDER BY uploaded_at, id",
                &batch_id.to_string(),
            )
        })
        .await
    }
}
