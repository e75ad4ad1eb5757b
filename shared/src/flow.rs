//! Flow definitions: the versioned recipe a batch follows.
//!
//! A flow (`flow_id`) has numbered versions. A version starts as a draft, which is the only
//! state in which its content may change; publishing makes it active and archives the
//! previously active version of the same flow; an active version can be archived. Batches pin
//! the `(flow_id, version)` they were created on, and because only drafts are editable and only
//! active versions start batches, a version in use can never change.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::mass::{Mass, MassUnit};
use crate::tolerance::Tolerance;

/// Lifecycle state of a flow version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowStatus {
    Draft,
    Active,
    Archived,
}

impl FlowStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FlowStatus::Draft => "draft",
            FlowStatus::Active => "active",
            FlowStatus::Archived => "archived",
        }
    }
}

/// The editable content of a flow version: what a flow builder saves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowContent {
    /// Human name, e.g. "Gold Refining".
    pub name: String,
    /// Metal pipeline the flow is for, e.g. "gold", "silver", "pgm". A lowercase slug.
    pub pipeline: String,
    /// Ordered stations.
    pub stations: Vec<Station>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Station {
    /// A slug unique within the flow, e.g. "receiving".
    pub station_id: String,
    pub name: String,
    /// Ordered steps.
    pub steps: Vec<Step>,
}

/// (No `deny_unknown_fields` here: serde cannot combine it with the flattened `kind`.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// A slug unique within the whole flow, e.g. "receiving-weigh-in".
    pub step_id: String,
    pub name: String,
    #[serde(flatten)]
    pub kind: StepKind,
}

/// The five step types and the fields each needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StepKind {
    /// Read and acknowledge.
    Instruction { text: String },
    /// Every item must be checked.
    Checklist { items: Vec<String> },
    /// Weigh and compare with the expected mass. `unit` is the unit of `expected_mass`.
    MassCheck {
        expected_mass: Decimal,
        unit: MassUnit,
        tolerance: Tolerance,
    },
    /// Re-authenticate and sign with the stated meaning ("Verified by", "Released by").
    Signature { meaning: String },
    /// Take a photo as evidence.
    Photo { prompt: String },
}

impl StepKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            StepKind::Instruction { .. } => "instruction",
            StepKind::Checklist { .. } => "checklist",
            StepKind::MassCheck { .. } => "mass_check",
            StepKind::Signature { .. } => "signature",
            StepKind::Photo { .. } => "photo",
        }
    }
}

/// One version of a flow as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    pub flow_id: String,
    /// 1, 2, 3, … per `flow_id`.
    pub version: u32,
    pub status: FlowStatus,
    /// When an active version starts to apply to new batches.
    #[serde(with = "time::serde::rfc3339::option")]
    pub effective_date: Option<OffsetDateTime>,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(flatten)]
    pub content: FlowContent,
}

/// A position in a flow: which step of which station.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StepPosition {
    pub station: usize,
    pub step: usize,
}

/// One problem found by validation, with the JSON path of the offending field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowProblem {
    /// e.g. `stations[1].steps[0].tolerance.percent`
    pub path: String,
    pub message: String,
}

/// Why a lifecycle change of a flow version is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    #[error("flow {flow_id} version {version} is {status}; only drafts can be changed")]
    NotDraft {
        flow_id: String,
        version: u32,
        status: &'static str,
    },
    #[error("flow {flow_id} version {version} is {status}; only active versions can be archived")]
    NotActive {
        flow_id: String,
        version: u32,
        status: &'static str,
    },
    #[error("the flow has {} problem(s); fix them before publishing", .0.len())]
    Invalid(Vec<FlowProblem>),
    #[error("flow {flow_id} version {version} becomes effective at {effective}; no batch can start on it yet")]
    NotYetEffective {
        flow_id: String,
        version: u32,
        effective: String,
    },
}

/// Is `s` a slug: 1–64 of `a-z 0-9 _ -`, starting with a letter or digit?
pub fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && s.as_bytes()[0].is_ascii_alphanumeric()
}

impl FlowContent {
    /// Every problem with this content, in document order; empty means valid.
    pub fn problems(&self) -> Vec<FlowProblem> {
        let mut out = Vec::new();
        let mut problem = |path: String, message: &str| {
            out.push(FlowProblem {
                path,
                message: message.to_string(),
            })
        };
        if self.name.trim().is_empty() {
            problem("name".into(), "the flow needs a name");
        }
        if !is_slug(&self.pipeline) {
            problem(
                "pipeline".into(),
                "the pipeline must be a lowercase slug such as gold, silver or pgm",
            );
        }
        if self.stations.is_empty() {
            problem("stations".into(), "the flow needs at least one station");
        }
        let mut station_ids: Vec<&str> = Vec::new();
        let mut step_ids: Vec<&str> = Vec::new();
        for (si, station) in self.stations.iter().enumerate() {
            let sp = format!("stations[{si}]");
            if !is_slug(&station.station_id) {
                problem(
                    format!("{sp}.station_id"),
                    "a station id is 1–64 lowercase letters, digits, '_' or '-'",
                );
            } else if station_ids.contains(&station.station_id.as_str()) {
                problem(
                    format!("{sp}.station_id"),
                    "this station id is used by an earlier station",
                );
            }
            station_ids.push(&station.station_id);
            if station.name.trim().is_empty() {
                problem(format!("{sp}.name"), "the station needs a name");
            }
            if station.steps.is_empty() {
                problem(format!("{sp}.steps"), "the station needs at least one step");
            }
            for (ti, step) in station.steps.iter().enumerate() {
                let tp = format!("{sp}.steps[{ti}]");
                if !is_slug(&step.step_id) {
                    problem(
                        format!("{tp}.step_id"),
                        "a step id is 1–64 lowercase letters, digits, '_' or '-'",
                    );
                } else if step_ids.contains(&step.step_id.as_str()) {
                    problem(
                        format!("{tp}.step_id"),
                        "this step id is used by an earlier step; step ids are unique in a flow",
                    );
                }
                step_ids.push(&step.step_id);
                if step.name.trim().is_empty() {
                    problem(format!("{tp}.name"), "the step needs a name");
                }
                match &step.kind {
                    StepKind::Instruction { text } => {
                        if text.trim().is_empty() {
                            problem(format!("{tp}.text"), "the instruction needs a text");
                        }
                    }
                    StepKind::Checklist { items } => {
                        if items.is_empty() {
                            problem(
                                format!("{tp}.items"),
                                "the checklist needs at least one item",
                            );
                        }
                        for (ii, item) in items.iter().enumerate() {
                            if item.trim().is_empty() {
                                problem(
                                    format!("{tp}.items[{ii}]"),
                                    "a checklist item cannot be empty",
                                );
                            } else if items[..ii]
                                .iter()
                                .any(|earlier| earlier.trim() == item.trim())
                            {
                                problem(
                                    format!("{tp}.items[{ii}]"),
                                    "this item is already on the list",
                                );
                            }
                        }
                    }
                    StepKind::MassCheck {
                        expected_mass,
                        unit,
                        tolerance,
                    } => {
                        let expected = Mass::new(*expected_mass, *unit);
                        match &expected {
                            Ok(m) if m.value().is_zero() => problem(
                                format!("{tp}.expected_mass"),
                                "the expected mass must be greater than zero",
                            ),
                            Err(_) => problem(
                                format!("{tp}.expected_mass"),
                                "the expected mass must be greater than zero",
                            ),
                            Ok(_) => {}
                        }
                        if let Err(e) = tolerance.validate() {
                            problem(format!("{tp}.tolerance"), &e.to_string());
                        } else if let (Ok(m), Tolerance::Absolute { .. }) = (&expected, tolerance) {
                            if !m.value().is_zero()
                                && tolerance.allowed_milligrams(m) >= m.to_milligrams()
                            {
                                problem(
                                    format!("{tp}.tolerance"),
                                    "an absolute tolerance must be smaller than the expected mass",
                                );
                            }
                        }
                    }
                    StepKind::Signature { meaning } => {
                        if meaning.trim().is_empty() {
                            problem(
                                format!("{tp}.meaning"),
                                "say what the signature means, e.g. \"Released by\"",
                            );
                        }
                    }
                    StepKind::Photo { prompt } => {
                        if prompt.trim().is_empty() {
                            problem(
                                format!("{tp}.prompt"),
                                "tell the operator what to photograph",
                            );
                        }
                    }
                }
            }
        }
        out
    }

    /// Steps in execution order (station by station), with their station.
    pub fn steps(&self) -> impl Iterator<Item = (&Station, &Step)> {
        self.stations
            .iter()
            .flat_map(|st| st.steps.iter().map(move |s| (st, s)))
    }

    pub fn step_count(&self) -> usize {
        self.stations.iter().map(|s| s.steps.len()).sum()
    }

    /// The flat index (execution order) of `step_id`.
    pub fn index_of(&self, step_id: &str) -> Option<usize> {
        self.steps().position(|(_, s)| s.step_id == step_id)
    }

    /// The station and step at flat index `index`.
    pub fn step_at(&self, index: usize) -> Option<(&Station, &Step)> {
        self.steps().nth(index)
    }
}

impl Flow {
    /// A new draft version.
    pub fn new_draft(
        flow_id: String,
        version: u32,
        content: FlowContent,
        created_by: String,
        now: OffsetDateTime,
    ) -> Flow {
        Flow {
            flow_id,
            version,
            status: FlowStatus::Draft,
            effective_date: None,
            created_by,
            created_at: now,
            content,
        }
    }

    /// Replaces the content of a draft.
    pub fn edit(&mut self, content: FlowContent) -> Result<(), FlowError> {
        self.require_draft()?;
        self.content = content;
        Ok(())
    }

    fn require_draft(&self) -> Result<(), FlowError> {
        if self.status == FlowStatus::Draft {
            Ok(())
        } else {
            Err(FlowError::NotDraft {
                flow_id: self.flow_id.clone(),
                version: self.version,
                status: self.status.as_str(),
            })
        }
    }

    /// Publishes this draft: it must be valid; it becomes active from `effective` (or `now`),
    /// and `previous_active` (the active version of the same flow, if any) is archived.
    pub fn publish(
        &mut self,
        previous_active: Option<&mut Flow>,
        effective: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<(), FlowError> {
        self.require_draft()?;
        let problems = self.content.problems();
        if !problems.is_empty() {
            return Err(FlowError::Invalid(problems));
        }
        self.status = FlowStatus::Active;
        self.effective_date = Some(effective.unwrap_or(now));
        if let Some(prev) = previous_active {
            if prev.status == FlowStatus::Active {
                prev.status = FlowStatus::Archived;
            }
        }
        Ok(())
    }

    /// Archives an active version; no new batch can start on it.
    pub fn archive(&mut self) -> Result<(), FlowError> {
        if self.status != FlowStatus::Active {
            return Err(FlowError::NotActive {
                flow_id: self.flow_id.clone(),
                version: self.version,
                status: self.status.as_str(),
            });
        }
        self.status = FlowStatus::Archived;
        Ok(())
    }

    /// Whether a new batch may start on this version at `now`.
    pub fn check_startable(&self, now: OffsetDateTime) -> Result<(), FlowError> {
        if self.status != FlowStatus::Active {
            return Err(FlowError::NotActive {
                flow_id: self.flow_id.clone(),
                version: self.version,
                status: self.status.as_str(),
            });
        }
        match self.effective_date {
            Some(effective) if effective > now => Err(FlowError::NotYetEffective {
                flow_id: self.flow_id.clone(),
                version: self.version,
                effective: effective
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_else(|_| effective.to_string()),
            }),
            _ => Ok(()),
        }
    }
}
