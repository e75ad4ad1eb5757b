//! Storage for the device fleet and what it sends: devices and their keys, one-time
//! enrollment codes, signed readings, rejected messages, armed mass-check steps, scale
//! calibrations and presence.
//!
//! A trait of its own beside [`super::Store`], one per aggregate family, so that each backend
//! implements it in its own module. Guarantees every backend must give:
//! - readings are identified by `(device, seq)`: [`DeviceStore::insert_readings`] stores a
//!   batch of them in one transaction (group commit) and reports, per reading, whether it
//!   was new, an identical re-delivery, or a different envelope for a known sequence number;
//! - consuming an enrollment code is atomic and works once;
//! - [`DeviceStore::bind_reading`] appends the batch events, marks the reading bound and
//!   removes the arm in one transaction, conditional on the batch version.

use async_trait::async_trait;
use metcon_shared::batch::RecordedEvent;
use metcon_shared::calibration::CalibrationRecord;
use metcon_shared::device::{CameraSettings, Region, ScaleSettings};
use metcon_shared::reading::{PublicKeyHex, Reading};
use metcon_shared::topic::{DeviceConfig, DeviceId, DeviceStatus};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{BatchRecord, NewAudit, StoreResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// Registered by an admin; waiting for the box to enroll.
    Pending,
    /// Enrolled: its key and broker login are valid.
    Active,
    /// Revoked: its broker login and signatures are refused.
    Revoked,
}

impl DeviceState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::Pending => "pending",
            DeviceState::Active => "active",
            DeviceState::Revoked => "revoked",
        }
    }
}

/// An edge device: the box beside one scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    pub id: DeviceId,
    pub name: String,
    pub site: String,
    pub station_id: String,
    pub scale: ScaleSettings,
    pub camera: CameraSettings,
    /// The display region in the camera's frames, drawn once by an admin.
    pub camera_region: Option<Region>,
    /// The configuration pushed on the retained `config` topic.
    pub config: DeviceConfig,
    pub state: DeviceState,
    /// SHA-256 (hex) of the device's broker password; the password itself is never stored.
    pub broker_secret_hash: Option<String>,
    pub hostname: Option<String>,
    pub agent_version: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub enrolled_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    pub revoked_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// One of a device's keys, valid for the entries with `seq >= from_seq` until the next key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceKeyRecord {
    pub device_id: String,
    pub public_key: PublicKeyHex,
    pub from_seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub registered_at: OffsetDateTime,
}

/// A one-time enrollment code, stored as its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentCode {
    pub code_hash: String,
    pub device_id: String,
    pub created_by: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// What consuming an enrollment code does to the device, in the same transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    pub public_key: PublicKeyHex,
    pub broker_secret_hash: String,
    pub agent_version: String,
    pub hostname: Option<String>,
    pub at: OffsetDateTime,
}

/// Why an enrollment code does not work. The same answer is given to the caller for all of
/// them, so that codes cannot be probed; the audit record keeps the real reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrollRefusal {
    Unknown,
    Expired,
    Used,
    DeviceNotPending,
}

/// A verified reading ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewReading {
    pub reading: Reading,
    /// The COSE_Sign1 bytes as received: the evidence.
    pub envelope: Vec<u8>,
    pub received_at: OffsetDateTime,
}

/// What happened to one reading of a group commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    Inserted,
    /// The same envelope again (a QoS 1 re-delivery): nothing stored.
    Duplicate,
    /// A different envelope for a `(device, seq)` already stored: refused.
    Conflict,
}

/// How a reading came to decide a mass check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BindingKind {
    /// The next stable reading after the step was armed.
    Armed,
    /// Attached by hand from the device's unbound readings, with a reason.
    Attached,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadingBinding {
    pub batch_id: Uuid,
    pub step_id: String,
    /// Sequence number of the `mass_checked` event in the batch.
    pub event_seq: u64,
    pub kind: BindingKind,
    pub by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// A stored reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredReading {
    pub reading: Reading,
    /// SHA-256 (hex) of the envelope.
    pub envelope_sha256: String,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    pub binding: Option<ReadingBinding>,
}

/// A mass-check step waiting for the next stable reading of a station's scale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arm {
    pub device_id: String,
    pub batch_id: Uuid,
    pub step_id: String,
    pub station_id: String,
    pub armed_by: String,
    /// Echoed by the device when it fulfils the capture.
    pub request_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub armed_at: OffsetDateTime,
}

/// A message the ingest pipeline refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The device the topic names, if it names one.
    pub device_id: Option<String>,
    pub topic: String,
    /// A stable code for reports: `bad_signature`, `unknown_device`, `revoked`, …
    pub reason: String,
    pub detail: String,
    pub size: u64,
    pub payload_sha256: String,
    /// Sequence number, when the envelope could be decoded.
    pub seq: Option<u64>,
    /// Kept for envelopes that failed their signature check, so that a key rotation that
    /// arrived late can re-check them (bounded by the envelope size limit).
    #[serde(skip)]
    pub quarantined: Option<Vec<u8>>,
}

/// The last status a device published, and when it arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    pub device_id: String,
    pub status: DeviceStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
}

/// Readings per device and rejections per device and reason, for fleet health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceCounts {
    pub device_id: String,
    pub readings: u64,
    pub unbound: u64,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_reading_at: Option<OffsetDateTime>,
    pub last_seq: Option<u64>,
}

/// Readings a device delivered in a time window, and how many of them are still unbound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadingCount {
    pub device_id: String,
    pub readings: u64,
    pub unbound: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectionCount {
    pub device_id: Option<String>,
    pub reason: String,
    pub count: u64,
}

/// An online/offline transition, for offline-time reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceChange {
    pub device_id: String,
    pub online: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

#[async_trait]
pub trait DeviceStore: Send + Sync {
    // --- registry ----------------------------------------------------------------------
    /// `Duplicate` if the id exists.
    async fn create_device(&self, device: &Device, audit: &[NewAudit]) -> StoreResult<()>;
    /// Replaces the device record, if it is still the one changed: `expected` is the
    /// `updated_at` it was read with; another writer since is a `Conflict` (a region saved
    /// beside a revoke must not write `active` back). `NotFound` if it does not exist.
    async fn update_device(
        &self,
        device: &Device,
        expected: OffsetDateTime,
        audit: &[NewAudit],
    ) -> StoreResult<()>;
    async fn device(&self, id: &str) -> StoreResult<Option<Device>>;
    async fn list_devices(&self) -> StoreResult<Vec<Device>>;
    /// All keys of a device, oldest first.
    async fn device_keys(&self, id: &str) -> StoreResult<Vec<DeviceKeyRecord>>;
    /// Registers a rotated key; `Duplicate` if a key already starts at or after `from_seq`.
    async fn add_device_key(&self, key: &DeviceKeyRecord, audit: &[NewAudit]) -> StoreResult<()>;

    // --- enrollment ----------------------------------------------------------------------
    /// Stores a code for a pending device, replacing its earlier unused codes.
    async fn create_enrollment_code(
        &self,
        code: &EnrollmentCode,
        audit: &[NewAudit],
    ) -> StoreResult<()>;
    /// Consumes the code and activates its device with the key and broker secret, atomically.
    /// `audit_ok` is written on success with `target` set to `device:{id}`; on refusal
    /// nothing changes and the reason is returned.
    async fn consume_enrollment_code(
        &self,
        code_hash: &str,
        enrollment: &Enrollment,
        audit_ok: &[NewAudit],
    ) -> StoreResult<Result<Device, EnrollRefusal>>;

    // --- readings ------------------------------------------------------------------------
    /// Group commit: stores every new reading in one transaction.
    async fn insert_readings(&self, readings: &[NewReading]) -> StoreResult<Vec<InsertOutcome>>;
    async fn reading(&self, device_id: &str, seq: u64) -> StoreResult<Option<StoredReading>>;
    /// Newest first, at most `limit`; only unbound ones if asked.
    async fn list_readings(
        &self,
        device_id: &str,
        unbound_only: bool,
        limit: u32,
    ) -> StoreResult<Vec<StoredReading>>;
    /// Stores rejections and their audit records in one transaction.
    async fn record_rejections(
        &self,
        rejections: &[Rejection],
        audit: &[NewAudit],
    ) -> StoreResult<()>;
    /// Quarantined envelopes of a device with `seq >= from_seq`, oldest first; they are
    /// released (their bytes dropped) by this call.
    async fn take_quarantined(&self, device_id: &str, from_seq: u64) -> StoreResult<Vec<Vec<u8>>>;

    // --- binding -------------------------------------------------------------------------
    /// Arms a step for the device's next stable reading, replacing an earlier arm of it.
    async fn arm(&self, arm: &Arm, audit: &[NewAudit]) -> StoreResult<()>;
    async fn disarm(&self, device_id: &str, batch_id: Uuid) -> StoreResult<()>;
    async fn arm_for_device(&self, device_id: &str) -> StoreResult<Option<Arm>>;
    async fn arms_for_batch(&self, batch_id: Uuid) -> StoreResult<Vec<Arm>>;
    async fn list_arms(&self) -> StoreResult<Vec<Arm>>;
    /// Appends the mass-check events (conditional on `expected_version`), marks the reading
    /// bound and removes any arm of the device for this batch, in one transaction. `Conflict`
    /// if the batch changed or the reading is bound already.
    #[allow(clippy::too_many_arguments)]
    async fn bind_reading(
        &self,
        device_id: &str,
        seq: u64,
        binding: &ReadingBinding,
        batch: &BatchRecord,
        expected_version: u64,
        events: &[RecordedEvent],
        audit: &[NewAudit],
    ) -> StoreResult<()>;

    // --- calibration ---------------------------------------------------------------------
    async fn add_calibration(
        &self,
        record: &CalibrationRecord,
        audit: &[NewAudit],
    ) -> StoreResult<()>;
    /// Oldest first.
    async fn calibrations(&self, device_id: &str) -> StoreResult<Vec<CalibrationRecord>>;

    // --- presence and fleet health -------------------------------------------------------
    /// Stores the latest status; records an online/offline transition when it is one.
    async fn record_presence(&self, presence: &Presence) -> StoreResult<()>;
    async fn presences(&self) -> StoreResult<Vec<Presence>>;
    async fn device_counts(&self) -> StoreResult<Vec<DeviceCounts>>;
    /// Readings received in `[from, to)` per device, ordered by device.
    async fn reading_counts(
        &self,
        from: Option<OffsetDateTime>,
        to: Option<OffsetDateTime>,
    ) -> StoreResult<Vec<ReadingCount>>;
    async fn rejection_counts(
        &self,
        from: Option<OffsetDateTime>,
        to: Option<OffsetDateTime>,
    ) -> StoreResult<Vec<RejectionCount>>;
    async fn presence_changes(
        &self,
        from: Option<OffsetDateTime>,
        to: Option<OffsetDateTime>,
    ) -> StoreResult<Vec<PresenceChange>>;
}
