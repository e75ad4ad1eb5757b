//! Binding a signed reading to the mass-check step waiting for it.
//!
//! An operator arms the current mass-check step for the station's scale (opening the step at
//! the kiosk, or pressing Capture, which also sends the device a capture command). The next
//! stable signed reading of that device binds: a reading that answers the capture command
//! (it carries the command's `request_id`, signed) always does; another stable reading (Print
//! key, continuous mode) does when the device measured it after the step was armed, the
//! device's clock corrected by its known skew. A reading measured earlier, e.g. a backlog
//! drained after an outage, never binds by accident.
//!
//! Binding runs the tolerance check through the domain (`RecordMassCheck` with the device as
//! the source, acting as the operator who armed the step) and stores the events, the binding
//! and the removal of the arm in one transaction. A reading from a scale whose calibration
//! has lapsed cannot complete a mass check: the refusal is audited and the kiosk is told why.
//! An operator can also attach an unbound reading by hand, with a reason ([`attach`]).

use metcon_shared::batch::{BatchCommand, MassSource};
use metcon_shared::calibration;
use metcon_shared::mass::Mass;
use metcon_shared::reading::{Measurement, Reading};
use metcon_shared::role::Actor;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::http::batches::{self, Plan};
use crate::http::error::ApiError;
use crate::http::session::audit;
use crate::http::AppState;
use crate::live::{ArmState, LiveEvent};
use crate::store::devices::{Arm, BindingKind, ReadingBinding};
use crate::store::{NewAudit, StoreError};

/// How far before the arm a device clock may read and still count as "after" (clock jitter).
const CLOCK_TOLERANCE: time::Duration = time::Duration::seconds(2);

/// The mass a stable reading shows, or why it cannot decide a mass check.
pub fn reading_mass(r: &Reading) -> Result<Mass, String> {
    match &r.measurement {
        Measurement::Weight {
            net,
            unit,
            stable: true,
            ..
        } => Mass::new(*net, *unit).map_err(|_| {
            format!("the scale shows a negative net weight ({net} {unit}); tare or zero it and weigh again")
        }),
        Measurement::Weight { .. } => Err("the reading is not stable".into()),
        Measurement::Overload => Err("the scale is overloaded".into()),
        Measurement::Underload => Err("the scale is under its zero range".into()),
    }
}

/// Whether `r` is the reading the arm waits for.
pub fn answers(arm: &Arm, r: &Reading, skew: Option<time::Duration>) -> bool {
    if let Some(req) = &r.capture_request {
        return *req == arm.request_id;
    }
    r.device_time + skew.unwrap_or(time::Duration::ZERO) >= arm.armed_at - CLOCK_TOLERANCE
}

/// Why binding did not happen.
#[derive(Debug)]
pub enum BindError {
    /// The reading or the scale cannot decide (shown to the operator, audited).
    Refused(String),
    /// The domain refused the command (e.g. the step is no longer current).
    Api(ApiError),
    Store(StoreError),
}

impl From<StoreError> for BindError {
    fn from(e: StoreError) -> Self {
        BindError::Store(e)
    }
}

/// Checks the scale's calibration for a reading taken now.
async fn check_scale(state: &AppState, device: &str, r: &Reading) -> Result<(), BindError> {
    let records = state.store.calibrations(device).await?;
    calibration::fitness(
        &records,
        OffsetDateTime::now_utc(),
        r.scale_serial.as_deref(),
    )
    .map_err(|u| BindError::Refused(format!("scale {device} may not be used: {u}")))
}

/// Decides and stores the mass check for `reading` on `(batch, step)`, retrying a lost
/// optimistic-concurrency race a few times.
#[allow(clippy::too_many_arguments)]
pub async fn bind(
    state: &AppState,
    actor: &Actor,
    ip: Option<String>,
    reading: &Reading,
    batch_id: Uuid,
    step_id: &str,
    kind: BindingKind,
    note: Option<String>,
    extra_audit: Vec<NewAudit>,
) -> Result<Plan, BindError> {
    let mass = reading_mass(reading).map_err(BindError::Refused)?;
    check_scale(state, reading.device.as_str(), reading).await?;
    let mut last = None;
    for _ in 0..3 {
        let mut plan = batches::plan(
            state,
            actor,
            ip.clone(),
            batch_id,
            None,
            BatchCommand::RecordMassCheck {
                step_id: step_id.to_string(),
                actual: mass,
                source: MassSource::Device {
                    device_id: reading.device.to_string(),
                    sequence: reading.seq,
                },
                note: note.clone(),
            },
        )
        .await
        .map_err(BindError::Api)?;
        let event_seq = plan.recorded.first().map_or(plan.base + 1, |e| e.seq);
        let binding = ReadingBinding {
            batch_id,
            step_id: step_id.to_string(),
            event_seq,
            kind,
            by: actor.username.clone(),
            at: OffsetDateTime::now_utc(),
        };
        plan.audits.extend(extra_audit.iter().cloned());
        match state
            .store
            .bind_reading(
                reading.device.as_str(),
                reading.seq,
                &binding,
                &plan.record,
                plan.base,
                &plan.recorded,
                &plan.audits,
            )
            .await
        {
            Ok(()) => {
                batches::announce(state, &plan).await;
                super::cross_check::spawn(
                    state,
                    reading,
                    super::cross_check::Target {
                        actor: actor.clone(),
                        batch_id,
                        step_id: step_id.to_string(),
                        event_seq,
                    },
                );
                return Ok(plan);
            }
            Err(StoreError::Conflict) => {
                last = Some(StoreError::Conflict);
                // the batch moved or the reading was bound meanwhile: look again
                if state
                    .store
                    .reading(reading.device.as_str(), reading.seq)
                    .await?
                    .is_some_and(|r| r.binding.is_some())
                {
                    return Err(BindError::Refused("the reading is already bound".into()));
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(BindError::Store(last.unwrap_or(StoreError::Conflict)))
}

/// The binder: for each stored stable reading of an armed device, binds it if it answers.
pub async fn run(state: AppState, mut rx: tokio::sync::mpsc::Receiver<Reading>) {
    while let Some(r) = rx.recv().await {
        if let Err(e) = bind_armed(&state, &r).await {
            tracing::error!(device = %r.device, seq = r.seq, error = %e, "binding failed");
        }
    }
}

async fn bind_armed(state: &AppState, r: &Reading) -> Result<(), StoreError> {
    let device = r.device.as_str();
    let Some(arm) = state.store.arm_for_device(device).await? else {
        return Ok(());
    };
    if !answers(&arm, r, state.hub.clock_skew(device)) {
        return Ok(());
    }
    let event = |s: ArmState, reason: Option<String>| LiveEvent::Arm {
        station_id: arm.station_id.clone(),
        device_id: arm.device_id.clone(),
        batch_id: arm.batch_id,
        step_id: arm.step_id.clone(),
        state: s,
        reason,
    };
    let user = match state.store.user_by_id(&arm.armed_by).await? {
        Some(u) if u.active => u,
        _ => {
            state.store.disarm(device, arm.batch_id).await?;
            state.hub.publish_everywhere(event(
                ArmState::Disarmed,
                Some("the operator who armed the step is no longer active".into()),
            ));
            return Ok(());
        }
    };
    match bind(
        state,
        &user.actor(),
        None,
        r,
        arm.batch_id,
        &arm.step_id,
        BindingKind::Armed,
        None,
        Vec::new(),
    )
    .await
    {
        Ok(plan) => {
            tracing::info!(device, seq = r.seq, batch = %plan.record.state.batch_number, "reading bound");
            state.hub.publish_everywhere(event(ArmState::Bound, None));
            Ok(())
        }
        Err(BindError::Refused(reason)) => {
            state
                .store
                .append_audit(&audit(
                    &user.username,
                    "mass_check_refused",
                    format!("batch:{}", arm.batch_id),
                    json!({ "device_id": device, "seq": r.seq, "step_id": arm.step_id, "reason": reason }),
                    None,
                ))
                .await?;
            state.store.disarm(device, arm.batch_id).await?;
            state
                .hub
                .publish_everywhere(event(ArmState::Refused, Some(reason)));
            Ok(())
        }
        Err(BindError::Api(e)) => {
            // the step is no longer waiting (done by hand, overridden, blocked…)
            state.store.disarm(device, arm.batch_id).await?;
            state
                .hub
                .publish_everywhere(event(ArmState::Disarmed, Some(e.detail.clone())));
            Ok(())
        }
        Err(BindError::Store(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metcon_shared::mass::MassUnit;
    use metcon_shared::reading::FORMAT_VERSION;
    use metcon_shared::topic::DeviceId;
    use rust_decimal::Decimal;
    use time::macros::datetime;

    fn reading(net: &str, stable: bool, at: OffsetDateTime, req: Option<&str>) -> Reading {
        Reading {
            v: FORMAT_VERSION,
            device: DeviceId::parse("scale-01").expect("id"),
            seq: 1,
            measurement: Measurement::Weight {
                net: Decimal::from_str_exact(net).expect("decimal"),
                gross: None,
                tare: None,
                unit: MassUnit::G,
                stable,
            },
            scale_serial: None,
            raw_line: String::new(),
            device_time: at,
            frame_sha256: None,
            capture_request: req.map(str::to_string),
        }
    }

    fn arm() -> Arm {
        Arm {
            device_id: "scale-01".into(),
            batch_id: Uuid::nil(),
            step_id: "weigh".into(),
            station_id: "receiving".into(),
            armed_by: "u1".into(),
            request_id: "req-1".into(),
            armed_at: datetime!(2026-06-01 10:00:00 UTC),
        }
    }

    #[test]
    fn the_answer_to_a_capture_binds_and_older_readings_do_not() {
        let a = arm();
        let before = datetime!(2026-06-01 09:59:00 UTC);
        let after = datetime!(2026-06-01 10:00:05 UTC);
        assert!(answers(
            &a,
            &reading("1", true, before, Some("req-1")),
            None
        ));
        assert!(!answers(
            &a,
            &reading("1", true, after, Some("req-0")),
            None
        ));
        assert!(answers(&a, &reading("1", true, after, None), None));
        assert!(!answers(&a, &reading("1", true, before, None), None));
        // a device clock 2 minutes slow: its "09:59" is our 10:01
        assert!(answers(
            &a,
            &reading("1", true, before, None),
            Some(time::Duration::minutes(2))
        ));
    }

    #[test]
    fn only_a_stable_non_negative_weight_decides() {
        let at = datetime!(2026-06-01 10:00 UTC);
        assert!(reading_mass(&reading("148.30", true, at, None)).is_ok());
        assert!(reading_mass(&reading("148.30", false, at, None)).is_err());
        assert!(reading_mass(&reading("-0.02", true, at, None))
            .expect_err("negative")
            .contains("negative"));
    }
}
