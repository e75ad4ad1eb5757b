//! What report queries take and give: one filter type, a window over detail rows, and one
//! typed row or group type per report. Backend-neutral: SQLite answers with SQL over its
//! read-model tables, MongoDB will answer with aggregation pipelines over the same shapes.
//!
//! Masses come back as exact integers in units of 0.0001 mg (`*_e4` fields, see
//! [`MG_E4`]) next to the decimal text as recorded; percentages as integers in units of
//! 0.0001 % (the domain rounds variance percentages to four decimals, so this is exact).

use serde::Serialize;
use time::{Date, OffsetDateTime};

/// Integer mass units per milligram: masses are stored as multiples of 0.0001 mg.
pub const MG_E4: i64 = 10_000;

/// Filters of every report; each report uses the ones that apply to it and echoes them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct ReportFilter {
    /// First day, inclusive (UTC).
    pub from: Option<Date>,
    /// Last day, inclusive (UTC).
    pub to: Option<Date>,
    /// Metal pipeline, e.g. `gold`.
    pub pipeline: Option<String>,
    pub station: Option<String>,
    /// Username of the operator who weighed (mass checks) or raised (exceptions).
    pub operator: Option<String>,
    /// Tolerance status: `Some(true)` within, `Some(false)` out of tolerance.
    pub within: Option<bool>,
    pub flow_id: Option<String>,
    pub flow_version: Option<u32>,
    /// Exceptions: `out_of_tolerance`, `manual_flag`, `ocr_mismatch`, `unreadable_photo` (a
    /// manual entry for a photo OCR could not read, awaiting approval), `override`, `blocked`,
    /// `manual_entry`.
    pub kind: Option<String>,
    /// WIP: batch status.
    pub status: Option<String>,
    /// WIP: a batch is stuck when it has been at its station longer than this.
    pub stuck_hours: Option<u32>,
}

/// Which detail rows to return: the `offset`-th onwards (pages on screen), or the rows after
/// a cursor (keyset, for streaming exports in constant memory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Window {
    Offset { offset: u64, limit: u32 },
    After { cursor: Option<Cursor>, limit: u32 },
}

/// Position after the last row of a page, in the report's own sort order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub key: String,
    pub id: i64,
}

/// Where a keyset page ends, asked before the page is read so that an export can read the
/// next page while this one is still being read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageEnd {
    /// The page is full; the next one starts after this cursor.
    At(Cursor),
    /// This is the last page.
    Last,
    /// The backend cannot tell without reading the page.
    Unknown,
}

/// A page of rows and the cursor after its last row (`None` when the page is not full).
#[derive(Debug, Clone)]
pub struct Rows<T> {
    pub rows: Vec<T>,
    pub next: Option<Cursor>,
}

// --- mass checks -----------------------------------------------------------------------

/// Aggregates of mass checks sharing (station, operator, tolerance status).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MassCheckGroup {
    pub station: String,
    pub operator: String,
    pub within: bool,
    pub count: u64,
    /// Checks with a variance percentage (expected mass not zero).
    pub pct_count: u64,
    pub sum_pct_e4: i64,
    pub sum_abs_pct_e4: i64,
    pub sum_variance_e4: i64,
}

/// One mass check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MassCheckRow {
    pub id: i64,
    pub at: OffsetDateTime,
    pub batch_id: String,
    pub batch_number: String,
    pub pipeline: String,
    pub flow_id: String,
    pub flow_version: u32,
    pub station: String,
    pub step: String,
    pub operator: String,
    /// Decimal as recorded, with its unit.
    pub expected: String,
    pub expected_unit: String,
    pub actual: String,
    pub actual_unit: String,
    /// actual − expected in the expected mass's unit, exact.
    pub variance: String,
    pub variance_pct: Option<String>,
    pub within: bool,
    /// `manual`, `device` or `ocr`.
    pub source: String,
    pub fineness_permille: Option<String>,
}

// --- WIP -------------------------------------------------------------------------------

/// Unfinished batches sharing (station, status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WipGroup {
    pub station: Option<String>,
    pub status: String,
    pub count: u64,
    pub stuck: u64,
    pub oldest_since: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WipRow {
    pub id: i64,
    pub batch_id: String,
    pub batch_number: String,
    pub pipeline: String,
    pub flow_id: String,
    pub flow_version: u32,
    pub status: String,
    pub station: Option<String>,
    pub step: Option<String>,
    pub created_at: OffsetDateTime,
    /// When the batch arrived at its current station (`None` before it starts).
    pub at_station_since: Option<OffsetDateTime>,
    pub stuck: bool,
}

// --- cycle times -----------------------------------------------------------------------

/// Finished station visits sharing (station, flow version), durations sorted ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationGroup {
    pub station: String,
    pub flow_id: String,
    pub flow_version: u32,
    pub durations_ms: Vec<i64>,
}

/// One stay of a batch at a station, from arrival to the completion of its last step there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitRow {
    pub id: i64,
    pub batch_id: String,
    pub batch_number: String,
    pub pipeline: String,
    pub flow_id: String,
    pub flow_version: u32,
    pub station: String,
    pub entered_at: OffsetDateTime,
    pub left_at: OffsetDateTime,
    pub duration_ms: i64,
}

// --- exceptions ------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExceptionGroup {
    pub kind: String,
    pub station: String,
    /// `open`, `approved`, `rejected`, `applied`, `unblocked`, `recorded`.
    pub decision: String,
    pub decided_by: Option<String>,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExceptionRow {
    pub id: i64,
    pub batch_id: String,
    pub batch_number: String,
    pub pipeline: String,
    pub flow_id: String,
    pub flow_version: u32,
    /// Event sequence number of the exception (the flag id for flags).
    pub seq: u64,
    pub kind: String,
    pub station: String,
    pub step: String,
    pub raised_by: String,
    pub raised_at: OffsetDateTime,
    pub reason: String,
    pub decision: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<OffsetDateTime>,
    pub decision_reason: Option<String>,
}

// --- mass balance ----------------------------------------------------------------------

/// An accepted weighing (one that completed its step) and the one before it in its batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceRow {
    pub id: i64,
    pub batch_id: String,
    pub batch_number: String,
    pub pipeline: String,
    pub seq: u64,
    pub station: String,
    pub step: String,
    pub at: OffsetDateTime,
    pub actual_e4: i64,
    pub previous_e4: Option<i64>,
    pub previous_station: Option<String>,
    pub fineness_permille: Option<String>,
}

/// Loss or gain into each station, over the filtered batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceGroup {
    pub station: String,
    pub weighings: u64,
    /// Weighings with a previous weighing in the same batch.
    pub transitions: u64,
    /// Sum of (this − previous) over transitions.
    pub delta_e4: i64,
    /// Sum of the previous weighings over transitions.
    pub previous_e4: i64,
}

/// Per-batch totals for the mass-balance summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BalanceTotals {
    pub batches: u64,
    pub weighings: u64,
    pub first_e4: i64,
    pub last_e4: i64,
}

/// A weight-list line: a batch's final accepted weighing and the fineness assayed for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightListRow {
    pub id: i64,
    pub batch_id: String,
    pub batch_number: String,
    pub pipeline: String,
    pub status: String,
    pub weighed_at: OffsetDateTime,
    pub gross_e4: i64,
    pub fineness_permille: String,
}
