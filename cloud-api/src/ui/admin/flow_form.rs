//! The flow builder's form: a draft as the admin is typing it (every field a string, so a
//! half-typed mass survives a round trip), the structural edits its buttons make (add,
//! move, remove stations and steps) and the parse into [`FlowContent`].
//!
//! Field names follow the domain's problem paths with short prefixes: `s0.name` is
//! `stations[0].name`, `s0.t1.expected_mass` is `stations[0].steps[1].expected_mass`, so a
//! problem found by [`FlowContent::problems`] lands beside the field it is about.

use std::collections::BTreeMap;

use metcon_shared::flow::{FlowContent, Station, Step, StepKind};
use metcon_shared::mass::MassUnit;
use metcon_shared::tolerance::Tolerance;
use rust_decimal::Decimal;

use crate::ui::Form;

/// More than any refinery flow has; a form beyond this is refused rather than built.
pub const MAX_STATIONS: usize = 50;
pub const MAX_STEPS_PER_STATION: usize = 100;

/// The five step types, in the order the "add step" menu offers them.
pub const STEP_TYPES: [&str; 5] = [
    "instruction",
    "checklist",
    "mass_check",
    "signature",
    "photo",
];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowForm {
    pub name: String,
    pub pipeline: String,
    pub stations: Vec<StationForm>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StationForm {
    pub station_id: String,
    pub name: String,
    pub steps: Vec<StepForm>,
}

/// One step; only the fields of its `kind` are used.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepForm {
    pub step_id: String,
    pub name: String,
    /// One of [`STEP_TYPES`].
    pub kind: String,
    pub text: String,
    /// One checklist item per line.
    pub items: String,
    pub expected_mass: String,
    pub unit: String,
    /// `absolute` or `relative`.
    pub tolerance_kind: String,
    pub tolerance_value: String,
    pub tolerance_unit: String,
    pub meaning: String,
    pub prompt: String,
}

/// A problem with one field, keyed by the field's form name (`s0.t1.name`), or by a whole
/// part (`s0.steps`, `stations`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    pub key: String,
    pub message: String,
}

/// What a button of the builder asks for. Every one of them also saves what was typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    Save,
    AddStation,
    /// Adds a step of the type chosen in `s{n}.new_type` at the end of station n.
    AddStep(usize),
    StationUp(usize),
    StationDown(usize),
    RemoveStation(usize),
    StepUp(usize, usize),
    StepDown(usize, usize),
    RemoveStep(usize, usize),
}

impl Edit {
    /// `save`, `add_station`, `add_step:0`, `station_up:1`, `step_down:0:2`, …
    pub fn parse(op: &str) -> Option<Edit> {
        let mut parts = op.split(':');
        let name = parts.next()?;
        let mut n = || parts.next().and_then(|p| p.parse::<usize>().ok());
        let e = match name {
            "save" => Edit::Save,
            "add_station" => Edit::AddStation,
            "add_step" => Edit::AddStep(n()?),
            "station_up" => Edit::StationUp(n()?),
            "station_down" => Edit::StationDown(n()?),
            "remove_station" => Edit::RemoveStation(n()?),
            "step_up" => Edit::StepUp(n()?, n()?),
            "step_down" => Edit::StepDown(n()?, n()?),
            "remove_step" => Edit::RemoveStep(n()?, n()?),
            _ => return None,
        };
        Some(e)
    }
}

fn unit_symbol(u: MassUnit) -> String {
    u.symbol().to_string()
}

impl StepForm {
    /// A new step of `kind`, with an id that is not taken yet.
    pub fn new(kind: &str, taken: &[String]) -> StepForm {
        let mut n = taken.len() + 1;
        let mut id = format!("step-{n}");
        while taken.contains(&id) {
            n += 1;
            id = format!("step-{n}");
        }
        StepForm {
            step_id: id,
            kind: kind.to_string(),
            unit: "g".into(),
            tolerance_kind: "absolute".into(),
            tolerance_unit: "g".into(),
            ..StepForm::default()
        }
    }

    fn from_step(step: &Step) -> StepForm {
        let mut f = StepForm {
            step_id: step.step_id.clone(),
            name: step.name.clone(),
            kind: step.kind.type_name().to_string(),
            unit: "g".into(),
            tolerance_kind: "absolute".into(),
            tolerance_unit: "g".into(),
            ..StepForm::default()
        };
        match &step.kind {
            StepKind::Instruction { text } => f.text = text.clone(),
            StepKind::Checklist { items } => f.items = items.join("\n"),
            StepKind::MassCheck {
                expected_mass,
                unit,
                tolerance,
            } => {
                f.expected_mass = expected_mass.to_string();
                f.unit = unit_symbol(*unit);
                match tolerance {
                    Tolerance::Absolute { value, unit } => {
                        f.tolerance_value = value.to_string();
                        f.tolerance_unit = unit_symbol(*unit);
                    }
                    Tolerance::Relative { percent } => {
                        f.tolerance_kind = "relative".into();
                        f.tolerance_value = percent.to_string();
                        f.tolerance_unit = f.unit.clone();
                    }
                }
            }
            StepKind::Signature { meaning } => f.meaning = meaning.clone(),
            StepKind::Photo { prompt } => f.prompt = prompt.clone(),
        }
        f
    }

    fn to_step(&self, key: &str, problems: &mut Vec<FieldProblem>) -> Option<Step> {
        let mut problem = |field: &str, message: String| {
            problems.push(FieldProblem {
                key: format!("{key}.{field}"),
                message,
            })
        };
        let decimal = |s: &str| Decimal::from_str_exact(&s.trim().replace(',', "."));
        let unit = |s: &str| s.trim().parse::<MassUnit>();
        let kind = match self.kind.as_str() {
            "instruction" => StepKind::Instruction {
                text: self.text.trim().to_string(),
            },
            "checklist" => StepKind::Checklist {
                items: self
                    .items
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect(),
            },
            "mass_check" => {
                let expected = decimal(&self.expected_mass);
                let u = unit(&self.unit);
                let tol_value = decimal(&self.tolerance_value);
                let tol_unit = unit(&self.tolerance_unit);
                if expected.is_err() {
                    problem(
                        "expected_mass",
                        format!("{:?} is not a number, e.g. 1000.00", self.expected_mass),
                    );
                }
                if u.is_err() {
                    problem("unit", format!("{:?} is not a mass unit", self.unit));
                }
                if tol_value.is_err() {
                    problem(
                        "tolerance",
                        format!("{:?} is not a number, e.g. 0.5", self.tolerance_value),
                    );
                }
                let tolerance = match (self.tolerance_kind.as_str(), tol_value, tol_unit) {
                    ("absolute", Ok(value), Ok(unit)) => Some(Tolerance::Absolute { value, unit }),
                    ("absolute", Ok(_), Err(_)) => {
                        problem(
                            "tolerance",
                            format!("{:?} is not a mass unit", self.tolerance_unit),
                        );
                        None
                    }
                    ("relative", Ok(percent), _) => Some(Tolerance::Relative { percent }),
                    (other, Ok(_), _) => {
                        problem(
                            "tolerance",
                            format!("{other:?} is neither an absolute nor a relative tolerance"),
                        );
                        None
                    }
                    (_, Err(_), _) => None,
                };
                match (expected, u, tolerance) {
                    (Ok(expected_mass), Ok(unit), Some(tolerance)) => StepKind::MassCheck {
                        expected_mass,
                        unit,
                        tolerance,
                    },
                    _ => return None,
                }
            }
            "signature" => StepKind::Signature {
                meaning: self.meaning.trim().to_string(),
            },
            "photo" => StepKind::Photo {
                prompt: self.prompt.trim().to_string(),
            },
            other => {
                problem("type", format!("{other:?} is not a step type"));
                return None;
            }
        };
        Some(Step {
            step_id: self.step_id.trim().to_string(),
            name: self.name.trim().to_string(),
            kind,
        })
    }
}

impl FlowForm {
    pub fn from_content(c: &FlowContent) -> FlowForm {
        FlowForm {
            name: c.name.clone(),
            pipeline: c.pipeline.clone(),
            stations: c
                .stations
                .iter()
                .map(|s| StationForm {
                    station_id: s.station_id.clone(),
                    name: s.name.clone(),
                    steps: s.steps.iter().map(StepForm::from_step).collect(),
                })
                .collect(),
        }
    }

    /// Reads the builder's fields. Stations and steps come back in the order of their
    /// indices (the page numbers them in order); gaps are closed.
    pub fn from_form(form: &Form) -> Result<FlowForm, String> {
        let mut stations: BTreeMap<usize, (StationForm, BTreeMap<usize, StepForm>)> =
            BTreeMap::new();
        let mut f = FlowForm::default();
        for (k, v) in &form.0 {
            match k.as_str() {
                "name" => f.name = v.clone(),
                "pipeline" => f.pipeline = v.clone(),
                _ => {}
            }
            let Some(rest) = k.strip_prefix('s') else {
                continue;
            };
            let Some((si, rest)) = rest.split_once('.') else {
                continue;
            };
            let Ok(si) = si.parse::<usize>() else {
                continue;
            };
            if si >= MAX_STATIONS {
                return Err(format!("a flow has at most {MAX_STATIONS} stations"));
            }
            let entry = stations.entry(si).or_default();
            if let Some(rest) = rest.strip_prefix('t') {
                let Some((ti, field)) = rest.split_once('.') else {
                    continue;
                };
                let Ok(ti) = ti.parse::<usize>() else {
                    continue;
                };
                if ti >= MAX_STEPS_PER_STATION {
                    return Err(format!(
                        "a station has at most {MAX_STEPS_PER_STATION} steps"
                    ));
                }
                let step = entry.1.entry(ti).or_default();
                let slot = match field {
                    "step_id" => &mut step.step_id,
                    "name" => &mut step.name,
                    "type" => &mut step.kind,
                    "text" => &mut step.text,
                    "items" => &mut step.items,
                    "expected_mass" => &mut step.expected_mass,
                    "unit" => &mut step.unit,
                    "tolerance_kind" => &mut step.tolerance_kind,
                    "tolerance_value" => &mut step.tolerance_value,
                    "tolerance_unit" => &mut step.tolerance_unit,
                    "meaning" => &mut step.meaning,
                    "prompt" => &mut step.prompt,
                    _ => continue,
                };
                *slot = v.clone();
            } else {
                match rest {
                    "station_id" => entry.0.station_id = v.clone(),
                    "name" => entry.0.name = v.clone(),
                    _ => {}
                }
            }
        }
        f.stations = stations
            .into_values()
            .map(|(mut s, steps)| {
                s.steps = steps.into_values().collect();
                s
            })
            .collect();
        Ok(f)
    }

    /// Applies a button's edit. `new_type` is the type chosen for an added step.
    pub fn apply(&mut self, edit: Edit, new_type: Option<&str>) -> Result<(), String> {
        let taken: Vec<String> = self
            .stations
            .iter()
            .flat_map(|s| s.steps.iter().map(|t| t.step_id.clone()))
            .collect();
        let n = self.stations.len();
        let steps = |f: &FlowForm, s: usize| f.stations.get(s).map(|s| s.steps.len());
        match edit {
            Edit::Save => {}
            Edit::AddStation => {
                if n >= MAX_STATIONS {
                    return Err(format!("a flow has at most {MAX_STATIONS} stations"));
                }
                self.stations.push(StationForm {
                    station_id: format!("station-{}", n + 1),
                    ..StationForm::default()
                });
            }
            Edit::AddStep(s) => {
                let kind = new_type.unwrap_or("instruction");
                if !STEP_TYPES.contains(&kind) {
                    return Err(format!("{kind:?} is not a step type"));
                }
                let station = self.stations.get_mut(s).ok_or("no such station")?;
                if station.steps.len() >= MAX_STEPS_PER_STATION {
                    return Err(format!(
                        "a station has at most {MAX_STEPS_PER_STATION} steps"
                    ));
                }
                station.steps.push(StepForm::new(kind, &taken));
            }
            Edit::StationUp(s) if s > 0 && s < n => self.stations.swap(s - 1, s),
            Edit::StationDown(s) if s + 1 < n => self.stations.swap(s, s + 1),
            Edit::RemoveStation(s) if s < n => {
                self.stations.remove(s);
            }
            Edit::StepUp(s, t) if t > 0 && steps(self, s).is_some_and(|m| t < m) => {
                self.stations[s].steps.swap(t - 1, t)
            }
            Edit::StepDown(s, t) if steps(self, s).is_some_and(|m| t + 1 < m) => {
                self.stations[s].steps.swap(t, t + 1)
            }
            Edit::RemoveStep(s, t) if steps(self, s).is_some_and(|m| t < m) => {
                self.stations[s].steps.remove(t);
            }
            _ => return Err("that station or step is not there any more".into()),
        }
        Ok(())
    }

    /// The content, or the fields that do not parse (numbers, units, types). The domain's
    /// own rules ([`FlowContent::problems`]) are checked on the result.
    pub fn to_content(&self) -> Result<FlowContent, Vec<FieldProblem>> {
        let mut problems = Vec::new();
        let mut stations = Vec::new();
        for (si, s) in self.stations.iter().enumerate() {
            let steps: Vec<Step> = s
                .steps
                .iter()
                .enumerate()
                .filter_map(|(ti, t)| t.to_step(&format!("s{si}.t{ti}"), &mut problems))
                .collect();
            stations.push(Station {
                station_id: s.station_id.trim().to_string(),
                name: s.name.trim().to_string(),
                steps,
            });
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(FlowContent {
            name: self.name.trim().to_string(),
            pipeline: self.pipeline.trim().to_string(),
            stations,
        })
    }
}

/// The form key of a domain problem path: `stations[0].steps[1].items[2]` → `s0.t1.items`.
pub fn key_of_path(path: &str) -> String {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (name, index) = match part.split_once('[') {
            Some((n, i)) => (n, i.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        match (name, index) {
            ("stations", Some(i)) => out.push(format!("s{i}")),
            ("steps", Some(i)) => out.push(format!("t{i}")),
            (n, _) => {
                out.push(n.to_string());
                break;
            }
        }
    }
    out.join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FlowForm {
        FlowForm::from_form(&Form::of(&[
            ("name", "Gold"),
            ("pipeline", "gold"),
            ("s0.station_id", "receiving"),
            ("s0.name", "Receiving"),
            ("s0.t0.step_id", "weigh-in"),
            ("s0.t0.name", "Weigh in"),
            ("s0.t0.type", "mass_check"),
            ("s0.t0.expected_mass", "1000,00"),
            ("s0.t0.unit", "g"),
            ("s0.t0.tolerance_kind", "absolute"),
            ("s0.t0.tolerance_value", "0.5"),
            ("s0.t0.tolerance_unit", "g"),
            ("s0.t1.step_id", "check"),
            ("s0.t1.name", "Check seals"),
            ("s0.t1.type", "checklist"),
            ("s0.t1.items", "Seal intact\r\n\r\nLabel matches\n"),
            ("s1.station_id", "assay"),
            ("s1.name", "Assay"),
            ("s1.t0.step_id", "sign"),
            ("s1.t0.name", "Sign"),
            ("s1.t0.type", "signature"),
            ("s1.t0.meaning", "Released by"),
        ]))
        .expect("form")
    }

    #[test]
    fn the_form_parses_into_valid_content_exactly() {
        let c = sample().to_content().expect("content");
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        match &c.stations[0].steps[0].kind {
            StepKind::MassCheck { expected_mass, .. } => {
                assert_eq!(expected_mass.to_string(), "1000.00")
            }
            k => panic!("{k:?}"),
        }
        match &c.stations[0].steps[1].kind {
            StepKind::Checklist { items } => assert_eq!(items, &["Seal intact", "Label matches"]),
            k => panic!("{k:?}"),
        }
        // And back: the builder shows what was saved.
        let again = FlowForm::from_content(&c).to_content().expect("again");
        assert_eq!(again, c);
    }

    #[test]
    fn a_number_that_does_not_parse_is_kept_and_named() {
        let mut f = sample();
        f.stations[0].steps[0].expected_mass = "1.000,5x".into();
        f.stations[0].steps[0].tolerance_unit = "pounds".into();
        let ps = f.to_content().expect_err("refused");
        let keys: Vec<&str> = ps.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, vec!["s0.t0.expected_mass", "s0.t0.tolerance"]);
        assert!(ps[0].message.contains("1.000,5x"));
    }

    #[test]
    fn buttons_add_move_and_remove() {
        let mut f = sample();
        f.apply(Edit::StepDown(0, 0), None).expect("down");
        assert_eq!(f.stations[0].steps[0].step_id, "check");
        f.apply(Edit::StationUp(1), None).expect("up");
        assert_eq!(f.stations[0].station_id, "assay");
        f.apply(Edit::AddStep(0), Some("photo")).expect("add");
        let added = &f.stations[0].steps[1];
        assert_eq!(added.kind, "photo");
        assert!(!["weigh-in", "check", "sign"].contains(&added.step_id.as_str()));
        f.apply(Edit::RemoveStep(0, 0), None).expect("remove");
        assert_eq!(f.stations[0].steps.len(), 1);
        f.apply(Edit::AddStation, None).expect("station");
        assert_eq!(f.stations.len(), 3);
        // Moving past either end, or a step that is gone, is refused, not a panic.
        assert!(f.apply(Edit::StationUp(0), None).is_err());
        assert!(f.apply(Edit::StationDown(2), None).is_err());
        assert!(f.apply(Edit::StepUp(9, 0), None).is_err());
        assert!(f.apply(Edit::RemoveStep(0, 7), None).is_err());
        assert!(f.apply(Edit::AddStep(0), Some("dance")).is_err());
    }

    #[test]
    fn ops_parse_and_junk_does_not() {
        assert_eq!(Edit::parse("step_down:0:2"), Some(Edit::StepDown(0, 2)));
        assert_eq!(Edit::parse("add_step:3"), Some(Edit::AddStep(3)));
        assert_eq!(Edit::parse("save"), Some(Edit::Save));
        assert_eq!(Edit::parse("step_down:0"), None);
        assert_eq!(Edit::parse("step_down:x:1"), None);
        assert_eq!(Edit::parse("drop_table"), None);
    }

    #[test]
    fn huge_indices_are_refused_without_allocating() {
        assert!(FlowForm::from_form(&Form::of(&[("s99999999.name", "x")])).is_err());
        assert!(FlowForm::from_form(&Form::of(&[("s0.t99999999.name", "x")])).is_err());
    }

    #[test]
    fn problem_paths_map_to_field_keys() {
        assert_eq!(key_of_path("stations[0].steps[1].items[2]"), "s0.t1.items");
        assert_eq!(key_of_path("stations[2].name"), "s2.name");
        assert_eq!(key_of_path("stations[0].steps"), "s0.steps");
        assert_eq!(key_of_path("name"), "name");
        assert_eq!(key_of_path("stations"), "stations");
    }
}
