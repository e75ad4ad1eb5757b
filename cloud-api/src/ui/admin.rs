//! Admin pages: flows (list, a validated JSON editor for drafts that lists every problem with
//! its path, save, publish, new version), devices (register → one-time enrollment code shown
//! once, new code, revoke) and users (list, create). Each form calls the JSON API's handler.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use metcon_shared::flow::{Flow, FlowContent, FlowProblem, FlowStatus};
use metcon_shared::role::{Permission, Role};
use metcon_web::pages::{
    DeviceForm, DeviceRow, DevicesPage, EnrollmentShown, FlowEditPage, FlowRow, FlowsPage, Notice,
    Problem, UserForm, UserRow, UsersPage,
};
use serde_json::{json, Value};

use super::{format, problem, render, Form, UiResult, Viewer};
use crate::http::devices::{self as devices_api, CreateDevice, RevokeRequest};
use crate::http::error::ApiError;
use crate::http::extract::{parse_json, Body, PathParams};
use crate::http::flows::{self as flows_api, ContentBody, CreateFlow, NewVersion};
use crate::http::users::{self as users_api, CreateUser};
use crate::http::AppState;

/// The problems an API error carries (`problems: [{path, message}]`), else its detail.
fn problems_of(e: &ApiError) -> Vec<Problem> {
    let listed: Vec<Problem> = e
        .extra
        .as_ref()
        .and_then(|x| x.get("problems"))
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .map(|p| Problem {
                    path: p["path"].as_str().unwrap_or("").to_string(),
                    message: p["message"].as_str().unwrap_or("").to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    if listed.is_empty() {
        vec![Problem {
            path: ".".into(),
            message: e.detail.clone(),
        }]
    } else {
        listed
    }
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

async fn devices_page(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    code: Option<EnrollmentShown>,
    form: DeviceForm,
    notice: Option<Notice>,
) -> UiResult {
    viewer.require(Permission::ManageDevices)?;
    let axum::Json(list) = devices_api::list(State(state.clone()), viewer.caller.clone())
        .await
        .map_err(|e| viewer.fail(e))?;
    let devices = list
        .into_iter()
        .map(|d| DeviceRow {
            revoked: d.state == "revoked",
            online: d.online,
            device_id: d.device_id,
            name: d.name,
            station: d.station_id,
            state: d.state,
        })
        .collect();
    Ok(render(
        status,
        &DevicesPage {
            layout: viewer.layout("Devices", notice),
            devices,
            code,
            form,
            protocols: metcon_shared::device::SCALE_PROTOCOLS
                .iter()
                .map(|p| p.to_string())
                .collect(),
        },
    ))
}

pub async fn devices(State(state): State<AppState>, viewer: Viewer) -> UiResult {
    let form = DeviceForm {
        protocol: "mt-sics".into(),
        ..DeviceForm::default()
    };
    devices_page(&state, &viewer, StatusCode::OK, None, form, None).await
}

async fn new_code(
    state: &AppState,
    viewer: &Viewer,
    device_id: &str,
) -> Result<EnrollmentShown, ApiError> {
    let (_, axum::Json(c)) = devices_api::enrollment_code(
        State(state.clone()),
        viewer.caller.clone(),
        PathParams(device_id.to_string()),
    )
    .await?;
    Ok(EnrollmentShown {
        device_id: device_id.to_string(),
        code: c.code,
        expires: format::time(c.expires_at),
    })
}

pub async fn create_device(State(state): State<AppState>, viewer: Viewer, form: Form) -> UiResult {
    viewer.require(Permission::ManageDevices)?;
    let f = DeviceForm {
        device_id: form.get("device_id").unwrap_or("").to_string(),
        name: form.get("name").unwrap_or("").to_string(),
        site: form.get("site").unwrap_or("").to_string(),
        station_id: form.get("station_id").unwrap_or("").to_string(),
        protocol: form.get("protocol").unwrap_or("").to_string(),
        port: form.get("port").unwrap_or("").to_string(),
    };
    let req: Result<CreateDevice, _> = serde_json::from_value(json!({
        "device_id": f.device_id, "name": f.name, "site": f.site, "station_id": f.station_id,
        "scale": { "protocol": f.protocol, "port": f.port },
    }));
    let req = match req {
        Ok(r) => r,
        Err(e) => {
            let e = ApiError::unprocessable(format!("the device settings are not valid: {e}"));
            return devices_page(&state, &viewer, e.status, None, f, Some(problem(&e))).await;
        }
    };
    if let Err(e) =
        devices_api::create(State(state.clone()), viewer.caller.clone(), Body(req)).await
    {
        return devices_page(&state, &viewer, e.status, None, f, Some(problem(&e))).await;
    }
    match new_code(&state, &viewer, &f.device_id).await {
        Ok(code) => {
            devices_page(
                &state,
                &viewer,
                StatusCode::CREATED,
                Some(code),
                DeviceForm::default(),
                None,
            )
            .await
        }
        Err(e) => devices_page(&state, &viewer, e.status, None, f, Some(problem(&e))).await,
    }
}

pub async fn enrollment_code(
    State(state): State<AppState>,
    viewer: Viewer,
    PathParams(id): PathParams<String>,
    _form: Form,
) -> UiResult {
    viewer.require(Permission::ManageDevices)?;
    match new_code(&state, &viewer, &id).await {
        Ok(code) => {
            devices_page(
                &state,
                &viewer,
                StatusCode::CREATED,
                Some(code),
                DeviceForm::default(),
                None,
            )
            .await
        }
        Err(e) => {
            devices_page(
                &state,
                &viewer,
                e.status,
                None,
                DeviceForm::default(),
                Some(problem(&e)),
            )
            .await
        }
    }
}

pub async fn revoke_device(
    State(state): State<AppState>,
    viewer: Viewer,
    PathParams(id): PathParams<String>,
    form: Form,
) -> UiResult {
    viewer.require(Permission::ManageDevices)?;
    let r = devices_api::revoke(
        State(state.clone()),
        viewer.caller.clone(),
        PathParams(id.clone()),
        Body(RevokeRequest {
            reason: form.get("reason").unwrap_or("").to_string(),
        }),
    )
    .await;
    let notice = match &r {
        Ok(_) => Notice {
            ok: true,
            text: format!("Device {id} is revoked."),
        },
        Err(e) => problem(e),
    };
    let status = r.err().map(|e| e.status).unwrap_or(StatusCode::OK);
    devices_page(
        &state,
        &viewer,
        status,
        None,
        DeviceForm::default(),
        Some(notice),
    )
    .await
}

async fn users_page(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    form: UserForm,
    notice: Option<Notice>,
) -> UiResult {
    viewer.require(Permission::ManageUsers)?;
    let axum::Json(list) = users_api::list(State(state.clone()), viewer.caller.clone())
        .await
        .map_err(|e| viewer.fail(e))?;
    Ok(render(
        status,
        &UsersPage {
            layout: viewer.layout("Users", notice),
            users: list
                .into_iter()
                .map(|u| UserRow {
                    username: u.username,
                    display_name: u.display_name,
                    role: u.role.to_string(),
                    stations: u.stations.join(", "),
                    active: u.active,
                })
                .collect(),
            roles: [Role::Operator, Role::Supervisor, Role::Admin, Role::Analyst]
                .iter()
                .map(|r| r.to_string())
                .collect(),
            form,
        },
    ))
}

pub async fn users(State(state): State<AppState>, viewer: Viewer) -> UiResult {
    let form = UserForm {
        role: "operator".into(),
        ..UserForm::default()
    };
    users_page(&state, &viewer, StatusCode::OK, form, None).await
}

pub async fn create_user(State(state): State<AppState>, viewer: Viewer, form: Form) -> UiResult {
    viewer.require(Permission::ManageUsers)?;
    let f = UserForm {
        username: form.get("username").unwrap_or("").to_string(),
        display_name: form.get("display_name").unwrap_or("").to_string(),
        role: form.get("role").unwrap_or("").to_string(),
        stations: form.get("stations").unwrap_or("").to_string(),
    };
    let role: Role = match f.role.parse() {
        Ok(r) => r,
        Err(_) => {
            let e = ApiError::unprocessable(format!("{:?} is not a role", f.role));
            return users_page(&state, &viewer, e.status, f, Some(problem(&e))).await;
        }
    };
    let stations: Vec<String> = f
        .stations
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let r = users_api::create(
        State(state.clone()),
        viewer.caller.clone(),
        Body(CreateUser {
            username: f.username.clone(),
            display_name: Some(f.display_name.clone()).filter(|d| !d.is_empty()),
            password: form.raw("password").unwrap_or("").to_string(),
            role,
            stations,
        }),
    )
    .await;
    match r {
        Ok(_) => {
            let notice = Notice {
                ok: true,
                text: format!("User {} created.", f.username),
            };
            users_page(
                &state,
                &viewer,
                StatusCode::CREATED,
                UserForm::default(),
                Some(notice),
            )
            .await
        }
        Err(e) => users_page(&state, &viewer, e.status, f, Some(problem(&e))).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_flow_parses() {
        let c: FlowContent = parse_json(EXAMPLE_FLOW.as_bytes()).expect("example");
        assert!(c.problems().is_empty(), "{:?}", c.problems());
    }

    #[test]
    fn a_wrong_field_names_its_path() {
        let e = parse_json::<FlowContent>(br#"{"name": "x", "pipeline": "gold", "stations": 3}"#)
            .expect_err("refused");
        let ps = problems_of(&e);
        assert_eq!(ps[0].path, "stations");
    }
}
