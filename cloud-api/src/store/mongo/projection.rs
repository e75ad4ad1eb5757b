//! The analytics read model of one batch, kept inside its MongoDB document.
//!
//! The same projection as the SQLite backend's `sqlite_readmodel` (same rules, same exact
//! integers, same fixed-width timestamps), but over the arrays of one document: the append
//! reads them with the batch version, projects the new events here, and writes them back in
//! the same conditional update as the events, so a report never sees an event without its
//! row or the other way round.
//!
//! - `mass_checks`: one entry per `MassChecked`, masses as recorded and in 0.0001 mg;
//!   `accepted` once the weighing completed its step.
//! - `exceptions`: flags with their decision, overrides, blocks (with the unblock) and
//!   manually entered masses.
//! - `visits`: the batch's stays at stations, for cycle times and the WIP board.

use metcon_shared::batch::{BatchEvent, FlagKind, MassSource, RecordedEvent};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::codec::{backend, parse_ts, ts};
use crate::reports::fineness;
use crate::store::sqlite_readmodel::mass_e4;
use crate::store::StoreResult;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MassCheck {
    pub seq: u64,
    pub station: String,
    pub step: String,
    pub step_index: u64,
    pub operator: String,
    pub at: String,
    pub expected: String,
    pub expected_unit: String,
    pub actual: String,
    pub actual_unit: String,
    pub variance: String,
    pub variance_pct: Option<String>,
    pub expected_e4: i64,
    pub actual_e4: i64,
    pub variance_e4: i64,
    pub variance_pct_e4: Option<i64>,
    pub within: bool,
    pub source: String,
    pub fineness_permille: Option<String>,
    pub accepted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Exception {
    pub seq: u64,
    pub kind: String,
    pub station: String,
    pub step: String,
    pub raised_by: String,
    pub raised_at: String,
    pub reason: String,
    pub decision: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    pub decision_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Visit {
    /// Position in the batch's visits (row ids derive from it).
    pub i: u64,
    pub station: String,
    pub entered_at: String,
    pub left_at: Option<String>,
    pub duration_ms: Option<i64>,
}

/// The read model of one batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ReadModel {
    pub mass_checks: Vec<MassCheck>,
    pub exceptions: Vec<Exception>,
    pub visits: Vec<Visit>,
}

fn source_name(s: &MassSource) -> &'static str {
    match s {
        MassSource::Manual | MassSource::ManualUnreadablePhoto { .. } => "manual",
        MassSource::Device { .. } => "device",
        MassSource::Ocr { .. } => "ocr",
    }
}

impl ReadModel {
    /// Projects `events`, appended together to the batch. `station_after` is the batch's
    /// station after the events (none before it starts and once it is done).
    pub(crate) fn project(
        &mut self,
        events: &[RecordedEvent],
        station_after: Option<&str>,
    ) -> StoreResult<()> {
        for rec in events {
            self.project_one(rec, station_after)?;
        }
        if let Some(last) = events.last() {
            self.track_visit(last, station_after)?;
        }
        Ok(())
    }

    fn project_one(&mut self, rec: &RecordedEvent, station_after: Option<&str>) -> StoreResult<()> {
        match &rec.event {
            BatchEvent::MassChecked {
                station_id,
                step_id,
                step_index,
                expected,
                actual,
                check,
                source,
                note,
                ..
            } => {
                let pct_e4 = check
                    .variance_pct
                    .map(|p| {
                        (p * Decimal::from(10_000))
                            .round_dp(0)
                            .to_i64()
                            .ok_or_else(|| backend("variance percentage out of range"))
                    })
                    .transpose()?;
                let expected_e4 = mass_e4(expected)?;
                let actual_e4 = mass_e4(actual)?;
                self.mass_checks.push(MassCheck {
                    seq: rec.seq,
                    station: station_id.clone(),
                    step: step_id.clone(),
                    step_index: *step_index as u64,
                    operator: rec.actor.username.clone(),
                    at: ts(rec.at),
                    expected: expected.value().to_string(),
                    expected_unit: expected.unit().symbol().to_string(),
                    actual: actual.value().to_string(),
                    actual_unit: actual.unit().symbol().to_string(),
                    variance: check.variance.to_string(),
                    variance_pct: check.variance_pct.map(|p| p.to_string()),
                    expected_e4,
                    actual_e4,
                    variance_e4: actual_e4 - expected_e4,
                    variance_pct_e4: pct_e4,
                    within: check.within,
                    source: source_name(source).to_string(),
                    fineness_permille: note
                        .as_deref()
                        .and_then(fineness::from_note)
                        .map(|f| f.to_string()),
                    accepted: false,
                });
                if source.is_manual() {
                    self.raise(
                        rec,
                        "manual_entry",
                        station_id,
                        step_id,
                        note.as_deref().unwrap_or(""),
                        "recorded",
                    );
                }
            }
            BatchEvent::StepCompleted {
                step_index,
                payload: None,
                ..
            } => {
                // The latest weighing of a completed mass-check step is its accepted mass.
                if let Some(m) = self
                    .mass_checks
                    .iter_mut()
                    .filter(|m| m.step_index == *step_index as u64)
                    .max_by_key(|m| m.seq)
                {
                    m.accepted = true;
                }
            }
            BatchEvent::FlagRaised {
                kind,
                station_id,
                step_id,
                reason,
                ..
            } => {
                let k = match kind {
                    FlagKind::OutOfTolerance => "out_of_tolerance",
                    FlagKind::Manual => "manual_flag",
                    FlagKind::OcrMismatch => "ocr_mismatch",
                    FlagKind::ManualEntry => "unreadable_photo",
                };
                self.raise(rec, k, station_id, step_id, reason, "open");
            }
            BatchEvent::FlagApproved { flag_id, reason }
            | BatchEvent::FlagRejected { flag_id, reason } => {
                let decision = if matches!(rec.event, BatchEvent::FlagApproved { .. }) {
                    "approved"
                } else {
                    "rejected"
                };
                for e in self.exceptions.iter_mut().filter(|e| {
                    e.seq == *flag_id
                        && matches!(
                            e.kind.as_str(),
                            "out_of_tolerance"
                                | "manual_flag"
                                | "ocr_mismatch"
                                | "unreadable_photo"
                        )
                }) {
                    e.decision = decision.into();
                    e.decided_by = Some(rec.actor.username.clone());
                    e.decided_at = Some(ts(rec.at));
                    e.decision_reason = Some(reason.clone());
                }
            }
            BatchEvent::Overridden {
                to_step_id, reason, ..
            } => {
                self.raise(
                    rec,
                    "override",
                    station_after.unwrap_or(""),
                    to_step_id,
                    reason,
                    "applied",
                );
                if let Some(e) = self.exceptions.last_mut() {
                    e.decided_by = Some(rec.actor.username.clone());
                    e.decided_at = Some(ts(rec.at));
                    e.decision_reason = Some(reason.clone());
                }
            }
            BatchEvent::Blocked { reason } => {
                self.raise(
                    rec,
                    "blocked",
                    station_after.unwrap_or(""),
                    "",
                    reason,
                    "open",
                );
            }
            BatchEvent::Unblocked { reason } => {
                if let Some(e) = self
                    .exceptions
                    .iter_mut()
                    .filter(|e| e.kind == "blocked" && e.decision == "open")
                    .max_by_key(|e| e.seq)
                {
                    e.decision = "unblocked".into();
                    e.decided_by = Some(rec.actor.username.clone());
                    e.decided_at = Some(ts(rec.at));
                    e.decision_reason = Some(reason.clone());
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn raise(
        &mut self,
        rec: &RecordedEvent,
        kind: &str,
        station: &str,
        step: &str,
        reason: &str,
        decision: &str,
    ) {
        self.exceptions.push(Exception {
            seq: rec.seq,
            kind: kind.into(),
            station: station.into(),
            step: step.into(),
            raised_by: rec.actor.username.clone(),
            raised_at: ts(rec.at),
            reason: reason.into(),
            decision: decision.into(),
            decided_by: None,
            decided_at: None,
            decision_reason: None,
        });
    }

    /// Closes the open visit and opens the next one when the batch changed station.
    fn track_visit(
        &mut self,
        last: &RecordedEvent,
        station_after: Option<&str>,
    ) -> StoreResult<()> {
        let open = self.visits.iter().position(|v| v.left_at.is_none());
        if open.map(|i| self.visits[i].station.as_str()) == station_after {
            return Ok(());
        }
        let at = ts(last.at);
        if let Some(i) = open {
            let v = &mut self.visits[i];
            let entered = parse_ts(&v.entered_at)?;
            v.duration_ms = Some((last.at - entered).whole_milliseconds() as i64);
            v.left_at = Some(at.clone());
        }
        if let Some(station) = station_after {
            self.visits.push(Visit {
                i: self.visits.len() as u64,
                station: station.into(),
                entered_at: at,
                left_at: None,
                duration_ms: None,
            });
        }
        Ok(())
    }
}
