//! Weighing at a station's scale: arm the current mass-check step for the scale's next stable
//! signed reading, press Capture (arm and send the device a capture command), disarm, or
//! attach an unbound reading by hand with a reason. See `ingest::binding` for how a reading
//! binds.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use metcon_shared::batch::BatchStatus;
use metcon_shared::calibration;
use metcon_shared::flow::StepKind;
use metcon_shared::role::Permission;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::batches::{waiting_step, BatchView};
use super::error::{ApiError, ApiResult};
use super::extract::{Body, Caller, PathParams};
use super::session::audit;
use super::AppState;
use crate::ingest::binding::{self, BindError};
use crate::live::{ArmState, LiveEvent};
use crate::store::devices::{Arm, BindingKind, Device, DeviceState};

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArmRequest {
    /// Which scale, when the station has more than one.
    pub device_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ArmView {
    pub device_id: String,
    pub station_id: String,
    pub batch_id: Uuid,
    pub step_id: String,
    pub request_id: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub armed_at: OffsetDateTime,
    /// Whether a capture command was sent to the device.
    pub capture_sent: bool,
}

fn arm_view(a: Arm, capture_sent: bool) -> ArmView {
    ArmView {
        device_id: a.device_id,
        station_id: a.station_id,
        batch_id: a.batch_id,
        step_id: a.step_id,
        request_id: a.request_id,
        armed_at: a.armed_at,
        capture_sent,
    }
}

/// The station of the step the batch waits at, if it is `step_id` and a mass check.
async fn waiting_mass_check(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    step_id: &str,
) -> ApiResult<String> {
    let (station, kind) = waiting_step(state, caller, id, step_id, "a weight").await?;
    if !matches!(kind, StepKind::MassCheck { .. }) {
        return Err(ApiError::unprocessable(format!(
            "step {step_id} is not a mass check"
        )));
    }
    Ok(station)
}

/// The station's enrolled scale (or the one asked for).
async fn station_scale(state: &AppState, station: &str, wanted: Option<&str>) -> ApiResult<Device> {
    let devices: Vec<Device> = state
        .store
        .list_devices()
        .await?
        .into_iter()
        .filter(|d| d.station_id == station && d.state == DeviceState::Active)
        .collect();
    match (wanted, devices.len()) {
        (Some(w), _) => devices.into_iter().find(|d| d.id.as_str() == w).ok_or_else(|| {
            ApiError::unprocessable(format!("device {w} is not an enrolled scale at station {station}"))
        }),
        (None, 1) => devices.into_iter().next().ok_or_else(|| ApiError::internal("scale vanished")),
        (None, 0) => Err(ApiError::conflict(format!(
            "station {station} has no enrolled scale; enter the weight by hand or ask an admin to enroll one"
        ))),
        (None, n) => Err(ApiError::unprocessable(format!(
            "station {station} has {n} scales; say which with device_id"
        ))),
    }
}

async fn do_arm(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    step_id: &str,
    device: Option<&str>,
) -> ApiResult<Arm> {
    let station = waiting_mass_check(state, caller, id, step_id).await?;
    let scale = station_scale(state, &station, device).await?;
    // a scale out of calibration cannot decide: say so now, not after the weighing
    let records = state.store.calibrations(scale.id.as_str()).await?;
    if let Err(unfit) = calibration::fitness(&records, OffsetDateTime::now_utc(), None) {
        let reason = format!("scale {} may not be used: {unfit}", scale.id);
        state
            .store
            .append_audit(&audit(
                &caller.user.username,
                "mass_check_refused",
                format!("batch:{id}"),
                json!({ "device_id": scale.id.as_str(), "step_id": step_id, "reason": reason }),
                caller.ip.clone(),
            ))
            .await?;
        return Err(ApiError::conflict(reason));
    }
    if let Some(existing) = state.store.arm_for_device(scale.id.as_str()).await? {
        if existing.batch_id == id && existing.step_id == step_id {
            return Ok(existing);
        }
        if let Some(other) = state.store.batch(existing.batch_id).await? {
            if other.current_step.as_deref() == Some(existing.step_id.as_str())
                && other.state.status == BatchStatus::InProgress
            {
                return Err(ApiError::conflict(format!(
                    "the scale at station {station} is waiting for batch {}; finish or disarm it first",
                    other.state.batch_number
                )));
            }
        }
    }
    let arm = Arm {
        device_id: scale.id.to_string(),
        batch_id: id,
        step_id: step_id.to_string(),
        station_id: station,
        armed_by: caller.user.id.clone(),
        request_id: format!("arm-{}", Uuid::new_v4().simple()),
        armed_at: OffsetDateTime::now_utc(),
    };
    state.store.arm(&arm, &[]).await?;
    state.hub.publish_everywhere(LiveEvent::Arm {
        station_id: arm.station_id.clone(),
        device_id: arm.device_id.clone(),
        batch_id: id,
        step_id: arm.step_id.clone(),
        state: ArmState::Armed,
        reason: None,
    });
    Ok(arm)
}

/// Arm the current mass-check step for the station scale's next stable signed reading.
#[utoipa::path(post, path = "/api/batches/{id}/steps/{step_id}/arm", tag = "weighing", request_body = ArmRequest, responses((status = 200, body = ArmView)))]
pub async fn arm(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((id, step_id)): PathParams<(Uuid, String)>,
    body: Option<Body<ArmRequest>>,
) -> ApiResult<Json<ArmView>> {
    caller.require(Permission::ExecuteSteps)?;
    let req = body.map(|Body(b)| b).unwrap_or_default();
    let a = do_arm(&state, &caller, id, &step_id, req.device_id.as_deref()).await?;
    Ok(Json(arm_view(a, false)))
}

/// Capture: arm the step and ask the scale's device for its next stable reading now.
#[utoipa::path(post, path = "/api/batches/{id}/steps/{step_id}/capture", tag = "weighing", request_body = ArmRequest, responses((status = 202, body = ArmView)))]
pub async fn capture(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((id, step_id)): PathParams<(Uuid, String)>,
    body: Option<Body<ArmRequest>>,
) -> ApiResult<(StatusCode, Json<ArmView>)> {
    caller.require(Permission::ExecuteSteps)?;
    let req = body.map(|Body(b)| b).unwrap_or_default();
    let a = do_arm(&state, &caller, id, &step_id, req.device_id.as_deref()).await?;
    let device = metcon_shared::topic::DeviceId::parse(&a.device_id).map_err(ApiError::internal)?;
    super::devices::capture(&state, &device, &a.request_id).await?;
    Ok((StatusCode::ACCEPTED, Json(arm_view(a, true))))
}

/// Stop waiting for a reading on this step.
#[utoipa::path(delete, path = "/api/batches/{id}/steps/{step_id}/arm", tag = "weighing", responses((status = 204)))]
pub async fn disarm(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((id, step_id)): PathParams<(Uuid, String)>,
) -> ApiResult<StatusCode> {
    caller.require(Permission::ExecuteSteps)?;
    for a in state.store.arms_for_batch(id).await? {
        if a.step_id != step_id {
            continue;
        }
        if !caller.actor().may_operate_at(&a.station_id) {
            return Err(ApiError::forbidden(format!(
                "you are not assigned to station {}",
                a.station_id
            )));
        }
        state.store.disarm(&a.device_id, id).await?;
        state.hub.publish_everywhere(LiveEvent::Arm {
            station_id: a.station_id,
            device_id: a.device_id,
            batch_id: id,
            step_id: a.step_id,
            state: ArmState::Disarmed,
            reason: Some(format!("disarmed by {}", caller.user.username)),
        });
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachRequest {
    pub device_id: String,
    pub seq: u64,
    /// Why this reading belongs to this step; shown to auditors.
    pub reason: String,
    pub expected_version: Option<u64>,
}

/// Attach an unbound signed reading of the station's scale to the current mass-check step.
#[utoipa::path(post, path = "/api/batches/{id}/steps/{step_id}/attach-reading", tag = "weighing", request_body = AttachRequest, responses((status = 200, body = BatchView)))]
pub async fn attach(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((id, step_id)): PathParams<(Uuid, String)>,
    Body(req): Body<AttachRequest>,
) -> ApiResult<Json<BatchView>> {
    caller.require(Permission::ExecuteSteps)?;
    let reason = req.reason.trim().to_string();
    if reason.is_empty() {
        return Err(ApiError::unprocessable(
            "a reason is required to attach a reading",
        ));
    }
    let station = waiting_mass_check(&state, &caller, id, &step_id).await?;
    if let Some(v) = req.expected_version {
        let current = state.store.batch(id).await?.map(|b| b.state.version);
        if current != Some(v) {
            return Err(ApiError::conflict(
                "the batch changed since you loaded it; reload and try again",
            ));
        }
    }
    let device =
        state.store.device(&req.device_id).await?.ok_or_else(|| {
            ApiError::not_found(format!("device {} does not exist", req.device_id))
        })?;
    if device.station_id != station {
        return Err(ApiError::unprocessable(format!(
            "device {} weighs at station {}, not at {station}",
            device.id, device.station_id
        )));
    }
    let stored = state
        .store
        .reading(&req.device_id, req.seq)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "device {} has no reading {}",
                req.device_id, req.seq
            ))
        })?;
    if stored.binding.is_some() {
        return Err(ApiError::conflict(
            "that reading is already bound to a step",
        ));
    }
    let extra = vec![audit(
        &caller.user.username,
        "reading_attached",
        format!("batch:{id}"),
        json!({ "device_id": req.device_id, "seq": req.seq, "step_id": step_id, "reason": reason }),
        caller.ip.clone(),
    )];
    let plan = binding::bind(
        &state,
        &caller.actor(),
        caller.ip.clone(),
        &stored.reading,
        id,
        &step_id,
        BindingKind::Attached,
        Some(reason.clone()),
        extra,
    )
    .await;
    match plan {
        Ok(p) => {
            let events = p.recorded.clone();
            Ok(Json(super::batches::view_of(p.record, &p.flow, events)))
        }
        Err(BindError::Refused(why)) => {
            state
                .store
                .append_audit(&audit(
                    &caller.user.username,
                    "mass_check_refused",
                    format!("batch:{id}"),
                    json!({ "device_id": req.device_id, "seq": req.seq, "step_id": step_id, "reason": why }),
                    caller.ip.clone(),
                ))
                .await?;
            Err(ApiError::conflict(why))
        }
        Err(BindError::Api(e)) => Err(e),
        Err(BindError::Store(e)) => Err(super::batches::conflict_message(e)),
    }
}
