//! Admin: the device list (register, then a one-time enrollment code shown once with its QR
//! code; a new code; revoke). One device's own page is [`super::device`]; the code and revoke
//! forms there post here with `return=device` and come back to it.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use metcon_shared::device::enrollment_uri;
use metcon_shared::role::Permission;
use metcon_web::pages::{DeviceForm, DeviceRow, DevicesPage, EnrollmentShown, Notice};
use metcon_web::qr::QrSvg;
use serde_json::json;

use crate::http::devices::{self as devices_api, CreateDevice, RevokeRequest};
use crate::http::error::ApiError;
use crate::http::extract::{Body, PathParams};
use crate::http::AppState;
use crate::ui::{format, outcome, problem, render, Form, UiResult, Viewer};

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

/// The address a box enrolls against: the configured public URL; else the host this admin's
/// browser reached (plain HTTP: behind TLS set `public_url`); else the listen address.
pub(super) fn enroll_server(state: &AppState, headers: &HeaderMap) -> String {
    if state.config.public_url.is_some() {
        return devices_api::server_url(state);
    }
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .map(|h| format!("http://{h}"))
        .unwrap_or_else(|| devices_api::server_url(state))
}

/// An enrollment code as the page shows it: text, command and QR code.
pub(super) fn shown(
    device_id: &str,
    code: String,
    expires: String,
    server: &str,
) -> EnrollmentShown {
    let uri = enrollment_uri(server, &code);
    EnrollmentShown {
        device_id: device_id.to_string(),
        command: format!("metcon-edge enroll --server {server} --code {code}"),
        qr: QrSvg::encode(&uri),
        plain_http: server.starts_with("http://"),
        uri,
        code,
        expires,
    }
}

pub(super) async fn new_code(
    state: &AppState,
    viewer: &Viewer,
    device_id: &str,
    server: &str,
) -> Result<EnrollmentShown, ApiError> {
    let (_, axum::Json(c)) = devices_api::enrollment_code(
        State(state.clone()),
        viewer.caller.clone(),
        PathParams(device_id.to_string()),
    )
    .await?;
    Ok(shown(device_id, c.code, format::time(c.expires_at), server))
}

/// Whether a form asks to come back to the device's own page.
fn to_device(form: &Form) -> bool {
    form.get("return") == Some("device")
}

pub async fn create_device(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    form: Form,
) -> UiResult {
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
    let server = enroll_server(&state, &headers);
    match new_code(&state, &viewer, &f.device_id, &server).await {
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
    headers: HeaderMap,
    form: Form,
) -> UiResult {
    viewer.require(Permission::ManageDevices)?;
    let result = new_code(&state, &viewer, &id, &enroll_server(&state, &headers)).await;
    if to_device(&form) {
        let (status, notice, code) = match result {
            Ok(c) => (StatusCode::CREATED, None, Some(c)),
            Err(e) => (e.status, Some(problem(&e)), None),
        };
        let extras = super::device::Extras {
            code,
            ..Default::default()
        };
        return super::device::device_page(&state, &viewer, &id, status, notice, extras).await;
    }
    match result {
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
    let (status, notice) = outcome(r, || format!("Device {id} is revoked."));
    if to_device(&form) {
        let extras = super::device::Extras::default();
        return super::device::device_page(&state, &viewer, &id, status, Some(notice), extras)
            .await;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shown_code_carries_the_command_and_a_qr_code_of_its_uri() {
        let s = shown(
            "scale-01",
            "K7QF-3M9T-WX2D-HP4N".into(),
            "2026-03-02 09:00:00 UTC".into(),
            "http://10.0.0.5:8080",
        );
        assert_eq!(
            s.command,
            "metcon-edge enroll --server http://10.0.0.5:8080 --code K7QF-3M9T-WX2D-HP4N"
        );
        assert_eq!(
            metcon_shared::device::parse_enrollment_uri(&s.uri),
            Some(("http://10.0.0.5:8080".into(), "K7QF-3M9T-WX2D-HP4N".into()))
        );
        assert!(s.qr.expect("fits").as_str().starts_with("<svg "));
    }
}
