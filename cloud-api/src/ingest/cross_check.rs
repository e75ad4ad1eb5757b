//! The OCR cross-check of a bound device reading (seed pattern 5, architecture "OCR"): when a
//! signed serial reading carries the digest of a camera frame, the display in that frame is
//! read (inside the device's display region, drawn once by an admin) and compared with the
//! signed value. A difference beyond the display's resolution raises an OCR-mismatch flag;
//! the signed serial value stands either way. The frame and what OCR read are kept as the
//! mass check's photo evidence.
//!
//! It runs after the mass check is stored, off the ingest path: OCR takes milliseconds to
//! tens of milliseconds and must not hold back readings. The frame is published on its own
//! topic just before the reading, so it may arrive a little later; it is awaited briefly.

use std::time::Duration;

use metcon_shared::batch::BatchCommand;
use metcon_shared::reading::Reading;
use metcon_shared::role::Actor;
use serde_json::json;
use uuid::Uuid;

use super::binding::reading_mass;
use crate::http::batches;
use crate::http::session::audit;
use crate::http::AppState;
use crate::photos::Image;
use crate::store::photos::PhotoSource;
use crate::store::StoreError;

/// How long a reading's frame may lag behind it.
const FRAME_WAIT: Duration = Duration::from_secs(15);

/// Where the cross-check of one bound reading applies.
#[derive(Debug, Clone)]
pub struct Target {
    pub actor: Actor,
    pub batch_id: Uuid,
    pub step_id: String,
    /// The `MassChecked` event of the reading.
    pub event_seq: u64,
}

/// Starts the cross-check of `reading` in the background, if it has a frame.
pub fn spawn(state: &AppState, reading: &Reading, target: Target) {
    if reading.frame_sha256.is_none() {
        return;
    }
    let (state, reading) = (state.clone(), reading.clone());
    tokio::spawn(async move {
        if let Err(e) = run(&state, &reading, &target).await {
            tracing::warn!(device = %reading.device, seq = reading.seq, error = %e, "OCR cross-check not done");
        }
    });
}

async fn wait_for_frame(state: &AppState, sha: &str) -> anyhow::Result<Option<Vec<u8>>> {
    let deadline = tokio::time::Instant::now() + FRAME_WAIT;
    let mut pause = Duration::from_millis(50);
    loop {
        // A cheap existence check while waiting (a HEAD on S3), one download at the end.
        if state.blobs.exists(sha).await? {
            return Ok(state.blobs.get(sha).await?);
        }
        if tokio::time::Instant::now() + pause > deadline {
            return Ok(None);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// Reads the frame, records it as evidence and, when the display was read confidently,
/// lets the domain compare it with the signed value.
pub async fn run(state: &AppState, reading: &Reading, t: &Target) -> anyhow::Result<()> {
    let Some(frame) = &reading.frame_sha256 else {
        return Ok(());
    };
    let sha = frame.to_string();
    let Some(bytes) = wait_for_frame(state, &sha).await? else {
        anyhow::bail!("its frame {sha} did not arrive within {FRAME_WAIT:?}");
    };
    let max = state.config.broker.max_photo_bytes;
    let image = tokio::task::spawn_blocking(move || Image::parse(bytes.into(), max)).await??;
    let roi = state
        .store
        .device(reading.device.as_str())
        .await?
        .and_then(|d| d.camera_region);
    let ocr = crate::ocr::read_and_classify(state.ocr.as_ref(), &image, roi).await;
    let record = image.evidence(
        PhotoSource::Device {
            device_id: reading.device.to_string(),
            seq: reading.seq,
        },
        t.batch_id,
        &t.step_id,
        Some(t.event_seq),
        Some(ocr.clone()),
    );
    state.store.insert_photo(&record, &[]).await?;
    let serial = reading_mass(reading).map_err(anyhow::Error::msg)?;
    let Some((display, resolution)) = crate::ocr::displayed(&ocr, serial.unit()) else {
        tracing::info!(device = %reading.device, seq = reading.seq, outcome = ?ocr.outcome,
            raw = %ocr.raw_text, "display not read confidently as a weight; no cross-check");
        return Ok(());
    };
    let command = BatchCommand::CrossCheckDisplay {
        step_id: t.step_id.clone(),
        serial,
        display,
        resolution,
    };
    for _ in 0..3 {
        let mut plan = batches::plan(state, &t.actor, None, t.batch_id, None, command.clone())
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
        if plan.recorded.is_empty() {
            return Ok(());
        }
        plan.audits.push(audit(
            &t.actor.username,
            "ocr_mismatch",
            format!("batch:{}", t.batch_id),
            json!({
                "device_id": reading.device.as_str(), "seq": reading.seq, "step_id": t.step_id,
                "serial": serial.to_string(), "display": display.to_string(),
                "photo_id": record.id, "confidence": ocr.confidence,
            }),
            None,
        ));
        match state
            .store
            .append_batch_events(&plan.record, plan.base, &plan.recorded, &plan.audits)
            .await
        {
            Ok(()) => {
                batches::announce(state, &plan).await;
                tracing::warn!(device = %reading.device, seq = reading.seq, serial = %serial,
                    display = %ocr.raw_text, "OCR mismatch flagged");
                return Ok(());
            }
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    anyhow::bail!("the batch kept changing; the cross-check was given up")
}
