//! The supervisor's approval queue: open flags with their evidence (the reading, expected
//! mass and tolerance, deviation, where the weight came from, the photo it was read from,
//! entered for or cross-checked with, and what OCR read in it; for an OCR mismatch the
//! signed and the displayed value side by side); approve or reject with a reason
//! and an e-signature (the password, re-entered now). The queue refreshes itself by polling
//! its fragment, so new requests show up without a reload.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use std::collections::HashMap;

use metcon_shared::batch::{BatchEvent, FlagKind};
use metcon_shared::role::Permission;
use metcon_web::pages::{ApprovalRow, ApprovalsList, ApprovalsPage, Notice};
use serde_json::json;
use uuid::Uuid;

use super::{evidence, format, problem, render, DoneQuery, Form, UiResult, Viewer};
use crate::auth::password;
use crate::http::batches::{self as api, ApprovalItem, ReasonRequest};
use crate::http::error::ApiError;
use crate::http::extract::{Body, PathParams};
use crate::http::session::audit;
use crate::http::AppState;
use crate::store::photos::PhotoRecord;

/// One queue entry. `photos`: the flag's batch's, for the evidence photos.
fn row(i: ApprovalItem, photos: &[PhotoRecord]) -> ApprovalRow {
    let group = i
        .evidence
        .as_ref()
        .and_then(|e| evidence::group(i.batch_id, e, photos));
    let mismatch = i.flag.kind == FlagKind::OcrMismatch;
    let mut r = ApprovalRow {
        batch_id: i.batch_id.to_string(),
        number: i.batch_number,
        version: i.batch_version,
        flag_id: i.flag.flag_id,
        kind: match i.flag.kind {
            FlagKind::OutOfTolerance => "out of tolerance".into(),
            FlagKind::Manual => "flag".into(),
            FlagKind::OcrMismatch => "OCR mismatch".into(),
            FlagKind::ManualEntry => "entered by hand (photo unreadable)".into(),
        },
        station: i.flag.station_id,
        step: i.flag.step_id,
        reason: i.flag.reason,
        raised_by: i.flag.raised_by.username,
        raised_at: format::time(i.flag.raised_at),
        reading: None,
        expected: None,
        deviation: None,
        source: None,
        signed: None,
        displayed: None,
        photos: group.map(|g| g.photos).unwrap_or_default(),
    };
    if let Some(BatchEvent::MassChecked {
        expected,
        tolerance,
        actual,
        check,
        source,
        ..
    }) = i.evidence.map(|e| e.event)
    {
        r.reading = Some(format::mass(&actual));
        r.expected = Some(format!(
            "{} ± {}",
            format::mass(&expected),
            format::tolerance(&tolerance)
        ));
        r.deviation = Some(format::deviation(&check, &actual));
        r.source = Some(format::source(&source));
        if mismatch {
            r.signed = Some(format::mass(&actual));
            // The value read from the camera frame the cross-check compared.
            r.displayed = r
                .photos
                .iter()
                .filter_map(|p| p.ocr.as_ref())
                .find(|o| o.agrees == Some(false))
                .map(|o| o.value.clone());
        }
    }
    r
}

async fn items(state: &AppState, viewer: &Viewer) -> UiResult<Vec<ApprovalRow>> {
    let axum::Json(items) = api::approvals(State(state.clone()), viewer.caller.clone())
        .await
        .map_err(|e| viewer.fail(e))?;
    // Each flagged batch's photo records, once (the images themselves load lazily from the
    // same-origin route, and only the thumbnails shown).
    let mut batches: HashMap<Uuid, Vec<PhotoRecord>> = HashMap::new();
    for i in &items {
        if batches.contains_key(&i.batch_id) {
            continue;
        }
        let photos = state
            .store
            .photos_for_batch(i.batch_id)
            .await
            .map_err(|e| viewer.fail(e.into()))?;
        batches.insert(i.batch_id, photos);
    }
    Ok(items
        .into_iter()
        .map(|i| {
            let photos = batches
                .get(&i.batch_id)
                .map(Vec::as_slice)
                .unwrap_or_default();
            row(i, photos)
        })
        .collect())
}

async fn show(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    notice: Option<Notice>,
) -> UiResult {
    viewer.require(Permission::ApproveFlags)?;
    let items = items(state, viewer).await?;
    Ok(render(
        status,
        &ApprovalsPage {
            layout: viewer.layout("Approvals", notice),
            items,
        },
    ))
}

pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<DoneQuery>,
) -> UiResult {
    let notice = match q.done.as_deref() {
        Some("approved") => Some(Notice {
            ok: true,
            text: "Approved and signed.".into(),
        }),
        Some("rejected") => Some(Notice {
            ok: true,
            text: "Rejected and signed.".into(),
        }),
        _ => None,
    };
    show(&state, &viewer, StatusCode::OK, notice).await
}

/// The queue alone, for the page's polling.
pub async fn list(State(state): State<AppState>, viewer: Viewer) -> UiResult {
    viewer.require(Permission::ApproveFlags)?;
    let items = items(&state, &viewer).await?;
    Ok(render(
        StatusCode::OK,
        &ApprovalsList {
            layout: viewer.layout("Approvals", None),
            items,
        },
    ))
}

/// Checks the signer's password again, as the signature step does; a failure is audited.
pub(crate) async fn reauthenticate(
    state: &AppState,
    viewer: &Viewer,
    password_given: Option<&str>,
    target: String,
) -> Result<(), ApiError> {
    let pw = password_given
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::unprocessable("sign with your password"))?
        .to_string();
    let phc = viewer.caller.user.password_hash.clone();
    let ok = tokio::task::spawn_blocking(move || password::verify(&pw, &phc))
        .await
        .map_err(ApiError::internal)?;
    if ok {
        return Ok(());
    }
    state
        .store
        .append_audit(&audit(
            &viewer.caller.user.username,
            "signature_failed",
            target,
            json!({ "via": "approval" }),
            viewer.caller.ip.clone(),
        ))
        .await?;
    Err(ApiError::forbidden(
        "re-authentication failed: the password is wrong",
    ))
}

pub async fn decide(
    State(state): State<AppState>,
    viewer: Viewer,
    PathParams((id, flag_id)): PathParams<(Uuid, u64)>,
    form: Form,
) -> UiResult {
    viewer.require(Permission::ApproveFlags)?;
    let approve = match form.get("decision") {
        Some("approve") => true,
        Some("reject") => false,
        _ => {
            let e = ApiError::unprocessable("choose Approve or Reject");
            return show(&state, &viewer, e.status, Some(problem(&e))).await;
        }
    };
    let reason = form.get("reason").unwrap_or("").to_string();
    if reason.is_empty() {
        let e = ApiError::unprocessable("give the reason for your decision");
        return show(&state, &viewer, e.status, Some(problem(&e))).await;
    }
    if let Err(e) =
        reauthenticate(&state, &viewer, form.raw("password"), format!("batch:{id}")).await
    {
        return show(&state, &viewer, e.status, Some(problem(&e))).await;
    }
    let body = Body(ReasonRequest {
        reason,
        expected_version: form.version(),
    });
    let (s, c, p) = (
        State(state.clone()),
        viewer.caller.clone(),
        PathParams((id, flag_id)),
    );
    let r = if approve {
        api::approve_flag(s, c, p, body).await
    } else {
        api::reject_flag(s, c, p, body).await
    };
    match r {
        Ok(_) => Ok(Redirect::to(if approve {
            "/approvals?done=approved"
        } else {
            "/approvals?done=rejected"
        })
        .into_response()),
        Err(e) => show(&state, &viewer, e.status, Some(problem(&e))).await,
    }
}
