//! Admin: flows (list, a validated JSON editor for drafts that lists every problem with its
//! path, save, publish, new version).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::Router;
use metcon_shared::flow::{Flow, FlowContent, FlowProblem, FlowStatus};
use metcon_shared::role::Permission;
use metcon_web::pages::{FlowEditPage, FlowRow, FlowsPage, Notice, Problem};

use super::problems_of;
use crate::http::error::ApiError;
use crate::http::extract::{parse_json, Body, PathParams};
use crate::http::flows::{self as flows_api, ContentBody, CreateFlow, NewVersion};
use crate::http::AppState;
use crate::ui::{problem, render, Form, UiResult, Viewer};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/flows", get(flows).post(create_flow))
        .route(
            "/admin/flows/{flow_id}/{version}",
            get(flow).post(save_flow),
        )
        .route(
            "/admin/flows/{flow_id}/{version}/publish",
            post(publish_flow),
        )
        .route("/admin/flows/{flow_id}/versions", post(new_flow_version))
}

fn flow_problems(ps: &[FlowProblem]) -> Vec<Problem> {
    ps.iter()
        .map(|p| Problem {
            path: p.path.clone(),
            message: p.message.clone(),
        })
        .collect()
}

fn flow_row(f: &Flow) -> FlowRow {
    FlowRow {
        flow_id: f.flow_id.clone(),
        version: f.version,
        name: f.content.name.clone(),
        status: match f.status {
            FlowStatus::Draft => "draft".into(),
            FlowStatus::Active => "active".into(),
            FlowStatus::Archived => "archived".into(),
        },
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

async fn flows_page(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    new_flow_id: String,
    json: String,
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
            new_flow_id,
            json,
            problems,
        },
    ))
}

pub async fn flows(State(state): State<AppState>, viewer: Viewer) -> UiResult {
    flows_page(
        &state,
        &viewer,
        StatusCode::OK,
        String::new(),
        EXAMPLE_FLOW.into(),
        vec![],
    )
    .await
}

pub async fn create_flow(State(state): State<AppState>, viewer: Viewer, form: Form) -> UiResult {
    viewer.require(Permission::ManageFlows)?;
    let flow_id = form.get("flow_id").unwrap_or("").to_string();
    let text = form.get("content").unwrap_or("").to_string();
    let content: FlowContent = match parse_json(text.as_bytes()) {
        Ok(c) => c,
        Err(e) => {
            return flows_page(&state, &viewer, e.status, flow_id, text, problems_of(&e)).await
        }
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
        Err(e) => flows_page(&state, &viewer, e.status, flow_id, text, problems_of(&e)).await,
    }
}

async fn flow_page(
    state: &AppState,
    viewer: &Viewer,
    flow_id: &str,
    version: u32,
    status: StatusCode,
    edited: Option<(String, Vec<Problem>)>,
    notice: Option<Notice>,
) -> UiResult {
    viewer.require(Permission::ManageFlows)?;
    let axum::Json(v) = flows_api::get(
        State(state.clone()),
        viewer.caller.clone(),
        PathParams((flow_id.to_string(), version)),
    )
    .await
    .map_err(|e| viewer.fail(e))?;
    let axum::Json(versions) = flows_api::versions(
        State(state.clone()),
        viewer.caller.clone(),
        PathParams(flow_id.to_string()),
    )
    .await
    .map_err(|e| viewer.fail(e))?;
    let (json, problems) = match edited {
        Some(x) => x,
        None => (
            serde_json::to_string_pretty(&v.flow.content)
                .map_err(|e| viewer.fail(ApiError::internal(e)))?,
            flow_problems(&v.problems),
        ),
    };
    Ok(render(
        status,
        &FlowEditPage {
            layout: viewer.layout(&format!("Flow {flow_id} v{version}"), notice),
            flow_id: flow_id.to_string(),
            version,
            status: flow_row(&v.flow).status,
            editable: v.flow.status == FlowStatus::Draft,
            json,
            problems,
            versions: versions.iter().map(|f| flow_row(&f.flow)).collect(),
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
        None,
        None,
    )
    .await
}

pub async fn save_flow(
    State(state): State<AppState>,
    viewer: Viewer,
    PathParams((flow_id, version)): PathParams<(String, u32)>,
    form: Form,
) -> UiResult {
    viewer.require(Permission::ManageFlows)?;
    let text = form.get("content").unwrap_or("").to_string();
    let content: FlowContent = match parse_json(text.as_bytes()) {
        Ok(c) => c,
        Err(e) => {
            let ps = problems_of(&e);
            return flow_page(
                &state,
                &viewer,
                &flow_id,
                version,
                e.status,
                Some((text, ps)),
                None,
            )
            .await;
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
            flow_page(
                &state,
                &viewer,
                &flow_id,
                version,
                StatusCode::OK,
                None,
                Some(notice),
            )
            .await
        }
        Err(e) => {
            let ps = problems_of(&e);
            flow_page(
                &state,
                &viewer,
                &flow_id,
                version,
                e.status,
                Some((text, ps)),
                None,
            )
            .await
        }
    }
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
                None,
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
                None,
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
    fn the_example_flow_parses() {
        let c: FlowContent = parse_json(EXAMPLE_FLOW.as_bytes()).expect("example");
        assert!(c.problems().is_empty(), "{:?}", c.problems());
    }
}
