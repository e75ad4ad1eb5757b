//! Reading and verifying the audit chain (admins). Nothing here writes or deletes.

use axum::extract::State;
use axum::Json;
use metcon_shared::role::Permission;
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::ApiResult;
use super::extract::{Caller, QueryParams};
use super::AppState;
use crate::audit::{self, ChainReport};
use crate::store::AuditRecord;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Records after this sequence number.
    pub after: Option<u64>,
    /// At most this many (default 100, max 1000).
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/audit", tag = "audit", params(AuditQuery), responses((status = 200, body = [Object])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<AuditQuery>,
) -> ApiResult<Json<Vec<AuditRecord>>> {
    caller.require(Permission::ViewAudit)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(
        state
            .store
            .audit_records(q.after.unwrap_or(0), limit)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/audit/verify", tag = "audit", responses((status = 200, body = Object)))]
pub async fn verify(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<ChainReport>> {
    caller.require(Permission::ViewAudit)?;
    Ok(Json(audit::verify(state.store.as_ref()).await?))
}
