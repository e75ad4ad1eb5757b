//! Reading and verifying the audit chain (admins). Nothing here writes or deletes.
//!
//! `GET /api/audit` pages through the chain oldest first (`after`, for exports and
//! verification tools) or newest first (`order=newest`, `before`: the audit viewer), with
//! optional filters on actor, action, target and UTC days.

use axum::extract::State;
use axum::Json;
use metcon_shared::role::Permission;
use serde::Deserialize;
use time::Date;
use utoipa::IntoParams;

use super::error::{ApiError, ApiResult};
use super::extract::{Caller, QueryParams};
use super::AppState;
use crate::audit::{self, ChainReport};
use crate::store::{AuditCursor, AuditFilter, AuditRecord};

/// Which way a page of the chain runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOrder {
    /// Oldest first, from `after`.
    #[default]
    Oldest,
    /// Newest first, from `before`.
    Newest,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Oldest first: records after this sequence number.
    pub after: Option<u64>,
    /// Newest first: records before this sequence number (the "older" cursor).
    pub before: Option<u64>,
    /// `oldest` (default) or `newest`.
    #[param(value_type = Option<String>)]
    pub order: Option<AuditOrder>,
    /// At most this many (default 100, max 1000).
    pub limit: Option<u32>,
    /// Only this actor (username).
    pub actor: Option<String>,
    /// Only this action, e.g. `user_deactivated`.
    pub action: Option<String>,
    /// Only targets containing this text, e.g. `B-2026-0001` or `user:alice`.
    pub target: Option<String>,
    /// `true`: `target` is the whole target (`user:ann` without `user:anna`).
    pub exact: Option<bool>,
    /// From this UTC day, `YYYY-MM-DD`.
    pub from: Option<String>,
    /// To this UTC day (inclusive), `YYYY-MM-DD`.
    pub to: Option<String>,
}

/// `YYYY-MM-DD`, or a 422 naming the field.
pub fn parse_day(field: &str, raw: &str) -> ApiResult<Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(raw.trim(), &format).map_err(|_| {
        ApiError::unprocessable(format!("{field} must be a date as YYYY-MM-DD, not {raw:?}"))
    })
}

fn given(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

impl AuditQuery {
    /// The filters and cursor this query asks for; bad dates or a backwards range are 422.
    pub fn parse(&self) -> ApiResult<(AuditFilter, AuditCursor, u32)> {
        let day =
            |field: &str, v: &Option<String>| given(v).map(|s| parse_day(field, &s)).transpose();
        let filter = AuditFilter {
            actor: given(&self.actor),
            action: given(&self.action),
            target: given(&self.target),
            target_exact: self.exact.unwrap_or(false),
            from: day("from", &self.from)?,
            to: day("to", &self.to)?,
        };
        if let (Some(f), Some(t)) = (filter.from, filter.to) {
            if f > t {
                return Err(ApiError::unprocessable(
                    "the date range ends before it starts: 'to' is earlier than 'from'",
                ));
            }
        }
        // The stores compare sequence numbers as signed 64-bit integers.
        for (name, v) in [("after", self.after), ("before", self.before)] {
            if v.is_some_and(|n| n > i64::MAX as u64) {
                return Err(ApiError::unprocessable(format!(
                    "{name}: a sequence number is at most {}",
                    i64::MAX
                )));
            }
        }
        let cursor = match self.order.unwrap_or_default() {
            AuditOrder::Oldest => {
                if self.before.is_some() {
                    return Err(ApiError::unprocessable(
                        "before pages newest first: add order=newest",
                    ));
                }
                AuditCursor::After(self.after.unwrap_or(0))
            }
            AuditOrder::Newest => {
                if self.after.is_some() {
                    return Err(ApiError::unprocessable(
                        "after pages oldest first: use before with order=newest",
                    ));
                }
                AuditCursor::Before(self.before)
            }
        };
        Ok((filter, cursor, self.limit.unwrap_or(100).clamp(1, 1000)))
    }
}

#[utoipa::path(get, path = "/api/audit", tag = "audit", params(AuditQuery), responses((status = 200, body = [Object])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<AuditQuery>,
) -> ApiResult<Json<Vec<AuditRecord>>> {
    caller.require(Permission::ViewAudit)?;
    let (filter, cursor, limit) = q.parse()?;
    Ok(Json(
        state.store.audit_search(&filter, cursor, limit).await?,
    ))
}

#[utoipa::path(get, path = "/api/audit/verify", tag = "audit", responses((status = 200, body = Object)))]
pub async fn verify(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<ChainReport>> {
    caller.require(Permission::ViewAudit)?;
    Ok(Json(audit::verify(state.store.as_ref()).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_becomes_filters_and_a_cursor() {
        let q = AuditQuery {
            order: Some(AuditOrder::Newest),
            before: Some(40),
            actor: Some(" admin ".into()),
            target: Some("".into()),
            from: Some("2026-12-01".into()),
            to: Some("2026-12-02".into()),
            ..AuditQuery::default()
        };
        let (f, c, limit) = q.parse().expect("valid");
        assert_eq!(c, AuditCursor::Before(Some(40)));
        assert_eq!(limit, 100);
        assert_eq!(f.actor.as_deref(), Some("admin"));
        assert_eq!(f.target, None);
        assert_eq!(
            f.day_bounds(),
            (Some("2026-12-01".into()), Some("2026-12-03".into()))
        );
        assert_eq!(
            AuditQuery::default().parse().expect("valid").1,
            AuditCursor::After(0)
        );
    }

    #[test]
    fn bad_dates_and_mixed_cursors_are_refused() {
        let bad = AuditQuery {
            from: Some("02/12/2026".into()),
            ..AuditQuery::default()
        };
        assert!(bad
            .parse()
            .expect_err("refused")
            .detail
            .contains("YYYY-MM-DD"));
        let backwards = AuditQuery {
            from: Some("2026-12-02".into()),
            to: Some("2026-12-01".into()),
            ..AuditQuery::default()
        };
        assert_eq!(backwards.parse().expect_err("refused").status.as_u16(), 422);
        let mixed = AuditQuery {
            before: Some(3),
            ..AuditQuery::default()
        };
        assert!(mixed.parse().is_err());
    }
}
