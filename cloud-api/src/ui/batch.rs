//! The step runner: one batch, its current step (any of the five types), the last mass
//! check's verdict, flags and history; and the forms that complete steps, record or capture
//! a weight, start and finish the batch. Each form calls the JSON API's handler for the same
//! command; a refusal shows the page again with the reason.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use metcon_shared::batch::{BatchEvent, BatchStatus, FlagKind, StepPayload};
use metcon_shared::flow::StepKind;
use metcon_shared::mass::Mass;
use metcon_shared::role::Permission;
use metcon_web::pages::{BatchPage, FlagRow, HistoryRow, Notice, StepView, Verdict};
use uuid::Uuid;

use super::{evidence, format, problem, render, Form, UiError, UiResult, Viewer};
use crate::http::batches::{self as api, BatchView, CompleteStep, MassCheckRequest, VersionOnly};
use crate::http::error::ApiError;
use crate::http::extract::{Body, PathParams};
use crate::http::weighing;
use crate::http::AppState;

/// The verdict of the last mass check, while it is the news: the step it completed is the
/// one just before, or its flag is still open. With the seq of its `MassChecked` event.
fn verdict(v: &BatchView) -> Option<(u64, Verdict)> {
    let last = v
        .events
        .iter()
        .rev()
        .find(|e| matches!(e.event, BatchEvent::MassChecked { .. }))?;
    let BatchEvent::MassChecked {
        expected,
        tolerance,
        actual,
        check,
        source,
        note,
        step_index,
        ..
    } = &last.event
    else {
        return None;
    };
    let open_flag = v
        .batch
        .open_flags()
        .any(|f| f.kind.approval_completes_step() && f.step_index == *step_index);
    let recent = last.seq + 2 >= v.batch.version;
    if !(open_flag || recent) {
        return None;
    }
    let mut detail = format!(
        "Expected {} ± {}; deviation {}; {}.",
        format::mass(expected),
        format::tolerance(tolerance),
        format::deviation(check, actual),
        format::source(source)
    );
    if !check.within {
        if open_flag {
            detail.push_str(" Flagged: a supervisor must approve or reject it.");
        }
        if let Some(n) = note {
            detail.push_str(&format!(" Reason given: {n}"));
        }
    }
    Some((
        last.seq,
        Verdict {
            ok: check.within,
            headline: format::verdict_headline(actual, check),
            detail,
        },
    ))
}

async fn load(state: &AppState, viewer: &Viewer, id: Uuid) -> UiResult<BatchView> {
    let axum::Json(v) = api::get(State(state.clone()), viewer.caller.clone(), PathParams(id))
        .await
        .map_err(|e| viewer.fail(e))?;
    Ok(v)
}

/// The page for batch `id`, with an optional notice, answered with `status`.
pub(super) async fn show(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
    status: StatusCode,
    notice: Option<Notice>,
) -> UiResult {
    show_page(state, viewer, id, status, notice, None).await
}

/// The batch page; `unreadable_photo` offers the manual entry for that photo.
async fn show_page(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
    status: StatusCode,
    notice: Option<Notice>,
    unreadable_photo: Option<String>,
) -> UiResult {
    let v = load(state, viewer, id).await?;
    let photos = evidence::photos_of(state, viewer, id).await?;
    let mut groups = evidence::groups(id, &v.events, &photos);
    let actor = viewer.caller.actor();
    let executes = viewer.can(Permission::ExecuteSteps);
    let s = &v.batch;
    let mut live_station = None;
    let step = match (&v.current_step, s.status) {
        (Some(cs), BatchStatus::InProgress) => {
            let may_execute = executes && actor.may_operate_at(&cs.station_id);
            let mut view = StepView {
                step_id: cs.step.step_id.clone(),
                name: cs.step.name.clone(),
                station_name: cs.station_name.clone(),
                kind: cs.step.kind.type_name().to_string(),
                may_execute,
                ..StepView::default()
            };
            let unit = match &cs.step.kind {
                StepKind::MassCheck { unit, .. } => Some(*unit),
                _ => None,
            };
            view.pending_photos = evidence::pending(id, &cs.step.step_id, unit, &v.events, &photos);
            match &cs.step.kind {
                StepKind::Instruction { text } => view.text = text.clone(),
                StepKind::Checklist { items } => view.items = items.clone(),
                StepKind::MassCheck {
                    expected_mass,
                    unit,
                    tolerance,
                } => {
                    view.expected = format::amount(*expected_mass, *unit);
                    view.tolerance = format::tolerance(tolerance);
                    view.unit = unit.symbol().to_string();
                    view.armed = state
                        .store
                        .arms_for_batch(id)
                        .await
                        .map_err(|e| viewer.fail(e.into()))?
                        .iter()
                        .any(|a| a.step_id == cs.step.step_id);
                    if may_execute {
                        live_station = Some(cs.station_id.clone());
                    }
                    // Without a serial reading: a photo of the display, read by OCR.
                    view.photo_upload = true;
                    view.unreadable_photo = unreadable_photo.clone().unwrap_or_default();
                }
                StepKind::Signature { meaning } => view.meaning = meaning.clone(),
                StepKind::Photo { prompt } => {
                    view.text = prompt.clone();
                    view.photo_upload = true;
                }
            }
            Some(view)
        }
        _ => None,
    };
    let station_ok = v
        .current_station
        .as_deref()
        .map(|st| actor.may_operate_at(st))
        .unwrap_or(true);
    let flags = s
        .flags
        .iter()
        .map(|f| FlagRow {
            kind: match f.kind {
                FlagKind::OutOfTolerance => "Out of tolerance".into(),
                FlagKind::Manual => "Flag".into(),
                FlagKind::OcrMismatch => "Display differs from the scale (OCR)".into(),
                FlagKind::ManualEntry => "Entered by hand: the photo was unreadable".into(),
            },
            step: f.step_id.clone(),
            reason: f.reason.clone(),
            raised_by: f.raised_by.username.clone(),
            open: f.resolution.is_none(),
            outcome: match &f.resolution {
                None => "waiting for a supervisor".into(),
                Some(r) => format!(
                    "{} by {}: {}",
                    if r.approved { "approved" } else { "rejected" },
                    r.by.username,
                    r.reason
                ),
            },
        })
        .collect();
    let history = v
        .events
        .iter()
        .rev()
        .map(|e| HistoryRow {
            at: format::time(e.at),
            who: e.actor.username.clone(),
            what: format::event(e),
            evidence: groups
                .iter()
                .any(|(seq, _)| *seq == e.seq)
                .then(|| evidence::anchor(e.seq)),
        })
        .collect();
    let verdict = verdict(&v);
    // The news's evidence sits beside its verdict; the rest, newest first, below.
    let verdict_evidence = verdict.as_ref().and_then(|(seq, _)| {
        let at = groups.iter().position(|(s, _)| s == seq)?;
        Some(groups.remove(at).1)
    });
    let evidence = groups.into_iter().rev().map(|(_, g)| g).collect();
    let page = BatchPage {
        layout: viewer.layout(&format!("Batch {}", s.batch_number), notice),
        id: id.to_string(),
        number: s.batch_number.clone(),
        flow: format!("{} v{}", s.flow_id, s.flow_version),
        status: s.status.as_str().to_string(),
        priority: match s.priority {
            metcon_shared::batch::Priority::High => "high".into(),
            metcon_shared::batch::Priority::Normal => "normal".into(),
        },
        version: s.version,
        progress: format!(
            "step {} of {}",
            (s.cursor + 1).min(s.step_count),
            s.step_count
        ),
        can_start: s.status == BatchStatus::Created && executes && station_ok,
        can_finish: s.status == BatchStatus::InProgress && s.cursor >= s.step_count && executes,
        verdict: verdict.map(|(_, v)| v),
        verdict_evidence,
        evidence,
        step,
        flags,
        history,
        live_station,
    };
    Ok(render(status, &page))
}

pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    PathParams(id): PathParams<Uuid>,
) -> UiResult {
    show(&state, &viewer, id, StatusCode::OK, None).await
}

/// After a command: back to the batch page (PRG), or the page again with the refusal.
async fn after<T>(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
    result: Result<T, ApiError>,
) -> UiResult {
    match result {
        Ok(_) => Ok(Redirect::to(&format!("/batches/{id}")).into_response()),
        Err(e) if e.status == StatusCode::UNAUTHORIZED => Err(e.into()),
        Err(e) => show(state, viewer, id, e.status, Some(problem(&e))).await,
    }
}

pub async fn start(
    State(state): State<AppState>,
    viewer: Viewer,
    PathParams(id): PathParams<Uuid>,
    form: Form,
) -> UiResult {
    let r = api::start(
        State(state.clone()),
        viewer.caller.clone(),
        PathParams(id),
        Some(Body(VersionOnly {
            expected_version: form.version(),
        })),
    )
    .await;
    after(&state, &viewer, id, r).await
}

pub async fn finish(
    State(state): State<AppState>,
    viewer: Viewer,
    PathParams(id): PathParams<Uuid>,
    form: Form,
) -> UiResult {
    let r = api::complete(
        State(state.clone()),
        viewer.caller.clone(),
        PathParams(id),
        Some(Body(VersionOnly {
            expected_version: form.version(),
        })),
    )
    .await;
    after(&state, &viewer, id, r).await
}

/// What an instruction, checklist or signature form hands in.
fn payload(form: &Form) -> Result<StepPayload, ApiError> {
    match form.get("type") {
        Some("instruction") => Ok(StepPayload::Instruction {
            acknowledged: form.get("acknowledged") == Some("true"),
        }),
        Some("checklist") => Ok(StepPayload::Checklist {
            checked: form.all("checked"),
        }),
        Some("signature") => Ok(StepPayload::Signature {
            meaning: form.get("meaning").unwrap_or("").to_string(),
        }),
        _ => Err(ApiError::unprocessable(
            "this form does not say which kind of step it completes; reload the page",
        )),
    }
}

pub async fn complete_step(
    State(state): State<AppState>,
    viewer: Viewer,
    PathParams((id, step_id)): PathParams<(Uuid, String)>,
    form: Form,
) -> UiResult {
    let payload = match payload(&form) {
        Ok(p) => p,
        Err(e) => return show(&state, &viewer, id, e.status, Some(problem(&e))).await,
    };
    let password = form.raw("password").map(str::to_string);
    let r = api::complete_step(
        State(state.clone()),
        viewer.caller.clone(),
        PathParams((id, step_id)),
        Body(CompleteStep {
            payload,
            expected_version: form.version(),
            password,
        }),
    )
    .await;
    after(&state, &viewer, id, r).await
}

/// Parses a typed weight (a comma is a decimal point too), exactly.
pub(crate) fn parse_weight(value: &str, unit: &str) -> Result<Mass, ApiError> {
    let value = value.trim().replace(',', ".");
    Mass::parse(&value, unit).map_err(|e| {
        ApiError::unprocessable(format!("the weight {value:?} {unit} is not valid: {e}"))
    })
}

/// A weight typed by hand. Outside tolerance the reason is required, so the supervisor sees
/// why; the decision itself is the domain's (the same tolerance check).
pub async fn mass_check(
    State(state): State<AppState>,
    viewer: Viewer,
    PathParams((id, step_id)): PathParams<(Uuid, String)>,
    form: Form,
) -> UiResult {
    let actual = match parse_weight(
        form.get("actual").unwrap_or(""),
        form.get("unit").unwrap_or("g"),
    ) {
        Ok(m) => m,
        Err(e) => return show(&state, &viewer, id, e.status, Some(problem(&e))).await,
    };
    let note = form.get("note").map(str::to_string);
    if note.is_none() {
        let v = load(&state, &viewer, id).await?;
        if let Some(cs) = &v.current_step {
            if let StepKind::MassCheck {
                expected_mass,
                unit,
                tolerance,
            } = &cs.step.kind
            {
                if let Ok(expected) = Mass::new(*expected_mass, *unit) {
                    let c = tolerance.check(&expected, &actual);
                    if !c.within {
                        let e = ApiError::unprocessable(format!(
                            "{} is outside tolerance (deviation {}): give the reason for the deviation",
                            format::mass(&actual),
                            format::deviation(&c, &actual)
                        ));
                        return show(&state, &viewer, id, e.status, Some(problem(&e))).await;
                    }
                }
            }
        }
    }
    let r = api::mass_check(
        State(state.clone()),
        viewer.caller.clone(),
        PathParams((id, step_id)),
        Body(MassCheckRequest {
            actual,
            note,
            expected_version: form.version(),
            photo_id: form.get("photo_id").and_then(|p| p.parse().ok()),
        }),
    )
    .await;
    after(&state, &viewer, id, r).await
}

/// Capture: arm the step and ask the station's scale for its next stable reading.
pub async fn capture(
    State(state): State<AppState>,
    viewer: Viewer,
    PathParams((id, step_id)): PathParams<(Uuid, String)>,
    _form: Form,
) -> UiResult {
    let r = weighing::capture(
        State(state.clone()),
        viewer.caller.clone(),
        PathParams((id, step_id)),
        None,
    )
    .await;
    after(&state, &viewer, id, r).await
}

/// A photo from the kiosk's camera or file picker (multipart: `_csrf`, `expected_version`,
/// `note`, `photo`) for a photo step, or for a mass check read by OCR. A re-take or an
/// unreadable display comes back as the batch page with the reason; for an unreadable one
/// the manual entry then records the weight for that photo.
pub async fn photo(
    State(state): State<AppState>,
    viewer: Viewer,
    PathParams((id, step_id)): PathParams<(Uuid, String)>,
    headers: axum::http::HeaderMap,
    multipart: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
) -> UiResult {
    let unreadable_form = |detail: String| {
        UiError::page(
            StatusCode::BAD_REQUEST,
            "The photo could not be received",
            format!("The upload is not a valid form: {detail}"),
        )
    };
    let mut mp = multipart.map_err(|e| unreadable_form(e.body_text()))?;
    let mut form = Form::default();
    let mut photo = None;
    while let Some(field) = mp
        .next_field()
        .await
        .map_err(|e| unreadable_form(e.body_text()))?
    {
        let name = field.name().unwrap_or_default().to_string();
        if name == "photo" {
            photo = Some(
                field
                    .bytes()
                    .await
                    .map_err(|e| unreadable_form(e.body_text()))?,
            );
        } else {
            let text = field
                .text()
                .await
                .map_err(|e| unreadable_form(e.body_text()))?;
            form.0.push((name, text));
        }
    }
    super::check_csrf(&headers, &form, crate::http::extract::CSRF_COOKIE)?;
    let Some(photo) = photo.filter(|p| !p.is_empty()) else {
        let e = ApiError::unprocessable("choose or take a photo first");
        return show(&state, &viewer, id, e.status, Some(problem(&e))).await;
    };
    let r = crate::http::photos::upload(
        State(state.clone()),
        viewer.caller.clone(),
        PathParams((id, step_id)),
        crate::http::extract::QueryParams(crate::http::photos::UploadQuery {
            expected_version: form.version(),
            note: form.get("note").map(str::to_string),
        }),
        Ok(photo),
    )
    .await;
    match r {
        Err(e) if e.status != StatusCode::UNAUTHORIZED => {
            let manual = e
                .extra
                .as_ref()
                .filter(|x| x["manual_entry_allowed"] == true)
                .and_then(|x| x["photo_id"].as_str())
                .map(str::to_string);
            show_page(&state, &viewer, id, e.status, Some(problem(&e)), manual).await
        }
        other => after(&state, &viewer, id, other).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_parse_exactly_with_a_comma_or_a_point() {
        let m = parse_weight(" 148,30 ", "g").expect("weight");
        assert_eq!(format::mass(&m), "148.30 g");
        assert!(parse_weight("abc", "g").is_err());
        assert!(parse_weight("-1", "g").is_err());
        assert!(parse_weight("1", "stone").is_err());
    }

    #[test]
    fn a_step_form_must_say_its_type() {
        let f = Form(vec![
            ("type".into(), "checklist".into()),
            ("checked".into(), "seal intact".into()),
            ("checked".into(), "label matches".into()),
        ]);
        assert_eq!(
            payload(&f).expect("payload"),
            StepPayload::Checklist {
                checked: vec!["seal intact".into(), "label matches".into()]
            }
        );
        assert!(payload(&Form::default()).is_err());
        let i = Form(vec![("type".into(), "instruction".into())]);
        assert_eq!(
            payload(&i).expect("payload"),
            StepPayload::Instruction {
                acknowledged: false
            }
        );
    }
}
