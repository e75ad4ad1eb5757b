//! Admin: flows. The list and a new flow; the builder for a draft (stations and steps as form
//! fields, reordered with buttons, every problem shown beside its field, each button saving
//! the draft); a read-only outline of published versions; the preview, a dummy batch walked
//! through step by step with a weight to try against the tolerance; the version history and
//! the diff between two versions. A JSON editor stays for pasting whole flows.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::Router;
use metcon_shared::flow::{Flow, FlowContent, FlowProblem, FlowStatus, Station, Step, StepKind};
use metcon_shared::flow_diff;
use metcon_shared::mass::{Mass, MassUnit};
use metcon_shared::role::Permission;
use metcon_web::pages::{
    ChangeRow, FieldError, FieldProblem, FlowDiffPage, FlowEditPage, FlowPreviewPage, FlowRow,
    FlowsPage, Notice, PreviewLink, Problem, StationEdit, StepEdit, Verdict, VersionRow,
};
use serde::Deserialize;

use super::flow_form::{self, Edit, FlowForm};
use super::problems_of;
use crate::http::error::ApiError;
use crate::http::extract::{parse_json, Body, PathParams, QueryParams};
use crate::http::flows::{self as flows_api, ContentBody, CreateFlow, FlowView, NewVersion};
use crate::http::AppState;
use crate::ui::batch::parse_weight;
use crate::ui::{format, problem, render, Form, UiResult, Viewer};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/flows", get(flows).post(create_flow))
        .route("/admin/flows/{flow_id}/diff", get(diff))
        .route(
            "/admin/flows/{flow_id}/{version}",
            get(flow).post(save_flow),
        )
        .route("/admin/flows/{flow_id}/{version}/preview", get(preview))
        .route(
            "/admin/flows/{flow_id}/{version}/publish",
            post(publish_flow),
        )
        .route("/admin/flows/{flow_id}/versions", post(new_flow_version))
}

fn flow_row(f: &Flow) -> FlowRow {
    FlowRow {
        flow_id: f.flow_id.clone(),
        version: f.version,
        name: f.content.name.clone(),
        status: f.status.as_str().to_string(),
        steps: f.content.stations.iter().map(|s| s.steps.len()).sum(),
    }
}

const EXAMPLE_FLOW: &str = r#"{
  "name": "Gold refining",
  "pipeline": "gold",
  "stations": [
    { "station_id": "receiving", "name": "Receiving", "steps": [
      { "step_id": "weigh-in", "name": "Weigh in", "type": "mass_check",
        "expected_mass": "1000", "unit": "g",
        "tolerance": { "kind": "absolute", "value": "0.5", "unit": "g" } }
    ] }
  ]
}"#;

const UNITS: [MassUnit; 5] = [
    MassUnit::G,
    MassUnit::Kg,
    MassUnit::Mg,
    MassUnit::Ozt,
    MassUnit::Ct,
];

fn kind_label(kind: &str) -> &'static str {
    match kind {
        "instruction" => "Instruction",
        "checklist" => "Checklist",
        "mass_check" => "Mass check",
        "signature" => "Signature",
        "photo" => "Photo",
        _ => "Unknown type",
    }
}

/// What the "new flow" form starts a builder with: one station, one empty step, so the
/// builder opens with the problems that remain to fill in.
fn starter(name: &str, pipeline: &str) -> FlowContent {
    FlowContent {
        name: name.to_string(),
        pipeline: pipeline.to_string(),
        stations: vec![Station {
            station_id: "receiving".into(),
            name: "Receiving".into(),
            steps: vec![Step {
                step_id: "step-1".into(),
                name: String::new(),
                kind: StepKind::Instruction {
                    text: String::new(),
                },
            }],
        }],
    }
}

struct NewFlowForm {
    flow_id: String,
    name: String,
    pipeline: String,
    json: String,
    json_open: bool,
}

impl Default for NewFlowForm {
    fn default() -> Self {
        NewFlowForm {
            flow_id: String::new(),
            name: String::new(),
            pipeline: String::new(),
            json: EXAMPLE_FLOW.into(),
            json_open: false,
        }
    }
}

async fn flows_page(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    form: NewFlowForm,
    problems: Vec<Problem>,
) -> UiResult {
    viewer.require(Permission::ManageFlows)?;
    let axum::Json(flows) = flows_api::list(State(state.clone()), viewer.caller.clone())
        .await
        .map_err(|e| viewer.fail(e))?;
    Ok(render(
        status,
        &FlowsPage {
            layout: viewer.layout("Flows", None),
            flows: flows.iter().map(|f| flow_row(&f.flow)).collect(),
            new_flow_id: form.flow_id,
            new_name: form.name,
            new_pipeline: form.pipeline,
            json: form.json,
            json_open: form.json_open,
            problems,
        },
    ))
}

pub async fn flows(State(state): State<AppState>, viewer: Viewer) -> UiResult {
    flows_page(
        &state,
        &viewer,
        StatusCode::OK,
        NewFlowForm::default(),
        vec![],
    )
    .await
}

/// A new flow: from the builder's three fields, or from pasted JSON.
pub async fn create_flow(State(state): State<AppState>, viewer: Viewer, form: Form) -> UiResult {
    viewer.require(Permission::ManageFlows)?;
    let flow_id = form.get("flow_id").unwrap_or("").to_string();
    let mut back = NewFlowForm {
        flow_id: flow_id.clone(),
        name: form.get("name").unwrap_or("").to_string(),
        pipeline: form.get("pipeline").unwrap_or("").to_string(),
        ..NewFlowForm::default()
    };
    let content = match form.raw("content") {
        Some(text) => {
            back.json = text.to_string();
            back.json_open = true;
            match parse_json::<FlowContent>(text.as_bytes()) {
                Ok(c) => c,
                Err(e) => {
                    return flows_page(&state, &viewer, e.status, back, problems_of(&e)).await
                }
            }
        }
        None => starter(&back.name, &back.pipeline),
    };
    let r = flows_api::create(
        State(state.clone()),
        viewer.caller.clone(),
        Body(CreateFlow {
            flow_id: flow_id.clone(),
            content,
        }),
    )
    .await;
    match r {
        Ok(_) => Ok(Redirect::to(&format!("/admin/flows/{flow_id}/1")).into_response()),
        Err(e) => flows_page(&state, &viewer, e.status, back, problems_of(&e)).await,
    }
}

/// What the builder shows: the stored content, or what was typed with its problems.
enum Shown {
    Stored,
    Typed {
        form: FlowForm,
        problems: Vec<flow_form::FieldProblem>,
    },
    Json {
        text: String,
        problems: Vec<Problem>,
    },
}

fn builder_view(
    form: &FlowForm,
    problems: &[flow_form::FieldProblem],
) -> (Vec<FieldError>, Vec<StationEdit>) {
    let errors_at = |prefix: &str| -> Vec<FieldError> {
        problems
            .iter()
            .filter_map(|p| {
                let rest = if prefix.is_empty() {
                    p.key.as_str()
                } else {
                    p.key.strip_prefix(prefix)?.strip_prefix('.')?
                };
                (!rest.contains('.')).then(|| FieldError {
                    field: rest.to_string(),
                    message: p.message.clone(),
                })
            })
            .collect()
    };
    let n = form.stations.len();
    let stations = form
        .stations
        .iter()
        .enumerate()
        .map(|(si, st)| {
            let key = format!("s{si}");
            let m = st.steps.len();
            StationEdit {
                index: si,
                errors: errors_at(&key),
                steps: st
                    .steps
                    .iter()
                    .enumerate()
                    .map(|(ti, t)| {
                        let tkey = format!("s{si}.t{ti}");
                        StepEdit {
                            station: si,
                            index: ti,
                            errors: errors_at(&tkey),
                            id: tkey.replace('.', "-"),
                            key: tkey,
                            step_id: t.step_id.clone(),
                            name: t.name.clone(),
                            kind: t.kind.clone(),
                            kind_label: kind_label(&t.kind).to_string(),
                            text: t.text.clone(),
                            items: t.items.clone(),
                            expected_mass: t.expected_mass.clone(),
                            unit: t.unit.clone(),
                            tolerance_kind: t.tolerance_kind.clone(),
                            tolerance_value: t.tolerance_value.clone(),
                            tolerance_unit: t.tolerance_unit.clone(),
                            meaning: t.meaning.clone(),
                            prompt: t.prompt.clone(),
                            first: ti == 0,
                            last: ti + 1 == m,
                        }
                    })
                    .collect(),
                key,
                station_id: st.station_id.clone(),
                name: st.name.clone(),
                first: si == 0,
                last: si + 1 == n,
            }
        })
        .collect();
    (errors_at(""), stations)
}

/// A form key or problem path as people read it: `s0.t1.expected_mass` → "station 1, step 2:
/// expected mass".
fn human_path(key: &str) -> String {
    let mut out = Vec::new();
    for part in key.split('.') {
        let num = |p: &str, c: char| p.strip_prefix(c).and_then(|n| n.parse::<usize>().ok());
        match (num(part, 's'), num(part, 't')) {
            (Some(n), _) => out.push(format!("station {}", n + 1)),
            (_, Some(n)) => out.push(format!("step {}", n + 1)),
            _ => {
                let field = part.replace('_', " ");
                return if out.is_empty() {
                    field
                } else {
                    format!("{}: {field}", out.join(", "))
                };
            }
        }
    }
    out.join(", ")
}

/// The id of the element a problem is about: its field, else its step or station block.
fn anchor_of(key: &str) -> String {
    let id = |k: &str| format!("f-{}", k.replace('.', "-"));
    match key {
        "stations" => "f-name".into(),
        k if k.ends_with(".steps") => id(k.trim_end_matches(".steps")),
        k if k.ends_with(".type") => id(k.trim_end_matches(".type")),
        k if k.ends_with(".tolerance") => format!("{}_value", id(k)),
        k => id(k),
    }
}

fn field_problems(ps: &[FlowProblem]) -> Vec<flow_form::FieldProblem> {
    ps.iter()
        .map(|p| flow_form::FieldProblem {
            key: flow_form::key_of_path(&p.path),
            message: p.message.clone(),
        })
        .collect()
}

fn version_rows(versions: &[FlowView], current: u32) -> Vec<VersionRow> {
    let mut previous = None;
    versions
        .iter()
        .map(|v| {
            let f = &v.flow;
            let row = VersionRow {
                version: f.version,
                status: f.status.as_str().to_string(),
                created_by: f.created_by.clone(),
                created_at: format::time(f.created_at),
                effective: f.effective_date.map(format::time).unwrap_or_default(),
                previous,
                current: f.version == current,
            };
            previous = Some(f.version);
            row
        })
        .collect()
}

/// Every version of `flow_id`, oldest first.
async fn history(state: &AppState, viewer: &Viewer, flow_id: &str) -> UiResult<Vec<FlowView>> {
    let axum::Json(versions) = flows_api::versions(
        State(state.clone()),
        viewer.caller.clone(),
        PathParams(flow_id.to_string()),
    )
    .await
    .map_err(|e| viewer.fail(e))?;
    Ok(versions)
}

fn version_in<'a>(
    versions: &'a [FlowView],
    viewer: &Viewer,
    flow_id: &str,
    version: u32,
) -> UiResult<&'a FlowView> {
    versions
        .iter()
        .find(|v| v.flow.version == version)
        .ok_or_else(|| {
            viewer.fail(ApiError::not_found(format!(
                "flow {flow_id} has no version {version}"
            )))
        })
}

async fn flow_page(
    state: &AppState,
    viewer: &Viewer,
    flow_id: &str,
    version: u32,
    status: StatusCode,
    shown: Shown,
    notice: Option<Notice>,
) -> UiResult {
    viewer.require(Permission::ManageFlows)?;
    // One read: the history holds the version shown.
    let versions = history(state, viewer, flow_id).await?;
    let v = version_in(&versions, viewer, flow_id, version)?;
    let stored_json = serde_json::to_string_pretty(&v.flow.content)
        .map_err(|e| viewer.fail(ApiError::internal(e)))?;
    // (form key, message) for the summary at the top.
    let listed = |ps: &[FlowProblem]| -> Vec<(String, String)> {
        ps.iter()
            .map(|p| (flow_form::key_of_path(&p.path), p.message.clone()))
            .collect()
    };
    let (form, problems, json, json_open, summary) = match shown {
        Shown::Stored => (
            FlowForm::from_content(&v.flow.content),
            field_problems(&v.problems),
            stored_json,
            false,
            listed(&v.problems),
        ),
        Shown::Typed { form, problems } => {
            let summary = problems
                .iter()
                .map(|p| (p.key.clone(), p.message.clone()))
                .collect();
            (form, problems, stored_json, false, summary)
        }
        Shown::Json { text, problems } => {
            let summary = problems
                .iter()
                .map(|p| (flow_form::key_of_path(&p.path), p.message.clone()))
                .collect();
            let form = FlowForm::from_content(&v.flow.content);
            (form, vec![], text, true, summary)
        }
    };
    let (errors, stations) = builder_view(&form, &problems);
    Ok(render(
        status,
        &FlowEditPage {
            layout: viewer.layout(&format!("Flow {flow_id} v{version}"), notice),
            flow_id: flow_id.to_string(),
            version,
            status: v.flow.status.as_str().to_string(),
            editable: v.flow.status == FlowStatus::Draft,
            name: form.name.clone(),
            pipeline: form.pipeline.clone(),
            errors,
            stations,
            problems: summary
                .into_iter()
                .map(|(key, message)| FieldProblem {
                    anchor: anchor_of(&key),
                    path: human_path(&key),
                    message,
                })
                .collect(),
            step_types: flow_form::STEP_TYPES
                .iter()
                .map(|t| (t.to_string(), kind_label(t).to_string()))
                .collect(),
            units: UNITS.iter().map(|u| u.symbol().to_string()).collect(),
            json,
            json_open,
            versions: version_rows(&versions, version),
        },
    ))
}

pub async fn flow(
    State(state): State<AppState>,
    viewer: Viewer,
    PathParams((flow_id, version)): PathParams<(String, u32)>,
) -> UiResult {
    flow_page(
        &state,
        &viewer,
        &flow_id,
        version,
        StatusCode::OK,
        Shown::Stored,
        None,
    )
    .await
}

/// Saves a draft: from the builder (after the edit its button asks for) or from the JSON
/// editor. What does not parse is shown again as typed, with its problems, and not saved.
pub async fn save_flow(
    State(state): State<AppState>,
    viewer: Viewer,
    PathParams((flow_id, version)): PathParams<(String, u32)>,
    form: Form,
) -> UiResult {
    viewer.require(Permission::ManageFlows)?;
    let page = |status, shown, notice| {
        let (state, viewer, flow_id) = (state.clone(), viewer.clone(), flow_id.clone());
        async move { flow_page(&state, &viewer, &flow_id, version, status, shown, notice).await }
    };
    let content = if let Some(text) = form.raw("content") {
        match parse_json::<FlowContent>(text.as_bytes()) {
            Ok(c) => c,
            Err(e) => {
                let shown = Shown::Json {
                    text: text.to_string(),
                    problems: problems_of(&e),
                };
                return page(e.status, shown, None).await;
            }
        }
    } else {
        let bad = |message: String| {
            let e = ApiError::unprocessable(message);
            (e.status, Some(problem(&e)))
        };
        let mut typed = match FlowForm::from_form(&form) {
            Ok(f) => f,
            Err(m) => {
                let (status, notice) = bad(m);
                return page(status, Shown::Stored, notice).await;
            }
        };
        let op = form.get("op").unwrap_or("save");
        let Some(edit) = Edit::parse(op) else {
            let (status, notice) = bad(format!("{op:?} is not something the builder does"));
            return page(status, Shown::Stored, notice).await;
        };
        let new_type = match edit {
            Edit::AddStep(s) => form.get(&format!("s{s}.new_type")),
            _ => None,
        };
        if let Err(m) = typed.apply(edit, new_type) {
            let (status, notice) = bad(m);
            return page(
                status,
                Shown::Typed {
                    form: typed,
                    problems: vec![],
                },
                notice,
            )
            .await;
        }
        match typed.to_content() {
            Ok(c) => c,
            Err(problems) => {
                let notice = Notice {
                    ok: false,
                    text: "Not saved: fix the marked fields.".into(),
                };
                let shown = Shown::Typed {
                    form: typed,
                    problems,
                };
                return page(StatusCode::UNPROCESSABLE_ENTITY, shown, Some(notice)).await;
            }
        }
    };
    let r = flows_api::edit(
        State(state.clone()),
        viewer.caller.clone(),
        PathParams((flow_id.clone(), version)),
        Body(ContentBody { content }),
    )
    .await;
    match r {
        Ok(axum::Json(v)) => {
            let notice = Notice {
                ok: v.problems.is_empty(),
                text: if v.problems.is_empty() {
                    "Draft saved; it is ready to publish.".into()
                } else {
                    "Draft saved; fix the problems below before publishing.".into()
                },
            };
            page(StatusCode::OK, Shown::Stored, Some(notice)).await
        }
        Err(e) => page(e.status, Shown::Stored, Some(problem(&e))).await,
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct PreviewQuery {
    #[serde(default)]
    step: Option<usize>,
    #[serde(default)]
    weight: Option<String>,
    #[serde(default)]
    unit: Option<String>,
}

/// A dummy batch on this version, never stored: each step as the operator sees it, and for
/// mass checks the window of accepted readings and the verdict of a weight to try, decided
/// by the same tolerance check as a real batch.
pub async fn preview(
    State(state): State<AppState>,
    viewer: Viewer,
    PathParams((flow_id, version)): PathParams<(String, u32)>,
    QueryParams(q): QueryParams<PreviewQuery>,
) -> UiResult {
    viewer.require(Permission::ManageFlows)?;
    let axum::Json(v) = flows_api::get(
        State(state.clone()),
        viewer.caller.clone(),
        PathParams((flow_id.clone(), version)),
    )
    .await
    .map_err(|e| viewer.fail(e))?;
    let c = &v.flow.content;
    let count = c.step_count();
    let index = q.step.unwrap_or(0).min(count.saturating_sub(1));
    let mut page = FlowPreviewPage {
        layout: viewer.layout(&format!("Preview {flow_id} v{version}"), None),
        flow_id: flow_id.clone(),
        version,
        status: v.flow.status.as_str().to_string(),
        steps: c
            .steps()
            .enumerate()
            .map(|(i, (st, t))| PreviewLink {
                index: i,
                label: format!("{} · {}", st.name, t.name),
                current: i == index,
            })
            .collect(),
        index,
        count,
        station_name: String::new(),
        name: String::new(),
        kind: String::new(),
        text: String::new(),
        items: vec![],
        expected: String::new(),
        tolerance: String::new(),
        window: String::new(),
        meaning: String::new(),
        unit: String::new(),
        weight: q.weight.clone().unwrap_or_default(),
        verdict: None,
        weight_error: None,
        prev: index.checked_sub(1),
        next: (index + 1 < count).then_some(index + 1),
        problems: v
            .problems
            .iter()
            .map(|p| Problem {
                path: p.path.clone(),
                message: p.message.clone(),
            })
            .collect(),
    };
    if let Some((st, t)) = c.step_at(index) {
        page.station_name = st.name.clone();
        page.name = t.name.clone();
        page.kind = t.kind.type_name().to_string();
        match &t.kind {
            StepKind::Instruction { text } => page.text = text.clone(),
            StepKind::Checklist { items } => page.items = items.clone(),
            StepKind::Signature { meaning } => page.meaning = meaning.clone(),
            StepKind::Photo { prompt } => page.text = prompt.clone(),
            StepKind::MassCheck {
                expected_mass,
                unit,
                tolerance,
            } => {
                page.expected = format::amount(*expected_mass, *unit);
                page.tolerance = format::tolerance(tolerance);
                page.unit = unit.symbol().to_string();
                if let Ok(expected) = Mass::new(*expected_mass, *unit) {
                    let allowed = tolerance.check(&expected, &expected).allowed;
                    page.window = format!(
                        "{} – {}",
                        format::amount(*expected_mass - allowed, *unit),
                        format::amount(*expected_mass + allowed, *unit)
                    );
                    if let Some(w) = q.weight.as_deref().filter(|w| !w.trim().is_empty()) {
                        let u = q.unit.as_deref().unwrap_or(unit.symbol());
                        match parse_weight(w, u) {
                            Ok(actual) => {
                                let check = tolerance.check(&expected, &actual);
                                page.verdict = Some(Verdict {
                                    ok: check.within,
                                    headline: format::verdict_headline(&actual, &check),
                                    detail: format!(
                                        "Deviation {} (allowed ± {}). In a real batch {}.",
                                        format::deviation(&check, &actual),
                                        format::amount(check.allowed, check.unit),
                                        if check.within {
                                            "the step completes"
                                        } else {
                                            "a reason is required and a supervisor must approve"
                                        }
                                    ),
                                });
                            }
                            Err(e) => page.weight_error = Some(e.detail),
                        }
                    }
                }
            }
        }
    }
    Ok(render(StatusCode::OK, &page))
}

#[derive(Debug, Deserialize)]
pub struct DiffQuery {
    from: u32,
    to: u32,
}

/// What changed from one version to another (stations and steps matched by id).
pub async fn diff(
    State(state): State<AppState>,
    viewer: Viewer,
    PathParams(flow_id): PathParams<String>,
    QueryParams(q): QueryParams<DiffQuery>,
) -> UiResult {
    viewer.require(Permission::ManageFlows)?;
    let versions = history(&state, &viewer, &flow_id).await?;
    let a = version_in(&versions, &viewer, &flow_id, q.from)?;
    let b = version_in(&versions, &viewer, &flow_id, q.to)?;
    let changes = flow_diff::diff(&a.flow.content, &b.flow.content)
        .into_iter()
        .map(|c| ChangeRow {
            subject: c.subject,
            kind: c.kind.as_str().to_string(),
            field: c.field,
            before: c.before,
            after: c.after,
        })
        .collect();
    Ok(render(
        StatusCode::OK,
        &FlowDiffPage {
            layout: viewer.layout(&format!("Flow {flow_id}: v{} → v{}", q.from, q.to), None),
            flow_id: flow_id.clone(),
            from: q.from,
            to: q.to,
            versions: versions.iter().map(|v| v.flow.version).collect(),
            changes,
        },
    ))
}

pub async fn publish_flow(
    State(state): State<AppState>,
    viewer: Viewer,
    PathParams((flow_id, version)): PathParams<(String, u32)>,
    _form: Form,
) -> UiResult {
    viewer.require(Permission::ManageFlows)?;
    let r = flows_api::publish(
        State(state.clone()),
        viewer.caller.clone(),
        PathParams((flow_id.clone(), version)),
        None,
    )
    .await;
    match r {
        Ok(_) => {
            let notice = Notice {
                ok: true,
                text: format!("Version {version} is published; new batches use it."),
            };
            flow_page(
                &state,
                &viewer,
                &flow_id,
                version,
                StatusCode::OK,
                Shown::Stored,
                Some(notice),
            )
            .await
        }
        Err(e) => {
            flow_page(
                &state,
                &viewer,
                &flow_id,
                version,
                e.status,
                Shown::Stored,
                Some(problem(&e)),
            )
            .await
        }
    }
}

pub async fn new_flow_version(
    State(state): State<AppState>,
    viewer: Viewer,
    PathParams(flow_id): PathParams<String>,
    _form: Form,
) -> UiResult {
    viewer.require(Permission::ManageFlows)?;
    let (_, axum::Json(v)) = flows_api::new_version(
        State(state.clone()),
        viewer.caller.clone(),
        PathParams(flow_id.clone()),
        Some(Body(NewVersion::default())),
    )
    .await
    .map_err(|e| viewer.fail(e))?;
    Ok(Redirect::to(&format!("/admin/flows/{flow_id}/{}", v.flow.version)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_named_for_people_and_point_at_their_field() {
        assert_eq!(
            human_path("s0.t1.expected_mass"),
            "station 1, step 2: expected mass"
        );
        assert_eq!(human_path("s2.steps"), "station 3: steps");
        assert_eq!(human_path("pipeline"), "pipeline");
        assert_eq!(anchor_of("s0.t1.tolerance"), "f-s0-t1-tolerance_value");
        assert_eq!(anchor_of("s0.steps"), "f-s0");
        assert_eq!(anchor_of("stations"), "f-name");
    }

    #[test]
    fn the_example_flow_parses() {
        let c: FlowContent = parse_json(EXAMPLE_FLOW.as_bytes()).expect("example");
        assert!(c.problems().is_empty(), "{:?}", c.problems());
    }
}
