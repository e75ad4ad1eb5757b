//! Whole-store dumps and loads, for moving every record between backends
//! (`metcon-cloud export` / `import`, see `transfer`).
//!
//! What the [`Store`](super::Store) trait already reads (users, flow versions, batches by id,
//! the audit chain) is read through it; this trait adds what only a migration needs: every
//! session with its refresh tokens, every batch in a stable order, the number counters and the
//! setup token, and loads that store records exactly as they were (audit records keep their
//! hashes, so the chain still verifies). Loads are meant for an empty store.

use async_trait::async_trait;
use metcon_shared::batch::{BatchState, RecordedEvent};
use metcon_shared::flow::Flow;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{AuditHead, AuditRecord, StoreResult, User};

/// A session and its refresh tokens (hashes only), ordered by token hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionDump {
    pub id: String,
    pub user_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    pub refresh_tokens: Vec<RefreshTokenDump>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshTokenDump {
    pub token_hash: String,
    pub user_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub used_at: Option<OffsetDateTime>,
}

/// A batch with its whole event stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchDump {
    pub state: BatchState,
    pub current_station: Option<String>,
    pub current_step: Option<String>,
    pub events: Vec<RecordedEvent>,
}

/// Position in the dump order of batches: creation time (fixed-width UTC text), then id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct BatchKey {
    pub created_at: String,
    pub id: String,
}

impl BatchDump {
    pub fn key(&self) -> BatchKey {
        BatchKey {
            created_at: super::sqlite::ts(self.state.created_at),
            id: self.state.batch_id.to_string(),
        }
    }
}

/// The last number handed out in a `(pipeline, year)` batch number sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CounterDump {
    pub pipeline: String,
    pub year: i32,
    pub last: u32,
}

/// The pending one-time setup token (its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupTokenDump {
    pub token_hash: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// How many records of each kind a store holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotCounts {
    pub users: u64,
    pub sessions: u64,
    pub refresh_tokens: u64,
    pub flows: u64,
    pub batches: u64,
    pub events: u64,
    pub batch_counters: u64,
    pub setup_tokens: u64,
    pub audit_records: u64,
}

impl SnapshotCounts {
    pub fn is_empty(&self) -> bool {
        *self == SnapshotCounts::default()
    }
}

/// Dumps and loads of every record, on every backend.
#[async_trait]
pub trait SnapshotStore: Send + Sync {
    async fn snapshot_counts(&self) -> StoreResult<SnapshotCounts>;
    /// Every session, ordered by id.
    async fn dump_sessions(&self) -> StoreResult<Vec<SessionDump>>;
    /// Batches after `after` in (creation time, id) order, at most `limit`.
    async fn dump_batches(
        &self,
        after: Option<&BatchKey>,
        limit: u32,
    ) -> StoreResult<Vec<BatchDump>>;
    /// Ordered by (pipeline, year).
    async fn dump_counters(&self) -> StoreResult<Vec<CounterDump>>;
    async fn dump_setup_token(&self) -> StoreResult<Option<SetupTokenDump>>;

    /// Users as they are (password hashes included), without audit records.
    async fn load_users(&self, users: &[User]) -> StoreResult<()>;
    async fn load_sessions(&self, sessions: &[SessionDump]) -> StoreResult<()>;
    /// Flow versions as they are, whatever their status.
    async fn load_flows(&self, flows: &[Flow]) -> StoreResult<()>;
    /// Audit records exactly as they are; their hashes must still link.
    async fn load_audit(&self, records: &[AuditRecord]) -> StoreResult<()>;
    async fn load_audit_head(&self, head: &AuditHead) -> StoreResult<()>;
    async fn load_counters(&self, counters: &[CounterDump]) -> StoreResult<()>;
    async fn load_setup_token(&self, token: &SetupTokenDump) -> StoreResult<()>;
}
