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

/// Whether `value` in `unit`, converted to milligrams and multiplied by `factor`, stays within
/// `Decimal`'s range (its arithmetic operators panic on overflow).
fn fits_in_milligrams(value: Decimal, unit: MassUnit, factor: u32) -> bool {
    value
        .checked_mul(unit.milligrams())
        .and_then(|mg| mg.checked_mul(Decimal::from(factor)))
        .is_some()
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
                        let expected = match Mass::new(*expected_mass, *unit) {
                            Ok(m) if m.value().is_zero() => None,
                            Ok(m) => Some(m),
                            Err(_) => None,
                        };
                        // Tolerance decisions multiply the expected mass in milligrams by up to
                        // 100 (a relative tolerance): refuse masses where that would overflow.
                        let computable = |m: &Mass| fits_in_milligrams(m.value(), m.unit(), 100);
                        match &expected {
                            None => problem(
                                format!("{tp}.expected_mass"),
                                "the expected mass must be greater than zero",
                            ),
                            Some(m) if !computable(m) => problem(
                                format!("{tp}.expected_mass"),
                                "the expected mass is too large to compute with",
                            ),
                            Some(_) => {}
                        }
                        if let Err(e) = tolerance.validate() {
                            problem(format!("{tp}.tolerance"), &e.to_string());
                        } else if let Tolerance::Absolute {
                            value,
                            unit: t_unit,
                        } = tolerance
                        {
                            if !fits_in_milligrams(*value, *t_unit, 1) {
                                problem(
                                    format!("{tp}.tolerance"),
                                    "the tolerance is too large to compute with",
                                );
                            } else if let Some(m) = expected.as_ref().filter(|m| computable(m)) {
                                if tolerance.allowed_milligrams(m) >= m.to_milligrams() {
                                    problem(
                                        format!("{tp}.tolerance"),
                                        "an absolute tolerance must be smaller than the expected mass",
                                    );
                                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tolerance::ToleranceError;
    use time::macros::datetime;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).expect("test literal")
    }

    fn step(id: &str, kind: StepKind) -> Step {
        Step {
            step_id: id.into(),
            name: format!("Step {id}"),
            kind,
        }
    }

    fn mass_check(expected: &str, unit: MassUnit, tolerance: Tolerance) -> StepKind {
        StepKind::MassCheck {
            expected_mass: d(expected),
            unit,
            tolerance,
        }
    }

    fn abs_g(v: &str) -> Tolerance {
        Tolerance::Absolute {
            value: d(v),
            unit: MassUnit::G,
        }
    }

    /// A valid flow with every step type: receiving (instruction, checklist, mass check) and
    /// assay (signature, photo).
    fn valid() -> FlowContent {
        FlowContent {
            name: "Gold Refining".into(),
            pipeline: "gold".into(),
            stations: vec![
                Station {
                    station_id: "receiving".into(),
                    name: "Receiving".into(),
                    steps: vec![
                        step(
                            "recv-read",
                            StepKind::Instruction {
                                text: "Open the sealed bag on the tray.".into(),
                            },
                        ),
                        step(
                            "recv-check",
                            StepKind::Checklist {
                                items: vec!["Seal intact".into(), "Label matches".into()],
                            },
                        ),
                        step("recv-weigh", mass_check("150", MassUnit::G, abs_g("0.5"))),
                    ],
                },
                Station {
                    station_id: "assay".into(),
                    name: "Assay".into(),
                    steps: vec![
                        step(
                            "assay-sign",
                            StepKind::Signature {
                                meaning: "Verified by".into(),
                            },
                        ),
                        step(
                            "assay-photo",
                            StepKind::Photo {
                                prompt: "Photograph the button on the scale".into(),
                            },
                        ),
                    ],
                },
            ],
        }
    }

    fn paths(c: &FlowContent) -> Vec<String> {
        c.problems().into_iter().map(|p| p.path).collect()
    }

    /// The single problem of `c`; fails if there are none or several.
    fn only_problem(c: &FlowContent) -> FlowProblem {
        let mut problems = c.problems();
        assert_eq!(problems.len(), 1, "{problems:#?}");
        problems.remove(0)
    }

    fn kind_mut(c: &mut FlowContent, station: usize, step: usize) -> &mut StepKind {
        &mut c.stations[station].steps[step].kind
    }

    #[test]
    fn a_valid_flow_has_no_problems() {
        assert_eq!(valid().problems(), vec![]);
        assert_eq!(valid().step_count(), 5);
        assert_eq!(valid().index_of("assay-sign"), Some(3));
        assert_eq!(valid().index_of("nope"), None);
        let c = valid();
        let (station, s) = c.step_at(2).expect("five steps");
        assert_eq!(
            (station.station_id.as_str(), s.step_id.as_str()),
            ("receiving", "recv-weigh")
        );
        assert!(c.step_at(5).is_none());
    }

    #[test]
    fn slugs() {
        for ok in ["gold", "pgm", "a", "0-x", "recv_weigh-2", &"a".repeat(64)] {
            assert!(is_slug(ok), "{ok:?}");
        }
        for bad in [
            "",
            "Gold",
            "-gold",
            "_x",
            "go ld",
            "gold!",
            "göld",
            &"a".repeat(65),
        ] {
            assert!(!is_slug(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_flow_needs_a_name() {
        let mut c = valid();
        c.name = "  \t".into();
        let p = only_problem(&c);
        assert_eq!(p.path, "name");
        assert!(p.message.contains("name"), "{}", p.message);
    }

    #[test]
    fn the_pipeline_is_a_slug() {
        for bad in ["", "Gold", "gold refining", "-gold"] {
            let mut c = valid();
            c.pipeline = bad.into();
            assert_eq!(only_problem(&c).path, "pipeline", "{bad:?}");
        }
    }

    #[test]
    fn the_flow_needs_a_station() {
        let mut c = valid();
        c.stations.clear();
        let p = only_problem(&c);
        assert_eq!(p.path, "stations");
        assert!(p.message.contains("at least one station"), "{}", p.message);
    }

    #[test]
    fn station_ids_are_slugs_and_unique() {
        let mut c = valid();
        c.stations[1].station_id = "Assay Lab".into();
        assert_eq!(only_problem(&c).path, "stations[1].station_id");

        let mut c = valid();
        c.stations[1].station_id = "receiving".into();
        let p = only_problem(&c);
        assert_eq!(p.path, "stations[1].station_id");
        assert!(p.message.contains("earlier station"), "{}", p.message);
    }

    #[test]
    fn stations_need_a_name_and_a_step() {
        let mut c = valid();
        c.stations[0].name = " ".into();
        assert_eq!(only_problem(&c).path, "stations[0].name");

        let mut c = valid();
        c.stations[1].steps.clear();
        let p = only_problem(&c);
        assert_eq!(p.path, "stations[1].steps");
        assert!(p.message.contains("at least one step"), "{}", p.message);
    }

    #[test]
    fn step_ids_are_slugs_and_unique_across_the_flow() {
        let mut c = valid();
        c.stations[0].steps[1].step_id = "".into();
        assert_eq!(only_problem(&c).path, "stations[0].steps[1].step_id");

        // The same id at another station is still a duplicate.
        let mut c = valid();
        c.stations[1].steps[0].step_id = "recv-read".into();
        let p = only_problem(&c);
        assert_eq!(p.path, "stations[1].steps[0].step_id");
        assert!(p.message.contains("unique"), "{}", p.message);
    }

    #[test]
    fn steps_need_a_name() {
        let mut c = valid();
        c.stations[1].steps[1].name = "".into();
        assert_eq!(only_problem(&c).path, "stations[1].steps[1].name");
    }

    #[test]
    fn an_instruction_needs_text() {
        let mut c = valid();
        *kind_mut(&mut c, 0, 0) = StepKind::Instruction { text: "\n".into() };
        assert_eq!(only_problem(&c).path, "stations[0].steps[0].text");
    }

    #[test]
    fn a_checklist_needs_distinct_non_empty_items() {
        let mut c = valid();
        *kind_mut(&mut c, 0, 1) = StepKind::Checklist { items: vec![] };
        assert_eq!(only_problem(&c).path, "stations[0].steps[1].items");

        let mut c = valid();
        *kind_mut(&mut c, 0, 1) = StepKind::Checklist {
            items: vec!["Seal intact".into(), " ".into()],
        };
        let p = only_problem(&c);
        assert_eq!(p.path, "stations[0].steps[1].items[1]");
        assert!(p.message.contains("empty"), "{}", p.message);

        let mut c = valid();
        *kind_mut(&mut c, 0, 1) = StepKind::Checklist {
            items: vec!["Seal intact".into(), "Label".into(), "Seal intact ".into()],
        };
        let p = only_problem(&c);
        assert_eq!(p.path, "stations[0].steps[1].items[2]");
        assert!(p.message.contains("already"), "{}", p.message);
    }

    #[test]
    fn the_expected_mass_is_positive() {
        for bad in ["0", "0.000", "-1"] {
            let mut c = valid();
            *kind_mut(&mut c, 0, 2) = mass_check(bad, MassUnit::G, abs_g("0.5"));
            let p = only_problem(&c);
            assert_eq!(p.path, "stations[0].steps[2].expected_mass", "{bad}");
            assert!(p.message.contains("greater than zero"), "{}", p.message);
        }
    }

    #[test]
    fn the_tolerance_must_be_usable() {
        let mut c = valid();
        *kind_mut(&mut c, 0, 2) = mass_check("150", MassUnit::G, abs_g("-0.5"));
        let p = only_problem(&c);
        assert_eq!(p.path, "stations[0].steps[2].tolerance");
        assert_eq!(p.message, ToleranceError::Negative.to_string());

        let mut c = valid();
        *kind_mut(&mut c, 0, 2) = mass_check(
            "150",
            MassUnit::G,
            Tolerance::Relative {
                percent: d("100.01"),
            },
        );
        let p = only_problem(&c);
        assert_eq!(p.path, "stations[0].steps[2].tolerance");
        assert_eq!(p.message, ToleranceError::OverHundredPercent.to_string());

        // 100 % and 0 are usable bounds.
        for percent in ["100", "0"] {
            let mut c = valid();
            *kind_mut(&mut c, 0, 2) = mass_check(
                "150",
                MassUnit::G,
                Tolerance::Relative {
                    percent: d(percent),
                },
            );
            assert_eq!(c.problems(), vec![], "{percent}");
        }
    }

    #[test]
    fn an_absolute_tolerance_is_smaller_than_the_expected_mass_compared_exactly() {
        // 1 kg expected: 1000 g of tolerance is not smaller, 999.9999 g is; units differ.
        let mut c = valid();
        *kind_mut(&mut c, 0, 2) = mass_check("1", MassUnit::Kg, abs_g("1000"));
        let p = only_problem(&c);
        assert_eq!(p.path, "stations[0].steps[2].tolerance");
        assert!(
            p.message.contains("smaller than the expected mass"),
            "{}",
            p.message
        );

        *kind_mut(&mut c, 0, 2) = mass_check("1", MassUnit::Kg, abs_g("999.9999"));
        assert_eq!(c.problems(), vec![]);

        // 1 ozt = 31103.4768 mg exactly.
        let mg = |v: &str| Tolerance::Absolute {
            value: d(v),
            unit: MassUnit::Mg,
        };
        *kind_mut(&mut c, 0, 2) = mass_check("1", MassUnit::Ozt, mg("31103.4768"));
        assert_eq!(paths(&c), vec!["stations[0].steps[2].tolerance"]);
        *kind_mut(&mut c, 0, 2) = mass_check("1", MassUnit::Ozt, mg("31103.4767"));
        assert_eq!(c.problems(), vec![]);
    }

    #[test]
    fn huge_masses_are_problems_not_panics() {
        let mut c = valid();
        *kind_mut(&mut c, 0, 2) = mass_check(&Decimal::MAX.to_string(), MassUnit::Kg, abs_g("1"));
        let p = only_problem(&c);
        assert_eq!(p.path, "stations[0].steps[2].expected_mass");
        assert!(p.message.contains("too large"), "{}", p.message);

        *kind_mut(&mut c, 0, 2) = mass_check(
            "150",
            MassUnit::G,
            Tolerance::Absolute {
                value: Decimal::MAX,
                unit: MassUnit::Kg,
            },
        );
        assert_eq!(paths(&c), vec!["stations[0].steps[2].tolerance"]);
    }

    #[test]
    fn a_signature_needs_a_meaning_and_a_photo_a_prompt() {
        let mut c = valid();
        *kind_mut(&mut c, 1, 0) = StepKind::Signature {
            meaning: " ".into(),
        };
        let p = only_problem(&c);
        assert_eq!(p.path, "stations[1].steps[0].meaning");
        assert!(p.message.contains("Released by"), "{}", p.message);

        let mut c = valid();
        *kind_mut(&mut c, 1, 1) = StepKind::Photo { prompt: "".into() };
        assert_eq!(only_problem(&c).path, "stations[1].steps[1].prompt");
    }

    #[test]
    fn every_problem_is_reported_in_document_order() {
        let mut c = valid();
        c.name = "".into();
        c.pipeline = "Gold".into();
        c.stations[0].steps[0].name = "".into();
        *kind_mut(&mut c, 0, 1) = StepKind::Checklist {
            items: vec!["a".into(), "".into(), "a".into()],
        };
        *kind_mut(&mut c, 0, 2) = mass_check("0", MassUnit::G, abs_g("-1"));
        c.stations[1].station_id = "receiving".into();
        c.stations[1].name = "".into();
        c.stations[1].steps[0].step_id = "recv-read".into();
        *kind_mut(&mut c, 1, 1) = StepKind::Photo { prompt: "".into() };
        c.stations.push(Station {
            station_id: "Refining".into(),
            name: "Refining".into(),
            steps: vec![],
        });
        assert_eq!(
            paths(&c),
            vec![
                "name",
                "pipeline",
                "stations[0].steps[0].name",
                "stations[0].steps[1].items[1]",
                "stations[0].steps[1].items[2]",
                "stations[0].steps[2].expected_mass",
                "stations[0].steps[2].tolerance",
                "stations[1].station_id",
                "stations[1].name",
                "stations[1].steps[0].step_id",
                "stations[1].steps[1].prompt",
                "stations[2].station_id",
                "stations[2].steps",
            ]
        );
        assert!(c.problems().iter().all(|p| !p.message.trim().is_empty()));
    }

    /// Resolves a problem path (`a.b[1].c`) in a JSON value.
    fn resolve<'v>(mut v: &'v serde_json::Value, path: &str) -> Option<&'v serde_json::Value> {
        for segment in path.split('.') {
            let (field, indexes) = segment.split_once('[').unwrap_or((segment, ""));
            v = v.get(field)?;
            for index in indexes.split('[').filter(|i| !i.is_empty()) {
                v = v.get(index.trim_end_matches(']').parse::<usize>().ok()?)?;
            }
        }
        Some(v)
    }

    #[test]
    fn problem_paths_point_at_fields_of_the_json_form() {
        let mut c = valid();
        c.name = "".into();
        c.stations[0].station_id = "Bad".into();
        *kind_mut(&mut c, 0, 0) = StepKind::Instruction { text: "".into() };
        *kind_mut(&mut c, 0, 1) = StepKind::Checklist {
            items: vec!["".into()],
        };
        *kind_mut(&mut c, 0, 2) = mass_check("1", MassUnit::G, abs_g("2"));
        *kind_mut(&mut c, 1, 0) = StepKind::Signature { meaning: "".into() };
        let json = serde_json::to_value(&c).expect("serialize");
        let problems = c.problems();
        assert_eq!(problems.len(), 6, "{problems:#?}");
        for p in problems {
            assert!(
                resolve(&json, &p.path).is_some(),
                "{} not in {json}",
                p.path
            );
        }
    }

    const T0: OffsetDateTime = datetime!(2026-03-01 09:00 UTC);

    fn draft(version: u32, content: FlowContent) -> Flow {
        Flow::new_draft(
            "gold-refining".into(),
            version,
            content,
            "u-admin".into(),
            T0,
        )
    }

    fn active(version: u32) -> Flow {
        let mut f = draft(version, valid());
        f.publish(None, None, T0).expect("valid draft");
        f
    }

    #[test]
    fn a_new_draft_is_a_draft() {
        let f = draft(1, valid());
        assert_eq!(f.status, FlowStatus::Draft);
        assert_eq!(f.effective_date, None);
        assert_eq!(f.created_at, T0);
    }

    #[test]
    fn drafts_can_be_edited_even_when_incomplete() {
        let mut f = draft(1, valid());
        let incomplete = FlowContent {
            name: "".into(),
            pipeline: "".into(),
            stations: vec![],
        };
        f.edit(incomplete.clone())
            .expect("drafts may be incomplete");
        assert_eq!(f.content, incomplete);
        assert_eq!(f.status, FlowStatus::Draft);
    }

    #[test]
    fn active_and_archived_versions_cannot_be_edited() {
        let mut f = active(1);
        let mut changed = valid();
        changed.name = "Changed".into();
        let err = f.edit(changed.clone()).expect_err("active is immutable");
        assert!(matches!(
            err,
            FlowError::NotDraft {
                status: "active",
                version: 1,
                ..
            }
        ));
        assert_eq!(f.content, valid());

        f.archive().expect("active");
        let err = f.edit(changed).expect_err("archived is immutable");
        assert!(matches!(
            err,
            FlowError::NotDraft {
                status: "archived",
                ..
            }
        ));
        assert_eq!(f.content, valid());
    }

    #[test]
    fn publishing_archives_the_previous_active_version() {
        let mut v1 = active(1);
        let mut v2 = draft(2, valid());
        v2.publish(Some(&mut v1), None, T0 + time::Duration::days(1))
            .expect("valid");
        assert_eq!(v2.status, FlowStatus::Active);
        assert_eq!(v2.effective_date, Some(T0 + time::Duration::days(1)));
        assert_eq!(v1.status, FlowStatus::Archived);
        assert!(v1.check_startable(T0 + time::Duration::days(2)).is_err());
        assert_eq!(v2.check_startable(T0 + time::Duration::days(1)), Ok(()));
    }

    #[test]
    fn publishing_leaves_a_previous_version_that_is_not_active_alone() {
        for status in [FlowStatus::Draft, FlowStatus::Archived] {
            let mut other = draft(1, valid());
            other.status = status;
            let mut v2 = draft(2, valid());
            v2.publish(Some(&mut other), None, T0).expect("valid");
            assert_eq!(other.status, status);
        }
    }

    #[test]
    fn an_invalid_draft_is_not_published_and_nothing_changes() {
        let mut content = valid();
        content.name = "".into();
        content.stations[1].steps.clear();
        let mut v1 = active(1);
        let mut v2 = draft(2, content.clone());
        let (v1_before, v2_before) = (v1.clone(), v2.clone());
        let err = v2
            .publish(Some(&mut v1), None, T0)
            .expect_err("invalid content");
        assert_eq!(err, FlowError::Invalid(content.problems()));
        assert_eq!(
            err.to_string(),
            "the flow has 2 problem(s); fix them before publishing"
        );
        assert_eq!(v1, v1_before);
        assert_eq!(v2, v2_before);
    }

    #[test]
    fn only_drafts_are_published() {
        let mut v1 = active(1);
        let mut v2 = active(2);
        let v1_before = v1.clone();
        let err = v2
            .publish(Some(&mut v1), None, T0)
            .expect_err("already active");
        assert!(matches!(err, FlowError::NotDraft { version: 2, .. }));
        assert_eq!(v1, v1_before);
    }

    #[test]
    fn only_active_versions_are_archived() {
        let mut f = draft(1, valid());
        assert!(matches!(
            f.archive(),
            Err(FlowError::NotActive {
                status: "draft",
                ..
            })
        ));
        assert_eq!(f.status, FlowStatus::Draft);
        let mut f = active(1);
        f.archive().expect("active");
        assert_eq!(f.status, FlowStatus::Archived);
        assert!(matches!(
            f.archive(),
            Err(FlowError::NotActive {
                status: "archived",
                ..
            })
        ));
    }

    #[test]
    fn a_future_effective_date_is_not_startable_yet() {
        let effective = datetime!(2026-04-01 00:00 UTC);
        let mut f = draft(1, valid());
        f.publish(None, Some(effective), T0).expect("valid");
        assert_eq!(f.effective_date, Some(effective));
        let err = f.check_startable(T0).expect_err("not yet");
        assert_eq!(
            err,
            FlowError::NotYetEffective {
                flow_id: "gold-refining".into(),
                version: 1,
                effective: "2026-04-01T00:00:00Z".into(),
            }
        );
        // Effective from that instant on, inclusive.
        assert_eq!(f.check_startable(effective), Ok(()));
        assert_eq!(
            f.check_startable(effective + time::Duration::seconds(1)),
            Ok(())
        );
    }

    #[test]
    fn drafts_and_archived_versions_are_not_startable() {
        let f = draft(1, valid());
        assert!(matches!(
            f.check_startable(T0),
            Err(FlowError::NotActive { .. })
        ));
        let mut f = active(1);
        f.archive().expect("active");
        assert!(matches!(
            f.check_startable(T0),
            Err(FlowError::NotActive { .. })
        ));
    }

    #[test]
    fn a_flow_round_trips_through_json() {
        let f = active(3);
        let json = serde_json::to_string(&f).expect("serialize");
        let back: Flow = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, f);
        let v: serde_json::Value = serde_json::from_str(&json).expect("json");
        assert_eq!(v["stations"][0]["steps"][2]["type"], "mass_check");
        assert_eq!(
            v["stations"][0]["steps"][2]["tolerance"]["kind"],
            "absolute"
        );
        assert_eq!(v["status"], "active");
    }
}
