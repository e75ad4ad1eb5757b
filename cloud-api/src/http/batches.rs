//! Batches: create, list, read, and every command of the batch aggregate.
//!
//! Each command follows the same path ([`execute`]): load the batch and its pinned flow
//! version, let the domain decide, fold the new events, and append them conditionally on the
//! version that was read. Two kiosks completing the same step therefore cannot both win: the
//! second append finds a newer version and gets 409.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use metcon_shared::batch::{
    BatchCommand, BatchEvent, BatchState, BatchStatus, EventActor, MassSource, Priority,
    RecordedEvent, StepPayload,
};
use metcon_shared::batch_number::BatchNumber;
use metcon_shared::flow::{Flow, FlowStatus, Step, StepKind};
use metcon_shared::mass::Mass;
use metcon_shared::role::{Actor, Permission, Role};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::error::{ApiError, ApiResult};
use super::extract::{Body, Caller, PathParams, QueryParams};
use super::session::audit;
use super::AppState;
use crate::auth::password;
use crate::store::{BatchFilter, BatchRecord, NewAudit, Page, WipCell};

/// The step waiting to be done, with its definition (expected mass, tolerance, items…).
#[derive(Debug, Serialize, ToSchema)]
pub struct CurrentStep {
    pub station_id: String,
    pub station_name: String,
    pub index: usize,
    #[schema(value_type = Object)]
    pub step: Step,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchView {
    #[schema(value_type = Object)]
    pub batch: BatchState,
    pub current_station: Option<String>,
    pub current_step: Option<CurrentStep>,
    /// The whole event stream on GET; only the new events after a command.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<RecordedEvent>,
}

fn view(record: BatchRecord, flow: &Flow, events: Vec<RecordedEvent>) -> BatchView {
    let current_step = flow
        .content
        .step_at(record.state.cursor)
        .map(|(station, step)| CurrentStep {
            station_id: station.station_id.clone(),
            station_name: station.name.clone(),
            index: record.state.cursor,
            step: step.clone(),
        });
    BatchView {
        batch: record.state,
        current_station: record.current_station,
        current_step,
        events,
    }
}

/// The view of a batch after a command (for handlers outside this module).
pub fn view_of(record: BatchRecord, flow: &Flow, events: Vec<RecordedEvent>) -> BatchView {
    view(record, flow, events)
}

/// A pinned flow version. Active and archived versions never change, so they are cached.
pub async fn pinned_flow(state: &AppState, flow_id: &str, version: u32) -> ApiResult<Arc<Flow>> {
    let key = (flow_id.to_string(), version);
    if let Some(f) = state
        .flow_cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key)
    {
        return Ok(f.clone());
    }
    let flow = state.store.flow(flow_id, version).await?.ok_or_else(|| {
        ApiError::internal(format!("pinned flow {flow_id} v{version} is missing"))
    })?;
    let flow = Arc::new(flow);
    if flow.status != FlowStatus::Draft {
        state
            .flow_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, flow.clone());
    }
    Ok(flow)
}

pub(crate) async fn load(state: &AppState, id: Uuid) -> ApiResult<(BatchRecord, Arc<Flow>)> {
    let record = state
        .store
        .batch(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("batch {id} does not exist")))?;
    let flow = pinned_flow(state, &record.state.flow_id, record.state.flow_version).await?;
    Ok((record, flow))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBatch {
    /// The flow to run; its active version is pinned.
    pub flow_id: String,
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "normal")]
    pub priority: Priority,
}

/// Create a batch on the active version of a flow; it gets the next `B-YYYY-NNNN` number of
/// the flow's pipeline.
#[utoipa::path(post, path = "/api/batches", tag = "batches", request_body = CreateBatch, responses((status = 201, body = BatchView)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<CreateBatch>,
) -> ApiResult<(StatusCode, Json<BatchView>)> {
    caller.require(Permission::CreateBatches)?;
    let flow = state
        .store
        .active_flow(&req.flow_id)
        .await?
        .ok_or_else(|| {
            ApiError::unprocessable(format!(
                "flow {} has no active version to start a batch on",
                req.flow_id
            ))
        })?;
    let actor = caller.actor();
    if let Some(first) = flow.content.stations.first() {
        if !actor.may_operate_at(&first.station_id) {
            return Err(ApiError::forbidden(format!(
                "batches start at station {}, which is not one of yours",
                first.station_id
            )));
        }
    }
    let now = OffsetDateTime::now_utc();
    let id = Uuid::new_v4();
    // Check before allocating a number, so refused requests leave no gap.
    BatchState::create(id, String::new(), &flow, req.priority, &actor, now)?;
    let seq = state
        .store
        .next_batch_seq(&flow.content.pipeline, now.year())
        .await?;
    let number = BatchNumber::new(now.year(), seq).to_string();
    let created = BatchState::create(id, number, &flow, req.priority, &actor, now)?;
    let rec = RecordedEvent {
        event_id: Uuid::new_v4(),
        seq: 1,
        at: now,
        actor: EventActor::from(&actor),
        event: created,
    };
    let batch_state = BatchState::from_created(&rec).map_err(ApiError::internal)?;
    let record = BatchRecord::new(batch_state, &flow.content);
    state.store.insert_batch(&record, &rec).await?;
    metrics::counter!("metcon_batch_events_appended_total").increment(1);
    state.hub.publish_everywhere(crate::live::LiveEvent::Batch {
        station_id: record.current_station.clone(),
        from_station: None,
        batch_id: id,
        batch_number: record.state.batch_number.clone(),
        status: record.state.status.as_str().to_string(),
        version: record.state.version,
    });
    Ok((StatusCode::CREATED, Json(view(record, &flow, vec![rec]))))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// created | in_progress | flagged | blocked | completed
    pub status: Option<String>,
    pub station: Option<String>,
    pub pipeline: Option<String>,
    pub flow_id: Option<String>,
    /// 1-based; 50 per page.
    pub page: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchSummary {
    pub id: Uuid,
    pub batch_number: String,
    pub pipeline: String,
    pub flow_id: String,
    pub flow_version: u32,
    pub status: String,
    pub priority: String,
    pub current_station: Option<String>,
    pub current_step: Option<String>,
    pub version: u64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl From<&BatchRecord> for BatchSummary {
    fn from(r: &BatchRecord) -> Self {
        let s = &r.state;
        BatchSummary {
            id: s.batch_id,
            batch_number: s.batch_number.clone(),
            pipeline: s.pipeline.clone(),
            flow_id: s.flow_id.clone(),
            flow_version: s.flow_version,
            status: s.status.as_str().to_string(),
            priority: match s.priority {
                Priority::Normal => "normal".into(),
                Priority::High => "high".into(),
            },
            current_station: r.current_station.clone(),
            current_step: r.current_step.clone(),
            version: s.version,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// List batches, 50 per page. Operators see the batches waiting at their stations.
#[utoipa::path(get, path = "/api/batches", tag = "batches", params(ListQuery), responses((status = 200, body = Object)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Json<Page<BatchSummary>>> {
    caller.require(Permission::ViewBatches)?;
    let status = q
        .status
        .as_deref()
        .map(str::parse::<BatchStatus>)
        .transpose()
        .map_err(ApiError::bad_request)?;
    let filter = BatchFilter {
        status,
        station: q.station,
        pipeline: q.pipeline,
        flow_id: q.flow_id,
        stations_in: (caller.user.role == Role::Operator).then(|| caller.user.stations.clone()),
        page: q.page.unwrap_or(1).max(1),
    };
    let page = state.store.list_batches(&filter).await?;
    Ok(Json(Page {
        items: page.items.iter().map(BatchSummary::from).collect(),
        page: page.page,
        per_page: page.per_page,
        total: page.total,
    }))
}

/// A batch with its current step and its whole event stream.
#[utoipa::path(get, path = "/api/batches/{id}", tag = "batches", responses((status = 200, body = BatchView)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<Uuid>,
) -> ApiResult<Json<BatchView>> {
    caller.require(Permission::ViewBatches)?;
    let (record, flow) = load(&state, id).await?;
    require_visible(&caller.actor(), &flow)?;
    let events = state.store.batch_events(id).await?;
    Ok(Json(view(record, &flow, events)))
}

/// Refuses `actor` a batch on `flow` they may not look at (operators: a pipeline through
/// none of their stations). The one rule for a batch's page, events and photos.
pub fn require_visible(actor: &Actor, flow: &Flow) -> ApiResult<()> {
    let stations = flow.content.stations.iter().map(|s| s.station_id.as_str());
    if actor.may_view_batch_through(stations) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "this batch's flow passes through none of your stations",
        ))
    }
}

/// A command decided by the domain and folded, ready to be stored.
#[derive(Debug)]
pub struct Plan {
    pub flow: Arc<Flow>,
    /// Where the batch was before the command.
    pub from_station: Option<String>,
    /// The version the events are appended on (optimistic concurrency).
    pub base: u64,
    /// The state after the events.
    pub record: BatchRecord,
    pub recorded: Vec<RecordedEvent>,
    pub audits: Vec<NewAudit>,
}

/// Loads the batch and its pinned flow, lets the domain decide `command` for `actor`, and
/// folds the events. Nothing is stored.
pub async fn plan(
    state: &AppState,
    actor: &Actor,
    ip: Option<String>,
    id: Uuid,
    expected_version: Option<u64>,
    command: BatchCommand,
) -> ApiResult<Plan> {
    let (record, flow) = load(state, id).await?;
    if let Some(v) = expected_version {
        if v != record.state.version {
            return Err(ApiError::conflict(format!(
                "the batch changed since you loaded it (version {v}, now {}); reload and try again",
                record.state.version
            )));
        }
    }
    let events = record.state.decide(&flow.content, actor, &command)?;
    let now = OffsetDateTime::now_utc();
    let base = record.state.version;
    let recorded: Vec<RecordedEvent> = events
        .into_iter()
        .enumerate()
        .map(|(i, event)| RecordedEvent {
            event_id: Uuid::new_v4(),
            seq: base + 1 + i as u64,
            at: now,
            actor: EventActor::from(actor),
            event,
        })
        .collect();
    let mut next = record.state.clone();
    for r in &recorded {
        next.apply(r).map_err(ApiError::internal)?;
    }
    let audits: Vec<NewAudit> = recorded
        .iter()
        .filter_map(|r| audit_for(&actor.username, ip.clone(), &next.batch_number, &r.event))
        .collect();
    let new_record = BatchRecord::new(next, &flow.content);
    Ok(Plan {
        flow,
        from_station: record.current_station,
        base,
        record: new_record,
        recorded,
        audits,
    })
}

/// Tells every kiosk that the batch changed, and drops arms the batch has moved past.
pub async fn announce(state: &AppState, plan: &Plan) {
    metrics::counter!("metcon_batch_events_appended_total").increment(plan.recorded.len() as u64);
    let s = &plan.record.state;
    state.hub.publish_everywhere(crate::live::LiveEvent::Batch {
        station_id: plan.record.current_station.clone(),
        from_station: plan.from_station.clone(),
        batch_id: s.batch_id,
        batch_number: s.batch_number.clone(),
        status: s.status.as_str().to_string(),
        version: s.version,
    });
    if let Ok(arms) = state.store.arms_for_batch(s.batch_id).await {
        for arm in arms {
            if plan.record.current_step.as_deref() != Some(arm.step_id.as_str())
                || s.status != BatchStatus::InProgress
            {
                let _ = state.store.disarm(&arm.device_id, s.batch_id).await;
                state.hub.publish(crate::live::LiveEvent::Arm {
                    station_id: arm.station_id,
                    device_id: arm.device_id,
                    batch_id: s.batch_id,
                    step_id: arm.step_id,
                    state: crate::live::ArmState::Disarmed,
                    reason: Some("the step is no longer waiting for a weight".into()),
                });
            }
        }
    }
}

/// Runs one command against a batch; see the module docs.
pub(crate) async fn execute(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    expected_version: Option<u64>,
    command: BatchCommand,
) -> ApiResult<Json<BatchView>> {
    let p = plan(
        state,
        &caller.actor(),
        caller.ip.clone(),
        id,
        expected_version,
        command,
    )
    .await?;
    state
        .store
        .append_batch_events(&p.record, p.base, &p.recorded, &p.audits)
        .await
        .map_err(conflict_message)?;
    announce(state, &p).await;
    Ok(Json(view(p.record, &p.flow, p.recorded)))
}

/// The station and kind of the step batch `id` waits at, checked for `caller`: the batch
/// is in progress, `step_id` is its current step, and the caller may work at its station.
/// `waiting_for` completes "it does not wait for …" when the batch is not in progress.
pub async fn waiting_step(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    step_id: &str,
    waiting_for: &str,
) -> ApiResult<(String, StepKind)> {
    let record = state
        .store
        .batch(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("batch {id} does not exist")))?;
    if record.state.status != BatchStatus::InProgress {
        return Err(ApiError::conflict(format!(
            "the batch is {}; it does not wait for {waiting_for}",
            record.state.status.as_str()
        )));
    }
    let flow = pinned_flow(state, &record.state.flow_id, record.state.flow_version).await?;
    let (station, step) = flow
        .content
        .step_at(record.state.cursor)
        .ok_or_else(|| ApiError::conflict("all steps are done"))?;
    if step.step_id != step_id {
        return Err(ApiError::conflict(format!(
            "step {step_id} is not the current step; the current step is {}",
            step.step_id
        )));
    }
    if !caller.actor().may_operate_at(&station.station_id) {
        return Err(ApiError::forbidden(format!(
            "you are not assigned to station {}",
            station.station_id
        )));
    }
    Ok((station.station_id.clone(), step.kind.clone()))
}

/// A lost optimistic-concurrency race, in words for the kiosk.
pub fn conflict_message(e: crate::store::StoreError) -> ApiError {
    match e {
        crate::store::StoreError::Conflict => ApiError::conflict(
            "someone else changed this batch at the same moment; reload and try again",
        ),
        other => other.into(),
    }
}

/// The audit record of a sensitive batch event, if it is one.
fn audit_for(username: &str, ip: Option<String>, number: &str, e: &BatchEvent) -> Option<NewAudit> {
    let (action, details) = match e {
        BatchEvent::FlagRaised {
            flag_id,
            kind,
            step_id,
            reason,
            ..
        } => (
            "flag_raised",
            json!({ "flag_id": flag_id, "kind": kind, "step_id": step_id, "reason": reason }),
        ),
        BatchEvent::FlagApproved { flag_id, reason } => (
            "flag_approved",
            json!({ "flag_id": flag_id, "reason": reason }),
        ),
        BatchEvent::FlagRejected { flag_id, reason } => (
            "flag_rejected",
            json!({ "flag_id": flag_id, "reason": reason }),
        ),
        BatchEvent::Overridden {
            from_index,
            to_index,
            to_step_id,
            reason,
        } => (
            "step_overridden",
            json!({ "from_index": from_index, "to_index": to_index, "to_step_id": to_step_id, "reason": reason }),
        ),
        BatchEvent::Blocked { reason } => ("batch_blocked", json!({ "reason": reason })),
        BatchEvent::Unblocked { reason } => ("batch_unblocked", json!({ "reason": reason })),
        BatchEvent::StepCompleted {
            step_id,
            payload: Some(StepPayload::Signature { meaning }),
            ..
        } => (
            "step_signed",
            json!({ "step_id": step_id, "meaning": meaning }),
        ),
        _ => return None,
    };
    Some(audit(
        username,
        action,
        format!("batch:{number}"),
        details,
        ip,
    ))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionOnly {
    /// The batch version the client saw; a different current version gives 409.
    pub expected_version: Option<u64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteStep {
    #[schema(value_type = Object)]
    pub payload: StepPayload,
    pub expected_version: Option<u64>,
    /// Signature steps: the signer's password, to re-authenticate.
    pub password: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MassCheckRequest {
    /// e.g. `{"value": "148.30", "unit": "g"}`
    #[schema(value_type = Object)]
    pub actual: Mass,
    pub note: Option<String>,
    pub expected_version: Option<u64>,
    /// The uploaded photo whose display could not be read, when the weight is typed in for
    /// it; such an entry is always flagged for a supervisor's approval.
    pub photo_id: Option<Uuid>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    pub reason: String,
    pub expected_version: Option<u64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverrideRequest {
    pub to_step_id: String,
    pub reason: String,
    pub expected_version: Option<u64>,
}

fn version_of(body: Option<Body<VersionOnly>>) -> Option<u64> {
    body.and_then(|Body(b)| b.expected_version)
}

#[utoipa::path(post, path = "/api/batches/{id}/start", tag = "batches", request_body = VersionOnly, responses((status = 200, body = BatchView)))]
pub async fn start(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<Uuid>,
    body: Option<Body<VersionOnly>>,
) -> ApiResult<Json<BatchView>> {
    caller.require(Permission::ExecuteSteps)?;
    execute(&state, &caller, id, version_of(body), BatchCommand::Start).await
}

/// Complete an instruction, checklist, signature or photo step.
#[utoipa::path(post, path = "/api/batches/{id}/steps/{step_id}/complete", tag = "batches", request_body = CompleteStep, responses((status = 200, body = BatchView)))]
pub async fn complete_step(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((id, step_id)): PathParams<(Uuid, String)>,
    Body(req): Body<CompleteStep>,
) -> ApiResult<Json<BatchView>> {
    caller.require(Permission::ExecuteSteps)?;
    if matches!(req.payload, StepPayload::Signature { .. }) {
        // An electronic signature needs the signer to prove who they are again, now.
        let pw = req.password.clone().ok_or_else(|| {
            ApiError::unprocessable("a signature step needs your password to re-authenticate")
        })?;
        let phc = caller.user.password_hash.clone();
        let ok = tokio::task::spawn_blocking(move || password::verify(&pw, &phc))
            .await
            .map_err(ApiError::internal)?;
        if !ok {
            state
                .store
                .append_audit(&audit(
                    &caller.user.username,
                    "signature_failed",
                    format!("batch:{id}"),
                    json!({ "step_id": step_id }),
                    caller.ip.clone(),
                ))
                .await?;
            return Err(ApiError::forbidden(
                "re-authentication failed: the password is wrong",
            ));
        }
    }
    execute(
        &state,
        &caller,
        id,
        req.expected_version,
        BatchCommand::CompleteStep {
            step_id,
            payload: req.payload,
        },
    )
    .await
}

/// Record a manually entered mass for the current mass-check step. Within tolerance the
/// step completes; outside it the batch is flagged and waits for approval.
#[utoipa::path(post, path = "/api/batches/{id}/steps/{step_id}/mass-check", tag = "batches", request_body = MassCheckRequest, responses((status = 200, body = BatchView)))]
pub async fn mass_check(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((id, step_id)): PathParams<(Uuid, String)>,
    Body(req): Body<MassCheckRequest>,
) -> ApiResult<Json<BatchView>> {
    caller.require(Permission::ExecuteSteps)?;
    let photo = match req.photo_id {
        Some(p) => Some(super::photos::unreadable_photo(&state, id, &step_id, p).await?),
        None => None,
    };
    let source = match &photo {
        Some(p) => MassSource::ManualUnreadablePhoto {
            photo_sha256: p.sha256.clone(),
        },
        None => MassSource::Manual,
    };
    let view = execute(
        &state,
        &caller,
        id,
        req.expected_version,
        BatchCommand::RecordMassCheck {
            step_id,
            actual: req.actual,
            source,
            note: req.note,
        },
    )
    .await?;
    if let Some(p) = photo {
        let seq = view
            .events
            .iter()
            .find(|e| matches!(e.event, BatchEvent::MassChecked { .. }))
            .map(|e| e.seq);
        if let Some(seq) = seq {
            state.store.link_photo_event(p.id, seq).await?;
        }
    }
    Ok(view)
}

#[utoipa::path(post, path = "/api/batches/{id}/flags", tag = "batches", request_body = ReasonRequest, responses((status = 200, body = BatchView)))]
pub async fn raise_flag(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<Uuid>,
    Body(req): Body<ReasonRequest>,
) -> ApiResult<Json<BatchView>> {
    caller.require(Permission::RaiseFlag)?;
    execute(
        &state,
        &caller,
        id,
        req.expected_version,
        BatchCommand::RaiseFlag { reason: req.reason },
    )
    .await
}

#[utoipa::path(post, path = "/api/batches/{id}/flags/{flag_id}/approve", tag = "approvals", request_body = ReasonRequest, responses((status = 200, body = BatchView)))]
pub async fn approve_flag(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((id, flag_id)): PathParams<(Uuid, u64)>,
    Body(req): Body<ReasonRequest>,
) -> ApiResult<Json<BatchView>> {
    caller.require(Permission::ApproveFlags)?;
    execute(
        &state,
        &caller,
        id,
        req.expected_version,
        BatchCommand::ApproveFlag {
            flag_id,
            reason: req.reason,
        },
    )
    .await
}

#[utoipa::path(post, path = "/api/batches/{id}/flags/{flag_id}/reject", tag = "approvals", request_body = ReasonRequest, responses((status = 200, body = BatchView)))]
pub async fn reject_flag(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((id, flag_id)): PathParams<(Uuid, u64)>,
    Body(req): Body<ReasonRequest>,
) -> ApiResult<Json<BatchView>> {
    caller.require(Permission::ApproveFlags)?;
    execute(
        &state,
        &caller,
        id,
        req.expected_version,
        BatchCommand::RejectFlag {
            flag_id,
            reason: req.reason,
        },
    )
    .await
}

#[utoipa::path(post, path = "/api/batches/{id}/block", tag = "batches", request_body = ReasonRequest, responses((status = 200, body = BatchView)))]
pub async fn block(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<Uuid>,
    Body(req): Body<ReasonRequest>,
) -> ApiResult<Json<BatchView>> {
    caller.require(Permission::BlockBatch)?;
    execute(
        &state,
        &caller,
        id,
        req.expected_version,
        BatchCommand::Block { reason: req.reason },
    )
    .await
}

#[utoipa::path(post, path = "/api/batches/{id}/unblock", tag = "batches", request_body = ReasonRequest, responses((status = 200, body = BatchView)))]
pub async fn unblock(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<Uuid>,
    Body(req): Body<ReasonRequest>,
) -> ApiResult<Json<BatchView>> {
    caller.require(Permission::UnblockBatch)?;
    execute(
        &state,
        &caller,
        id,
        req.expected_version,
        BatchCommand::Unblock { reason: req.reason },
    )
    .await
}

/// Admin override: move the batch back to an earlier step, with a reason.
#[utoipa::path(post, path = "/api/batches/{id}/override", tag = "batches", request_body = OverrideRequest, responses((status = 200, body = BatchView)))]
pub async fn override_step(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<Uuid>,
    Body(req): Body<OverrideRequest>,
) -> ApiResult<Json<BatchView>> {
    caller.require(Permission::OverrideStep)?;
    execute(
        &state,
        &caller,
        id,
        req.expected_version,
        BatchCommand::Override {
            to_step_id: req.to_step_id,
            reason: req.reason,
        },
    )
    .await
}

#[utoipa::path(post, path = "/api/batches/{id}/complete", tag = "batches", request_body = VersionOnly, responses((status = 200, body = BatchView)))]
pub async fn complete(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<Uuid>,
    body: Option<Body<VersionOnly>>,
) -> ApiResult<Json<BatchView>> {
    caller.require(Permission::ExecuteSteps)?;
    execute(
        &state,
        &caller,
        id,
        version_of(body),
        BatchCommand::Complete,
    )
    .await
}

/// An open flag waiting for a decision, with its evidence.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalItem {
    pub batch_id: Uuid,
    pub batch_number: String,
    pub batch_version: u64,
    #[schema(value_type = Object)]
    pub flag: metcon_shared::batch::Flag,
    /// The mass check that raised an out-of-tolerance flag.
    #[schema(value_type = Option<Object>)]
    pub evidence: Option<RecordedEvent>,
}

/// The approval queue: open flags, oldest first.
#[utoipa::path(get, path = "/api/approvals", tag = "approvals", responses((status = 200, body = [ApprovalItem])))]
pub async fn approvals(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<ApprovalItem>>> {
    caller.require(Permission::ApproveFlags)?;
    let mut items = Vec::new();
    let mut page = 1;
    loop {
        let batches = state
            .store
            .list_batches(&BatchFilter {
                status: Some(BatchStatus::Flagged),
                page,
                ..BatchFilter::default()
            })
            .await?;
        for b in &batches.items {
            let events = state.store.batch_events(b.state.batch_id).await?;
            for flag in b.state.open_flags() {
                let evidence = events
                    .iter()
                    .take_while(|e| e.seq < flag.flag_id)
                    .filter(|e| matches!(&e.event, BatchEvent::MassChecked { step_index, .. } if *step_index == flag.step_index))
                    .last()
                    .cloned();
                items.push(ApprovalItem {
                    batch_id: b.state.batch_id,
                    batch_number: b.state.batch_number.clone(),
                    batch_version: b.state.version,
                    flag: flag.clone(),
                    evidence,
                });
            }
        }
        if (page as u64) * (batches.per_page as u64) >= batches.total {
            break;
        }
        page += 1;
    }
    items.sort_by_key(|i| i.flag.raised_at);
    Ok(Json(items))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WipBoard {
    #[schema(value_type = Vec<Object>)]
    pub cells: Vec<WipCell>,
    pub total: u64,
}

/// Work in progress: unfinished batches by current station and status.
#[utoipa::path(get, path = "/api/wip", tag = "batches", responses((status = 200, body = WipBoard)))]
pub async fn wip(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<WipBoard>> {
    caller.require(Permission::ViewWip)?;
    let cells = state.store.wip_board().await?;
    let total = cells.iter().map(|c| c.count).sum();
    Ok(Json(WipBoard { cells, total }))
}
