//! Admin: flows: the list, the builder for a draft (stations and steps as form fields, with
//! each problem beside its field), the preview with a dummy batch and the diff of versions.

use askama::Template;

use super::{Layout, Problem, Verdict};

/// Admin: flows.
#[derive(Debug, Template)]
#[template(path = "flows.html")]
pub struct FlowsPage {
    pub layout: Layout,
    pub flows: Vec<FlowRow>,
    pub new_flow_id: String,
    pub new_name: String,
    pub new_pipeline: String,
    pub json: String,
    pub problems: Vec<Problem>,
    /// Open the JSON form (it was the one submitted).
    pub json_open: bool,
}

#[derive(Debug, Clone)]
pub struct FlowRow {
    pub flow_id: String,
    pub version: u32,
    pub name: String,
    pub status: String,
    pub steps: usize,
}

/// One line of a flow's version history.
#[derive(Debug, Clone)]
pub struct VersionRow {
    pub version: u32,
    pub status: String,
    pub created_by: String,
    pub created_at: String,
    pub effective: String,
    /// The version before it, to compare with.
    pub previous: Option<u32>,
    pub current: bool,
}

/// A problem with a link to the field it is about.
#[derive(Debug, Clone)]
pub struct FieldProblem {
    /// The domain's path, e.g. `stations[0].steps[1].name`.
    pub path: String,
    pub message: String,
    /// The id of the field (`f-s0-t1-name`), or of its station or step block.
    pub anchor: String,
}

/// A field's error, by field name within its station or step.
#[derive(Debug, Clone)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

fn error_in<'a>(errors: &'a [FieldError], field: &str) -> Option<&'a str> {
    errors
        .iter()
        .find(|e| e.field == field)
        .map(|e| e.message.as_str())
}

#[derive(Debug, Clone)]
pub struct StationEdit {
    pub index: usize,
    /// `s0` (form names) and `s0` (ids: the same, dashes below).
    pub key: String,
    pub station_id: String,
    pub name: String,
    pub errors: Vec<FieldError>,
    pub steps: Vec<StepEdit>,
    pub first: bool,
    pub last: bool,
}

impl StationEdit {
    pub fn err(&self, field: &str) -> Option<&str> {
        error_in(&self.errors, field)
    }
}

#[derive(Debug, Clone, Default)]
pub struct StepEdit {
    pub station: usize,
    pub index: usize,
    /// `s0.t1`: the prefix of the step's form names.
    pub key: String,
    /// `s0-t1`: the prefix of its element ids.
    pub id: String,
    pub step_id: String,
    pub name: String,
    pub kind: String,
    pub kind_label: String,
    pub text: String,
    pub items: String,
    pub expected_mass: String,
    pub unit: String,
    pub tolerance_kind: String,
    pub tolerance_value: String,
    pub tolerance_unit: String,
    pub meaning: String,
    pub prompt: String,
    pub errors: Vec<FieldError>,
    pub first: bool,
    pub last: bool,
}

impl StepEdit {
    pub fn err(&self, field: &str) -> Option<&str> {
        error_in(&self.errors, field)
    }
}

/// Admin: one flow version: the builder for a draft, a read-only outline otherwise.
#[derive(Debug, Template)]
#[template(path = "flow_edit.html")]
pub struct FlowEditPage {
    pub layout: Layout,
    pub flow_id: String,
    pub version: u32,
    pub status: String,
    pub editable: bool,
    pub name: String,
    pub pipeline: String,
    /// Errors of the flow's own fields (`name`, `pipeline`, `stations`).
    pub errors: Vec<FieldError>,
    pub stations: Vec<StationEdit>,
    pub problems: Vec<FieldProblem>,
    /// (value, label) of the step types.
    pub step_types: Vec<(String, String)>,
    pub units: Vec<String>,
    /// The content as JSON, for the advanced editor and for reading.
    pub json: String,
    pub json_open: bool,
    pub versions: Vec<VersionRow>,
}

impl FlowEditPage {
    pub fn err(&self, field: &str) -> Option<&str> {
        error_in(&self.errors, field)
    }
}

/// One step in the preview's step list.
#[derive(Debug, Clone)]
pub struct PreviewLink {
    pub index: usize,
    pub label: String,
    pub current: bool,
}

/// Admin: a flow version walked through as an operator would see it, on a dummy batch that
/// is never stored.
#[derive(Debug, Template)]
#[template(path = "flow_preview.html")]
pub struct FlowPreviewPage {
    pub layout: Layout,
    pub flow_id: String,
    pub version: u32,
    pub status: String,
    pub steps: Vec<PreviewLink>,
    pub index: usize,
    pub count: usize,
    pub station_name: String,
    pub name: String,
    pub kind: String,
    pub text: String,
    pub items: Vec<String>,
    pub expected: String,
    pub tolerance: String,
    /// "999.5 g – 1000.5 g": the readings this step accepts.
    pub window: String,
    pub meaning: String,
    pub unit: String,
    pub weight: String,
    pub verdict: Option<Verdict>,
    pub weight_error: Option<String>,
    pub prev: Option<usize>,
    pub next: Option<usize>,
    pub problems: Vec<Problem>,
}

#[derive(Debug, Clone)]
pub struct ChangeRow {
    pub subject: String,
    pub kind: String,
    pub field: String,
    pub before: String,
    pub after: String,
}

/// Admin: what changed from one version of a flow to another.
#[derive(Debug, Template)]
#[template(path = "flow_diff.html")]
pub struct FlowDiffPage {
    pub layout: Layout,
    pub flow_id: String,
    pub from: u32,
    pub to: u32,
    pub versions: Vec<u32>,
    pub changes: Vec<ChangeRow>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout {
            title: "T".into(),
            csrf: "tok".into(),
            ..Layout::default()
        }
    }

    fn page(errors: Vec<FieldError>) -> FlowEditPage {
        FlowEditPage {
            layout: layout(),
            flow_id: "gold".into(),
            version: 2,
            status: "draft".into(),
            editable: true,
            name: "Gold <refining>".into(),
            pipeline: "gold".into(),
            errors: vec![],
            stations: vec![StationEdit {
                index: 0,
                key: "s0".into(),
                station_id: "receiving".into(),
                name: "Receiving".into(),
                errors: vec![],
                steps: vec![StepEdit {
                    key: "s0.t0".into(),
                    id: "s0-t0".into(),
                    step_id: "weigh".into(),
                    name: "Weigh".into(),
                    kind: "mass_check".into(),
                    kind_label: "Mass check".into(),
                    expected_mass: "1000".into(),
                    unit: "g".into(),
                    tolerance_kind: "absolute".into(),
                    tolerance_value: "x".into(),
                    tolerance_unit: "g".into(),
                    errors,
                    first: true,
                    last: true,
                    ..StepEdit::default()
                }],
                first: true,
                last: true,
            }],
            problems: vec![],
            step_types: vec![("photo".into(), "Photo".into())],
            units: vec!["g".into(), "kg".into()],
            json: "{}".into(),
            json_open: false,
            versions: vec![],
        }
    }

    #[test]
    fn a_field_error_sits_beside_its_field_and_is_announced() {
        let html = page(vec![FieldError {
            field: "tolerance".into(),
            message: "\"x\" is not a number".into(),
        }])
        .render()
        .expect("render");
        assert!(html.contains(r#"id="e-s0-t0-tolerance""#), "{html}");
        assert!(html.contains(r#"aria-describedby="e-s0-t0-tolerance""#));
        assert!(html.contains(r#"aria-invalid="true""#));
        assert!(html.contains("Gold &#60;refining&#62;") || html.contains("Gold &lt;refining&gt;"));
        let forms = html.matches("<form method=\"post\"").count();
        let tokens = html.matches(r#"name="_csrf" value="tok""#).count();
        assert_eq!(forms, tokens);
    }

    #[test]
    fn without_errors_nothing_is_marked_invalid() {
        let html = page(vec![]).render().expect("render");
        assert!(!html.contains("aria-invalid"));
        // The only step can move nowhere.
        assert!(!html.contains(r#"value="step_up:0:0""#));
        assert!(!html.contains(r#"value="step_down:0:0""#));
    }
}
