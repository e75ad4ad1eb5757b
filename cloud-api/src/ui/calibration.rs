//! Scale calibration records in the UI: the section on a device's admin page, and — for
//! supervisors, who may record calibrations (`RecordCalibration`) and see the fleet
//! (`ViewDevices`) but not manage devices — a scales list (`/scales`) and one scale's
//! calibration page (`/devices/{id}/calibrations`). Both forms go through
//! `http::devices::add_calibration`, so the permission and the record's rules are the API's;
//! this module only turns the typed form into a request and names what is wrong with it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use axum::Router;
use metcon_shared::calibration::{CalibrationKind, CalibrationOutcome, CalibrationRecord};
use metcon_shared::role::Permission;
use metcon_web::pages::{
    CalibrationForm, CalibrationRow, CalibrationSection, CalibrationsPage, Notice, ScaleRow,
    ScalesPage,
};
use time::macros::format_description;
use time::{Date, PrimitiveDateTime};

use crate::http::devices::{self as devices_api, CalibrationRequest};
use crate::http::error::ApiError;
use crate::http::extract::{Body, PathParams, QueryParams};
use crate::http::AppState;
use crate::ui::{format, render, DoneQuery, Form, UiResult, Viewer};

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/scales", get(scales)).route(
        "/devices/{id}/calibrations",
        get(calibrations_page).post(add_calibration),
    )
}

/// The sentence for a scale's fitness (`None`: fit).
pub(crate) fn fitness_text(problem: Option<&str>) -> (bool, String) {
    match problem {
        None => (true, "The scale may decide mass checks.".to_string()),
        Some(p) => (false, p.to_string()),
    }
}

fn row(r: &CalibrationRecord) -> CalibrationRow {
    CalibrationRow {
        kind: match r.kind {
            CalibrationKind::Calibration => "Calibration".into(),
            CalibrationKind::RoutineTest => "Routine test".into(),
        },
        pass: r.outcome == CalibrationOutcome::Pass,
        outcome: match r.outcome {
            CalibrationOutcome::Pass => "pass".into(),
            CalibrationOutcome::Fail => "fail".into(),
        },
        performed: format::time(r.performed_at),
        performed_by: r.performed_by.clone(),
        reference: r.reference.clone(),
        next_due: date(r.next_due),
    }
}

fn date(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// A device's calibration section: its records (newest first), its fitness and the form.
pub(crate) async fn section(
    state: &AppState,
    viewer: &Viewer,
    device_id: &str,
    action: String,
    calibration_problem: Option<&str>,
    form: CalibrationForm,
) -> Result<CalibrationSection, ApiError> {
    let axum::Json(mut records) = devices_api::calibrations(
        State(state.clone()),
        viewer.caller.clone(),
        PathParams(device_id.to_string()),
    )
    .await?;
    records.sort_by_key(|r| std::cmp::Reverse((r.performed_at, r.recorded_at)));
    let (fit, fitness) = fitness_text(calibration_problem);
    Ok(CalibrationSection {
        action,
        fit,
        fitness,
        records: records.iter().map(row).collect(),
        form,
    })
}

/// The form as typed, to show again.
fn typed(form: &Form) -> CalibrationForm {
    let v = |k: &str| form.get(k).unwrap_or("").to_string();
    CalibrationForm {
        kind: v("kind"),
        outcome: v("outcome"),
        performed_at: v("performed_at"),
        next_due: v("next_due"),
        reference: v("reference"),
        performed_by: v("performed_by"),
        scale_serial: v("scale_serial"),
        notes: v("notes"),
        problems: vec![],
    }
}

/// Turns the typed form into the API's request, or lists every field that is wrong, in the
/// form's words. (The API then checks the record's own rules: not in the future, due after.)
pub(crate) fn parse(f: &CalibrationForm) -> Result<CalibrationRequest, Vec<String>> {
    let mut problems = Vec::new();
    let kind = match f.kind.as_str() {
        "calibration" | "" => Some(CalibrationKind::Calibration),
        "routine_test" => Some(CalibrationKind::RoutineTest),
        _ => {
            problems.push("Kind: choose a calibration or a routine test".to_string());
            None
        }
    };
    // No default: a record that says "pass" makes the scale fit to decide mass checks, so
    // whoever records it must have said so.
    let outcome = match f.outcome.as_str() {
        "pass" => Some(CalibrationOutcome::Pass),
        "fail" => Some(CalibrationOutcome::Fail),
        _ => {
            problems.push("Outcome: choose pass or fail".to_string());
            None
        }
    };
    let performed_at = parse_time(&f.performed_at);
    if performed_at.is_none() {
        problems.push(format!(
            "Performed at: {:?} is not a date and time; give it as 2026-03-01T09:30 (UTC)",
            f.performed_at
        ));
    }
    let next_due = Date::parse(&f.next_due, format_description!("[year]-[month]-[day]")).ok();
    if next_due.is_none() {
        problems.push(format!(
            "Next due: {:?} is not a date; give it as 2027-03-01",
            f.next_due
        ));
    }
    if f.reference.is_empty() {
        problems.push("Certificate number or reference weights: required".to_string());
    }
    if f.performed_by.is_empty() {
        problems.push("Performed by: say who calibrated or tested the scale".to_string());
    }
    match (kind, outcome, performed_at, next_due) {
        (Some(kind), Some(outcome), Some(performed_at), Some(next_due)) if problems.is_empty() => {
            Ok(CalibrationRequest {
                kind,
                outcome,
                performed_at,
                next_due,
                scale_serial: Some(f.scale_serial.clone()).filter(|s| !s.is_empty()),
                reference: f.reference.clone(),
                performed_by: f.performed_by.clone(),
                notes: Some(f.notes.clone()).filter(|s| !s.is_empty()),
            })
        }
        _ => Err(problems),
    }
}

/// `YYYY-MM-DDTHH:MM[:SS]` (a `datetime-local` input) or a plain date (midnight), as UTC.
fn parse_time(s: &str) -> Option<time::OffsetDateTime> {
    let s = s.trim();
    PrimitiveDateTime::parse(
        s,
        format_description!("[year]-[month]-[day]T[hour]:[minute]"),
    )
    .or_else(|_| {
        PrimitiveDateTime::parse(
            s,
            format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
        )
    })
    .ok()
    .or_else(|| {
        Date::parse(s, format_description!("[year]-[month]-[day]"))
            .ok()
            .map(|d| d.midnight())
    })
    .map(PrimitiveDateTime::assume_utc)
}

/// What the page says once a calibration was recorded and the browser sent back to it: the
/// device's newest record.
pub(crate) async fn recorded_notice(
    state: &AppState,
    viewer: &Viewer,
    device_id: &str,
) -> Option<Notice> {
    let axum::Json(list) = devices_api::calibrations(
        State(state.clone()),
        viewer.caller.clone(),
        PathParams(device_id.to_string()),
    )
    .await
    .ok()?;
    let r = list.iter().max_by_key(|r| r.recorded_at)?;
    Some(Notice {
        ok: true,
        text: format!(
            "{} recorded for {device_id} ({}, next due {}).",
            row(r).kind,
            row(r).outcome,
            date(r.next_due)
        ),
    })
}

/// Records the submitted calibration through the API. `Ok` when stored; else the form again
/// with its problems (and the status to answer with).
pub(crate) async fn record(
    state: &AppState,
    viewer: &Viewer,
    device_id: &str,
    form: &Form,
) -> Result<(), (StatusCode, CalibrationForm)> {
    let mut f = typed(form);
    let req = match parse(&f) {
        Ok(r) => r,
        Err(p) => {
            f.problems = p;
            return Err((StatusCode::UNPROCESSABLE_ENTITY, f));
        }
    };
    match devices_api::add_calibration(
        State(state.clone()),
        viewer.caller.clone(),
        PathParams(device_id.to_string()),
        Body(req),
    )
    .await
    {
        Ok(_) => Ok(()),
        Err(e) => {
            f.problems = e.detail.split("; ").map(str::to_string).collect();
            Err((e.status, f))
        }
    }
}

/// Scales and whether each may decide mass checks.
pub async fn scales(State(state): State<AppState>, viewer: Viewer) -> UiResult {
    viewer.require(Permission::RecordCalibration)?;
    let axum::Json(list) = devices_api::list(State(state.clone()), viewer.caller.clone())
        .await
        .map_err(|e| viewer.fail(e))?;
    let actor = viewer.caller.actor();
    let scales = list
        .into_iter()
        .filter(|d| d.state != "revoked" && actor.may_operate_at(&d.station_id))
        .map(|d| {
            let (fit, fitness) = fitness_text(d.calibration_problem.as_deref());
            ScaleRow {
                device_id: d.device_id,
                name: d.name,
                station: d.station_id,
                fit,
                fitness,
            }
        })
        .collect();
    Ok(render(
        StatusCode::OK,
        &ScalesPage {
            layout: viewer.layout("Scales", None),
            scales,
        },
    ))
}

async fn page(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
    status: StatusCode,
    notice: Option<Notice>,
    form: CalibrationForm,
) -> UiResult {
    viewer.require(Permission::RecordCalibration)?;
    let axum::Json(d) = devices_api::get(
        State(state.clone()),
        viewer.caller.clone(),
        PathParams(id.to_string()),
    )
    .await
    .map_err(|e| viewer.fail(e))?;
    let calibration = section(
        state,
        viewer,
        id,
        format!("/devices/{id}/calibrations"),
        d.calibration_problem.as_deref(),
        form,
    )
    .await
    .map_err(|e| viewer.fail(e))?;
    Ok(render(
        status,
        &CalibrationsPage {
            layout: viewer.layout(&format!("Calibration of {}", d.name), notice),
            device_id: d.device_id,
            name: d.name,
            station: d.station_id,
            calibration,
        },
    ))
}

pub async fn calibrations_page(
    State(state): State<AppState>,
    viewer: Viewer,
    PathParams(id): PathParams<String>,
    QueryParams(q): QueryParams<DoneQuery>,
) -> UiResult {
    let notice = match q.done.as_deref() {
        Some("calibration") => recorded_notice(&state, &viewer, &id).await,
        _ => None,
    };
    page(
        &state,
        &viewer,
        &id,
        StatusCode::OK,
        notice,
        CalibrationForm::default(),
    )
    .await
}

pub async fn add_calibration(
    State(state): State<AppState>,
    viewer: Viewer,
    PathParams(id): PathParams<String>,
    form: Form,
) -> UiResult {
    viewer.require(Permission::RecordCalibration)?;
    match record(&state, &viewer, &id, &form).await {
        Ok(()) => Ok(
            Redirect::to(&format!("/devices/{id}/calibrations?done=calibration")).into_response(),
        ),
        Err((status, f)) => page(&state, &viewer, &id, status, None, f).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    fn good() -> CalibrationForm {
        CalibrationForm {
            kind: "routine_test".into(),
            outcome: "fail".into(),
            performed_at: "2026-03-01T09:30".into(),
            next_due: "2026-04-01".into(),
            reference: "E2 set 1 kg".into(),
            performed_by: "QC lab".into(),
            ..CalibrationForm::default()
        }
    }

    #[test]
    fn a_typed_calibration_becomes_the_api_request() {
        let r = parse(&good()).expect("valid");
        assert_eq!(r.kind, CalibrationKind::RoutineTest);
        assert_eq!(r.outcome, CalibrationOutcome::Fail);
        assert_eq!(r.performed_at, datetime!(2026-03-01 09:30 UTC));
        assert_eq!(r.next_due, date!(2026 - 04 - 01));
        assert_eq!(r.scale_serial, None);
        let with_seconds = CalibrationForm {
            performed_at: "2026-03-01T09:30:15".into(),
            ..good()
        };
        assert_eq!(
            parse(&with_seconds).expect("valid").performed_at,
            datetime!(2026-03-01 09:30:15 UTC)
        );
        let day_only = CalibrationForm {
            performed_at: "2026-03-01".into(),
            ..good()
        };
        assert_eq!(
            parse(&day_only).expect("valid").performed_at,
            datetime!(2026-03-01 00:00 UTC)
        );
    }

    #[test]
    fn every_bad_field_is_named_in_the_forms_words() {
        let bad = CalibrationForm {
            kind: "guess".into(),
            performed_at: "yesterday".into(),
            next_due: "2026-02-30".into(),
            reference: String::new(),
            ..good()
        };
        let p = parse(&bad).expect_err("refused");
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(p[0].starts_with("Kind:"));
        assert!(
            p[1].contains("\"yesterday\" is not a date and time"),
            "{p:?}"
        );
        assert!(p[2].starts_with("Next due:"), "{p:?}");
        assert!(p[3].starts_with("Certificate number"), "{p:?}");
        let unsaid = CalibrationForm {
            outcome: String::new(),
            ..good()
        };
        assert_eq!(
            parse(&unsaid).expect_err("refused"),
            vec!["Outcome: choose pass or fail".to_string()]
        );
    }

    #[test]
    fn fitness_reads_as_a_sentence() {
        assert_eq!(
            fitness_text(None),
            (true, "The scale may decide mass checks.".to_string())
        );
        assert!(!fitness_text(Some("the scale has no recorded calibration")).0);
    }
}
