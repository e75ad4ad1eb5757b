//! Operator: the station board and the step runner.

use askama::Template;

use super::{EvidenceGroup, EvidencePhoto, Layout};

/// Station board: the batches waiting at the operator's stations.
#[derive(Debug, Template)]
#[template(path = "board.html")]
pub struct BoardPage {
    pub layout: Layout,
    pub stations: Vec<StationBoard>,
    pub flows: Vec<FlowOption>,
    pub can_start: bool,
}

#[derive(Debug, Clone)]
pub struct StationBoard {
    pub station_id: String,
    pub batches: Vec<BatchRow>,
}

#[derive(Debug, Clone)]
pub struct BatchRow {
    pub id: String,
    pub number: String,
    pub flow: String,
    pub status: String,
    pub priority: String,
    pub high: bool,
    pub age: String,
    pub step: String,
}

#[derive(Debug, Clone)]
pub struct FlowOption {
    pub flow_id: String,
    pub label: String,
}

/// The step runner for one batch.
#[derive(Debug, Template)]
#[template(path = "batch.html")]
pub struct BatchPage {
    pub layout: Layout,
    pub id: String,
    pub number: String,
    pub flow: String,
    pub status: String,
    pub priority: String,
    pub version: u64,
    pub progress: String,
    /// The step waiting to be done, when the batch is in progress (or created).
    pub step: Option<StepView>,
    pub can_start: bool,
    pub can_finish: bool,
    /// The last mass check's outcome, when it is the latest news on this batch.
    pub verdict: Option<Verdict>,
    /// The photos of that mass check (camera frame or display photo, with OCR), beside the
    /// verdict; its group is then not repeated in `evidence`.
    pub verdict_evidence: Option<EvidenceGroup>,
    /// Every other event's photo evidence, newest first (history rows link here).
    pub evidence: Vec<EvidenceGroup>,
    pub flags: Vec<FlagRow>,
    pub history: Vec<HistoryRow>,
    /// Which station's live events this page follows (mass checks).
    pub live_station: Option<String>,
}

/// The current step, flattened so the template can show any of the five types.
#[derive(Debug, Clone, Default)]
pub struct StepView {
    pub step_id: String,
    pub name: String,
    pub station_name: String,
    /// instruction | checklist | mass_check | signature | photo
    pub kind: String,
    pub text: String,
    pub items: Vec<String>,
    pub expected: String,
    pub tolerance: String,
    pub unit: String,
    pub meaning: String,
    pub armed: bool,
    /// Whether the caller may execute this step (role and station).
    pub may_execute: bool,
    /// Whether a photo can be uploaded here.
    pub photo_upload: bool,
    /// Mass checks: the id of an uploaded photo OCR could not read; the weight typed in
    /// by hand is then recorded for it (and flagged for approval).
    pub unreadable_photo: String,
    /// Photos already taken for this step but not (yet) evidence of a recorded event: an
    /// unreadable display, a re-take asked for, or a camera frame still being read.
    pub pending_photos: Vec<EvidencePhoto>,
}

#[derive(Debug, Clone)]
pub struct Verdict {
    pub ok: bool,
    /// "148.3 g ✓ within tolerance" or "1012.00 g ✗ outside tolerance".
    pub headline: String,
    /// Expected, tolerance and deviation in words.
    pub detail: String,
}

#[derive(Debug, Clone)]
pub struct FlagRow {
    pub kind: String,
    pub step: String,
    pub reason: String,
    pub raised_by: String,
    pub outcome: String,
    pub open: bool,
}

#[derive(Debug, Clone)]
pub struct HistoryRow {
    pub at: String,
    pub who: String,
    pub what: String,
    /// The id of this event's evidence on the page, when it has photos.
    pub evidence: Option<String>,
}
