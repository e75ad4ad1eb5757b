//! The audit log viewer (`/audit`, for roles with `ViewAudit`): a GET form of filters
//! (actor, action, target or batch, UTC days), one page of entries newest first with an
//! "older" link carrying the API's `before` cursor, and the chain's status from verifying
//! every record (green when intact, red with the first broken sequence number).
//!
//! Both come from the JSON API's handlers (`http::audit_log::{list, verify}`) with the
//! viewer's `Caller`. Details are shown as `what: value` lines, not raw JSON.

use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::routing::get;
use axum::Router;
use metcon_shared::role::Permission;
use metcon_web::pages::{AuditEntry, AuditFilters, AuditPage, ChainStatus, Notice};
use serde::Deserialize;
use serde_json::Value;

use super::{encode_component, format, problem, render, UiResult, Viewer};
use crate::audit::ChainReport;
use crate::http::audit_log::{self as audit_api, AuditOrder, AuditQuery};
use crate::http::error::ApiError;
use crate::http::extract::QueryParams;
use crate::http::AppState;
use crate::store::AuditRecord;

/// Entries per page.
pub const PAGE: u32 = 50;

pub fn routes() -> Router<AppState> {
    Router::new().route("/audit", get(page))
}

/// The page's query string, leniently: every field optional, empty meaning absent.
#[derive(Debug, Default, Deserialize)]
struct Params {
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    /// The target is whole (`1`, the checkbox's value), not a part.
    exact: Option<String>,
    from: Option<String>,
    to: Option<String>,
    before: Option<String>,
}

fn filters_of(p: &Params) -> AuditFilters {
    let f = |v: &Option<String>| v.as_deref().unwrap_or("").trim().to_string();
    AuditFilters {
        actor: f(&p.actor),
        action: f(&p.action),
        target: f(&p.target),
        exact: p.exact.as_deref().is_some_and(|v| !v.trim().is_empty()),
        from: f(&p.from),
        to: f(&p.to),
    }
}

/// `/audit` with these filters (empty ones left out) and, for an older page, `before`.
pub fn link(f: &AuditFilters, before: Option<u64>) -> String {
    let exact = if f.exact && !f.target.is_empty() {
        "1".to_string()
    } else {
        String::new()
    };
    let mut parts: Vec<String> = [
        ("actor", &f.actor),
        ("action", &f.action),
        ("target", &f.target),
        ("exact", &exact),
        ("from", &f.from),
        ("to", &f.to),
    ]
    .iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| format!("{k}={}", encode_component(v)))
    .collect();
    if let Some(b) = before {
        parts.push(format!("before={b}"));
    }
    if parts.is_empty() {
        "/audit".into()
    } else {
        format!("/audit?{}", parts.join("&"))
    }
}

/// A JSON value as words: strings bare, lists joined, nothing as "—".
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        Value::Array(a) if a.is_empty() => "none".into(),
        Value::Array(a) => a.iter().map(scalar).collect::<Vec<_>>().join(", "),
        Value::Object(_) => v.to_string(),
        other => other.to_string(),
    }
}

fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let key = k.replace('_', " ");
                let key = if prefix.is_empty() {
                    key
                } else {
                    format!("{prefix} {key}")
                };
                flatten(&key, v, out);
            }
        }
        // A list of objects (rare) stays compact JSON rather than many lines.
        other => out.push((prefix.to_string(), scalar(other))),
    }
}

/// An entry's `details` as `(what, value)` lines: nested objects flatten to
/// `"from role"`-style names (`{"from": {"role": "operator"}}` → `("from role", "operator")`).
pub fn details(v: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    match v {
        Value::Null => {}
        Value::Object(m) if m.is_empty() => {}
        other => flatten("", other, &mut out),
    }
    out
}

/// The verification report as the page's banner.
pub fn chain_status(r: &ChainReport) -> ChainStatus {
    let entries = |n: u64| if n == 1 { "entry" } else { "entries" };
    match r.breaks.first() {
        None => ChainStatus {
            ok: true,
            headline: format!(
                "Chain intact: {} {} verified.",
                r.records,
                entries(r.records)
            ),
            breaks: vec![],
        },
        Some(first) => ChainStatus {
            ok: false,
            headline: format!(
                "Chain broken at entry {}: {} problem{} found in {} {} checked.",
                first.seq,
                r.breaks.len(),
                if r.breaks.len() == 1 { "" } else { "s" },
                r.records,
                entries(r.records)
            ),
            breaks: r
                .breaks
                .iter()
                .map(|b| format!("Entry {}: {}", b.seq, b.problem))
                .collect(),
        },
    }
}

fn entry(f: &AuditFilters, r: AuditRecord) -> AuditEntry {
    let e = r.entry;
    let only = |g: &dyn Fn(&mut AuditFilters)| {
        let mut f = f.clone();
        g(&mut f);
        link(&f, None)
    };
    AuditEntry {
        seq: r.seq,
        time: format::time(e.at),
        actor_link: only(&|f| f.actor = e.actor.clone()),
        action_link: only(&|f| f.action = e.action.clone()),
        // A row's target is a whole one: `user:ann` must not bring `user:anna` along.
        target_link: only(&|f| {
            f.target = e.target.clone();
            f.exact = true;
        }),
        details: details(&e.details),
        ip: e.ip.unwrap_or_default(),
        actor: e.actor,
        action: e.action,
        target: e.target,
    }
}

pub async fn page(State(state): State<AppState>, viewer: Viewer, uri: Uri) -> UiResult {
    viewer.require(Permission::ViewAudit)?;
    let mut notice: Option<Notice> = None;
    let mut status = StatusCode::OK;
    // A query the page cannot read (a field given twice, say) shows the newest entries and
    // says so, instead of quietly dropping the filters.
    let params = match Query::<Params>::try_from_uri(&uri) {
        Ok(Query(p)) => p,
        Err(e) => {
            let e = ApiError::unprocessable(format!(
                "the filters could not be read ({}); showing every entry",
                e.body_text()
            ));
            status = e.status;
            notice = Some(problem(&e));
            Params::default()
        }
    };
    let filters = filters_of(&params);
    let before = match params
        .before
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(b) => match b.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                let e = ApiError::unprocessable(format!(
                    "{b:?} is not an entry number; showing the newest entries"
                ));
                notice = Some(problem(&e));
                None
            }
        },
    };
    let q = AuditQuery {
        order: Some(AuditOrder::Newest),
        before,
        // One more than shown tells whether an older page exists.
        limit: Some(PAGE + 1),
        actor: Some(filters.actor.clone()),
        action: Some(filters.action.clone()),
        target: Some(filters.target.clone()),
        exact: Some(filters.exact),
        from: Some(filters.from.clone()),
        to: Some(filters.to.clone()),
        after: None,
    };
    let mut records =
        match audit_api::list(State(state.clone()), viewer.caller.clone(), QueryParams(q)).await {
            Ok(axum::Json(r)) => r,
            Err(e) if e.status == StatusCode::FORBIDDEN => return Err(viewer.fail(e)),
            Err(e) => {
                status = e.status;
                notice = Some(problem(&e));
                Vec::new()
            }
        };
    let older = if records.len() > PAGE as usize {
        records.truncate(PAGE as usize);
        records.last().map(|r| link(&filters, Some(r.seq)))
    } else {
        None
    };
    let axum::Json(report) = audit_api::verify(State(state.clone()), viewer.caller.clone())
        .await
        .map_err(|e| viewer.fail(e))?;
    Ok(render(
        status,
        &AuditPage {
            layout: viewer.layout("Audit log", notice),
            chain: chain_status(&report),
            entries: records.into_iter().map(|r| entry(&filters, r)).collect(),
            older,
            newest: before.map(|_| link(&filters, None)),
            filters,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::ChainBreak;
    use serde_json::json;

    #[test]
    fn details_read_as_lines_not_json() {
        let d = details(&json!({
            "from": { "role": "operator", "stations": ["receiving", "assay"] },
            "to": { "role": "supervisor", "stations": [] },
        }));
        assert_eq!(
            d,
            vec![
                ("from role".to_string(), "operator".to_string()),
                ("from stations".into(), "receiving, assay".into()),
                ("to role".into(), "supervisor".into()),
                ("to stations".into(), "none".into()),
            ]
        );
        assert!(details(&json!({})).is_empty());
        assert!(details(&Value::Null).is_empty());
        assert_eq!(
            details(&json!({ "reason": "wrong password", "attempt_no": 3, "ok": null })),
            vec![
                ("attempt no".to_string(), "3".to_string()),
                ("ok".into(), "—".into()),
                ("reason".into(), "wrong password".into()),
            ]
        );
        assert_eq!(
            details(&json!("plain")),
            vec![(String::new(), "plain".into())]
        );
    }

    #[test]
    fn links_keep_the_filters_encode_them_and_add_the_cursor() {
        let f = AuditFilters {
            actor: "admin".into(),
            target: "user:olga&x=1".into(),
            from: "2026-12-01".into(),
            ..AuditFilters::default()
        };
        assert_eq!(
            link(&f, Some(51)),
            "/audit?actor=admin&target=user%3Aolga%26x%3D1&from=2026-12-01&before=51"
        );
        assert_eq!(link(&AuditFilters::default(), None), "/audit");
        let whole = AuditFilters {
            target: "user:ann".into(),
            exact: true,
            ..AuditFilters::default()
        };
        assert_eq!(link(&whole, None), "/audit?target=user%3Aann&exact=1");
        // Without a target there is nothing to match exactly.
        let nothing = AuditFilters {
            exact: true,
            ..AuditFilters::default()
        };
        assert_eq!(link(&nothing, None), "/audit");
        assert_eq!(link(&AuditFilters::default(), Some(3)), "/audit?before=3");
    }

    #[test]
    fn the_chain_banner_names_the_first_break() {
        let ok = chain_status(&ChainReport {
            records: 42,
            ok: true,
            breaks: vec![],
        });
        assert!(ok.ok);
        assert_eq!(ok.headline, "Chain intact: 42 entries verified.");
        let bad = chain_status(&ChainReport {
            records: 42,
            ok: false,
            breaks: vec![
                ChainBreak {
                    seq: 7,
                    problem: "its content does not match its hash: the record was edited".into(),
                },
                ChainBreak {
                    seq: 8,
                    problem: "does not link to the record before it".into(),
                },
            ],
        });
        assert!(!bad.ok);
        assert!(
            bad.headline.starts_with("Chain broken at entry 7"),
            "{}",
            bad.headline
        );
        assert_eq!(bad.breaks.len(), 2);
        assert!(bad.breaks[0].starts_with("Entry 7: its content"));
    }
}
