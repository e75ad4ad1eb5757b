//! Admin: devices (register, then a one-time enrollment code shown once; a new code; revoke).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use metcon_shared::role::Permission;
use metcon_web::pages::{DeviceForm, DeviceRow, DevicesPage, EnrollmentShown, Notice};
use serde_json::json;

use crate::http::devices::{self as devices_api, CreateDevice, RevokeRequest};
use crate::http::error::ApiError;
use crate::http::extract::{Body, PathParams};
use crate::http::AppState;
use crate::ui::{format, problem, render, Form, UiResult, Viewer};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/devices", get(devices).post(create_device))
        .route("/admin/devices/{id}/enrollment-code", post(enrollment_code))
        .route("/admin/devices/{id}/revoke", post(revoke_device))
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
