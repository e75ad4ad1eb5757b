//! Flow versions: drafts are created and edited, validated, published (archiving the previous
//! active version) and archived. The lifecycle rules live in `metcon_shared::flow`; this module
//! loads, applies them and stores the result with its audit record.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use metcon_shared::flow::{is_slug, Flow, FlowContent, FlowProblem, FlowStatus};
use metcon_shared::role::Permission;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult};
use super::extract::{Body, Caller, PathParams};
use super::session::audit;
use super::AppState;

/// A flow version and, for drafts, what still keeps it from being published.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlowView {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub flow: Flow,
    #[schema(value_type = Vec<Object>)]
    pub problems: Vec<FlowProblem>,
}

impl From<Flow> for FlowView {
    fn from(flow: Flow) -> Self {
        let problems = if flow.status == FlowStatus::Draft {
            flow.content.problems()
        } else {
            Vec::new()
        };
        FlowView { flow, problems }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateFlow {
    pub flow_id: String,
    #[schema(value_type = Object)]
    pub content: FlowContent,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContentBody {
    #[schema(value_type = Object)]
    pub content: FlowContent,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVersion {
    /// Omit to start from a copy of the latest version.
    #[schema(value_type = Option<Object>)]
    pub content: Option<FlowContent>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// When the version starts to apply to new batches; default now.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub effective_date: Option<OffsetDateTime>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationReport {
    pub valid: bool,
    #[schema(value_type = Vec<Object>)]
    pub problems: Vec<FlowProblem>,
}

async fn load(state: &AppState, flow_id: &str, version: u32) -> ApiResult<Flow> {
    state.store.flow(flow_id, version).await?.ok_or_else(|| {
        ApiError::not_found(format!("flow {flow_id} version {version} does not exist"))
    })
}

#[utoipa::path(get, path = "/api/flows", tag = "flows", responses((status = 200, body = [FlowView])))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<FlowView>>> {
    caller.require(Permission::ViewFlows)?;
    Ok(Json(
        state
            .store
            .list_flows()
            .await?
            .into_iter()
            .map(FlowView::from)
            .collect(),
    ))
}

/// Create a new flow as draft version 1.
#[utoipa::path(post, path = "/api/flows", tag = "flows", request_body = CreateFlow, responses((status = 201, body = FlowView)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<CreateFlow>,
) -> ApiResult<(StatusCode, Json<FlowView>)> {
    caller.require(Permission::ManageFlows)?;
    if !is_slug(&req.flow_id) {
        return Err(ApiError::unprocessable(
            "flow_id must be 1–64 lowercase letters, digits, '_' or '-'",
        ));
    }
    if !state.store.flow_versions(&req.flow_id).await?.is_empty() {
        return Err(ApiError::conflict(format!(
            "flow {} exists; create a new version with POST /api/flows/{}/versions",
            req.flow_id, req.flow_id
        )));
    }
    let flow = Flow::new_draft(
        req.flow_id,
        1,
        req.content,
        caller.user.username.clone(),
        OffsetDateTime::now_utc(),
    );
    let a = audit(
        &caller.user.username,
        "flow_created",
        format!("flow:{}@1", flow.flow_id),
        json!({}),
        caller.ip.clone(),
    );
    state.store.insert_flow(&flow, &[a]).await?;
    Ok((StatusCode::CREATED, Json(flow.into())))
}

/// Check flow content without saving it.
#[utoipa::path(post, path = "/api/flows/validate", tag = "flows", request_body = ContentBody, responses((status = 200, body = ValidationReport)))]
pub async fn validate(
    caller: Caller,
    Body(req): Body<ContentBody>,
) -> ApiResult<Json<ValidationReport>> {
    caller.require(Permission::ManageFlows)?;
    let problems = req.content.problems();
    Ok(Json(ValidationReport {
        valid: problems.is_empty(),
        problems,
    }))
}

#[utoipa::path(get, path = "/api/flows/{flow_id}/versions", tag = "flows", responses((status = 200, body = [FlowView])))]
pub async fn versions(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(flow_id): PathParams<String>,
) -> ApiResult<Json<Vec<FlowView>>> {
    caller.require(Permission::ViewFlows)?;
    let v = state.store.flow_versions(&flow_id).await?;
    if v.is_empty() {
        return Err(ApiError::not_found(format!(
            "flow {flow_id} does not exist"
        )));
    }
    Ok(Json(v.into_iter().map(FlowView::from).collect()))
}

/// Start a new draft version (a copy of the latest, or the given content).
#[utoipa::path(post, path = "/api/flows/{flow_id}/versions", tag = "flows", request_body = NewVersion, responses((status = 201, body = FlowView)))]
pub async fn new_version(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(flow_id): PathParams<String>,
    body: Option<Body<NewVersion>>,
) -> ApiResult<(StatusCode, Json<FlowView>)> {
    caller.require(Permission::ManageFlows)?;
    let versions = state.store.flow_versions(&flow_id).await?;
    let latest = versions
        .last()
        .ok_or_else(|| ApiError::not_found(format!("flow {flow_id} does not exist")))?;
    if let Some(d) = versions.iter().find(|f| f.status == FlowStatus::Draft) {
        return Err(ApiError::conflict(format!(
            "flow {flow_id} already has draft version {}; edit or publish it first",
            d.version
        )));
    }
    let content = body
        .and_then(|Body(b)| b.content)
        .unwrap_or_else(|| latest.content.clone());
    let version = latest.version + 1;
    let flow = Flow::new_draft(
        flow_id.clone(),
        version,
        content,
        caller.user.username.clone(),
        OffsetDateTime::now_utc(),
    );
    let a = audit(
        &caller.user.username,
        "flow_created",
        format!("flow:{flow_id}@{version}"),
        json!({}),
        caller.ip.clone(),
    );
    state.store.insert_flow(&flow, &[a]).await?;
    Ok((StatusCode::CREATED, Json(flow.into())))
}

#[utoipa::path(get, path = "/api/flows/{flow_id}/versions/{version}", tag = "flows", responses((status = 200, body = FlowView)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((flow_id, version)): PathParams<(String, u32)>,
) -> ApiResult<Json<FlowView>> {
    caller.require(Permission::ViewFlows)?;
    Ok(Json(load(&state, &flow_id, version).await?.into()))
}

/// Replace the content of a draft.
#[utoipa::path(put, path = "/api/flows/{flow_id}/versions/{version}", tag = "flows", request_body = ContentBody, responses((status = 200, body = FlowView)))]
pub async fn edit(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((flow_id, version)): PathParams<(String, u32)>,
    Body(req): Body<ContentBody>,
) -> ApiResult<Json<FlowView>> {
    caller.require(Permission::ManageFlows)?;
    let mut flow = load(&state, &flow_id, version).await?;
    flow.edit(req.content)?;
    let a = audit(
        &caller.user.username,
        "flow_edited",
        format!("flow:{flow_id}@{version}"),
        json!({}),
        caller.ip.clone(),
    );
    state.store.save_draft(&flow, &[a]).await?;
    Ok(Json(flow.into()))
}

/// Publish a valid draft; the previously active version is archived.
#[utoipa::path(post, path = "/api/flows/{flow_id}/versions/{version}/publish", tag = "flows", request_body = PublishRequest, responses((status = 200, body = FlowView), (status = 422, description = "the draft has problems")))]
pub async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((flow_id, version)): PathParams<(String, u32)>,
    body: Option<Body<PublishRequest>>,
) -> ApiResult<Json<FlowView>> {
    caller.require(Permission::ManageFlows)?;
    let mut flow = load(&state, &flow_id, version).await?;
    let mut previous = state.store.active_flow(&flow_id).await?;
    let effective = body.and_then(|Body(b)| b.effective_date);
    flow.publish(previous.as_mut(), effective, OffsetDateTime::now_utc())?;
    let a = audit(
        &caller.user.username,
        "flow_published",
        format!("flow:{flow_id}@{version}"),
        json!({ "effective_date": flow.effective_date.map(|d| d.to_string()), "archived_version": previous.as_ref().map(|p| p.version) }),
        caller.ip.clone(),
    );
    state
        .store
        .publish_flow(&flow, previous.as_ref(), &[a])
        .await?;
    Ok(Json(flow.into()))
}

/// Archive an active version: no new batch starts on it; running batches finish on it.
#[utoipa::path(post, path = "/api/flows/{flow_id}/versions/{version}/archive", tag = "flows", responses((status = 200, body = FlowView)))]
pub async fn archive(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((flow_id, version)): PathParams<(String, u32)>,
) -> ApiResult<Json<FlowView>> {
    caller.require(Permission::ManageFlows)?;
    let mut flow = load(&state, &flow_id, version).await?;
    flow.archive()?;
    let a = audit(
        &caller.user.username,
        "flow_archived",
        format!("flow:{flow_id}@{version}"),
        json!({}),
        caller.ip.clone(),
    );
    state.store.archive_flow(&flow, &[a]).await?;
    Ok(Json(flow.into()))
}
