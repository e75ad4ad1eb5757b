//! Supervisor: the approval queue.

use askama::Template;

use super::{EvidencePhoto, Layout};

/// Supervisor's approval queue.
#[derive(Debug, Template)]
#[template(path = "approvals.html")]
pub struct ApprovalsPage {
    pub layout: Layout,
    pub items: Vec<ApprovalRow>,
}

/// The queue alone, for polling.
#[derive(Debug, Template)]
#[template(path = "approvals_list.html")]
pub struct ApprovalsList {
    pub layout: Layout,
    pub items: Vec<ApprovalRow>,
}

#[derive(Debug, Clone)]
pub struct ApprovalRow {
    pub batch_id: String,
    pub number: String,
    pub version: u64,
    pub flag_id: u64,
    pub kind: String,
    pub station: String,
    pub step: String,
    pub reason: String,
    pub raised_by: String,
    pub raised_at: String,
    /// The evidence of an out-of-tolerance flag.
    pub reading: Option<String>,
    pub expected: Option<String>,
    pub deviation: Option<String>,
    pub source: Option<String>,
    /// OCR mismatches: the signed serial value and the value read from the display.
    pub signed: Option<String>,
    pub displayed: Option<String>,
    /// The photos the mass check was read from, entered for (unreadable) or cross-checked
    /// with (a device's camera frame); shown as thumbnails that open full size.
    pub photos: Vec<EvidencePhoto>,
}
