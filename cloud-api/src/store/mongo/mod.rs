//! The MongoDB backend: the production store for plants that outgrow one box.
//!
//! It follows the seed's document model. A batch is one document holding its current state,
//! its append-only `events` and its `flags`, plus the analytics read model of that batch
//! (`mass_checks`, `exceptions`, `visits`, see [`projection`]) so that an append (one
//! conditional `update_one` on `{_id, version}`) changes state, events and read model in one
//! atomic single-document write. Flows are one document per `(flow_id, version)`; users,
//! sessions, refresh tokens, setup tokens, counters and the audit chain have their own
//! collections (module per collection family: [`users`], [`sessions`], [`flows`],
//! [`batches`], [`audit`]; reports in [`reports`], indexes in [`indexes`]).
//!
//! Writes that must be atomic with their audit records run in multi-document transactions
//! ([`txn`]), which MongoDB offers only on replica sets and sharded clusters; [`MongoStore::open`]
//! checks `hello` and refuses a standalone server unless told that the server accepts
//! transactions standalone (wire-protocol stand-ins used in tests do).
//!
//! Adding a collection family (devices, readings, photos, …): a module with an
//! `impl MongoStore` block, its collection in [`Collections`], its indexes in [`indexes`].

mod audit;
mod batches;
pub(crate) mod codec;
mod devices;
mod flows;
mod indexes;
mod photos;
mod projection;
mod reports;
mod sessions;
mod snapshot;
pub(crate) mod txn;
mod users;

use std::time::Duration;

use async_trait::async_trait;
use metcon_shared::batch::RecordedEvent;
use metcon_shared::flow::Flow;
use mongodb::bson::{doc, Document};
use mongodb::options::ClientOptions;
use mongodb::{Client, ClientSession, Collection, Database};
use time::OffsetDateTime;

use self::codec::backend;
use super::*;

/// The database used when the URI names none.
pub const DEFAULT_DATABASE: &str = "metcon";

/// How the backend connects.
#[derive(Debug, Clone, Default)]
pub struct MongoOptions {
    /// Accept a standalone server (no replica set) as supporting transactions. Real MongoDB
    /// refuses transactions on a standalone `mongod`; some wire-protocol servers accept them.
    /// Leave off in production.
    pub standalone_transactions: bool,
}

/// The collections, one handle each.
#[derive(Debug, Clone)]
pub(crate) struct Collections {
    pub(crate) users: Collection<Document>,
    pub(crate) setup_tokens: Collection<Document>,
    pub(crate) sessions: Collection<Document>,
    pub(crate) refresh_tokens: Collection<Document>,
    pub(crate) flows: Collection<Document>,
    pub(crate) batches: Collection<Document>,
    pub(crate) batch_counters: Collection<Document>,
    /// Internal counters: report generation, batch row numbers, per-flow publish locks.
    pub(crate) counters: Collection<Document>,
    pub(crate) audit: Collection<Document>,
    pub(crate) audit_head: Collection<Document>,
    pub(crate) devices: Collection<Document>,
    pub(crate) device_keys: Collection<Document>,
    pub(crate) enrollment_codes: Collection<Document>,
    pub(crate) readings: Collection<Document>,
    pub(crate) reading_stats: Collection<Document>,
    pub(crate) ingest_rejections: Collection<Document>,
    pub(crate) arms: Collection<Document>,
    pub(crate) calibrations: Collection<Document>,
    pub(crate) device_presence: Collection<Document>,
    pub(crate) presence_changes: Collection<Document>,
    pub(crate) photos: Collection<Document>,
}

impl Collections {
    fn new(db: &Database) -> Collections {
        Collections {
            users: db.collection("users"),
            setup_tokens: db.collection("setup_tokens"),
            sessions: db.collection("sessions"),
            refresh_tokens: db.collection("refresh_tokens"),
            flows: db.collection("flows"),
            batches: db.collection("batches"),
            batch_counters: db.collection("batch_counters"),
            counters: db.collection("counters"),
            audit: db.collection("audit"),
            audit_head: db.collection("audit_head"),
            devices: db.collection("devices"),
            device_keys: db.collection("device_keys"),
            enrollment_codes: db.collection("enrollment_codes"),
            readings: db.collection("readings"),
            reading_stats: db.collection("reading_stats"),
            ingest_rejections: db.collection("ingest_rejections"),
            arms: db.collection("arms"),
            calibrations: db.collection("calibrations"),
            device_presence: db.collection("device_presence"),
            presence_changes: db.collection("presence_changes"),
            photos: db.collection("photos"),
        }
    }
}

/// What `hello` said about the deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Replica set name, if the server is a replica set member.
    pub set_name: Option<String>,
    /// A `mongos` router of a sharded cluster.
    pub mongos: bool,
    /// The server supports logical sessions (MongoDB ≥ 3.6 and not an arbiter).
    pub sessions: bool,
}

impl Topology {
    pub fn from_hello(hello: &Document) -> Topology {
        Topology {
            set_name: hello.get_str("setName").ok().map(str::to_string),
            mongos: hello.get_str("msg").ok() == Some("isdbgrid"),
            sessions: matches!(
                hello.get("logicalSessionTimeoutMinutes"),
                Some(mongodb::bson::Bson::Int32(_) | mongodb::bson::Bson::Int64(_))
            ),
        }
    }

    /// Whether METCON may rely on multi-document transactions here; `Err` says why not and
    /// what to do.
    pub fn check_transactions(&self, opts: &MongoOptions, host: &str) -> Result<(), String> {
        if !self.sessions {
            return Err(format!(
                "the MongoDB server at {host} does not support logical sessions (its hello reply has no \
                 logicalSessionTimeoutMinutes), so it cannot run the transactions METCON needs; use MongoDB 4.2 or newer \
                 as a replica set"
            ));
        }
        if self.set_name.is_none() && !self.mongos && !opts.standalone_transactions {
            return Err(format!(
                "the MongoDB server at {host} is a standalone server (its hello reply has no setName): MongoDB runs \
                 multi-document transactions, which METCON needs for audited writes, only on a replica set or a \
                 sharded cluster. Start mongod with --replSet rs0 and run rs.initiate() once (a one-member replica set \
                 is enough), and add ?replicaSet=rs0 to the URI. For a wire-protocol server that accepts transactions \
                 standalone (a test stand-in), set mongodb_standalone_transactions = true"
            ));
        }
        Ok(())
    }
}

/// The MongoDB store. Cheap to clone (the driver's client is a handle to a pool).
#[derive(Debug, Clone)]
pub struct MongoStore {
    client: Client,
    db: Database,
    c: Collections,
    topology: Topology,
}

/// Hides a password in a URI for messages.
pub fn redact_uri(uri: &str) -> String {
    match (uri.find("://"), uri.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &uri[scheme + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &uri[..scheme + 3], user, &uri[at..])
        }
        _ => uri.to_string(),
    }
}

impl MongoStore {
    /// Connects, checks that the deployment can run transactions (see [`Topology`]) and
    /// creates the indexes. The database is the one the URI names, else [`DEFAULT_DATABASE`].
    pub async fn open(uri: &str, opts: &MongoOptions) -> StoreResult<MongoStore> {
        let shown = redact_uri(uri);
        let mut options = ClientOptions::parse(uri)
            .await
            .map_err(|e| StoreError::Backend(format!("MongoDB URI {shown}: {e}")))?;
        options.app_name = Some("metcon-cloud".into());
        if options.server_selection_timeout.is_none() {
            options.server_selection_timeout = Some(Duration::from_secs(15));
        }
        let name = options
            .default_database
            .clone()
            .unwrap_or_else(|| DEFAULT_DATABASE.to_string());
        let client = Client::with_options(options).map_err(backend)?;
        let db = client.database(&name);
        let hello = db
            .run_command(doc! { "hello": 1 })
            .await
            .map_err(|e| StoreError::Backend(format!("cannot reach MongoDB at {shown}: {e}")))?;
        let topology = Topology::from_hello(&hello);
        topology
            .check_transactions(opts, &shown)
            .map_err(StoreError::Backend)?;
        let store = MongoStore {
            c: Collections::new(&db),
            client,
            db,
            topology,
        };
        indexes::ensure(&store.db).await?;
        tracing::info!(database = %name, set_name = ?store.topology.set_name, "MongoDB store open");
        Ok(store)
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    pub fn database_name(&self) -> &str {
        self.db.name()
    }

    /// Drops the whole database (tests use a fresh database each and drop it after).
    pub async fn drop_database(&self) -> StoreResult<()> {
        self.db.drop().await.map_err(backend)
    }

    pub(crate) async fn start_session(&self) -> StoreResult<ClientSession> {
        self.client.start_session().await.map_err(backend)
    }

    /// Moves the report generation on, after events were stored (see `report_generation`).
    /// Outside the write's transaction on purpose: one counter touched by every append
    /// inside transactions would make all appends conflict with each other.
    pub(crate) async fn bump_generation(&self) -> StoreResult<()> {
        self.c
            .counters
            .update_one(
                doc! { "_id": "report_generation" },
                doc! { "$inc": { "n": 1_i64 } },
            )
            .upsert(true)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl Store for MongoStore {
    async fn ping(&self) -> StoreResult<()> {
        self.db
            .run_command(doc! { "ping": 1 })
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn create_user(&self, user: &User, audit: &[NewAudit]) -> StoreResult<()> {
        self.insert_user(user, audit).await
    }
    async fn update_user(
        &self,
        user: &User,
        expected: OffsetDateTime,
        audit: &[NewAudit],
    ) -> StoreResult<()> {
        self.replace_user(user, expected, audit).await
    }
    async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>> {
        self.find_user(doc! { "_id": id }).await
    }
    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        self.find_user(doc! { "username": username }).await
    }
    async fn list_users(&self) -> StoreResult<Vec<User>> {
        self.all_users().await
    }
    async fn count_users(&self) -> StoreResult<u64> {
        self.c.users.count_documents(doc! {}).await.map_err(backend)
    }
    async fn set_setup_token(
        &self,
        token_hash: &str,
        expires_at: OffsetDateTime,
    ) -> StoreResult<()> {
        self.replace_setup_token(token_hash, expires_at).await
    }
    async fn consume_setup_token(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
        admin: &User,
        audit: &[NewAudit],
    ) -> StoreResult<()> {
        self.use_setup_token(token_hash, now, admin, audit).await
    }

    async fn create_session(&self, session: &Session, refresh: &RefreshToken) -> StoreResult<()> {
        self.insert_session(session, refresh).await
    }
    async fn session(&self, id: &str) -> StoreResult<Option<Session>> {
        self.find_session(id).await
    }
    async fn touch_session(&self, id: &str, at: OffsetDateTime) -> StoreResult<()> {
        self.touch(id, at).await
    }
    async fn revoke_session(&self, id: &str, at: OffsetDateTime) -> StoreResult<()> {
        self.revoke(doc! { "_id": id }, at).await
    }
    async fn revoke_user_sessions(&self, user_id: &str, at: OffsetDateTime) -> StoreResult<()> {
        self.revoke(doc! { "user_id": user_id }, at).await
    }
    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        new: &RefreshToken,
        now: OffsetDateTime,
    ) -> StoreResult<RotateOutcome> {
        self.rotate(old_hash, new, now).await
    }

    async fn insert_flow(&self, flow: &Flow, audit: &[NewAudit]) -> StoreResult<()> {
        self.insert_flow_version(flow, audit).await
    }
    async fn save_draft(&self, flow: &Flow, audit: &[NewAudit]) -> StoreResult<()> {
        self.replace_draft(flow, audit).await
    }
    async fn publish_flow(
        &self,
        published: &Flow,
        archived: Option<&Flow>,
        audit: &[NewAudit],
    ) -> StoreResult<()> {
        self.publish(published, archived, audit).await
    }
    async fn archive_flow(&self, flow: &Flow, audit: &[NewAudit]) -> StoreResult<()> {
        self.archive(flow, audit).await
    }
    async fn flow(&self, flow_id: &str, version: u32) -> StoreResult<Option<Flow>> {
        self.find_flow(doc! { "flow_id": flow_id, "version": version as i64 }, None)
            .await
    }
    async fn flow_versions(&self, flow_id: &str) -> StoreResult<Vec<Flow>> {
        self.find_flows(doc! { "flow_id": flow_id }).await
    }
    async fn list_flows(&self) -> StoreResult<Vec<Flow>> {
        self.latest_flows().await
    }
    async fn active_flow(&self, flow_id: &str) -> StoreResult<Option<Flow>> {
        self.find_flow(
            doc! { "flow_id": flow_id, "status": "active" },
            Some(doc! { "version": -1 }),
        )
        .await
    }

    async fn next_batch_seq(&self, pipeline: &str, year: i32) -> StoreResult<u32> {
        self.next_number(pipeline, year).await
    }
    async fn insert_batch(&self, batch: &BatchRecord, created: &RecordedEvent) -> StoreResult<()> {
        self.insert_new_batch(batch, created).await
    }
    async fn append_batch_events(
        &self,
        batch: &BatchRecord,
        expected_version: u64,
        events: &[RecordedEvent],
        audit: &[NewAudit],
    ) -> StoreResult<()> {
        self.append(batch, expected_version, events, audit).await
    }
    async fn import_batches(&self, batches: Vec<ImportedBatch>) -> StoreResult<()> {
        self.import(batches).await
    }
    async fn batch(&self, id: uuid::Uuid) -> StoreResult<Option<BatchRecord>> {
        self.find_batch(id).await
    }
    async fn batch_events(&self, id: uuid::Uuid) -> StoreResult<Vec<RecordedEvent>> {
        self.events_of(id).await
    }
    async fn list_batches(&self, filter: &BatchFilter) -> StoreResult<Page<BatchRecord>> {
        self.batch_page(filter).await
    }
    async fn wip_board(&self) -> StoreResult<Vec<WipCell>> {
        self.wip_cells().await
    }

    async fn append_audit(&self, entry: &NewAudit) -> StoreResult<AuditRecord> {
        self.append_audit_one(entry).await
    }
    async fn audit_records(&self, after: u64, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        self.audit_page(after, limit).await
    }
    async fn audit_search(
        &self,
        filter: &AuditFilter,
        cursor: AuditCursor,
        limit: u32,
    ) -> StoreResult<Vec<AuditRecord>> {
        self.audit_find(filter, cursor, limit).await
    }
    async fn audit_head(&self) -> StoreResult<Option<AuditHead>> {
        self.audit_head_doc().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standalone_server_is_refused_unless_it_is_declared_a_stand_in() {
        let standalone = Topology::from_hello(
            &doc! { "isWritablePrimary": true, "logicalSessionTimeoutMinutes": 30 },
        );
        let err = standalone
            .check_transactions(&MongoOptions::default(), "h")
            .expect_err("standalone");
        assert!(
            err.contains("replica set") && err.contains("--replSet"),
            "{err}"
        );
        assert!(standalone
            .check_transactions(
                &MongoOptions {
                    standalone_transactions: true
                },
                "h"
            )
            .is_ok());
        let rs = Topology::from_hello(
            &doc! { "setName": "rs0", "logicalSessionTimeoutMinutes": 30_i64 },
        );
        assert!(rs.check_transactions(&MongoOptions::default(), "h").is_ok());
        let mongos =
            Topology::from_hello(&doc! { "msg": "isdbgrid", "logicalSessionTimeoutMinutes": 30 });
        assert!(mongos
            .check_transactions(&MongoOptions::default(), "h")
            .is_ok());
        let old = Topology::from_hello(&doc! { "setName": "rs0" });
        assert!(old
            .check_transactions(
                &MongoOptions {
                    standalone_transactions: true
                },
                "h"
            )
            .expect_err("no sessions")
            .contains("logical sessions"));
    }

    #[test]
    fn passwords_are_hidden_in_uris() {
        assert_eq!(
            redact_uri("mongodb://metcon:s3cret@db1:27017,db2/metcon?replicaSet=rs0"),
            "mongodb://metcon:***@db1:27017,db2/metcon?replicaSet=rs0"
        );
        assert_eq!(
            redact_uri("mongodb://127.0.0.1:27017/"),
            "mongodb://127.0.0.1:27017/"
        );
    }
}
