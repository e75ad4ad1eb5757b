//! Photos as evidence: an operator uploads the photo a step asks for (a photo step, or the
//! scale's display at a mass check without a serial reading), lists a batch's photos, and
//! opens one through a short-lived URL.
//!
//! An upload is checked before anything is kept: the bytes must be a JPEG or PNG that
//! decodes (sniffed; the client's content type is ignored), within the size limit, and good
//! enough to read (exposure, contrast, focus); otherwise the answer is a 422 problem with
//! `retake` and the reason. At a mass check OCR reads the display: at or above the
//! acceptance confidence the value is recorded (source `ocr`, the photo named); below it the
//! answer asks for a re-take; when nothing can be read the photo is kept and a manual entry
//! for it is allowed (`POST …/mass-check` with `photo_id`), which the domain flags.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use metcon_shared::batch::{BatchCommand, MassSource, RecordedEvent, StepPayload};
use metcon_shared::flow::StepKind;
use metcon_shared::mass::Mass;
use metcon_shared::role::Permission;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::batches::{execute, waiting_step, BatchView};
use super::error::{ApiError, ApiResult};
use super::extract::{Caller, PathParams, QueryParams};
use super::session::audit;
use super::AppState;
use crate::photos::quality::{self, Retake};
use crate::photos::{Image, ImageError};
use crate::store::photos::{OcrOutcome, OcrResult, PhotoRecord, PhotoSource};

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// The batch version the operator saw (optimistic concurrency).
    pub expected_version: Option<u64>,
    /// Mass checks: the operator's explanation, shown to the approver when out of tolerance.
    pub note: Option<String>,
}

/// A stored photo and where to see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PhotoView {
    pub photo: PhotoRecord,
    /// Short-lived: a presigned S3 URL or a signed `/api/photos/…` URL.
    pub url: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub url_expires_at: OffsetDateTime,
}

/// What an accepted upload did.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadResult {
    pub photo: PhotoView,
    /// The batch after the step (or mass check) was recorded.
    pub batch: BatchView,
}

fn image_error(e: ImageError) -> ApiError {
    match e {
        ImageError::TooLarge { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too-large", e.to_string())
        }
        ImageError::NotAnImage | ImageError::Empty => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not-an-image",
            format!("{e}; send the photo's bytes as taken (JPEG or PNG)"),
        ),
        other => ApiError::unprocessable(other.to_string()),
    }
}

fn retake(reason: Retake, m: &quality::Measures) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "retake",
        format!("retake: {}", reason.advice()),
    )
    .with_extra(json!({ "retake": true, "reason": reason, "measures": m }))
}

/// The URL a browser may open `sha256` at, and until when.
pub async fn photo_url(state: &AppState, sha256: &str) -> ApiResult<(String, OffsetDateTime)> {
    let ttl = std::time::Duration::from_secs(state.config.photos.url_ttl_seconds);
    let expires = OffsetDateTime::now_utc() + ttl;
    if let Some(url) = state
        .blobs
        .presigned_url(sha256, ttl)
        .await
        .map_err(ApiError::internal)?
    {
        return Ok((url, expires));
    }
    let query = state.photo_urls.sign(sha256, expires);
    Ok((format!("/api/photos/{sha256}?{query}"), expires))
}

async fn view(state: &AppState, photo: PhotoRecord) -> ApiResult<PhotoView> {
    let (url, url_expires_at) = photo_url(state, &photo.sha256).await?;
    Ok(PhotoView {
        photo,
        url,
        url_expires_at,
    })
}

/// The seq of the first event of `kind` among those just recorded.
fn seq_of(events: &[RecordedEvent], pick: impl Fn(&RecordedEvent) -> bool) -> Option<u64> {
    events.iter().find(|e| pick(e)).map(|e| e.seq)
}

/// Upload the photo the current step asks for (raw JPEG or PNG bytes as the body).
#[utoipa::path(post, path = "/api/batches/{id}/steps/{step_id}/photo", tag = "photos",
    params(UploadQuery),
    request_body(content = Vec<u8>, content_type = "image/jpeg"),
    responses((status = 200, body = UploadResult),
        (status = 422, description = "retake (quality or low OCR confidence) or unreadable display (manual entry allowed)")))]
pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((id, step_id)): PathParams<(Uuid, String)>,
    QueryParams(q): QueryParams<UploadQuery>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<UploadResult>> {
    caller.require(Permission::ExecuteSteps)?;
    let max = state.config.photos.max_upload_bytes;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                format!("the photo is larger than {max} bytes, the upload limit"),
            )
        } else {
            ApiError::bad_request(format!("the upload could not be read: {e}"))
        }
    })?;
    let (_, kind) = waiting_step(&state, &caller, id, &step_id, "a photo").await?;
    let unit = match &kind {
        StepKind::Photo { .. } => None,
        StepKind::MassCheck { unit, .. } => Some(*unit),
        other => {
            return Err(ApiError::unprocessable(format!(
                "step {step_id} is a {} step; photos are taken at photo and mass-check steps",
                other.type_name()
            )))
        }
    };
    let (image, measures) = tokio::task::spawn_blocking(move || {
        Image::parse(body, max).map(|image| {
            let m = quality::measure(&image.decoded);
            (image, m)
        })
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(image_error)?;
    if let Err(r) = quality::check(&measures) {
        return Err(retake(r, &measures));
    }
    let sha = image.sha256();
    state
        .blobs
        .put(&sha, &image.bytes, image.content_type)
        .await
        .map_err(ApiError::internal)?;
    let ocr = match unit {
        Some(_) => Some(crate::ocr::read_and_classify(state.ocr.as_ref(), &image, None).await),
        None => None,
    };
    let record = image.evidence(
        PhotoSource::Upload {
            user_id: caller.user.id.clone(),
            username: caller.user.username.clone(),
        },
        id,
        &step_id,
        None,
        ocr.clone(),
    );
    let audit_entry = audit(
        &caller.user.username,
        "photo_uploaded",
        format!("batch:{id}"),
        json!({
            "photo_id": record.id, "sha256": sha, "step_id": step_id, "bytes": record.size_bytes,
            "ocr": ocr.as_ref().map(|o| json!({ "outcome": o.outcome, "text": o.raw_text, "confidence": o.confidence })),
        }),
        caller.ip.clone(),
    );
    state
        .store
        .insert_photo(&record, std::slice::from_ref(&audit_entry))
        .await?;

    let command = match (unit, &ocr) {
        (None, _) => BatchCommand::CompleteStep {
            step_id: step_id.clone(),
            payload: StepPayload::Photo {
                photo_sha256: sha.clone(),
            },
        },
        (Some(unit), Some(o)) => match mass_from_ocr(o, unit) {
            Ok(actual) => BatchCommand::RecordMassCheck {
                step_id: step_id.clone(),
                actual,
                source: MassSource::Ocr {
                    confidence: o.confidence,
                    photo_sha256: Some(sha.clone()),
                },
                note: q.note.clone(),
            },
            Err(e) => return Err(e.with_extra(ocr_extra(&record, o))),
        },
        (Some(_), None) => return Err(ApiError::internal("a mass-check photo was not read")),
    };
    let Json(batch) = execute(&state, &caller, id, q.expected_version, command).await?;
    let seq = seq_of(&batch.events, |e| {
        matches!(
            e.event,
            metcon_shared::batch::BatchEvent::MassChecked { .. }
                | metcon_shared::batch::BatchEvent::StepCompleted { .. }
        )
    });
    let mut record = record;
    if let Some(seq) = seq {
        state.store.link_photo_event(record.id, seq).await?;
        record.event_seq = Some(seq);
    }
    Ok(Json(UploadResult {
        photo: view(&state, record).await?,
        batch,
    }))
}

fn ocr_extra(record: &PhotoRecord, o: &OcrResult) -> serde_json::Value {
    json!({
        "retake": o.outcome == OcrOutcome::LowConfidence,
        "manual_entry_allowed": matches!(o.outcome, OcrOutcome::Unreadable | OcrOutcome::Failed),
        "reason": o.outcome,
        "photo_id": record.id,
        "photo_sha256": record.sha256,
        "ocr": o,
    })
}

/// The mass an accepted OCR reading stands for, or why it cannot be used.
fn mass_from_ocr(o: &OcrResult, unit: metcon_shared::mass::MassUnit) -> ApiResult<Mass> {
    let retake = |detail: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "retake", detail);
    match (o.outcome, o.value) {
        (OcrOutcome::Accepted, Some(v)) => Mass::new(v, unit).map_err(|_| {
            retake(format!(
                "retake: the display shows a negative weight ({}); zero or tare the scale first",
                o.raw_text
            ))
        }),
        (OcrOutcome::LowConfidence, _) => Err(retake(format!(
            "retake: the display was read as {} but only with confidence {} (at least {} is needed)",
            o.raw_text,
            o.confidence,
            crate::ocr::ACCEPT_CONFIDENCE
        ))),
        _ => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unreadable",
            match &o.error {
                Some(e) => format!(
                    "the display could not be read ({e}); retake the photo, or enter the weight by hand (a supervisor will review it)"
                ),
                None => "the display could not be read; retake the photo, or enter the weight by hand (a supervisor will review it)".to_string(),
            },
        )),
    }
}

/// The photo a manual entry is made for: this batch's, at this step, and unreadable.
pub async fn unreadable_photo(
    state: &AppState,
    id: Uuid,
    step_id: &str,
    photo_id: Uuid,
) -> ApiResult<PhotoRecord> {
    let p = state
        .store
        .photo(photo_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("photo {photo_id} does not exist")))?;
    if p.batch_id != Some(id) || p.step_id.as_deref() != Some(step_id) {
        return Err(ApiError::unprocessable(format!(
            "photo {photo_id} was not taken for step {step_id} of this batch"
        )));
    }
    if p.event_seq.is_some() {
        return Err(ApiError::conflict(format!(
            "photo {photo_id} is already evidence of a recorded step"
        )));
    }
    match p.ocr.as_ref().map(|o| o.outcome) {
        Some(OcrOutcome::Unreadable | OcrOutcome::Failed) => Ok(p),
        Some(OcrOutcome::LowConfidence) => Err(ApiError::unprocessable(
            "that photo was read, only not confidently enough: take it again instead of typing the weight",
        )),
        _ => Err(ApiError::unprocessable(
            "a weight may be typed in only for a photo whose display could not be read",
        )),
    }
}

/// A batch's photos, oldest first, with short-lived URLs.
#[utoipa::path(get, path = "/api/batches/{id}/photos", tag = "photos", responses((status = 200, body = Vec<PhotoView>)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<Uuid>,
) -> ApiResult<Json<Vec<PhotoView>>> {
    caller.require(Permission::ViewBatches)?;
    let (_, flow) = super::batches::load(&state, id).await?;
    super::batches::require_visible(&caller.actor(), &flow)?;
    let mut out = Vec::new();
    for p in state.store.photos_for_batch(id).await? {
        out.push(view(&state, p).await?);
    }
    Ok(Json(out))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SignedQuery {
    pub expires: i64,
    pub sig: String,
}

/// A photo's bytes, through the signed URL `GET /api/batches/{id}/photos` handed out.
#[utoipa::path(get, path = "/api/photos/{sha256}", tag = "photos", params(SignedQuery),
    responses((status = 200, content_type = "image/jpeg"), (status = 403, description = "expired or forged link")))]
pub async fn open(
    State(state): State<AppState>,
    headers: HeaderMap,
    PathParams(sha256): PathParams<String>,
    QueryParams(q): QueryParams<SignedQuery>,
) -> ApiResult<Response> {
    crate::blobs::check_name(&sha256).map_err(|e| ApiError::not_found(e.to_string()))?;
    state
        .photo_urls
        .verify(&sha256, q.expires, &q.sig, OffsetDateTime::now_utc())
        .map_err(|e| ApiError::forbidden(e.to_string()))?;
    let left = (q.expires - OffsetDateTime::now_utc().unix_timestamp()).max(0);
    let cache = HeaderValue::from_str(&format!("private, max-age={left}, immutable"))
        .map_err(ApiError::internal)?;
    send_bytes(&state, &sha256, None, cache, &headers).await
}

/// The content type to serve a record's bytes with: only the two the upload accepts.
fn content_type(recorded: &str) -> &'static str {
    match recorded {
        "image/png" => "image/png",
        "image/jpeg" => "image/jpeg",
        _ => "application/octet-stream",
    }
}

/// Sends the stored bytes named `sha256` as an image: every route that shows a photo (the
/// signed URL, the UI's evidence and device-frame routes) answers through this one, so
/// they agree on headers. The content type is the recorded one (`recorded`; only PNG and
/// JPEG are served as images) or sniffed; the digest is the ETag, so a browser that has the
/// bytes gets a 304 without the store being read; `nosniff` and a `default-src 'none'` CSP
/// keep the bytes from ever being run as a page.
pub(crate) async fn send_bytes(
    state: &AppState,
    sha256: &str,
    recorded: Option<&str>,
    cache: HeaderValue,
    request: &HeaderMap,
) -> ApiResult<Response> {
    let etag = format!("\"{sha256}\"");
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut res = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let bytes = state
            .blobs
            .get(sha256)
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::not_found("the photo's file is not stored"))?;
        let content_type = match recorded {
            Some(t) => content_type(t),
            None => match image::guess_format(&bytes) {
                Ok(image::ImageFormat::Png) => "image/png",
                _ => "image/jpeg",
            },
        };
        let mut res = (StatusCode::OK, bytes).into_response();
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        res
    };
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, cache);
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'"),
    );
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_image_types_are_served_as_images() {
        assert_eq!(content_type("image/png"), "image/png");
        assert_eq!(content_type("image/jpeg"), "image/jpeg");
        assert_eq!(content_type("text/html"), "application/octet-stream");
    }
}
