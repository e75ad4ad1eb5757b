//! Storage: one trait, two backends.
//!
//! The trait follows the seed's document model so that the MongoDB backend (its own issue)
//! maps one-to-one: a batch is one record holding its current state plus its append-only
//! events; flows are one record per `(flow_id, version)`; users, sessions and the audit chain
//! are their own collections. SQLite ([`sqlite`]) is the embedded default; MongoDB
//! ([`mongo`]) the production store. [`snapshot`] dumps and loads whole stores (export /
//! import between backends).
//!
//! Guarantees every backend must give:
//! - `append_batch_events` is atomic and conditional on the stored batch version: of two
//!   concurrent appends with the same expected version exactly one wins, the other gets
//!   [`StoreError::Conflict`] and nothing of it is written.
//! - Audit records passed along with a write are committed in the same transaction, and the
//!   audit chain is extended under the same lock, so the chain never forks.

pub mod devices;
pub mod model;
pub mod mongo;
pub mod photos;
pub mod snapshot;
pub mod sqlite;
mod sqlite_devices;
mod sqlite_photos;
mod sqlite_query;
mod sqlite_readmodel;
mod sqlite_reports;
mod sqlite_snapshot;

use async_trait::async_trait;
use metcon_shared::batch::RecordedEvent;
use metcon_shared::flow::Flow;
use time::OffsetDateTime;

pub use model::*;
pub use sqlite_query::DEFAULT_STUCK_HOURS;
pub(crate) use sqlite_readmodel::visit_station;

use crate::reports::ReportStore;
use snapshot::SnapshotStore;

/// What can go wrong in a store, in words the API can map to a status code.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A concurrent writer changed the record first (optimistic concurrency).
    #[error("the record was changed by someone else; reload and try again")]
    Conflict,
    /// A unique key already exists.
    #[error("{0} already exists")]
    Duplicate(String),
    #[error("{0} not found")]
    NotFound(String),
    /// The change would leave no active admin: nobody could manage users any more. Checked
    /// inside the write, so two admins demoting each other at the same moment cannot both
    /// succeed.
    #[error("this is the last active admin; make another admin first")]
    LastAdmin,
    /// Stored data that does not decode: corruption or a foreign writer.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("storage backend failure: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Everything METCON persists. Implementations must be safe to share between tasks. The
/// analytics queries ([`ReportStore`]) are part of every store: their read model is written
/// in the same transactions as the events. So are whole-store dumps and loads
/// ([`SnapshotStore`]), for moving data between backends.
#[async_trait]
pub trait Store:
    ReportStore + SnapshotStore + devices::DeviceStore + photos::PhotoStore + Send + Sync + 'static
{
    /// Cheap liveness check of the backend, for the readiness endpoint.
    async fn ping(&self) -> StoreResult<()>;

    // --- users -------------------------------------------------------------------------
    async fn create_user(&self, user: &User, audit: &[NewAudit]) -> StoreResult<()>;
    /// Replaces a user's record, if it is still the one changed: `expected` is the
    /// `updated_at` it was read with, and another writer since then is a
    /// [`StoreError::Conflict`] (a rename must never write back the password hash a reset
    /// just replaced). Refused with [`StoreError::LastAdmin`] when the user was an active
    /// admin and no active admin would be left. A new password hash or a deactivation ends
    /// the user's sessions (revoked at the record's `updated_at`) in the same write, so no
    /// session outlives either.
    async fn update_user(
        &self,
        user: &User,
        expected: OffsetDateTime,
        audit: &[NewAudit],
    ) -> StoreResult<()>;
    async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>>;
    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>>;
    async fn list_users(&self) -> StoreResult<Vec<User>>;
    async fn count_users(&self) -> StoreResult<u64>;

    /// Stores the hash of the one-time setup token (replacing any earlier one).
    async fn set_setup_token(
        &self,
        token_hash: &str,
        expires_at: OffsetDateTime,
    ) -> StoreResult<()>;
    /// Consumes the setup token and creates the first admin in one transaction; fails with
    /// `NotFound` when the token is wrong, expired, used, or users already exist.
    async fn consume_setup_token(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
        admin: &User,
        audit: &[NewAudit],
    ) -> StoreResult<()>;

    // --- sessions and refresh tokens -----------------------------------------------------
    async fn create_session(&self, session: &Session, refresh: &RefreshToken) -> StoreResult<()>;
    async fn session(&self, id: &str) -> StoreResult<Option<Session>>;
    async fn touch_session(&self, id: &str, at: OffsetDateTime) -> StoreResult<()>;
    async fn revoke_session(&self, id: &str, at: OffsetDateTime) -> StoreResult<()>;
    async fn revoke_user_sessions(&self, user_id: &str, at: OffsetDateTime) -> StoreResult<()>;
    /// Exchanges a refresh token for a new one. A token presented twice revokes its session.
    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        new: &RefreshToken,
        now: OffsetDateTime,
    ) -> StoreResult<RotateOutcome>;

    // --- flows ---------------------------------------------------------------------------
    /// Inserts a new version; `Duplicate` if `(flow_id, version)` exists.
    async fn insert_flow(&self, flow: &Flow, audit: &[NewAudit]) -> StoreResult<()>;
    /// Replaces the content of a stored draft; `Conflict` if it is no longer a draft.
    async fn save_draft(&self, flow: &Flow, audit: &[NewAudit]) -> StoreResult<()>;
    /// Stores a published version and the version it archived, atomically; `Conflict` if
    /// either changed status in the meantime.
    async fn publish_flow(
        &self,
        published: &Flow,
        archived: Option<&Flow>,
        audit: &[NewAudit],
    ) -> StoreResult<()>;
    /// Stores an archived version; `Conflict` if it was not active.
    async fn archive_flow(&self, flow: &Flow, audit: &[NewAudit]) -> StoreResult<()>;
    async fn flow(&self, flow_id: &str, version: u32) -> StoreResult<Option<Flow>>;
    async fn flow_versions(&self, flow_id: &str) -> StoreResult<Vec<Flow>>;
    /// The latest version of every flow.
    async fn list_flows(&self) -> StoreResult<Vec<Flow>>;
    async fn active_flow(&self, flow_id: &str) -> StoreResult<Option<Flow>>;

    // --- batches -------------------------------------------------------------------------
    /// Allocates the next number in the `(pipeline, year)` sequence. Numbers are never reused.
    async fn next_batch_seq(&self, pipeline: &str, year: i32) -> StoreResult<u32>;
    /// Inserts a new batch with its `created` event; `Duplicate` if the number exists.
    async fn insert_batch(&self, batch: &BatchRecord, created: &RecordedEvent) -> StoreResult<()>;
    /// Appends events to a batch if its stored version is still `expected_version`, and
    /// stores `batch` (the state after the events) and `audit` in the same transaction.
    async fn append_batch_events(
        &self,
        batch: &BatchRecord,
        expected_version: u64,
        events: &[RecordedEvent],
        audit: &[NewAudit],
    ) -> StoreResult<()>;
    /// Bulk insert of whole batch histories (data generator, migrations from other systems):
    /// large transactions, same rows and read model as `insert_batch` + `append_batch_events`.
    /// No audit records are written; the caller audits the import as one action.
    async fn import_batches(&self, batches: Vec<ImportedBatch>) -> StoreResult<()>;
    async fn batch(&self, id: uuid::Uuid) -> StoreResult<Option<BatchRecord>>;
    async fn batch_events(&self, id: uuid::Uuid) -> StoreResult<Vec<RecordedEvent>>;
    async fn list_batches(&self, filter: &BatchFilter) -> StoreResult<Page<BatchRecord>>;
    /// Counts and oldest update per (current station, status) of unfinished batches.
    async fn wip_board(&self) -> StoreResult<Vec<WipCell>>;

    // --- audit ---------------------------------------------------------------------------
    async fn append_audit(&self, entry: &NewAudit) -> StoreResult<AuditRecord>;
    /// Records with `seq > after`, in order, at most `limit`.
    async fn audit_records(&self, after: u64, limit: u32) -> StoreResult<Vec<AuditRecord>>;
    /// At most `limit` records matching `filter`, from `cursor` on (the audit viewer).
    async fn audit_search(
        &self,
        filter: &AuditFilter,
        cursor: AuditCursor,
        limit: u32,
    ) -> StoreResult<Vec<AuditRecord>>;
    /// The chain head the store keeps beside the records (detects a deleted tail).
    async fn audit_head(&self) -> StoreResult<Option<AuditHead>>;
}
