//! Photo evidence in the UI: the same-origin image route, who may see a photo, and the view
//! models the step runner and the approval queue show a photo with.
//!
//! Images are served from `/batches/{id}/photos/{photo_id}` by this server, whatever the
//! blob store (a local folder or S3): the page's CSP stays `default-src 'self'` with no
//! bucket origin in it, the URL does not expire (so the polled approval queue's HTML is
//! stable and the browser's cache works), and every request checks the viewer's session and
//! access to the batch. A photo may be seen by whoever may view its batch
//! (`http::batches::require_visible`, the same rule as the API's: operators, the batches of
//! pipelines through their stations).

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use metcon_shared::batch::{display_differs, BatchEvent, RecordedEvent, StepPayload};
use metcon_shared::mass::{Mass, MassUnit};
use metcon_shared::role::Permission;
use metcon_web::pages::{EvidenceGroup, EvidencePhoto, OcrView};
use uuid::Uuid;

use super::{format, UiResult, Viewer};
use crate::http::batches as api;
use crate::http::error::ApiError;
use crate::http::extract::PathParams;
use crate::http::AppState;
use crate::store::photos::{OcrOutcome, OcrResult, PhotoRecord, PhotoSource};

/// How long a browser may keep a photo without asking again. Short: a shared kiosk's next
/// user should not be served a previous user's photo from the cache for long; after that,
/// the `ETag` (the digest) makes asking again cheap.
const BROWSER_CACHE: &str = "private, max-age=300";

/// Where the UI shows photo `photo_id` of batch `batch_id`.
pub fn url(batch_id: Uuid, photo_id: Uuid) -> String {
    format!("/batches/{batch_id}/photos/{photo_id}")
}

/// The photos of batch `id`, oldest first. The caller has already been let see the batch
/// (`api::get` checks it), and a batch's photos are as visible as its page.
pub(super) async fn photos_of(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
) -> UiResult<Vec<PhotoRecord>> {
    state
        .store
        .photos_for_batch(id)
        .await
        .map_err(|e| viewer.fail(e.into()))
}

/// The image bytes of one photo, streamed from the blob store, after checking that the
/// viewer may see its batch. Without a session: the login page; not allowed: a 403 page;
/// not a photo of this batch: a 404 page. Never the bytes.
pub async fn photo(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    PathParams((id, photo_id)): PathParams<(String, String)>,
) -> UiResult {
    viewer.require(Permission::ViewBatches)?;
    let missing = || viewer.fail(ApiError::not_found("this batch has no such photo"));
    let (Ok(id), Ok(photo_id)) = (id.parse::<Uuid>(), photo_id.parse::<Uuid>()) else {
        return Err(missing());
    };
    let record = state
        .store
        .photo(photo_id)
        .await
        .map_err(|e| viewer.fail(e.into()))?
        .filter(|p| p.batch_id == Some(id))
        .ok_or_else(missing)?;
    let batch = state
        .store
        .batch(id)
        .await
        .map_err(|e| viewer.fail(e.into()))?
        .ok_or_else(missing)?;
    let flow = api::pinned_flow(&state, &batch.state.flow_id, batch.state.flow_version)
        .await
        .map_err(|e| viewer.fail(e))?;
    api::require_visible(&viewer.caller.actor(), &flow).map_err(|e| viewer.fail(e))?;
    crate::http::photos::send_bytes(
        &state,
        &record.sha256,
        Some(&record.content_type),
        HeaderValue::from_static(BROWSER_CACHE),
        &headers,
    )
    .await
    .map_err(|e| viewer.fail(e))
}

/// How a device frame's display compared with the signed reading it is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CrossCheck {
    /// Not a device frame: nothing to compare with.
    None,
    /// Read confidently and within the display's resolution of the signed value.
    Agreed,
    /// Read confidently and different: an OCR-mismatch flag was raised.
    Differed,
    /// Not read confidently enough to compare.
    NotCompared,
}

pub(super) fn origin(s: &PhotoSource) -> String {
    match s {
        PhotoSource::Device { device_id, seq } => {
            format!("camera frame of {device_id}, bound to its signed reading {seq}")
        }
        PhotoSource::Upload { username, .. } => format!("uploaded by {username}"),
    }
}

/// When the photo arrived, and when the camera says it was taken (EXIF), if it says.
pub(super) fn taken(p: &PhotoRecord) -> String {
    let mut s = format!("received {}", format::time(p.uploaded_at));
    if let Some(t) = p.exif.get("date_time_original") {
        s.push_str(&format!("; camera time {t}"));
        if let Some(o) = p.exif.get("offset_time_original") {
            s.push_str(&format!(" {o}"));
        }
    }
    s
}

pub(super) fn ocr_view(o: &OcrResult, unit: Option<MassUnit>, cross: CrossCheck) -> OcrView {
    let value = match (o.value, unit) {
        (Some(v), Some(u)) => format::amount(v, u),
        (Some(v), None) => v.to_string(),
        (None, _) if !o.raw_text.is_empty() => format!("“{}”", o.raw_text),
        (None, _) => "nothing read".into(),
    };
    let outcome = match o.outcome {
        OcrOutcome::Accepted => "accepted".to_string(),
        OcrOutcome::LowConfidence => "too uncertain: a re-take was asked for".into(),
        OcrOutcome::Unreadable => "unreadable".into(),
        OcrOutcome::Failed => match &o.error {
            Some(e) => format!("OCR failed: {e}"),
            None => "OCR failed".into(),
        },
    };
    let (cross_check, agrees) = match cross {
        CrossCheck::None => (String::new(), None),
        CrossCheck::Agreed => ("agrees with the signed reading".into(), Some(true)),
        CrossCheck::Differed => (
            "differs from the signed reading (OCR mismatch flagged; the signed value stands)"
                .into(),
            Some(false),
        ),
        CrossCheck::NotCompared => (
            "not compared: the display was not read confidently".into(),
            None,
        ),
    };
    OcrView {
        value,
        confidence: if matches!(o.outcome, OcrOutcome::Failed) {
            "—".into()
        } else {
            o.confidence.to_string()
        },
        outcome,
        accepted: o.outcome == OcrOutcome::Accepted,
        cross_check,
        agrees,
    }
}

/// One photo as the pages show it. `serial`: the signed reading a device frame is evidence
/// of, which its display is compared with by the cross-check's own rule (not inferred from
/// whether a flag exists: the cross-check may not have run yet).
pub(super) fn photo_view(
    batch_id: Uuid,
    p: &PhotoRecord,
    unit: Option<MassUnit>,
    serial: Option<&Mass>,
) -> EvidencePhoto {
    let step = p.step_id.as_deref().unwrap_or("this batch");
    let (alt, device) = match &p.source {
        PhotoSource::Device { device_id, .. } => {
            (format!("Camera frame of {device_id} at {step}"), true)
        }
        PhotoSource::Upload { .. } => (format!("Photo taken at {step}"), false),
    };
    let ocr = p.ocr.as_ref().map(|o| {
        let shown = serial.and_then(|s| crate::ocr::displayed(o, s.unit()).map(|d| (s, d)));
        let cross = match (device, shown) {
            (false, _) => CrossCheck::None,
            (true, Some((s, (display, resolution)))) => {
                if display_differs(s, &display, &resolution) {
                    CrossCheck::Differed
                } else {
                    CrossCheck::Agreed
                }
            }
            (true, None) => CrossCheck::NotCompared,
        };
        ocr_view(o, unit, cross)
    });
    EvidencePhoto {
        url: url(batch_id, p.id),
        alt,
        width: p.width,
        height: p.height,
        origin: origin(&p.source),
        taken: taken(p),
        ocr,
    }
}

/// The id a history row links to for event `seq`.
pub(super) fn anchor(seq: u64) -> String {
    format!("evidence-{seq}")
}

/// Whether `p` is evidence of event `e`: linked to it, or (for events recorded before the
/// link was written) the photo the event names, at its step and linked to nothing else.
fn belongs(p: &PhotoRecord, e: &RecordedEvent) -> bool {
    if p.event_seq == Some(e.seq) {
        return true;
    }
    let (step, sha) = match &e.event {
        BatchEvent::MassChecked {
            step_id, source, ..
        } => (step_id, source.photo_sha256()),
        BatchEvent::StepCompleted {
            step_id,
            payload: Some(StepPayload::Photo { photo_sha256 }),
            ..
        } => (step_id, Some(photo_sha256.as_str())),
        _ => return false,
    };
    p.event_seq.is_none() && p.step_id.as_deref() == Some(step) && Some(p.sha256.as_str()) == sha
}

/// The evidence of event `e`, if it has photos.
pub(super) fn group(
    batch_id: Uuid,
    e: &RecordedEvent,
    photos: &[PhotoRecord],
) -> Option<EvidenceGroup> {
    let mine: Vec<&PhotoRecord> = photos.iter().filter(|p| belongs(p, e)).collect();
    if mine.is_empty() {
        return None;
    }
    let (title, reading, source, serial) = match &e.event {
        BatchEvent::MassChecked {
            step_id,
            actual,
            source,
            ..
        } => (
            format!("Mass check at {step_id}"),
            format::mass(actual),
            format::source(source),
            Some(actual),
        ),
        BatchEvent::StepCompleted { step_id, .. } => (
            format!("Photo at {step_id}"),
            String::new(),
            "photo uploaded for the step".to_string(),
            None,
        ),
        _ => (
            format!("Event {}", e.seq),
            String::new(),
            format::event(e),
            None,
        ),
    };
    let unit = serial.map(Mass::unit);
    Some(EvidenceGroup {
        anchor: anchor(e.seq),
        title,
        reading,
        source,
        at: format::time(e.at),
        photos: mine
            .into_iter()
            .map(|p| photo_view(batch_id, p, unit, serial))
            .collect(),
    })
}

/// Every event's evidence, keyed by event seq, oldest first.
pub(super) fn groups(
    batch_id: Uuid,
    events: &[RecordedEvent],
    photos: &[PhotoRecord],
) -> Vec<(u64, EvidenceGroup)> {
    events
        .iter()
        .filter_map(|e| group(batch_id, e, photos).map(|g| (e.seq, g)))
        .collect()
}

/// Photos taken at `step_id` that are evidence of no event yet (an unreadable display, a
/// re-take asked for), newest first.
pub(super) fn pending(
    batch_id: Uuid,
    step_id: &str,
    unit: Option<MassUnit>,
    events: &[RecordedEvent],
    photos: &[PhotoRecord],
) -> Vec<EvidencePhoto> {
    photos
        .iter()
        .rev()
        .filter(|p| p.event_seq.is_none() && p.step_id.as_deref() == Some(step_id))
        .filter(|p| !events.iter().any(|e| belongs(p, e)))
        // Evidence of nothing yet: there is no signed reading to compare with.
        .map(|p| photo_view(batch_id, p, unit, None))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use metcon_shared::batch::{EventActor, MassSource};
    use metcon_shared::mass::Mass;
    use metcon_shared::role::Role;
    use metcon_shared::tolerance::Tolerance;
    use rust_decimal::Decimal;
    use std::collections::BTreeMap;
    use std::str::FromStr;
    use time::macros::datetime;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).expect("decimal")
    }

    fn ocr(outcome: OcrOutcome, raw: &str, value: Option<&str>, conf: &str) -> OcrResult {
        OcrResult {
            provider: "builtin".into(),
            outcome,
            raw_text: raw.into(),
            value: value.map(dec),
            decimals: Some(2),
            confidence: dec(conf),
            region: None,
            elapsed_ms: 12,
            error: None,
        }
    }

    fn record(source: PhotoSource, event_seq: Option<u64>, o: Option<OcrResult>) -> PhotoRecord {
        PhotoRecord {
            id: Uuid::from_u128(7),
            sha256: "ab".repeat(32),
            content_type: "image/jpeg".into(),
            size_bytes: 1000,
            width: 640,
            height: 480,
            exif: BTreeMap::new(),
            source,
            batch_id: Some(Uuid::from_u128(1)),
            step_id: Some("weigh".into()),
            event_seq,
            ocr: o,
            uploaded_at: datetime!(2026-12-02 12:55:01 UTC),
        }
    }

    fn actor() -> EventActor {
        EventActor {
            user_id: "u1".into(),
            username: "operator".into(),
            role: Role::Operator,
        }
    }

    fn checked(seq: u64, actual: &str, source: MassSource) -> RecordedEvent {
        let expected = Mass::parse("1000", "g").expect("mass");
        let actual = Mass::parse(actual, "g").expect("mass");
        let tolerance = Tolerance::Absolute {
            value: dec("0.5"),
            unit: MassUnit::G,
        };
        RecordedEvent {
            event_id: Uuid::from_u128(100 + u128::from(seq)),
            seq,
            at: datetime!(2026-12-02 12:55:02 UTC),
            actor: actor(),
            event: BatchEvent::MassChecked {
                station_id: "receiving".into(),
                step_id: "weigh".into(),
                step_index: 0,
                expected,
                tolerance,
                check: tolerance.check(&expected, &actual),
                actual,
                source,
                note: None,
            },
        }
    }

    #[test]
    fn ocr_results_read_as_value_confidence_and_outcome() {
        let o = ocr(OcrOutcome::Accepted, "0148.30", Some("148.30"), "0.9712");
        let v = ocr_view(&o, Some(MassUnit::G), CrossCheck::None);
        assert_eq!(v.value, "148.30 g");
        assert_eq!(v.confidence, "0.9712");
        assert_eq!(v.outcome, "accepted");
        assert!(v.accepted);
        assert!(v.cross_check.is_empty());

        let low = ocr(OcrOutcome::LowConfidence, "148.3", Some("148.3"), "0.41");
        let v = ocr_view(&low, Some(MassUnit::G), CrossCheck::None);
        assert_eq!(v.outcome, "too uncertain: a re-take was asked for");
        assert!(!v.accepted);

        let none = ocr(OcrOutcome::Unreadable, "", None, "0");
        assert_eq!(
            ocr_view(&none, None, CrossCheck::None).value,
            "nothing read"
        );
        let odd = ocr(OcrOutcome::Unreadable, "1-4", None, "0.2");
        assert_eq!(ocr_view(&odd, None, CrossCheck::None).value, "“1-4”");

        let mut failed = ocr(OcrOutcome::Failed, "", None, "0");
        failed.error = Some("timed out after 3000 ms".into());
        let v = ocr_view(&failed, None, CrossCheck::None);
        assert_eq!(v.outcome, "OCR failed: timed out after 3000 ms");
        assert_eq!(v.confidence, "—");
    }

    #[test]
    fn a_device_frame_says_whether_the_cross_check_agreed() {
        let frame = |o| {
            record(
                PhotoSource::Device {
                    device_id: "scale-01".into(),
                    seq: 12,
                },
                Some(4),
                Some(o),
            )
        };
        let accepted = ocr(OcrOutcome::Accepted, "1000.20", Some("1000.20"), "0.99");
        let e = checked(
            4,
            "1000.20",
            MassSource::Device {
                device_id: "scale-01".into(),
                sequence: 12,
            },
        );
        let agreed = group(Uuid::from_u128(1), &e, &[frame(accepted.clone())]).expect("group");
        assert_eq!(agreed.anchor, "evidence-4");
        assert_eq!(agreed.reading, "1000.20 g");
        assert_eq!(agreed.source, "signed reading 12 of scale-01");
        let p = &agreed.photos[0];
        assert_eq!(
            p.origin,
            "camera frame of scale-01, bound to its signed reading 12"
        );
        assert_eq!(
            p.url,
            format!(
                "/batches/{}/photos/{}",
                Uuid::from_u128(1),
                Uuid::from_u128(7)
            )
        );
        assert_eq!(p.taken, "received 2026-12-02 12:55:01 UTC");
        let o = p.ocr.as_ref().expect("ocr");
        assert_eq!(o.agrees, Some(true));
        assert_eq!(o.cross_check, "agrees with the signed reading");

        // Within the display's last digit (0.01 g) agrees; beyond it differs.
        let agrees = |shown: &str| {
            let o = ocr(OcrOutcome::Accepted, shown, Some(shown), "0.99");
            group(Uuid::from_u128(1), &e, &[frame(o)])
                .expect("group")
                .photos[0]
                .ocr
                .as_ref()
                .expect("ocr")
                .agrees
        };
        assert_eq!(agrees("1000.21"), Some(true));
        assert_eq!(agrees("1000.19"), Some(true));
        assert_eq!(agrees("1000.22"), Some(false));
        assert_eq!(agrees("1008.20"), Some(false));

        let unread = group(
            Uuid::from_u128(1),
            &e,
            &[frame(ocr(OcrOutcome::Unreadable, "", None, "0"))],
        )
        .expect("group");
        let o = unread.photos[0].ocr.as_ref().expect("ocr");
        assert_eq!(o.agrees, None);
        assert!(o.cross_check.starts_with("not compared"));
    }

    #[test]
    fn an_upload_is_evidence_of_its_event_or_waits_at_its_step() {
        let upload = PhotoSource::Upload {
            user_id: "u1".into(),
            username: "operator".into(),
        };
        let unread = ocr(OcrOutcome::Unreadable, "", None, "0");
        let mut p = record(upload.clone(), None, Some(unread));
        p.exif
            .insert("date_time_original".into(), "2026:12:02 13:55:00".into());
        p.exif
            .insert("offset_time_original".into(), "+01:00".into());
        // Not yet used: shown at the waiting step.
        let waiting = pending(
            Uuid::from_u128(1),
            "weigh",
            Some(MassUnit::G),
            &[],
            &[p.clone()],
        );
        assert_eq!(waiting.len(), 1);
        assert_eq!(waiting[0].origin, "uploaded by operator");
        assert_eq!(
            waiting[0].taken,
            "received 2026-12-02 12:55:01 UTC; camera time 2026:12:02 13:55:00 +01:00"
        );
        assert_eq!(waiting[0].ocr.as_ref().expect("ocr").cross_check, "");
        assert!(pending(Uuid::from_u128(1), "other", None, &[], &[p.clone()]).is_empty());
        // Typed in for it: the manual entry's evidence (found by digest before it is linked).
        let e = checked(
            3,
            "1003",
            MassSource::ManualUnreadablePhoto {
                photo_sha256: p.sha256.clone(),
            },
        );
        let g = groups(Uuid::from_u128(1), std::slice::from_ref(&e), &[p.clone()]);
        assert_eq!(g.len(), 1);
        assert_eq!(
            g[0].1.source,
            "entered by hand (the display photo was unreadable)"
        );
        assert!(pending(Uuid::from_u128(1), "weigh", None, &[e], &[p.clone()]).is_empty());
        // A photo linked to another event is not this one's.
        let other = checked(9, "1000", MassSource::Manual);
        p.event_seq = Some(3);
        assert!(group(Uuid::from_u128(1), &other, &[p]).is_none());
    }
}
