//! Admin: one device's page — status (presence, last seen, clock skew, station, scale, key,
//! agent version), its latest readings, actions (enrollment code, revoke, rotate key, tare,
//! zero, capture), its scale's calibration records, and the display region drawn on its
//! latest camera frame.
//!
//! Every action calls the JSON API's handler (`http::devices::…`) with the viewer's caller,
//! so only `ManageDevices` gets anywhere. The frame is streamed from this origin
//! (`/admin/devices/{id}/frame`) after the same check, so the page needs no `img-src` beyond
//! 'self' even when photos live in S3.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use metcon_shared::device::Region;
use metcon_shared::reading::Measurement;
use metcon_shared::role::Permission;
use metcon_web::pages::{
    CalibrationForm, DevicePage, EnrollmentShown, Fact, FrameView, Notice, ReadingRow, RegionEditor,
};
use time::OffsetDateTime;

use crate::http::devices::{
    self as devices_api, CommandRequest, DeviceView, LatestFrame, ReadingsQuery, UpdateDevice,
};
use crate::http::error::ApiError;
use crate::http::extract::{Body, PathParams, QueryParams};
use crate::http::AppState;
use crate::store::devices::{DeviceKeyRecord, StoredReading};
use crate::ui::{calibration, format, render, DoneQuery, Form, UiError, UiResult, Viewer};

/// How many readings the page lists.
const READINGS_SHOWN: u32 = 10;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/devices/{id}", get(page))
        .route("/admin/devices/{id}/frame", get(frame))
        .route("/admin/devices/{id}/commands", post(command))
        .route("/admin/devices/{id}/rotate-key", post(rotate_key))
        .route("/admin/devices/{id}/region", post(region))
        .route("/admin/devices/{id}/calibrations", post(add_calibration))
}

/// What a POST hands back to the page beside its notice.
#[derive(Debug, Default)]
pub(in crate::ui) struct Extras {
    pub code: Option<EnrollmentShown>,
    pub calibration: Option<CalibrationForm>,
    /// The region form as typed, with its problems.
    pub region: Option<RegionEditor>,
}

/// Our clock minus the device's (ms) in words.
pub(crate) fn skew(ms: i64) -> String {
    let secs = ms.unsigned_abs() as f64 / 1000.0;
    match ms {
        m if m.unsigned_abs() < 100 => "under 0.1 s (the clocks agree)".to_string(),
        m if m > 0 => format!("device clock {secs:.1} s behind"),
        _ => format!("device clock {secs:.1} s ahead"),
    }
}

/// "just now" or "5 min ago".
fn seen_ago(at: OffsetDateTime, now: OffsetDateTime) -> String {
    match format::age(at, now) {
        a if a == "just now" => a,
        a => format!("{a} ago"),
    }
}

/// A short, comparable fingerprint of a public key: the first 16 hex digits of its SHA-256,
/// in groups of four.
pub(crate) fn fingerprint(key: &[u8; 32]) -> String {
    let hex = crate::blobs::sha256_hex(key);
    hex.as_bytes()
        .chunks(4)
        .take(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(":")
}

fn region_text(r: Option<&Region>) -> String {
    match r {
        Some(r) => format!("x {}, y {}, {} × {} px", r.x, r.y, r.w, r.h),
        None => "none set (OCR looks for the display in the whole frame)".to_string(),
    }
}

fn facts(d: &DeviceView, key: Option<&DeviceKeyRecord>, now: OffsetDateTime) -> Vec<Fact> {
    let f = |label: &str, value: String| Fact {
        label: label.to_string(),
        value,
    };
    let mut out = vec![f(
        "State",
        match (&d.revoked_at, &d.revoked_reason) {
            (Some(at), reason) => format!(
                "revoked {} ({})",
                format::time(*at),
                reason.as_deref().unwrap_or("no reason")
            ),
            _ => d.state.clone(),
        },
    )];
    out.push(f(
        "Connection",
        match d.last_seen {
            Some(at) => format!(
                "{}, last seen {} ({})",
                if d.online { "online" } else { "offline" },
                format::time(at),
                seen_ago(at, now)
            ),
            None => "never seen".to_string(),
        },
    ));
    out.push(f(
        "Clock skew",
        d.clock_skew_ms
            .map(skew)
            .unwrap_or_else(|| "unknown".to_string()),
    ));
    out.push(f("Station", format!("{} at {}", d.station_id, d.site)));
    let place = d
        .scale
        .port
        .clone()
        .or_else(|| d.scale.tcp.clone())
        .unwrap_or_else(|| "no port".to_string());
    out.push(f(
        "Scale",
        format!(
            "{} on {} ({})",
            d.scale.protocol,
            place,
            if d.scale_connected {
                "connected"
            } else {
                "not connected"
            }
        ),
    ));
    out.push(f(
        "Key",
        match key {
            Some(k) => format!(
                "{} (from reading {}, registered {})",
                fingerprint(&k.public_key.0),
                k.from_seq,
                format::time(k.registered_at)
            ),
            None => "none yet (not enrolled)".to_string(),
        },
    ));
    out.push(f(
        "Agent version",
        d.agent_version
            .clone()
            .unwrap_or_else(|| "unknown".to_string()),
    ));
    if let Some(h) = &d.hostname {
        out.push(f("Hostname", h.clone()));
    }
    if let Some(depth) = d.outbox_depth {
        out.push(f(
            "Outbox",
            format!(
                "{depth} waiting{}",
                if d.outbox_full { " (full)" } else { "" }
            ),
        ));
    }
    out.push(f(
        "Readings",
        format!(
            "{} stored, {} unbound{}",
            d.readings,
            d.unbound_readings,
            d.last_reading_at
                .map(|t| format!(", last {}", format::time(t)))
                .unwrap_or_default()
        ),
    ));
    out
}

fn reading_row(r: &StoredReading) -> ReadingRow {
    let (value, stable) = match &r.reading.measurement {
        Measurement::Weight {
            net, unit, stable, ..
        } => (format::amount(*net, *unit), *stable),
        Measurement::Overload => ("overload".to_string(), false),
        Measurement::Underload => ("underload".to_string(), false),
    };
    ReadingRow {
        seq: r.reading.seq.to_string(),
        at: format::time(r.reading.device_time),
        value,
        stable,
        bound: match &r.binding {
            Some(b) => format!("step {} of a batch", b.step_id),
            None => "unbound".to_string(),
        },
        frame: r.reading.frame_sha256.is_some(),
    }
}

fn editor(d: &DeviceView) -> RegionEditor {
    let r = d.camera_region;
    let n = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_default();
    RegionEditor {
        frame: None,
        current: region_text(r.as_ref()),
        x: n(r.map(|r| r.x)),
        y: n(r.map(|r| r.y)),
        w: n(r.map(|r| r.w)),
        h: n(r.map(|r| r.h)),
        rect: r.map(|r| [r.x, r.y, r.w, r.h]),
        problems: vec![],
    }
}

/// The device's page with an optional notice and what a POST hands back.
pub(in crate::ui) async fn device_page(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
    status: StatusCode,
    notice: Option<Notice>,
    extras: Extras,
) -> UiResult {
    viewer.require(Permission::ManageDevices)?;
    let fail = |e| viewer.fail(e);
    let st = || State(state.clone());
    let path = || PathParams(id.to_string());
    let axum::Json(d) = devices_api::get(st(), viewer.caller.clone(), path())
        .await
        .map_err(fail)?;
    let axum::Json(keys) = devices_api::keys(st(), viewer.caller.clone(), path())
        .await
        .map_err(fail)?;
    let axum::Json(readings) = devices_api::readings(
        st(),
        viewer.caller.clone(),
        path(),
        QueryParams(ReadingsQuery {
            unbound: None,
            limit: Some(READINGS_SHOWN),
        }),
    )
    .await
    .map_err(fail)?;
    let calibration = calibration::section(
        state,
        viewer,
        id,
        format!("/admin/devices/{id}/calibrations"),
        d.calibration_problem.as_deref(),
        extras.calibration.unwrap_or_default(),
    )
    .await
    .map_err(fail)?;
    let latest = devices_api::latest_frame(state, &viewer.caller, id)
        .await
        .map_err(fail)?;
    let mut region = extras.region.unwrap_or_else(|| editor(&d));
    region.current = region_text(d.camera_region.as_ref());
    region.frame = latest.map(|LatestFrame { photo: p, kept }| FrameView {
        // A frame that is not kept has no id: the route serves the newest one.
        url: if kept {
            format!("/admin/devices/{id}/frame?photo={}", p.id)
        } else {
            format!("/admin/devices/{id}/frame")
        },
        width: p.width,
        height: p.height,
        caption: match &p.source {
            crate::store::photos::PhotoSource::Device { seq, .. } => {
                format!("frame of reading {seq}, {}", format::time(p.uploaded_at))
            }
            crate::store::photos::PhotoSource::Upload { .. } => format::time(p.uploaded_at),
        },
    });
    let now = OffsetDateTime::now_utc();
    let page = DevicePage {
        layout: viewer.layout(&format!("Device {}", d.device_id), notice),
        facts: facts(&d, keys.last(), now),
        online: d.online,
        pending: d.state == "pending",
        active: d.state == "active",
        revoked: d.state == "revoked",
        state: d.state.clone(),
        code: extras.code,
        readings: readings.iter().map(reading_row).collect(),
        calibration,
        region,
        device_id: d.device_id,
        name: d.name,
    };
    Ok(render(status, &page))
}

pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    PathParams(id): PathParams<String>,
    QueryParams(q): QueryParams<DoneQuery>,
) -> UiResult {
    let text = |t: String| Some(Notice { ok: true, text: t });
    let notice = match q.done.as_deref() {
        Some(cmd @ ("tare" | "zero" | "capture")) => text(command_notice(cmd, &id)),
        Some("rotate" | "rotate_key") => text(format!("Key rotation requested from {id}: the new key arrives signed by the old one and shows here once registered.")),
        Some("region") => text("Display region saved.".into()),
        Some("calibration") => calibration::recorded_notice(&state, &viewer, &id).await,
        _ => None,
    };
    device_page(
        &state,
        &viewer,
        &id,
        StatusCode::OK,
        notice,
        Extras::default(),
    )
    .await
}

/// Back to the device page after a success (post/redirect/get: a reload does not send the
/// command again), saying which one; `anchor` scrolls to the section it was in.
fn done(id: &str, what: &str, anchor: &str) -> Response {
    Redirect::to(&format!("/admin/devices/{id}?done={what}{anchor}")).into_response()
}

#[derive(Debug, serde::Deserialize)]
pub struct FrameQuery {
    /// The frame the page showed (its photo id); the latest one without it.
    pub photo: Option<uuid::Uuid>,
}

/// A kept frame's bytes (the one the page named, else the latest), from this origin, for
/// those who may manage the device.
pub async fn frame(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    PathParams(id): PathParams<String>,
    QueryParams(q): QueryParams<FrameQuery>,
) -> UiResult<Response> {
    viewer.require(Permission::ManageDevices)?;
    let found = match q.photo {
        Some(p) => devices_api::frame_photo(&state, &viewer.caller, &id, p).await,
        None => devices_api::latest_frame(&state, &viewer.caller, &id)
            .await
            .map(|f| f.map(|f| f.photo)),
    };
    let photo = found.map_err(|e| viewer.fail(e))?.ok_or_else(|| {
        UiError::page(
            StatusCode::NOT_FOUND,
            "No frame",
            format!("device {id} has not sent a frame yet"),
        )
    })?;
    // A frame's bytes never change (named by digest); without `photo` it is "the latest".
    let cache = if q.photo.is_some() {
        "private, max-age=3600, immutable"
    } else {
        "private, no-store"
    };
    crate::http::photos::send_bytes(
        &state,
        &photo.sha256,
        Some(&photo.content_type),
        HeaderValue::from_static(cache),
        &headers,
    )
    .await
    .map_err(|e| viewer.fail(e))
}

/// The command names the page's buttons send, and what the notice says.
fn command_notice(cmd: &str, id: &str) -> String {
    match cmd {
        "tare" => format!("Tare sent to {id}."),
        "zero" => format!("Zero sent to {id}."),
        "capture" => format!("Capture sent to {id}: its next stable reading is signed and sent (unbound unless a step is armed)."),
        other => format!("{other} sent to {id}."),
    }
}

pub async fn command(
    State(state): State<AppState>,
    viewer: Viewer,
    PathParams(id): PathParams<String>,
    form: Form,
) -> UiResult {
    viewer.require(Permission::ManageDevices)?;
    let cmd = form.get("cmd").unwrap_or("").to_string();
    let r = devices_api::command(
        State(state.clone()),
        viewer.caller.clone(),
        PathParams(id.clone()),
        Body(CommandRequest { cmd: cmd.clone() }),
    )
    .await;
    match r {
        Ok(_) => Ok(done(&id, &cmd, "")),
        Err(e) => refused(&state, &viewer, &id, &e).await,
    }
}

/// The device page again with the API's refusal.
async fn refused(state: &AppState, viewer: &Viewer, id: &str, e: &ApiError) -> UiResult {
    let notice = crate::ui::problem(e);
    device_page(state, viewer, id, e.status, Some(notice), Extras::default()).await
}

pub async fn rotate_key(
    State(state): State<AppState>,
    viewer: Viewer,
    PathParams(id): PathParams<String>,
    _form: Form,
) -> UiResult {
    viewer.require(Permission::ManageDevices)?;
    let r = devices_api::rotate_key(
        State(state.clone()),
        viewer.caller.clone(),
        PathParams(id.clone()),
    )
    .await;
    match r {
        Ok(_) => Ok(done(&id, "rotate", "")),
        Err(e) => refused(&state, &viewer, &id, &e).await,
    }
}

/// The four numbers of the region form, each a whole number of pixels, or what is wrong.
pub(crate) fn parse_region(form: &Form) -> Result<Region, Vec<String>> {
    let mut problems = Vec::new();
    let mut num = |name: &str, label: &str| -> u32 {
        match form.get(name).map(str::parse::<u32>) {
            Some(Ok(v)) => v,
            Some(Err(_)) => {
                problems.push(format!(
                    "{label}: {:?} is not a whole number of pixels (0 or more)",
                    form.get(name).unwrap_or("")
                ));
                0
            }
            None => {
                problems.push(format!("{label}: required"));
                0
            }
        }
    };
    let r = Region {
        x: num("x", "x"),
        y: num("y", "y"),
        w: num("w", "width"),
        h: num("h", "height"),
    };
    if problems.is_empty() {
        Ok(r)
    } else {
        Err(problems)
    }
}

pub async fn region(
    State(state): State<AppState>,
    viewer: Viewer,
    PathParams(id): PathParams<String>,
    form: Form,
) -> UiResult {
    viewer.require(Permission::ManageDevices)?;
    let typed = |problems: Vec<String>| {
        let v = |k: &str| form.get(k).unwrap_or("").to_string();
        let rect = parse_region(&form).ok().map(|r| [r.x, r.y, r.w, r.h]);
        RegionEditor {
            x: v("x"),
            y: v("y"),
            w: v("w"),
            h: v("h"),
            rect,
            problems,
            ..RegionEditor::default()
        }
    };
    let r = match parse_region(&form) {
        Ok(r) => r,
        Err(p) => {
            let extras = Extras {
                region: Some(typed(p)),
                ..Extras::default()
            };
            return device_page(
                &state,
                &viewer,
                &id,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                extras,
            )
            .await;
        }
    };
    let update = UpdateDevice {
        name: None,
        site: None,
        station_id: None,
        scale: None,
        camera: None,
        camera_region: Some(Some(r)),
    };
    match devices_api::update(
        State(state.clone()),
        viewer.caller.clone(),
        PathParams(id.clone()),
        Body(update),
    )
    .await
    {
        Ok(_) => Ok(done(&id, "region", "#region")),
        Err(e) => {
            let problems = super::problems_of(&e)
                .into_iter()
                .map(|p| p.message)
                .collect();
            let extras = Extras {
                region: Some(typed(problems)),
                ..Extras::default()
            };
            device_page(&state, &viewer, &id, e.status, None, extras).await
        }
    }
}

pub async fn add_calibration(
    State(state): State<AppState>,
    viewer: Viewer,
    PathParams(id): PathParams<String>,
    form: Form,
) -> UiResult {
    viewer.require(Permission::ManageDevices)?;
    match calibration::record(&state, &viewer, &id, &form).await {
        Ok(()) => Ok(done(&id, "calibration", "#calibration")),
        Err((status, f)) => {
            let extras = Extras {
                calibration: Some(f),
                ..Extras::default()
            };
            device_page(&state, &viewer, &id, status, None, extras).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_numbers_are_whole_pixels_and_each_bad_one_is_named() {
        let r = parse_region(&Form::of(&[
            ("x", "12"),
            ("y", " 0 "),
            ("w", "300"),
            ("h", "90"),
        ]))
        .expect("valid");
        assert_eq!(
            r,
            Region {
                x: 12,
                y: 0,
                w: 300,
                h: 90
            }
        );
        let p = parse_region(&Form::of(&[("x", "-1"), ("y", "2.5"), ("w", "300")]))
            .expect_err("refused");
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].starts_with("x: \"-1\""), "{p:?}");
        assert!(p[1].starts_with("y: \"2.5\""), "{p:?}");
        assert_eq!(p[2], "height: required");
    }

    #[test]
    fn skew_and_fingerprints_read_well() {
        assert_eq!(skew(1200), "device clock 1.2 s behind");
        assert_eq!(skew(-250), "device clock 0.2 s ahead");
        assert_eq!(skew(-50), "under 0.1 s (the clocks agree)");
        assert_eq!(skew(0), "under 0.1 s (the clocks agree)");
        let now = OffsetDateTime::now_utc();
        assert_eq!(seen_ago(now, now), "just now");
        assert_eq!(seen_ago(now - time::Duration::minutes(5), now), "5 min ago");
        let fp = fingerprint(&[7u8; 32]);
        assert_eq!(fp.len(), 19);
        assert_eq!(fp.matches(':').count(), 3);
        assert_ne!(fp, fingerprint(&[8u8; 32]));
    }

    #[test]
    fn a_region_reads_as_text() {
        assert_eq!(
            region_text(Some(&Region {
                x: 1,
                y: 2,
                w: 3,
                h: 4
            })),
            "x 1, y 2, 3 × 4 px"
        );
        assert!(region_text(None).starts_with("none set"));
    }
}
