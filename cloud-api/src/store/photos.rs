//! Photo evidence metadata. The bytes live in the blob store under their SHA-256; what a
//! photo is evidence of (batch, step, event), where it came from (an operator's upload or a
//! device frame), its size, EXIF and what OCR read from it live here, in the same store as
//! the events. One photo file may be evidence more than once (a device frame attached to
//! two readings), so a record has its own id and the digest is an index.

use std::collections::BTreeMap;

use async_trait::async_trait;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{NewAudit, StoreResult};

/// Who supplied the photo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PhotoSource {
    /// Uploaded by a signed-in user (kiosk camera or phone).
    Upload { user_id: String, username: String },
    /// A device's camera frame, named by the digest in its signed reading `seq`.
    Device { device_id: String, seq: u64 },
}

/// Why OCR's answer was or was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OcrOutcome {
    /// A number at or above the acceptance confidence.
    Accepted,
    /// A number below the acceptance confidence: the operator is asked for a re-take.
    LowConfidence,
    /// No number could be read: re-take, or enter by hand (flagged).
    Unreadable,
    /// The OCR provider failed (timeout, error); treated as unreadable.
    Failed,
}

/// A region of an image, in pixels: the same type as a device's display region.
pub use metcon_shared::device::Region;

/// What OCR read from a photo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OcrResult {
    /// `builtin` or `http`.
    pub provider: String,
    pub outcome: OcrOutcome,
    /// The digit string as displayed (`"0148.30"`), empty when nothing was read.
    pub raw_text: String,
    /// The exact decimal of `raw_text`, if it is a number.
    #[schema(value_type = Option<String>)]
    pub value: Option<Decimal>,
    /// Digits after the decimal point (the display's resolution).
    pub decimals: Option<u32>,
    /// Calibrated probability that `raw_text` is exactly right, 4 decimals.
    #[schema(value_type = String)]
    pub confidence: Decimal,
    /// Where the display was read.
    #[schema(value_type = Option<Object>)]
    pub region: Option<Region>,
    pub elapsed_ms: u64,
    /// The provider's error, for `failed`.
    pub error: Option<String>,
}

/// One photo as evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PhotoRecord {
    pub id: Uuid,
    /// Lowercase hex SHA-256 of the bytes: the blob's name.
    pub sha256: String,
    /// `image/jpeg` or `image/png`, from the bytes (never from the client's header).
    pub content_type: String,
    pub size_bytes: u64,
    pub width: u32,
    pub height: u32,
    /// Selected EXIF fields (camera make and model, time taken, orientation, exposure…).
    pub exif: BTreeMap<String, String>,
    pub source: PhotoSource,
    pub batch_id: Option<Uuid>,
    pub step_id: Option<String>,
    /// The batch event this photo is evidence for, once that event is stored.
    pub event_seq: Option<u64>,
    pub ocr: Option<OcrResult>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub uploaded_at: OffsetDateTime,
}

/// Photo metadata persistence; part of every [`super::Store`].
#[async_trait]
pub trait PhotoStore: Send + Sync {
    /// Stores a new record (its id must be new) with its audit records, atomically.
    async fn insert_photo(&self, photo: &PhotoRecord, audit: &[NewAudit]) -> StoreResult<()>;
    /// Names the batch event a photo is evidence for (once; a second link is a conflict).
    async fn link_photo_event(&self, id: Uuid, event_seq: u64) -> StoreResult<()>;
    async fn photo(&self, id: Uuid) -> StoreResult<Option<PhotoRecord>>;
    /// Every record of this digest, oldest first.
    async fn photos_by_sha256(&self, sha256: &str) -> StoreResult<Vec<PhotoRecord>>;
    /// A batch's photos, oldest first.
    async fn photos_for_batch(&self, batch_id: Uuid) -> StoreResult<Vec<PhotoRecord>>;
    /// The newest record of a frame from `device_id`'s camera (by upload time, then id):
    /// the frame an admin draws the display region on.
    async fn latest_device_photo(&self, device_id: &str) -> StoreResult<Option<PhotoRecord>>;
    /// Every record in id order, `limit` at a time after `after` (export).
    async fn photos_after(&self, after: Option<Uuid>, limit: u32) -> StoreResult<Vec<PhotoRecord>>;
}
