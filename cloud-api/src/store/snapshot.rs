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

use metcon_shared::calibration::CalibrationRecord;
use metcon_shared::reading::Reading;

use super::devices::{
    Arm, Device, DeviceKeyRecord, Presence, PresenceChange, ReadingBinding, Rejection,
};
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
    // The device fleet (absent from version 1 files, which had none).
    #[serde(default)]
    pub devices: u64,
    #[serde(default)]
    pub device_keys: u64,
    #[serde(default)]
    pub enrollment_codes: u64,
    #[serde(default)]
    pub calibrations: u64,
    #[serde(default)]
    pub arms: u64,
    #[serde(default)]
    pub presences: u64,
    #[serde(default)]
    pub presence_changes: u64,
    #[serde(default)]
    pub readings: u64,
    #[serde(default)]
    pub rejections: u64,
    /// Photo evidence records (absent from files written before photos were kept).
    #[serde(default)]
    pub photos: u64,
}

impl SnapshotCounts {
    pub fn is_empty(&self) -> bool {
        *self == SnapshotCounts::default()
    }
}

/// An enrollment code as stored (its hash, never the code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentCodeDump {
    pub code_hash: String,
    pub device_id: String,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub used_at: Option<OffsetDateTime>,
}

/// A device with everything that hangs off it but its readings and rejections: keys (oldest
/// first), enrollment codes (by hash), calibrations (oldest first), its last status and its
/// online/offline history (oldest first), and the step armed for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceDump {
    pub device: Device,
    pub keys: Vec<DeviceKeyRecord>,
    pub enrollment_codes: Vec<EnrollmentCodeDump>,
    pub calibrations: Vec<CalibrationRecord>,
    pub presence: Option<Presence>,
    pub presence_changes: Vec<PresenceChange>,
    pub arm: Option<Arm>,
}

/// A reading with its evidence: the COSE_Sign1 bytes exactly as received (base64).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadingDump {
    pub reading: Reading,
    #[serde(with = "b64")]
    pub envelope: Vec<u8>,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    pub binding: Option<ReadingBinding>,
}

/// A rejected message, with its quarantined envelope (base64) while it is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectionDump {
    pub rejection: Rejection,
    #[serde(with = "b64::option")]
    pub quarantined: Option<Vec<u8>>,
}

mod b64 {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
            match bytes {
                Some(b) => s.serialize_some(&STANDARD.encode(b)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|t| STANDARD.decode(t).map_err(serde::de::Error::custom))
                .transpose()
        }
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

    /// Every enrollment code, ordered by (device, hash).
    async fn dump_enrollment_codes(&self) -> StoreResult<Vec<EnrollmentCodeDump>>;
    /// Readings after `after` in (device, sequence) order, at most `limit`.
    async fn dump_readings(
        &self,
        after: Option<(&str, u64)>,
        limit: u32,
    ) -> StoreResult<Vec<ReadingDump>>;
    /// Rejections in the order they were stored, after the opaque `after` cursor (from an
    /// earlier page), at most `limit`; each with the cursor of its position.
    async fn dump_rejections(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<(String, RejectionDump)>>;
    /// A device and everything in its dump, in one transaction, as it was.
    async fn load_device(&self, dump: &DeviceDump) -> StoreResult<()>;
    /// Readings as they were (bindings included); per-device reading statistics follow.
    async fn load_readings(&self, readings: &[ReadingDump]) -> StoreResult<()>;
    /// Rejections in order.
    async fn load_rejections(&self, rejections: &[RejectionDump]) -> StoreResult<()>;
}
