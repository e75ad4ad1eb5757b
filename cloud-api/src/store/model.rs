//! Records the store keeps, shared by every backend.

use metcon_shared::batch::{BatchState, BatchStatus};
use metcon_shared::flow::FlowContent;
use metcon_shared::role::{Actor, Role};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A person who logs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub stations: Vec<String>,
    pub active: bool,
    /// Argon2id PHC string. Never serialized to API responses (see `http::users`).
    pub password_hash: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl User {
    pub fn actor(&self) -> Actor {
        Actor {
            user_id: self.id.clone(),
            username: self.username.clone(),
            role: self.role,
            stations: self.stations.clone(),
        }
    }
}

/// A login: what access tokens and refresh tokens hang off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    pub created_at: OffsetDateTime,
    pub last_seen: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
}

/// A refresh token, stored only as its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    pub token_hash: String,
    pub session_id: String,
    pub user_id: String,
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The old token was valid and is now spent; the new one is stored.
    Rotated(Session),
    /// The old token had been used before: its session is now revoked (token theft).
    Reused,
    /// Unknown, expired, or its session is revoked.
    Invalid,
}

/// A batch as stored: its state plus the denormalized position the WIP board indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRecord {
    pub state: BatchState,
    /// Station of the current step; `None` when all steps are done.
    pub current_station: Option<String>,
    pub current_step: Option<String>,
}

impl BatchRecord {
    /// Derives the denormalized position from the state and the pinned flow content.
    pub fn new(state: BatchState, flow: &FlowContent) -> BatchRecord {
        let (current_station, current_step) = match flow.step_at(state.cursor) {
            Some((station, step)) => (Some(station.station_id.clone()), Some(step.step_id.clone())),
            None => (None, None),
        };
        BatchRecord {
            state,
            current_station,
            current_step,
        }
    }
}

/// A whole batch history to import: the final record, its events, and for each event the
/// station the batch was at right after it (`None` before it started and once it is done).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedBatch {
    pub record: BatchRecord,
    pub events: Vec<metcon_shared::batch::RecordedEvent>,
    pub stations_after: Vec<Option<String>>,
}

/// Filters for listing batches. Pages hold 50 records.
#[derive(Debug, Clone, Default)]
pub struct BatchFilter {
    pub status: Option<BatchStatus>,
    pub station: Option<String>,
    pub pipeline: Option<String>,
    pub flow_id: Option<String>,
    /// Restrict to batches whose current station is one of these (operator scoping).
    pub stations_in: Option<Vec<String>>,
    /// 1-based page.
    pub page: u32,
}

pub const PAGE_SIZE: u32 = 50;

#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub page: u32,
    pub per_page: u32,
    pub total: u64,
}

/// One cell of the WIP board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WipCell {
    pub station: Option<String>,
    pub status: BatchStatus,
    pub count: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub oldest_update: OffsetDateTime,
}

/// An audit record to append; the store assigns `seq`, links the chain and hashes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAudit {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Username, or `system`, or `anonymous` for failed logins of unknown users.
    pub actor: String,
    /// e.g. `login`, `login_failed`, `user_created`, `flow_published`, `flag_approved`.
    pub action: String,
    /// What it was done to, e.g. `user:alice`, `flow:gold_refining@3`, `batch:B-2026-0001`.
    pub target: String,
    pub details: serde_json::Value,
    pub ip: Option<String>,
}

/// A stored audit record: one link of the hash chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: u64,
    #[serde(flatten)]
    pub entry: NewAudit,
    pub prev_hash: String,
    pub hash: String,
}

/// Which audit records to list (the audit viewer's filters); the filters combine with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// This actor exactly (a username, `system`, `anonymous`).
    pub actor: Option<String>,
    /// This action exactly, e.g. `user_deactivated`.
    pub action: Option<String>,
    /// Targets containing this text, e.g. `B-2026-0001` or `user:alice`.
    pub target: Option<String>,
    /// `target` is the whole target, not a part of it: `user:ann` is not `user:anna`.
    pub target_exact: bool,
    /// From the start of this UTC day.
    pub from: Option<time::Date>,
    /// To the end of this UTC day.
    pub to: Option<time::Date>,
}

impl AuditFilter {
    /// The bounds on the record's RFC 3339 UTC time as text: `at >= lower` and `at < upper`.
    /// Every stored time of a day starts with `YYYY-MM-DDT`, so comparing with bare days is
    /// exact whatever the fraction of a second.
    pub fn day_bounds(&self) -> (Option<String>, Option<String>) {
        let day =
            |d: time::Date| format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day());
        (
            self.from.map(day),
            self.to
                .map(|d| d.next_day().map(day).unwrap_or_else(|| "9999-99".into())),
        )
    }
}

/// Where a page of audit records starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditCursor {
    /// Oldest first, records with `seq > after`.
    After(u64),
    /// Newest first, records with `seq < before` (all of them if `None`).
    Before(Option<u64>),
}

/// The last link, kept beside the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditHead {
    pub seq: u64,
    pub hash: String,
}
