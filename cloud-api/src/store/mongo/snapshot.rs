//! Whole-store dumps and loads of the MongoDB backend ([`SnapshotStore`]), for
//! `metcon-cloud export` / `import`.

use async_trait::async_trait;
use futures_util::TryStreamExt;
use metcon_shared::flow::Flow;
use mongodb::bson::{doc, Bson, Document};

use super::batches::{events_from, record_from};
use super::codec::*;
use super::flows::flow_doc;
use super::sessions::session_from;
use super::users::user_doc;
use super::MongoStore;
use crate::store::snapshot::*;
use crate::store::{AuditHead, AuditRecord, StoreResult, User};

/// Documents per `insert_many` when loading.
const CHUNK: usize = 1000;

impl MongoStore {
    async fn all(
        &self,
        coll: &mongodb::Collection<Document>,
        sort: Document,
    ) -> StoreResult<Vec<Document>> {
        coll.find(doc! {})
            .sort(sort)
            .await
            .map_err(backend)?
            .try_collect()
            .await
            .map_err(backend)
    }

    async fn insert_chunks(
        &self,
        coll: &mongodb::Collection<Document>,
        docs: Vec<Document>,
        what: &str,
    ) -> StoreResult<()> {
        let mut docs = docs.into_iter().peekable();
        while docs.peek().is_some() {
            let chunk: Vec<Document> = docs.by_ref().take(CHUNK).collect();
            coll.insert_many(chunk)
                .await
                .map_err(map_write(|| what.to_string()))?;
        }
        Ok(())
    }
}

#[async_trait]
impl SnapshotStore for MongoStore {
    async fn snapshot_counts(&self) -> StoreResult<SnapshotCounts> {
        let c = &self.c;
        let n = |coll: &mongodb::Collection<Document>| {
            let coll = coll.clone();
            async move { coll.count_documents(doc! {}).await.map_err(backend) }
        };
        let events = c
            .batches
            .aggregate(vec![
                doc! { "$group": { "_id": Bson::Null, "n": { "$sum": { "$size": "$events" } } } },
            ])
            .await
            .map_err(backend)?
            .try_collect::<Vec<Document>>()
            .await
            .map_err(backend)?
            .first()
            .map(|d| get_int(d, "n"))
            .transpose()?
            .unwrap_or(0) as u64;
        Ok(SnapshotCounts {
            users: n(&c.users).await?,
            sessions: n(&c.sessions).await?,
            refresh_tokens: n(&c.refresh_tokens).await?,
            flows: n(&c.flows).await?,
            batches: n(&c.batches).await?,
            events,
            batch_counters: n(&c.batch_counters).await?,
            setup_tokens: n(&c.setup_tokens).await?,
            audit_records: n(&c.audit).await?,
            devices: n(&c.devices).await?,
            device_keys: n(&c.device_keys).await?,
            enrollment_codes: n(&c.enrollment_codes).await?,
            calibrations: n(&c.calibrations).await?,
            arms: n(&c.arms).await?,
            presences: n(&c.device_presence).await?,
            presence_changes: n(&c.presence_changes).await?,
            readings: n(&c.readings).await?,
            rejections: n(&c.ingest_rejections).await?,
            photos: n(&c.photos).await?,
        })
    }

    async fn dump_sessions(&self) -> StoreResult<Vec<SessionDump>> {
        let sessions = self.all(&self.c.sessions, doc! { "_id": 1 }).await?;
        let tokens = self
            .all(&self.c.refresh_tokens, doc! { "session_id": 1, "_id": 1 })
            .await?;
        let mut by_session: std::collections::HashMap<String, Vec<RefreshTokenDump>> =
            Default::default();
        for t in &tokens {
            by_session
                .entry(get_str(t, "session_id")?.to_string())
                .or_default()
                .push(RefreshTokenDump {
                    token_hash: get_str(t, "_id")?.to_string(),
                    user_id: get_str(t, "user_id")?.to_string(),
                    expires_at: get_time(t, "expires_at")?,
                    used_at: get_opt_time(t, "used_at")?,
                });
        }
        sessions
            .iter()
            .map(|d| {
                let s = session_from(d)?;
                Ok(SessionDump {
                    refresh_tokens: by_session.remove(&s.id).unwrap_or_default(),
                    id: s.id,
                    user_id: s.user_id,
                    created_at: s.created_at,
                    last_seen: s.last_seen,
                    revoked_at: s.revoked_at,
                })
            })
            .collect()
    }

    async fn dump_batches(
        &self,
        after: Option<&BatchKey>,
        limit: u32,
    ) -> StoreResult<Vec<BatchDump>> {
        let filter = match after {
            None => doc! {},
            Some(k) => doc! { "$or": [
                { "created_at": { "$gt": &k.created_at } },
                { "created_at": &k.created_at, "_id": { "$gt": &k.id } },
            ] },
        };
        let docs: Vec<Document> = self
            .c
            .batches
            .find(filter)
            .sort(doc! { "created_at": 1, "_id": 1 })
            .limit(limit as i64)
            .projection(doc! { "state": 1, "flags": 1, "current_station": 1, "current_step": 1, "events": 1 })
            .await
            .map_err(backend)?
            .try_collect()
            .await
            .map_err(backend)?;
        docs.iter()
            .map(|d| {
                let r = record_from(d)?;
                Ok(BatchDump {
                    state: r.state,
                    current_station: r.current_station,
                    current_step: r.current_step,
                    events: events_from(d)?,
                })
            })
            .collect()
    }

    async fn dump_counters(&self) -> StoreResult<Vec<CounterDump>> {
        self.all(&self.c.batch_counters, doc! { "pipeline": 1, "year": 1 })
            .await?
            .iter()
            .map(|d| {
                Ok(CounterDump {
                    pipeline: get_str(d, "pipeline")?.to_string(),
                    year: get_int(d, "year")? as i32,
                    last: u32::try_from(get_int(d, "last")?).map_err(corrupt)?,
                })
            })
            .collect()
    }

    async fn dump_setup_token(&self) -> StoreResult<Option<SetupTokenDump>> {
        let d = self
            .c
            .setup_tokens
            .find_one(doc! {})
            .sort(doc! { "_id": 1 })
            .await
            .map_err(backend)?;
        d.map(|d| {
            Ok(SetupTokenDump {
                token_hash: get_str(&d, "_id")?.to_string(),
                expires_at: get_time(&d, "expires_at")?,
            })
        })
        .transpose()
    }

    async fn load_users(&self, users: &[User]) -> StoreResult<()> {
        self.insert_chunks(&self.c.users, users.iter().map(user_doc).collect(), "user")
            .await
    }

    async fn load_sessions(&self, sessions: &[SessionDump]) -> StoreResult<()> {
        let mut s_docs = Vec::with_capacity(sessions.len());
        let mut t_docs = Vec::new();
        for s in sessions {
            s_docs.push(doc! {
                "_id": &s.id,
                "user_id": &s.user_id,
                "created_at": ts(s.created_at),
                "last_seen": ts(s.last_seen),
                "revoked_at": s.revoked_at.map(ts).map(Bson::String).unwrap_or(Bson::Null),
            });
            for t in &s.refresh_tokens {
                t_docs.push(doc! {
                    "_id": &t.token_hash,
                    "session_id": &s.id,
                    "user_id": &t.user_id,
                    "expires_at": ts(t.expires_at),
                    "used_at": t.used_at.map(ts).map(Bson::String).unwrap_or(Bson::Null),
                });
            }
        }
        self.insert_chunks(&self.c.sessions, s_docs, "session")
            .await?;
        self.insert_chunks(&self.c.refresh_tokens, t_docs, "refresh token")
            .await
    }

    async fn load_flows(&self, flows: &[Flow]) -> StoreResult<()> {
        let docs = flows
            .iter()
            .map(flow_doc)
            .collect::<StoreResult<Vec<_>>>()?;
        self.insert_chunks(&self.c.flows, docs, "flow version")
            .await
    }

    async fn load_audit(&self, records: &[AuditRecord]) -> StoreResult<()> {
        self.load_audit_records(records).await
    }

    async fn load_audit_head(&self, head: &AuditHead) -> StoreResult<()> {
        self.store_audit_head(head).await
    }

    async fn load_counters(&self, counters: &[CounterDump]) -> StoreResult<()> {
        for c in counters {
            self.c
                .batch_counters
                .update_one(
                    doc! { "_id": format!("{}:{}", c.pipeline, c.year) },
                    doc! { "$max": { "last": c.last as i64 }, "$setOnInsert": { "pipeline": &c.pipeline, "year": c.year } },
                )
                .upsert(true)
                .await
                .map_err(backend)?;
        }
        Ok(())
    }

    async fn load_setup_token(&self, token: &SetupTokenDump) -> StoreResult<()> {
        self.c
            .setup_tokens
            .insert_one(doc! { "_id": &token.token_hash, "expires_at": ts(token.expires_at) })
            .await
            .map_err(map_write(|| "setup token".into()))?;
        Ok(())
    }

    async fn dump_enrollment_codes(&self) -> StoreResult<Vec<EnrollmentCodeDump>> {
        self.dump_enrollment_codes_all().await
    }

    async fn dump_readings(
        &self,
        after: Option<(&str, u64)>,
        limit: u32,
    ) -> StoreResult<Vec<ReadingDump>> {
        self.dump_readings_page(after, limit).await
    }

    async fn dump_rejections(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<(String, RejectionDump)>> {
        self.dump_rejections_page(after, limit).await
    }

    async fn load_device(&self, dump: &DeviceDump) -> StoreResult<()> {
        self.load_device_dump(dump).await
    }

    async fn load_readings(&self, readings: &[ReadingDump]) -> StoreResult<()> {
        self.load_reading_dumps(readings).await
    }

    async fn load_rejections(&self, rejections: &[RejectionDump]) -> StoreResult<()> {
        self.load_rejection_dumps(rejections).await
    }
}
